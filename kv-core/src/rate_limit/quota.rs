//! Quotas resolved per request ([`Policy::quota_by`](super::Policy::quota_by)): tiers,
//! per-API-key plans, limits changed while the service runs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::MAX_TTL;
use crate::request::RequestView;

/// A quota: `limit` requests per `window` (GCRA: with a burst of `burst`, default `limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests per window (at least 1).
    pub limit: u32,
    /// The window (1 ms to 50 years).
    pub window: Duration,
    /// The GCRA burst; `None`: `limit`.
    pub burst: Option<u32>,
}

impl Quota {
    /// `limit` requests per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Quota {
            limit,
            window,
            burst: None,
        }
    }

    /// The GCRA burst.
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.limit > 0
            && self.burst != Some(0)
            && self.window >= Duration::from_millis(1)
            && self.window <= MAX_TTL / 2
            && (self.window / self.limit) >= Duration::from_micros(1)
            && (self.window / self.limit)
                .checked_mul(self.burst.unwrap_or(self.limit))
                .is_some_and(|full| full <= MAX_TTL)
    }
}

type Resolve = dyn Fn(&dyn RequestView, &str) -> Option<Quota> + Send + Sync;

/// The function that resolves a policy's quota per request.
#[derive(Clone)]
pub(crate) struct QuotaFn(pub(crate) Arc<Resolve>);

impl fmt::Debug for QuotaFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuotaFn")
    }
}
