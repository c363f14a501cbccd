//! What every request's session shares: the store, the cookie rules, the timeouts and
//! the key layout.

use std::time::Duration;

use super::cookie::CookieConfig;
use super::id::{ID_LEN, SessionId};
use crate::AnyStore;
use crate::clock::ClockHandle;

pub(super) struct ManagerInner {
    pub(super) store: AnyStore,
    pub(super) clock: ClockHandle,
    pub(super) cookie: CookieConfig,
    pub(super) idle: Duration,
    pub(super) absolute: Duration,
    /// Refresh the record's TTL once this much of the idle timeout has passed.
    pub(super) refresh_after: Duration,
    pub(super) prefix: String,
}

impl ManagerInner {
    pub(super) fn record_key(&self, id: &SessionId) -> String {
        let mut key = String::with_capacity(self.prefix.len() + ID_LEN);
        key.push_str(&self.prefix);
        key.push_str(id.as_str());
        key
    }

    /// The per-user index: a hash of session id → absolute deadline (Unix ms). `user:`
    /// holds a `:`, which ids never do, so the two kinds of keys cannot meet.
    pub(super) fn user_key(&self, user: &str) -> String {
        format!("{}user:{user}", self.prefix)
    }

    /// The TTL a record gets now: the idle timeout, cut at the absolute deadline.
    /// `None` once the absolute deadline has passed.
    pub(super) fn ttl_at(&self, created_ms: u64, now_ms: u64) -> Option<Duration> {
        let deadline = created_ms.saturating_add(millis(self.absolute));
        let left = deadline.checked_sub(now_ms).filter(|l| *l > 0)?;
        Some(self.idle.min(Duration::from_millis(left)))
    }

    pub(super) fn absolute_deadline(&self, created_ms: u64) -> u64 {
        created_ms.saturating_add(millis(self.absolute))
    }
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
