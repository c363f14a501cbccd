//! `MemoryStore`'s figures (`stats()`) and, with the `metrics` feature, the same figures
//! reported by its expiry thread: keys, bytes, evictions, expirations. One test in this
//! binary: the recorder is process-wide.

use std::time::{Duration, Instant};

use kv_core::{MemoryStore, Store};
use kv_test_support::metrics_capture::{self, value};

#[tokio::test]
async fn evictions_and_expirations_are_counted_and_reported() {
    metrics_capture::install();
    let store = MemoryStore::builder()
        .max_bytes(64 << 10)
        .max_value_len(4 << 10)
        .shards(1)
        .expiry_interval(Duration::from_millis(10))
        .build()
        .expect("store");

    // 50 short-lived keys, left to expire: active expiry reclaims them.
    for i in 0..50 {
        store
            .set(
                &format!("t{i}"),
                "v".into(),
                Some(Duration::from_millis(20)),
            )
            .await
            .expect("set");
    }
    let started = Instant::now();
    while store.stats().expirations < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "active expiry ran: {:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 1 000 values of 1 KiB into 64 KiB: most are evicted.
    let value_1k = bytes::Bytes::from(vec![b'x'; 1024]);
    for i in 0..1000 {
        store
            .set(&format!("k{i}"), value_1k.clone(), None)
            .await
            .expect("set");
    }
    let stats = store.stats();
    assert_eq!(stats.expirations, 50, "{stats:?}");
    assert!(stats.evictions >= 900, "{stats:?}");
    assert!(stats.bytes <= 64 << 10, "within the bound: {stats:?}");
    assert_eq!(stats.keys, store.len());

    // The expiry thread reports the same figures at its next ticks.
    let started = Instant::now();
    loop {
        let m = metrics_capture::snapshot();
        let now = store.stats();
        let reported = (
            value(&m, "kv_memory_store_evictions_total", &[]),
            value(&m, "kv_memory_store_expirations_total", &[]),
            value(&m, "kv_memory_store_keys", &[]),
            value(&m, "kv_memory_store_bytes", &[]),
        );
        #[allow(clippy::cast_precision_loss)]
        let expected = (
            now.evictions as f64,
            now.expirations as f64,
            now.keys as f64,
            now.bytes as f64,
        );
        if reported == expected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "reported {reported:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
