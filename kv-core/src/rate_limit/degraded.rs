//! What a decision does when the store fails ([`FailureMode`]), and degraded mode
//! ([`FailureMode::Local`]): while the store is
//! unreachable, every policy is decided in process by a GCRA with a share of its quota,
//! and the outage is logged once when it begins and once when it ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use smallvec::SmallVec;

use super::decision::PolicyState;
use super::gcra::Gcra;
use super::key::RateKey;
use super::policy::Policy;
use crate::KvError;
use crate::clock::ClockHandle;

/// What a decision does when the store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailureMode {
    /// Allow the request without rate-limit headers and log the failure at `warn`.
    #[default]
    Open,
    /// Answer `503 Service Unavailable` and log the failure at `error`.
    Closed,
    /// Degraded mode: decide every policy in process while the store fails, with a GCRA
    /// of `limit / replicas` per window (burst likewise, at least 1) per key — so that
    /// `replicas` instances together approximate the shared quota. The `RateLimit`
    /// fields show the local share; `RateLimit-Policy` still names the shared quota. The
    /// outage is logged once at `warn` when it begins and once at `info` when the store
    /// answers again, not per request
    /// ([`RateLimiter::outages`](super::RateLimiter::outages) counts them).
    Local {
        /// How many instances share the store's quota (at least 1).
        replicas: u32,
    },
}

pub(crate) struct Degraded {
    /// Per policy: the local stand-in (its limit and burst divided by `replicas`).
    local: Vec<(Policy, Gcra)>,
    down: AtomicBool,
    outages: AtomicU64,
}

impl Degraded {
    /// `None` when a policy's share makes no GCRA quota (validated by the caller).
    pub(crate) fn new(policies: &[Policy], replicas: u32, clock: &ClockHandle) -> Option<Self> {
        let replicas = replicas.max(1);
        let local = policies
            .iter()
            .map(|p| {
                let mut share = p.clone();
                share.limit = (p.limit / replicas).max(1);
                share.burst = Some((p.burst_size() / replicas).max(1));
                let gcra = Gcra::new(&share, clock.clone())?;
                Some((share, gcra))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Degraded {
            local,
            down: AtomicBool::new(false),
            outages: AtomicU64::new(0),
        })
    }

    /// The store failed: decide in process (and log if this begins an outage).
    pub(crate) fn decide(
        &self,
        err: &KvError,
        keys: &[RateKey],
        cost: u32,
    ) -> SmallVec<[PolicyState; 1]> {
        if !self.down.swap(true, Ordering::AcqRel) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                error = %err,
                "rate limit store unreachable: deciding with local quotas until it answers again"
            );
        }
        self.local
            .iter()
            .zip(keys)
            .map(|((share, gcra), key)| match share.algorithm {
                // A ban's state is in the store: during an outage nobody is banned.
                super::policy::Algorithm::Ban => PolicyState {
                    name: share.name.clone(),
                    limit: u64::from(share.limit),
                    window: share.window,
                    remaining: u64::from(share.limit),
                    reset_after: share.window,
                    retry_after: None,
                },
                _ => gcra.check(share, key, cost),
            })
            .collect()
    }

    /// The store answered: end an outage (logged once).
    pub(crate) fn store_answered(&self) {
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::AcqRel) {
            tracing::info!("rate limit store reachable again: shared quotas in force");
        }
    }

    pub(crate) fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    pub(crate) fn prune(&self) {
        for (_, gcra) in &self.local {
            gcra.prune();
        }
    }
}
