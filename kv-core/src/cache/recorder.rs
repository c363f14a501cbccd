//! [`Recorder`]: a response body copied as it streams, stored when complete.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;

use super::Cache;
use super::entry::{self, Entry, Marker, Stored};
use super::flight::FlightGuard;
use super::stats::bump;
use crate::{Step, Store};

/// Copies a response body as it streams, and stores it when complete.
pub struct Recorder<St: Store> {
    pub(super) cache: Cache<St>,
    pub(super) primary: String,
    pub(super) marker: Option<Arc<Marker>>,
    /// `None` once abandoned.
    pub(super) entry: Option<Entry>,
    /// The entry's headers are only in the encoded head (`entry.headers` is empty): a
    /// response without `Vary` or tags that [`Cache::stores_at_once`] is never put in a
    /// header map of its own; waiters get the entry decoded from what was stored.
    pub(super) in_place: bool,
    pub(super) ttl: Duration,
    /// The encoded entry: its head, then the body bytes recorded so far.
    pub(super) body: BytesMut,
    /// The length of the encoded head at the start of `body`.
    pub(super) head: usize,
    pub(super) expected_len: Option<u64>,
    pub(super) flight: Option<FlightGuard<St>>,
    pub(super) lock: Option<String>,
    /// The status to send instead of the inner service's (a range answered: 206, 416).
    pub(super) status_sent: Option<http::StatusCode>,
    /// The part of the body to send, `start..end` (a range), when not all of it.
    pub(super) window: Option<(u64, u64)>,
}

impl<St: Store> fmt::Debug for Recorder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("recording", &self.entry.is_some())
            .field("bytes", &self.body_len())
            .finish_non_exhaustive()
    }
}

/// The write of a recorded response that waits for the store, returned by
/// [`Recorder::finish`].
#[must_use = "a write does nothing unless it is awaited"]
pub struct Storing(Pin<Box<dyn Future<Output = ()> + Send>>);

impl fmt::Debug for Storing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storing").finish_non_exhaustive()
    }
}

impl Future for Storing {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl<St: Store> Recorder<St> {
    /// Copies a chunk of the body; past the size bound, recording stops (nothing will be
    /// stored, and the body keeps streaming).
    pub fn push(&mut self, chunk: &[u8]) {
        if self.entry.is_none() {
            return;
        }
        if self.body_len() + chunk.len() > self.cache.inner.config.max_body {
            tracing::debug!("kv cache: body over max_body_bytes; not stored");
            self.abandon();
            return;
        }
        self.body.extend_from_slice(chunk);
    }

    /// The body bytes recorded so far.
    fn body_len(&self) -> usize {
        self.body.len().saturating_sub(self.head)
    }

    /// The status to send instead of the inner service's, when the cache answers a
    /// `Range` request from the whole response it records (`206`, `416`); the headers
    /// were adjusted by [`Forward::response`](super::Forward::response).
    pub fn status(&self) -> Option<http::StatusCode> {
        self.status_sent
    }

    /// Whether the body is still being recorded.
    pub fn is_recording(&self) -> bool {
        self.entry.is_some()
    }

    /// Whether the whole body announced by `Content-Length` has been recorded: the entry
    /// can be finished now (servers may stop polling a body once that many bytes went out).
    pub fn is_complete(&self) -> bool {
        self.entry.is_some() && self.expected_len == Some(self.body_len() as u64)
    }

    /// Stops recording: nothing will be stored (a body error, a client gone).
    pub fn abandon(&mut self) {
        self.entry = None;
        self.body = BytesMut::new();
        if let Some(flight) = self.flight.take() {
            flight.finish(None);
        }
    }

    /// Stores the recorded response at once when that needs no waiting (a store with a
    /// local face and one write); `false` when the store must be awaited.
    fn finish_now(&mut self) -> bool {
        if self.lock.is_some() || !self.cache.stores_at_once() {
            return false;
        }
        if let Some(local) = self.cache.inner.store.local() {
            let Some(entry) = self.entry.as_ref() else {
                if let Some(flight) = self.flight.take() {
                    flight.finish(None);
                }
                return true;
            };
            if !entry.vary.is_empty() || !entry.tags.is_empty() {
                return false;
            }
            let counters = &self.cache.inner.counters;
            if self
                .expected_len
                .is_none_or(|n| n == self.body_len() as u64)
            {
                let encoded = std::mem::take(&mut self.body).freeze();
                let stored = match local.set(&self.primary, encoded, Some(self.ttl)) {
                    Ok(()) => {
                        bump(&counters.stored);
                        true
                    }
                    Err(err) => {
                        bump(&counters.store_errors);
                        tracing::warn!(error = %err, "kv cache: store write failed");
                        false
                    }
                };
                if let Some(flight) = self.flight.take() {
                    // Waiters (rare) get the entry read back from the store, headers
                    // included: the common fill, which nobody joined, neither clones the
                    // encoded bytes (a shared-buffer allocation) nor moves its entry.
                    let primary = &self.primary;
                    flight.finish_with(|| {
                        if !stored {
                            return None;
                        }
                        let bytes = local.get(primary).ok().flatten()?;
                        match entry::decode(bytes) {
                            Some(Stored::Entry(entry)) => Some(entry),
                            _ => None,
                        }
                    });
                }
                self.entry = None;
                return true;
            }
            self.entry = None;
            if let Some(flight) = self.flight.take() {
                flight.finish(None);
            }
            return true;
        }
        false
    }

    /// Stores the recorded response (the body is complete) and hands it to coalesced
    /// waiters. Store failures are logged and counted, never returned.
    ///
    /// [`Step::Ready`] when it was stored at once (a store with a
    /// [`LocalStore`](crate::LocalStore) face, no `Vary` marker, no cross-replica lock);
    /// [`Step::Pending`] with the write to await otherwise (spawn it, or await it).
    pub fn finish(mut self) -> Step<(), Storing> {
        if self.finish_now() {
            return Step::Ready(());
        }
        Step::Pending(Storing(Box::pin(self.store())))
    }

    /// [`finish`](Self::finish) of a boxed recorder (as the body wrapper holds it): the
    /// recorder leaves its box only when the store must be awaited.
    pub(super) fn finish_boxed(mut self: Box<Self>) -> Step<(), Storing> {
        if self.finish_now() {
            return Step::Ready(());
        }
        Step::Pending(Storing(Box::pin(async move { (*self).store().await })))
    }

    async fn store(mut self) {
        let cache = self.cache.clone();
        let mut entry = self.entry.take();
        if self.in_place {
            // Not reached (`finish_now` stores every entry recorded in place); were it
            // reached, the headers are taken back from the encoded head.
            let whole = entry.is_some().then(|| self.body.clone().freeze());
            entry = match whole.and_then(entry::decode) {
                Some(Stored::Entry(decoded)) => Some(Arc::unwrap_or_clone(decoded)),
                _ => None,
            };
        }
        if let Some(mut entry) = entry {
            let complete = self
                .expected_len
                .is_none_or(|n| n == self.body_len() as u64);
            let generations = if entry.tags.is_empty() {
                Some(Vec::new())
            } else {
                cache.generations(&entry.tags).await
            };
            if let (true, Some(generations)) = (complete, generations) {
                let mut encoded = std::mem::take(&mut self.body).freeze();
                entry.body = encoded.slice(self.head..);
                if !entry.tags.is_empty() {
                    for ((_, g), now) in entry.tags.iter_mut().zip(generations) {
                        *g = now;
                    }
                    // The head holds the tags' generations: encode it again.
                    encoded = entry.encode();
                    entry.body = encoded.slice(encoded.len() - entry.body.len()..);
                }
                let entry = Arc::new(entry);
                if let Some(flight) = self.flight.take() {
                    flight.finish(Some(Arc::clone(&entry)));
                }
                let write = cache.write(
                    &self.primary,
                    self.marker.take(),
                    &entry,
                    Some(encoded),
                    self.ttl,
                );
                if let Err(err) = Box::pin(write).await {
                    bump(&cache.inner.counters.store_errors);
                    tracing::warn!(error = %err, "kv cache: store write failed");
                }
            } else if complete {
                tracing::debug!("kv cache: tag generations unreadable; not stored");
            } else {
                tracing::debug!("kv cache: body length differs from Content-Length; not stored");
            }
        }
        if let Some(flight) = self.flight.take() {
            flight.finish(None);
        }
        if let Some(lock) = self.lock.take() {
            let _ = cache.inner.store.del(&lock).await;
        }
    }
}

impl<St: Store> Cache<St> {
    /// Whether a recorded response without `Vary`, tags or a cross-replica lock is stored
    /// by [`Recorder::finish`] at once: an in-process store face, and no near cache.
    pub(super) fn stores_at_once(&self) -> bool {
        #[cfg(feature = "near-cache")]
        if self.inner.near.is_some() {
            return false;
        }
        self.inner.store.local().is_some()
    }
}

impl<St: Store> Drop for Recorder<St> {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            self.cache.release_in_background(lock);
        }
    }
}
