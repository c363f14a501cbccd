//! Quota policies: what a client may do, counted how.

use std::sync::Arc;
use std::time::Duration;

use super::key::{KeySource, MissingKey};
use super::quota::{Quota, QuotaFn};
use crate::request::RequestView;

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
    /// GCRA (a leaky bucket without a timer), with a burst. Where its state lives is the
    /// policy's [`GcraState`]: by default in the store when the store is shared (one
    /// atomic [`Store::throttle`](crate::Store::throttle) per decision, so replicas share
    /// one budget), in process through `governor` when the store is in process anyway.
    Gcra,
    /// A ban, fail2ban style ([`Policy::ban`]): responses matching its predicate are
    /// strikes; `limit` strikes within `window` refuse the key for the ban's duration.
    Ban,
}

/// Which responses a policy counts ([`Policy::count_if`], [`Policy::ban`]).
#[derive(Clone)]
pub(crate) struct Outcome(pub(crate) Arc<dyn Fn(http::StatusCode) -> bool + Send + Sync>);

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outcome")
    }
}

/// Where a GCRA policy keeps its state ([`Policy::gcra_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GcraState {
    /// In process (`governor`) when the store has a [`LocalStore`](crate::LocalStore)
    /// face — its data is process-local anyway — and in the store otherwise. The default.
    #[default]
    Auto,
    /// Always in the store ([`Store::throttle`](crate::Store::throttle)): one budget for
    /// every limiter on the store, its keys readable and resettable by key.
    Store,
    /// Always in this process, through `governor`, even on a shared store: **each replica
    /// then has its own budget** (n replicas admit n × the quota). The fastest check, for
    /// limits that are meant per instance (protecting this process's CPU, say).
    InProcess,
}

/// Whose clock a GCRA decision in the store uses
/// ([`RateLimiterBuilder::gcra_clock`](super::RateLimiterBuilder::gcra_clock)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GcraClock {
    /// The store's: Redis' `TIME` (on a cluster, the clock of the master that holds the
    /// key), the memory store's [`Clock`](crate::Clock). The replicas' clocks do not
    /// matter at all; the default.
    #[default]
    Store,
    /// The limiter's own clock ([`RateLimiterBuilder::clock`](super::RateLimiterBuilder::clock)).
    /// Replicas whose clocks differ by `d` then disagree: a replica that is ahead sees
    /// the quota refilled early and admits up to `d / interval` requests more than the
    /// burst; one that is behind denies for up to `d` longer. For tests that drive time.
    Caller,
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
    pub(crate) gcra_state: GcraState,
    pub(crate) quota: Option<QuotaFn>,
    /// Counted after the handler, when the response matches (`None`: every request,
    /// before the handler).
    pub(crate) outcome: Option<Outcome>,
    /// A ban's duration.
    pub(crate) ban_for: Duration,
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
            gcra_state: GcraState::Auto,
            quota: None,
            outcome: None,
            ban_for: Duration::ZERO,
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
    /// burst of `limit` unless [`burst`](Policy::burst) says otherwise. Its state lives in
    /// the store when the store is shared (see [`gcra_state`](Policy::gcra_state)).
    pub fn gcra(name: &str, limit: u32, window: Duration) -> Self {
        Self::new(name, Algorithm::Gcra, limit, window)
    }

    /// A ban, fail2ban style: every response for which `count_if` holds (by default
    /// `401` and `403`: failed logins) is a strike against the key; `strikes` strikes
    /// within `within` refuse the key for `duration` (a `429` whose `Retry-After` is the
    /// ban left). It shows in the headers as a policy — `RateLimit-Policy:
    /// "name";q=<strikes>;w=<within>`, and `RateLimit: "name";r=<strikes left>;t=..` —
    /// and is read before the handler and charged after it, on both adapters. The key
    /// API's [`ban`](super::RateLimiter::ban) and [`unban`](super::RateLimiter::unban)
    /// set and lift it by hand. State: `<prefix><name>:<key>:strikes` and `..:ban`,
    /// both with TTLs.
    pub fn ban(name: &str, strikes: u32, within: Duration, duration: Duration) -> Self {
        let mut ban = Self::new(name, Algorithm::Ban, strikes, within);
        ban.ban_for = duration;
        ban.count_if(|status| {
            status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN
        })
    }

    /// Counts only the requests whose response matches `matches`, after the handler
    /// (brute-force protection: `|s| s == 401`; or `|s| !s.is_success()` to skip the
    /// successful ones). Before the handler the policy is only read: a key that has
    /// spent its quota is refused, one that has not passes uncounted. A GCRA policy
    /// counted this way keeps its state in the store. On a ban, the strikes' predicate.
    #[must_use]
    pub fn count_if(
        mut self,
        matches: impl Fn(http::StatusCode) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.outcome = Some(Outcome(Arc::new(matches)));
        self
    }

    /// The GCRA burst: how many requests may come at once after a quiet time.
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Where a GCRA policy keeps its state (default [`GcraState::Auto`]); ignored by the
    /// window algorithms, whose counters are always in the store.
    ///
    /// In the store, the state is one key `<prefix><policy>:<key>` holding the
    /// theoretical arrival time (µs since the epoch) with a TTL of the time until the
    /// quota is whole again; the emission interval (`window / limit`) has microsecond
    /// resolution there.
    #[must_use]
    pub fn gcra_state(mut self, state: GcraState) -> Self {
        self.gcra_state = state;
        self
    }

    /// The quota per request: `resolve` gets the request and its key (as written into
    /// store keys: `ip:203.0.113.7`, `h:<header value>`, `x:<custom>`, `global`) and
    /// answers the quota that applies — a tier (free / pro), a per-API-key plan — or
    /// `None` for the policy's own. It runs on every request, so it can read settings
    /// that change while the service runs (an `RwLock`ed map, say) without a restart.
    /// Every algorithm takes it; the `RateLimit-Policy` and `RateLimit` fields then show
    /// the quota that applied. An invalid quota (zero limit, window out of range) is
    /// logged and the policy's own applies. A GCRA policy with a quota function keeps
    /// its state in the store ([`GcraState::InProcess`] is refused by `build()`).
    #[must_use]
    pub fn quota_by(
        mut self,
        resolve: impl Fn(&dyn RequestView, &str) -> Option<Quota> + Send + Sync + 'static,
    ) -> Self {
        self.quota = Some(QuotaFn(std::sync::Arc::new(resolve)));
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

    /// This policy with the quota its function gives for this request and key; `None`
    /// to keep the configured one (no function, it answered `None`, or an invalid quota,
    /// which is logged).
    pub(crate) fn applied(&self, req: &dyn RequestView, key: &str) -> Option<Policy> {
        let quota = (self.quota.as_ref()?.0)(req, key)?;
        if !quota.is_valid() {
            tracing::warn!(
                policy = &*self.name,
                ?quota,
                "rate limit: invalid quota resolved; the policy's own applies"
            );
            return None;
        }
        let mut applied = self.clone();
        applied.limit = quota.limit;
        applied.window = quota.window;
        applied.burst = quota.burst;
        applied.quota = None;
        Some(applied)
    }

    /// The GCRA burst in effect.
    pub(crate) fn burst_size(&self) -> u32 {
        self.burst.unwrap_or(self.limit)
    }
}
