//! `RedisStore` on a real 3-master Redis Cluster started on loopback ports.

use kv_test_support as support;

use std::time::Duration;

use kv_core::testing::{self, RealTimeFixture};
use kv_core::{RedisStore, Store};
use support::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_the_conformance_suite_on_a_cluster() {
    let Some(cluster) = Cluster::start("redis_store_passes_the_conformance_suite_on_a_cluster")
    else {
        return;
    };
    let store = RedisStore::cluster_builder(cluster.urls())
        .key_prefix("cl:")
        .build()
        .await
        .expect("connect to cluster");
    testing::run_all(&RealTimeFixture::new(store.clone())).await;

    // Keys spread over the masters, counters with a TTL (the Lua script) included.
    for i in 0..300 {
        store
            .set(&format!("spread:{i}"), "v".into(), None)
            .await
            .expect("set");
        store
            .incr_by(&format!("counter:{i}"), 1, Some(Duration::from_secs(60)))
            .await
            .expect("incr");
    }
    let sizes: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|n| n.cli(&["DBSIZE"]).parse().expect("dbsize"))
        .collect();
    let holding = sizes.iter().filter(|&&n| n > 0).count();
    assert!(
        holding >= 2,
        "keys did not spread over the masters: {sizes:?}"
    );
    assert!(sizes.iter().sum::<u64>() >= 600, "{sizes:?}");
}

#[tokio::test]
async fn any_store_connect_opens_a_cluster_from_a_url_list() {
    let Some(cluster) = Cluster::start("any_store_connect_opens_a_cluster_from_a_url_list") else {
        return;
    };
    let store = kv_core::AnyStore::connect(&cluster.urls().join(","))
        .await
        .expect("cluster");
    assert_eq!(store.backend_name(), "redis");
    for i in 0..50 {
        assert_eq!(
            store
                .incr_by(&format!("n{i}"), 2, None)
                .await
                .expect("incr"),
            2
        );
    }
}
