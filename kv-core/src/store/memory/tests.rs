//! Internal invariants of the shards: byte accounting and the count of keys with a TTL
//! stay exact through every kind of write (strings, counters and hashes), expiry and
//! eviction.

use std::time::Duration;

use bytes::Bytes;

use super::MemoryStore;
use super::shard::cost;
use crate::Store;
use crate::clock::ManualClock;

fn check_invariants(store: &MemoryStore) {
    for shard in store.inner.shards.iter() {
        let shard = shard.0.read();
        let used: usize = shard
            .map
            .iter()
            .map(|(k, e)| cost(k.len(), e.value.len()))
            .sum();
        let volatile = shard.map.values().filter(|e| e.expires_at != 0).count();
        assert_eq!(shard.used, used, "byte accounting drifted");
        assert_eq!(shard.volatile, volatile, "volatile count drifted");
        assert!(shard.used <= store.inner.limits.max_bytes);
        assert!(shard.map.len() <= store.inner.limits.max_entries);
    }
}

#[test]
fn accounting_stays_exact_through_random_operations() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .clock(clock.clone())
        .shards(4)
        .max_bytes(64 << 10)
        .max_value_len(2048)
        .max_key_len(64)
        .max_entries(200)
        .without_active_expiry()
        .build()
        .expect("store");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    rt.block_on(async {
        for step in 0..20_000 {
            let key = format!("k{}", next() % 300);
            let ttl = match next() % 3 {
                0 => None,
                1 => Some(Duration::from_millis(1 + next() % 500)),
                _ => Some(Duration::from_secs(3600)),
            };
            let value = Bytes::from(vec![b'1'; (next() % 2048) as usize]);
            match next() % 11 {
                0 => drop(store.set(&key, value, ttl).await),
                1 => drop(store.set_nx(&key, value, ttl).await),
                2 => drop(store.incr_by(&key, 1, ttl).await),
                3 => drop(store.del(&key).await),
                4 => drop(
                    store
                        .expire(&key, Duration::from_millis(next() % 300))
                        .await,
                ),
                5 => drop(store.get(&key).await),
                8 => {
                    let field = format!("f{}", next() % 8);
                    let len = (next() % 600) as usize;
                    drop(
                        store
                            .hset(
                                &key,
                                vec![(field, value.slice(..len.min(value.len())))],
                                ttl,
                            )
                            .await,
                    )
                }
                9 => drop(store.hdel(&key, vec![format!("f{}", next() % 8)]).await),
                10 => drop(store.hget_all(&key).await),
                6 => clock.advance(Duration::from_millis(next() % 100)),
                _ => {
                    if step % 500 == 0 {
                        store.purge_expired();
                    }
                }
            }
            if step % 97 == 0 {
                check_invariants(&store);
            }
        }
    });
    check_invariants(&store);
    store.purge_expired();
    check_invariants(&store);
}
