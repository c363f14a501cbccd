//! Behaviour of `MemoryStore` beyond the shared contract: concurrency, active expiry,
//! bounds and eviction, input limits.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kv_core::clock::ManualClock;
use kv_core::{KvError, MemoryStore, Store, Ttl};

/// Runs a future of the memory store to completion (its futures never wait).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Polls `cond` for up to `limit` of real time.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

#[test]
fn incr_by_loses_no_update_across_os_threads() {
    let store = MemoryStore::new();
    let threads = 4;
    let each = 20_000;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                block_on(async {
                    for i in 0..each {
                        store.incr_by("shared", 1, None).await.expect("incr");
                        // a private counter too, interleaved with the shared one
                        store
                            .incr_by(&format!("own:{t}"), 2, None)
                            .await
                            .expect("incr");
                        if i % 1000 == 0 {
                            store.get("shared").await.expect("get");
                        }
                    }
                })
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    block_on(async {
        let total = store.get("shared").await.expect("get");
        assert_eq!(total, Some(Bytes::from((threads * each).to_string())));
        for t in 0..threads {
            assert_eq!(
                store
                    .incr_by(&format!("own:{t}"), 0, None)
                    .await
                    .expect("get"),
                2 * each as i64
            );
        }
    });
}

#[test]
fn a_million_short_lived_keys_are_reclaimed_without_being_read() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .clock(clock.clone())
        .expiry_interval(Duration::from_millis(5))
        .max_bytes(1 << 30)
        .build()
        .expect("store");
    block_on(async {
        let value = Bytes::from_static(&[b'v'; 64]);
        for i in 0..1_000_000u32 {
            store
                .set(
                    &format!("burst:{i:08}"),
                    value.clone(),
                    Some(Duration::from_secs(1)),
                )
                .await
                .expect("set");
        }
        store.set("keep", "me".into(), None).await.expect("set");
        store
            .set("keep-too", "me".into(), Some(Duration::from_secs(3600)))
            .await
            .expect("set");
    });
    assert_eq!(store.len(), 1_000_002);
    let full = store.used_bytes();
    assert!(full > 1_000_000 * 64);

    clock.advance(Duration::from_secs(2));
    // Nothing reads the keys: only the background expiry can remove them.
    assert!(
        wait_until(Duration::from_secs(60), || store.len() == 2),
        "active expiry left {} keys",
        store.len()
    );
    assert!(
        store.used_bytes() < full / 1000,
        "accounting not given back: {}",
        store.used_bytes()
    );
    block_on(async {
        assert_eq!(
            store.get("keep").await.expect("get").as_deref(),
            Some(&b"me"[..])
        );
        assert_eq!(
            store.get("keep-too").await.expect("get").as_deref(),
            Some(&b"me"[..])
        );
    });
}

#[test]
fn expired_keys_are_invisible_at_once_even_without_active_expiry() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .clock(clock.clone())
        .without_active_expiry()
        .build()
        .expect("store");
    block_on(async {
        store
            .set("k", "v".into(), Some(Duration::from_millis(100)))
            .await
            .expect("set");
        clock.advance(Duration::from_millis(99));
        assert_eq!(
            store.ttl("k").await.expect("ttl"),
            Ttl::Expires(Duration::from_millis(1))
        );
        assert!(store.get("k").await.expect("get").is_some());
        clock.advance(Duration::from_millis(1));
        // A TTL of 100 ms keeps the key exactly 100 ms.
        assert_eq!(store.get("k").await.expect("get"), None);
        assert_eq!(store.ttl("k").await.expect("ttl"), Ttl::Missing);
    });
    assert_eq!(store.len(), 1, "still held, not yet reclaimed");
    assert_eq!(store.purge_expired(), 1);
    assert_eq!(store.len(), 0);
    assert_eq!(store.used_bytes(), 0);
}

#[test]
fn entry_bound_is_never_exceeded_and_writes_keep_succeeding() {
    let store = MemoryStore::builder()
        .max_entries(1000)
        .build()
        .expect("store");
    block_on(async {
        for i in 0..20_000u32 {
            store
                .set(&format!("k{i}"), Bytes::from(vec![1u8; 32]), None)
                .await
                .expect("set never fails when full");
            assert!(store.len() <= 1000, "len {} after {i}", store.len());
            if i % 3 == 0 {
                store
                    .incr_by(&format!("c{i}"), 1, Some(Duration::from_secs(60)))
                    .await
                    .expect("incr");
                assert!(store.len() <= 1000);
            }
        }
        // The newest write is always there.
        assert!(store.get("k19999").await.expect("get").is_some());
    });
    assert!(store.len() > 900, "evicted far too much: {}", store.len());
}

#[test]
fn byte_bound_is_never_exceeded_under_concurrent_writers() {
    let max = 256 << 10;
    let store = MemoryStore::builder()
        .max_bytes(max)
        .max_value_len(4096)
        .max_key_len(64)
        .shards(8)
        .build()
        .expect("store");
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                block_on(async {
                    for i in 0..20_000usize {
                        let len = (i * 37) % 4096;
                        store
                            .set(&format!("t{t}:{i}"), Bytes::from(vec![0u8; len]), None)
                            .await
                            .expect("set");
                        assert!(store.used_bytes() <= max);
                    }
                })
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert!(store.used_bytes() <= max);
    assert!(
        store.used_bytes() > max / 2,
        "bound badly under-used: {}",
        store.used_bytes()
    );
}

#[test]
fn eviction_takes_keys_with_a_ttl_before_persistent_ones() {
    let store = MemoryStore::builder()
        .shards(1)
        .max_entries(1000)
        .without_active_expiry()
        .build()
        .expect("store");
    block_on(async {
        for i in 0..500 {
            store
                .set(&format!("persistent:{i}"), "p".into(), None)
                .await
                .expect("set");
            store
                .set(
                    &format!("volatile:{i}"),
                    "v".into(),
                    Some(Duration::from_secs(3600)),
                )
                .await
                .expect("set");
        }
        for i in 0..100 {
            store
                .set(&format!("new:{i}"), "n".into(), None)
                .await
                .expect("set");
        }
        let mut survivors = 0;
        for i in 0..500 {
            survivors += usize::from(
                store
                    .get(&format!("persistent:{i}"))
                    .await
                    .expect("get")
                    .is_some(),
            );
        }
        assert!(
            survivors >= 495,
            "only {survivors} of 500 persistent keys survived"
        );
        assert_eq!(store.len(), 1000);
    });
}

#[test]
fn eviction_takes_expired_keys_first() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .shards(1)
        .max_entries(100)
        .clock(clock.clone())
        .without_active_expiry()
        .build()
        .expect("store");
    block_on(async {
        for i in 0..50 {
            store
                .set(
                    &format!("short:{i}"),
                    "s".into(),
                    Some(Duration::from_secs(1)),
                )
                .await
                .expect("set");
            store
                .set(
                    &format!("long:{i}"),
                    "l".into(),
                    Some(Duration::from_secs(3600)),
                )
                .await
                .expect("set");
        }
        clock.advance(Duration::from_secs(2));
        for i in 0..25 {
            store
                .set(&format!("new:{i}"), "n".into(), None)
                .await
                .expect("set");
        }
        let mut survivors = 0;
        for i in 0..50 {
            survivors += usize::from(
                store
                    .get(&format!("long:{i}"))
                    .await
                    .expect("get")
                    .is_some(),
            );
        }
        assert!(
            survivors >= 48,
            "only {survivors} of 50 live keys survived while expired ones were held"
        );
    });
}

#[test]
fn eviction_is_least_recently_used_first() {
    let store = MemoryStore::builder()
        .shards(1)
        .max_entries(1000)
        .expiry_interval(Duration::from_millis(2))
        .build()
        .expect("store");
    block_on(async {
        for i in 0..1000 {
            store
                .set(&format!("k{i}"), "v".into(), None)
                .await
                .expect("set");
        }
        // Let the LRU clock (advanced by the expiry thread every 2 ms) move on.
        std::thread::sleep(Duration::from_millis(200));
        for i in 0..100 {
            assert!(store.get(&format!("k{i}")).await.expect("get").is_some());
        }
        std::thread::sleep(Duration::from_millis(50));
        for i in 0..100 {
            store
                .set(&format!("new{i}"), "v".into(), None)
                .await
                .expect("set");
        }
        let mut hot = 0;
        for i in 0..100 {
            hot += usize::from(store.get(&format!("k{i}")).await.expect("get").is_some());
        }
        assert!(hot >= 98, "only {hot} of 100 recently read keys survived");
    });
}

#[test]
fn oversize_keys_and_values_are_refused_and_store_nothing() {
    let store = MemoryStore::builder()
        .max_key_len(32)
        .max_value_len(100)
        .build()
        .expect("store");
    block_on(async {
        let long_key = "k".repeat(33);
        let r = store.set(&long_key, "v".into(), None).await;
        assert!(matches!(r, Err(KvError::InvalidInput(_))), "{r:?}");
        assert!(matches!(
            store.incr_by(&long_key, 1, None).await,
            Err(KvError::InvalidInput(_))
        ));
        assert!(matches!(
            store.set_nx(&long_key, "v".into(), None).await,
            Err(KvError::InvalidInput(_))
        ));
        assert_eq!(store.len(), 0);

        store
            .set("k", "old".into(), Some(Duration::from_secs(60)))
            .await
            .expect("set");
        let r = store.set("k", Bytes::from(vec![0u8; 101]), None).await;
        assert!(matches!(r, Err(KvError::InvalidInput(_))), "{r:?}");
        assert_eq!(
            store.get("k").await.expect("get").as_deref(),
            Some(&b"old"[..])
        );
        assert!(matches!(
            store.ttl("k").await.expect("ttl"),
            Ttl::Expires(_)
        ));
        // Exactly at the limits is fine.
        store
            .set(&"k".repeat(32), Bytes::from(vec![0u8; 100]), None)
            .await
            .expect("at the limit");
    });
}

#[test]
fn invalid_configuration_is_a_typed_error() {
    let bad = [
        MemoryStore::builder().shards(3).build(),
        MemoryStore::builder().shards(0).build(),
        MemoryStore::builder().shards(2048).build(),
        MemoryStore::builder().max_entries(0).build(),
        MemoryStore::builder().max_bytes(0).build(),
        MemoryStore::builder()
            .expiry_interval(Duration::ZERO)
            .build(),
        // 1 MiB values cannot fit in 32 shards of 1 MiB / 32.
        MemoryStore::builder().max_bytes(1 << 20).build(),
    ];
    for (i, r) in bad.into_iter().enumerate() {
        assert!(
            matches!(&r, Err(e) if e.component() == "memory store"),
            "case {i}: {r:?}"
        );
    }
    assert!(
        MemoryStore::builder()
            .max_bytes(1 << 20)
            .max_key_len(1024)
            .max_value_len(16 << 10)
            .build()
            .is_ok()
    );
    // Fewer entries than shards: the shard count shrinks so that the bound still holds.
    let tiny = MemoryStore::builder()
        .max_entries(3)
        .build()
        .expect("store");
    block_on(async {
        for i in 0..50 {
            tiny.set(&format!("k{i}"), "v".into(), None)
                .await
                .expect("set");
        }
    });
    assert!((1..=3).contains(&tiny.len()), "{}", tiny.len());
}

#[test]
fn clones_share_data_and_debug_shows_no_keys_or_values() {
    let store = MemoryStore::new();
    let other = store.clone();
    block_on(async {
        store
            .set(
                "session:SECRET-ID",
                Bytes::from_static(b"TOP-SECRET-VALUE"),
                None,
            )
            .await
            .expect("set");
        assert_eq!(
            other
                .get("session:SECRET-ID")
                .await
                .expect("get")
                .as_deref(),
            Some(&b"TOP-SECRET-VALUE"[..])
        );
    });
    assert_eq!(other.len(), 1);
    let debug = format!("{store:?} {:?}", kv_core::AnyStore::new(other));
    assert!(!debug.contains("SECRET"), "{debug}");
    assert!(debug.contains("len: 1"), "{debug}");
}

#[test]
fn many_distinct_keys_hash_to_all_shards() {
    // A guard on the shard selection: with 32 shards and a byte bound per shard, keys
    // that all landed in a few shards would be evicted long before the store is full.
    let store = MemoryStore::builder()
        .max_bytes((32 * 64) << 10)
        .max_value_len(1024)
        .build()
        .expect("store");
    block_on(async {
        for i in 0..10_000 {
            store
                .set(&format!("user:{i}"), Bytes::from_static(&[0; 64]), None)
                .await
                .expect("set");
        }
    });
    // 10k entries of ~180 accounted bytes = ~1.8 MiB of 2 MiB: an even spread holds them all.
    assert!(store.len() >= 9_900, "{}", store.len());
    let distinct: HashSet<_> = (0..100).map(|i| format!("user:{i}")).collect();
    assert_eq!(distinct.len(), 100);
}

#[test]
fn the_store_is_usable_from_many_tasks_through_an_arc() {
    let store = Arc::new(MemoryStore::new());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("rt");
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for t in 0..8 {
            let store = Arc::clone(&store);
            set.spawn(async move {
                for i in 0..1000 {
                    store
                        .set(
                            &format!("{t}:{i}"),
                            "v".into(),
                            Some(Duration::from_secs(60)),
                        )
                        .await
                        .expect("set");
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r.expect("task");
        }
    });
    assert_eq!(store.len(), 8000);
}

#[test]
fn huge_bounds_are_typed_errors_not_overflows() {
    let r = MemoryStore::builder().max_value_len(usize::MAX).build();
    assert!(
        matches!(&r, Err(e) if e.component() == "memory store"),
        "{r:?}"
    );
    let r = MemoryStore::builder().max_key_len(usize::MAX).build();
    assert!(
        matches!(&r, Err(e) if e.component() == "memory store"),
        "{r:?}"
    );
    let store = MemoryStore::builder()
        .max_key_len(8)
        .build()
        .expect("store");
    block_on(async {
        let long = "k".repeat(9);
        assert!(matches!(
            store.get(&long).await,
            Err(KvError::InvalidInput(_))
        ));
        assert!(matches!(
            store.del(&long).await,
            Err(KvError::InvalidInput(_))
        ));
        assert!(matches!(
            store.ttl(&long).await,
            Err(KvError::InvalidInput(_))
        ));
        assert!(matches!(
            store.expire(&long, Duration::from_secs(1)).await,
            Err(KvError::InvalidInput(_))
        ));
    });
}
