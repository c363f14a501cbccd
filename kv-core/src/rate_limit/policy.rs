//! Quota policies: what a client may do, counted how.

use std::sync::Arc;
use std::time::Duration;

use super::key::{KeySource, MissingKey};

/// How a policy counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// One counter per window: one atomic `incr_by` with the rest of the window as TTL.
    /// Simple and exact, but a client can spend two windows' worth around a boundary.
    FixedWindow,
    /// Sliding-window counter: the current window's counter plus the previous window's,
    /// weighted by how much of it still overlaps the sliding window. One `incr_by` and one
    /// `get`, sent concurrently (one round trip on Redis).
    SlidingWindow,
    /// GCRA (a leaky bucket without a timer), in process through the `governor` crate:
    /// the fastest check, with a burst; state is per instance, not shared through the
    /// store, and is pruned in the background.
    Gcra,
}

/// One quota: `limit` requests per `window`, counted by `algorithm`, per key.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) name: Arc<str>,
    pub(crate) algorithm: Algorithm,
    pub(crate) limit: u32,
    pub(crate) window: Duration,
    pub(crate) burst: Option<u32>,
    pub(crate) key: KeySource,
    pub(crate) missing: Option<MissingKey>,
}

impl Policy {
    fn new(name: &str, algorithm: Algorithm, limit: u32, window: Duration) -> Self {
        Policy {
            name: name.into(),
            algorithm,
            limit,
            window,
            burst: None,
            key: KeySource::peer_ip(),
            missing: None,
        }
    }

    /// `limit` requests per fixed `window`.
    pub fn fixed_window(name: &str, limit: u32, window: Duration) -> Self {
        Self::new(name, Algorithm::FixedWindow, limit, window)
    }

    /// `limit` requests per sliding `window` (sliding-window counter).
    pub fn sliding_window(name: &str, limit: u32, window: Duration) -> Self {
        Self::new(name, Algorithm::SlidingWindow, limit, window)
    }

    /// `limit` requests per `window` as a steady rate (one every `window / limit`), with a
    /// burst of `limit` unless [`burst`](Policy::burst) says otherwise. In process only.
    pub fn gcra(name: &str, limit: u32, window: Duration) -> Self {
        Self::new(name, Algorithm::Gcra, limit, window)
    }

    /// The GCRA burst: how many requests may come at once after a quiet time.
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Whom requests count against (default: [`KeySource::peer_ip`]).
    #[must_use]
    pub fn key(mut self, key: KeySource) -> Self {
        self.key = key;
        self
    }

    /// What a request without a key gets. Default: `500` for the IP sources (the server
    /// did not pass the peer address: a configuration error), `400` for the others.
    #[must_use]
    pub fn on_missing_key(mut self, missing: MissingKey) -> Self {
        self.missing = Some(missing);
        self
    }

    /// The policy's name, as it appears in the headers.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn missing_key(&self) -> MissingKey {
        self.missing.clone().unwrap_or_else(|| {
            if self.key.is_ip() {
                MissingKey::Reject(http::StatusCode::INTERNAL_SERVER_ERROR)
            } else {
                MissingKey::Reject(http::StatusCode::BAD_REQUEST)
            }
        })
    }

    /// The GCRA burst in effect.
    pub(crate) fn burst_size(&self) -> u32 {
        self.burst.unwrap_or(self.limit)
    }
}
