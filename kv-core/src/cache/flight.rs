//! In-process request coalescing: one fill per key, its waiters told the outcome.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use tokio::sync::watch;

use super::entry::Entry;
use super::stats::bump;
use super::{Cache, key};
use crate::{Answer, Store};

#[derive(Debug, Clone)]
pub(super) enum Flight {
    Running,
    /// The fill ended: the entry it stored, if any.
    Done(Option<Arc<Entry>>),
}

pub(super) enum Joined<St: Store> {
    Answer(Answer),
    Lead(FlightGuard<St>, Option<String>),
    Alone,
}

/// The leader's hold on an in-process fill: waiters are told the outcome when it is
/// finished or dropped.
pub(super) struct FlightGuard<St> {
    pub(super) cache: Cache<St>,
    pub(super) key: String,
    pub(super) tx: watch::Sender<Flight>,
    /// `finish` ran (the drop then has nothing to do).
    done: AtomicBool,
}

impl<St> FlightGuard<St> {
    fn new(cache: Cache<St>, key: &str, tx: watch::Sender<Flight>) -> Self {
        FlightGuard {
            cache,
            key: key.to_owned(),
            tx,
            done: AtomicBool::new(false),
        }
    }

    pub(super) fn finish(&self, entry: Option<Arc<Entry>>) {
        self.done.store(true, Ordering::Relaxed);
        let mut flights = self.cache.inner.flights.lock();
        if flights
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            flights.remove(&self.key);
        }
        drop(flights);
        // Waiters hold receivers cloned from the map under its lock; with the map's own
        // gone, none left means nobody joined this fill and none can now. Then there is
        // no one to tell: a watch channel's send wakes its eight notifiers whether anyone
        // waits or not (~500 instructions of every miss).
        if self.tx.receiver_count() > 0 {
            self.tx.send_replace(Flight::Done(entry));
        }
    }
}

impl<St> Drop for FlightGuard<St> {
    fn drop(&mut self) {
        if !self.done.load(Ordering::Relaxed) {
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
    pub(super) fn can_lead_now(&self, primary: &str) -> bool {
        !self.inner.config.lock_across_replicas && !self.inner.flights.lock().contains_key(primary)
    }

    /// Claims the fill of `primary` in this process, if nobody holds it.
    pub(super) fn lead(&self, primary: &str) -> Option<FlightGuard<St>> {
        let mut flights = self.inner.flights.lock();
        if flights.contains_key(primary) {
            return None;
        }
        let (tx, rx) = watch::channel(Flight::Running);
        flights.insert(primary.to_owned(), rx);
        Some(FlightGuard::new(self.clone(), primary, tx))
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
                Some(rx) => Ok(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(Flight::Running);
                    flights.insert(primary.to_owned(), rx);
                    Err(tx)
                }
            }
        };
        let rx = match joined {
            Ok(rx) => rx,
            Err(tx) => {
                let guard = FlightGuard::new(self.clone(), primary, tx);
                return self.cross_replica(guard, primary, headers, is_head).await;
            }
        };
        let mut rx = rx;
        let waited =
            tokio::time::timeout(timeout, rx.wait_for(|f| matches!(f, Flight::Done(_)))).await;
        let entry = match waited {
            Ok(Ok(flight)) => match &*flight {
                Flight::Done(Some(e)) => Some(Arc::clone(e)),
                _ => None,
            },
            _ => None,
        };
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
