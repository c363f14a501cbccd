//! `throttle` (GCRA in the store) on one entry, under its shard's write lock.

use crate::Result;
use crate::store::throttle::{self, Throttle, ThrottleReply};

use super::MemoryStore;
use super::shard::{Entry, Value};

impl MemoryStore {
    /// Reads the TAT, decides and writes the new TAT with its TTL in one lock hold, so
    /// concurrent callers are serialised exactly as Redis serialises scripts.
    pub(super) fn throttle_sync(&self, key: &str, request: Throttle) -> Result<ThrottleReply> {
        self.check_key(key)?;
        let params = throttle::params(&request)?;
        let tick = self.tick();
        let limits = self.inner.limits;
        let mut shard = self.shard(key).write();
        let since_epoch = self.inner.clock.now_since_epoch();
        let now_ms = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
        let now = params
            .now
            .unwrap_or_else(|| u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX));
        let live = shard
            .map
            .get_full(key)
            .filter(|(_, _, e)| !e.is_expired(now_ms));
        let (index, tat) = match live {
            None => (shard.map.get_index_of(key), None),
            Some((index, _, entry)) => {
                let tat = entry.value.to_int()?;
                (Some(index), Some(u64::try_from(tat).unwrap_or(0)))
            }
        };
        let (reply, next) = throttle::step(&params, now, tat);
        if let Some(next) = next {
            let expires_at =
                now_ms.saturating_add(throttle::ttl_millis(next, now, params.now.is_some()));
            // A TAT is at most MAX_TTL × 3 µs: it fits an i64.
            let value = Value::Int(i64::try_from(next).unwrap_or(i64::MAX));
            match index {
                Some(index) => shard.replace(index, key, value, expires_at, &limits, now_ms, tick),
                None => shard.insert_new(
                    key,
                    Entry::new(value, expires_at, tick),
                    &limits,
                    now_ms,
                    tick,
                ),
            }
        }
        Ok(reply)
    }
}
