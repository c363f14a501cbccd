//! What every request's session shares: the store, the cookie rules, the timeouts and
//! the key layout.

use std::time::Duration;

use super::cookie::CookieConfig;
use super::id::{ID_LEN, SessionId};
use super::origin::CrossOrigin;
use super::record::Meta;
use crate::AnyStore;
use crate::clock::ClockHandle;

pub(super) struct ManagerInner {
    pub(super) store: AnyStore,
    pub(super) clock: ClockHandle,
    pub(super) cookie: CookieConfig,
    /// The idle timeout of a logged-in session without a lifetime of its own.
    pub(super) idle: Duration,
    /// The idle timeout of an anonymous session without a lifetime of its own.
    pub(super) anonymous_idle: Duration,
    pub(super) absolute: Duration,
    /// The longest lifetimes a session may choose (`Session::set_lifetime`).
    pub(super) max_idle: Duration,
    pub(super) max_absolute: Duration,
    /// Refresh the record's TTL once this fraction of its idle timeout has passed.
    pub(super) refresh_fraction: f64,
    pub(super) prefix: String,
    /// Cross-origin protection for unsafe methods (`None`: off).
    pub(super) cross_origin: Option<CrossOrigin>,
    /// What the engine reports (feature `metrics`).
    pub(super) metrics: crate::observe::SessionMetrics,
}

/// The timeouts one session lives by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lifetime {
    pub(super) idle: Duration,
    pub(super) absolute: Duration,
}

impl ManagerInner {
    /// In this thread's spare buffer ([`crate::spare`]): a read's key is given back when
    /// its save is planned, a one-write save's after its call, so that neither allocates.
    pub(super) fn record_key(&self, id: &SessionId) -> String {
        let mut key = crate::spare::take();
        key.reserve(self.prefix.len() + ID_LEN);
        key.push_str(&self.prefix);
        key.push_str(id.as_str());
        key
    }

    /// The per-user index: a hash of session id → absolute deadline (Unix ms). `user:`
    /// holds a `:`, which ids never do, so the two kinds of keys cannot meet.
    pub(super) fn user_key(&self, user: &str) -> String {
        format!("{}user:{user}", self.prefix)
    }

    /// The timeouts of a session: its own (from the record, within the maxima) or the
    /// manager's for its class (logged in or anonymous).
    pub(super) fn lifetime(&self, logged_in: bool, meta: &Meta) -> Lifetime {
        let class_idle = if logged_in {
            self.idle
        } else {
            self.anonymous_idle
        };
        Lifetime {
            idle: meta
                .idle_ms
                .map_or(class_idle, Duration::from_millis)
                .min(self.max_idle),
            absolute: meta
                .absolute_ms
                .map_or(self.absolute, Duration::from_millis)
                .min(self.max_absolute),
        }
    }

    /// The TTL a record gets now: the idle timeout, cut at the absolute deadline.
    /// `None` once the absolute deadline has passed.
    pub(super) fn ttl_at(&self, created_ms: u64, now_ms: u64, life: Lifetime) -> Option<Duration> {
        let deadline = created_ms.saturating_add(millis(life.absolute));
        let left = deadline.checked_sub(now_ms).filter(|l| *l > 0)?;
        Some(life.idle.min(Duration::from_millis(left)))
    }

    pub(super) fn absolute_deadline(&self, created_ms: u64, life: Lifetime) -> u64 {
        created_ms.saturating_add(millis(life.absolute))
    }

    /// How much of the idle timeout passes before a use refreshes the TTL.
    pub(super) fn refresh_after(&self, life: Lifetime) -> Duration {
        life.idle.mul_f64(self.refresh_fraction)
    }
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
