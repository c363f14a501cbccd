//! In-process request coalescing: one fill per key, its waiters told the outcome.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use tokio::sync::Notify;

use super::entry::Entry;
use super::stats::bump;
use super::{Cache, key};
use crate::{Answer, Store};

/// A fill in flight: the entry its leader stored once it is done, and its waiters.
///
/// Not a `watch` channel: that allocates eight notifiers and wakes them all when its
/// sender drops, whether anyone waits or not, which was ~700 instructions of every miss.
/// A fill nobody joined here costs one small allocation and no wake-up.
pub(super) struct Flight {
    /// The primary key being filled (the map's key too: see [`InFlight`]).
    key: String,
    /// The outcome: the entry stored, or `None` (nothing stored, or the leader gone).
    done: OnceLock<Option<Arc<Entry>>>,
    woken: Notify,
}

impl Flight {
    fn new(key: &str) -> Arc<Flight> {
        Arc::new(Flight {
            key: key.to_owned(),
            done: OnceLock::new(),
            woken: Notify::new(),
        })
    }

    /// The outcome, once the leader has one.
    async fn outcome(&self) -> Option<Arc<Entry>> {
        loop {
            // Made before the check: a `Notified` receives every `notify_waiters` from its
            // creation on, polled or not, so a `finish` between the two still wakes it.
            let notified = self.woken.notified();
            if let Some(done) = self.done.get() {
                return done.clone();
            }
            notified.await;
        }
    }
}

impl fmt::Debug for Flight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flight")
            .field("key", &self.key)
            .field("done", &self.done.get().is_some())
            .finish_non_exhaustive()
    }
}

/// The in-flight map's element: a flight, found by its key (one allocation for both).
#[derive(Debug)]
pub(super) struct InFlight(Arc<Flight>);

impl Borrow<str> for InFlight {
    fn borrow(&self) -> &str {
        &self.0.key
    }
}

impl Hash for InFlight {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes: `Borrow<str>` look-ups must find it.
        self.0.key.as_str().hash(state);
    }
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for InFlight {}

pub(super) enum Joined<St: Store> {
    Answer(Answer),
    Lead(FlightGuard<St>, Option<String>),
    Alone,
}

/// The leader's hold on an in-process fill: waiters are told the outcome when it is
/// finished or dropped.
pub(super) struct FlightGuard<St> {
    pub(super) cache: Cache<St>,
    flight: Arc<Flight>,
}

impl<St> FlightGuard<St> {
    pub(super) fn finish(&self, entry: Option<Arc<Entry>>) {
        self.finish_with(|| entry);
    }

    /// [`finish`](Self::finish) with the outcome made only when someone waits for it: a
    /// fill nobody joined (most of them) shares no entry, so it need not be put in an
    /// `Arc` (an allocation and a copy of the entry per miss).
    pub(super) fn finish_with(&self, outcome: impl FnOnce() -> Option<Arc<Entry>>) {
        let mut flights = self.cache.inner.flights.lock();
        // One look-up: taken out, and put back in the (rare) case it is another flight.
        if let Some(taken) = flights.take(self.flight.key.as_str())
            && !Arc::ptr_eq(&taken.0, &self.flight)
        {
            flights.insert(taken);
        }
        drop(flights);
        // Waiters clone the flight from the map under its lock; with the map's reference
        // gone, only the guard's left means nobody joined, and nobody can now. (A waiter
        // that joined sees the outcome below: it checks after making its `Notified`.)
        // The first outcome stands (a drop after `finish` changes nothing).
        if Arc::strong_count(&self.flight) > 1 {
            let _ = self.flight.done.set(outcome());
            self.flight.woken.notify_waiters();
        } else {
            let _ = self.flight.done.set(None);
        }
    }
}

impl<St> Drop for FlightGuard<St> {
    fn drop(&mut self) {
        if self.flight.done.get().is_none() {
            self.finish(None);
        }
    }
}

impl<St> fmt::Debug for FlightGuard<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlightGuard").finish_non_exhaustive()
    }
}

/// Coalescing: one fill per key, in process (a flight) and across replicas (a lock).
impl<St: Store> Cache<St> {
    /// Claims the fill of `primary` in this process, if nobody holds it. One look-up: the
    /// flight is made first and inserted only where none is (when one is, the fill is
    /// contended and the flight made for nothing is dropped).
    pub(super) fn lead(&self, primary: &str) -> Option<FlightGuard<St>> {
        let flight = Flight::new(primary);
        if !self
            .inner
            .flights
            .lock()
            .insert(InFlight(Arc::clone(&flight)))
        {
            return None;
        }
        Some(FlightGuard {
            cache: self.clone(),
            flight,
        })
    }

    pub(super) async fn join_or_lead(
        &self,
        primary: &str,
        headers: &HeaderMap,
        is_head: bool,
        now: u64,
    ) -> Joined<St> {
        let timeout = self.inner.config.lock_timeout;
        let joined = {
            let mut flights = self.inner.flights.lock();
            match flights.get(primary) {
                Some(flight) => Ok(Arc::clone(&flight.0)),
                None => {
                    let flight = Flight::new(primary);
                    flights.insert(InFlight(Arc::clone(&flight)));
                    Err(flight)
                }
            }
        };
        let flight = match joined {
            Ok(flight) => flight,
            Err(flight) => {
                let guard = FlightGuard {
                    cache: self.clone(),
                    flight,
                };
                return self.cross_replica(guard, primary, headers, is_head).await;
            }
        };
        let entry = tokio::time::timeout(timeout, flight.outcome())
            .await
            .ok()
            .flatten();
        if let Some(entry) = entry {
            let values = key::vary_values(
                &entry
                    .vary
                    .iter()
                    .map(|(n, _)| n.clone())
                    .collect::<Vec<_>>(),
                headers,
                &self.inner.config.keys,
            );
            let now = self.now().max(now);
            if values == entry.vary && entry.is_fresh(now) {
                return Joined::Answer(self.serve(entry, headers, is_head, now));
            }
        }
        Joined::Alone
    }

    /// The leader of an in-process fill also takes the store lock when the store is
    /// shared; if another replica holds it, waits for its entry by polling the store.
    pub(super) async fn cross_replica(
        &self,
        guard: FlightGuard<St>,
        primary: &str,
        headers: &HeaderMap,
        is_head: bool,
    ) -> Joined<St> {
        let config = &self.inner.config;
        if !config.lock_across_replicas {
            return Joined::Lead(guard, None);
        }
        let lock = key::lock_key(primary);
        let ttl = config.lock_timeout;
        match self
            .inner
            .store
            .set_nx(&lock, Bytes::from_static(b"1"), Some(ttl))
            .await
        {
            Ok(true) => return Joined::Lead(guard, Some(lock)),
            Ok(false) => {}
            Err(err) => {
                bump(&self.inner.counters.store_errors);
                tracing::warn!(error = %err, "kv cache: fill lock failed; filling without it");
                return Joined::Lead(guard, None);
            }
        }
        let start = self.now();
        let deadline = tokio::time::Instant::now() + ttl;
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = self.now().max(start);
            if let (Some(entry), _) = self.find(primary, headers, now).await
                && entry.is_fresh(now)
            {
                guard.finish(Some(Arc::clone(&entry)));
                return Joined::Answer(self.serve(entry, headers, is_head, now));
            }
            let held = matches!(
                self.inner.store.ttl(&lock).await,
                Ok(crate::Ttl::Expires(_))
            );
            if !held || tokio::time::Instant::now() >= deadline {
                return Joined::Lead(guard, None);
            }
        }
    }
}
