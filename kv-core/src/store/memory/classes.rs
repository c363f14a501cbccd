//! Eviction classes: key prefixes whose entries a full shard evicts only when it holds
//! nothing else (see [`MemoryStoreBuilder::protect_prefix`](super::MemoryStoreBuilder::protect_prefix)).
//!
//! The point: one bounded store serves sessions, cache entries and counters; a flood of
//! anonymous sessions or of cache entries must not push out logged-in users' sessions.
//! Protected keys count against the bound like any other; they are just the last to go.

use std::sync::Arc;

/// The protected key prefixes, shared by every shard.
#[derive(Debug, Clone, Default)]
pub(crate) struct Classes(Arc<[Box<str>]>);

impl Classes {
    pub(crate) fn new(prefixes: &[String]) -> Self {
        Classes(prefixes.iter().map(|p| p.as_str().into()).collect())
    }

    /// Whether `key` is protected. No prefix configured: one length check.
    #[inline]
    pub(crate) fn covers(&self, key: &str) -> bool {
        !self.0.is_empty() && self.0.iter().any(|p| key.starts_with(&**p))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use crate::Store;
    use crate::clock::ManualClock;
    use crate::store::memory::MemoryStore;

    use super::Classes;

    #[test]
    fn covers_only_the_configured_prefixes() {
        let classes = Classes::new(&["session:u.".to_owned(), "session:user:".to_owned()]);
        assert!(classes.covers("session:u.abc"));
        assert!(classes.covers("session:user:alice"));
        assert!(!classes.covers("session:uabc"));
        assert!(!classes.covers("cache:x"));
        assert!(!Classes::default().covers("session:u.abc"));
    }

    /// A store flooded with unprotected keys far beyond its bound keeps every protected
    /// key, and stays within the bound; without the class, the same flood evicts them.
    #[tokio::test]
    async fn a_flood_of_unprotected_keys_evicts_no_protected_key() {
        async fn flood(protect: bool) -> (usize, MemoryStore) {
            let clock = ManualClock::new();
            let mut builder = MemoryStore::builder()
                .max_bytes(256 << 10)
                .max_value_len(1 << 10)
                .shards(4)
                .without_active_expiry()
                .clock(clock.clone());
            if protect {
                builder = builder.protect_prefix("keep:");
            }
            let store = builder.build().expect("store");
            let ttl = Some(Duration::from_secs(600));
            for i in 0..50 {
                store
                    .set(&format!("keep:{i}"), Bytes::from_static(&[1; 200]), ttl)
                    .await
                    .expect("set");
            }
            for i in 0..20_000 {
                let value = Bytes::from_static(&[2; 200]);
                store
                    .set(&format!("flood:{i}"), value, ttl)
                    .await
                    .expect("set");
                if i % 1000 == 0 {
                    clock.advance(Duration::from_millis(1));
                }
            }
            let mut kept = 0;
            for i in 0..50 {
                if store
                    .get(&format!("keep:{i}"))
                    .await
                    .expect("get")
                    .is_some()
                {
                    kept += 1;
                }
            }
            (kept, store)
        }
        let (kept, store) = flood(true).await;
        assert_eq!(kept, 50, "every protected key survives");
        assert!(store.used_bytes() <= 256 << 10, "within the bound");
        let (unprotected_kept, _) = flood(false).await;
        assert!(
            unprotected_kept < 50,
            "the flood is heavy enough to evict them otherwise"
        );
    }
}
