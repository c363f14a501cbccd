//! The near cache: decoded hot entries in a bounded in-process `moka` cache.

use std::time::{Duration, Instant};

use moka::Expiry;

use super::entry::Stored;

#[derive(Clone)]
struct Item {
    stored: Stored,
    /// How long this item may live in the near cache (set at insertion).
    ttl: Duration,
}

struct PerItem;

impl Expiry<String, Item> for PerItem {
    fn expire_after_create(&self, _key: &String, item: &Item, _now: Instant) -> Option<Duration> {
        Some(item.ttl)
    }
    fn expire_after_update(
        &self,
        _key: &String,
        item: &Item,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(item.ttl)
    }
}

pub(crate) struct Near {
    cache: moka::sync::Cache<String, Item>,
    ttl: Duration,
}

impl Near {
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Near {
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .expire_after(PerItem)
            .build();
        Near { cache, ttl }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Stored> {
        self.cache.get(key).map(|item| item.stored)
    }

    /// Keeps `stored` for at most the near TTL, and an entry never past its freshness
    /// (a stale entry is not kept at all).
    pub(crate) fn insert(&self, key: &str, stored: &Stored, now: u64) {
        let ttl = match stored {
            Stored::Entry(e) => {
                let remaining = Duration::from_millis(e.remaining(now));
                if remaining.is_zero() {
                    return;
                }
                remaining.min(self.ttl)
            }
            Stored::Marker(_) => self.ttl,
        };
        self.cache.insert(
            key.to_owned(),
            Item {
                stored: stored.clone(),
                ttl,
            },
        );
    }

    pub(crate) fn remove(&self, key: &str) {
        self.cache.invalidate(key);
    }
}
