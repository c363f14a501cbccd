//! `RedisStore` on a Redis Cluster in motion: a slot migration (`ASK` then `MOVED`) and
//! master failovers (`CLUSTER FAILOVER`, and a killed master) while traffic runs. Every
//! call stays bounded by the command timeout, calls succeed again without rebuilding the
//! store, and no acknowledged increment is lost (each key's stored value is at least its
//! acknowledged increments and at most those plus the calls that failed).

use kv_test_support as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kv_core::{KvError, RedisStore, Store};
use support::Cluster;

const TIMEOUT: Duration = Duration::from_millis(500);
const KEYS: usize = 24;

async fn cluster_store(cluster: &Cluster) -> RedisStore {
    RedisStore::cluster_builder(cluster.urls())
        .command_timeout(TIMEOUT)
        .connect_timeout(Duration::from_millis(500))
        .key_prefix("mv:")
        .build()
        .await
        .expect("connect to the cluster")
}

/// Per key: (acknowledged increments, failed calls).
type Tally = Vec<(i64, i64)>;

/// Increments `keys` round robin until `stop`; half the keys through the TTL script,
/// half through plain `INCRBY`. Returns the tally and the longest time a key could not
/// be incremented (first failure to next success).
async fn traffic(store: RedisStore, keys: Vec<String>, stop: Arc<AtomicBool>) -> (Tally, Duration) {
    let mut tally = vec![(0, 0); keys.len()];
    let mut failing_since: Vec<Option<Instant>> = vec![None; keys.len()];
    let mut longest = Duration::ZERO;
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) || failing_since.iter().any(Option::is_some) {
        let k = i % keys.len();
        i += 1;
        let ttl = k.is_multiple_of(2).then_some(Duration::from_secs(600));
        let call = Instant::now();
        let result = store.incr_by(&keys[k], 1, ttl).await;
        assert!(
            call.elapsed() < TIMEOUT + Duration::from_millis(300),
            "a call took {:?}",
            call.elapsed()
        );
        match result {
            Ok(_) => {
                tally[k].0 += 1;
                if let Some(since) = failing_since[k].take() {
                    longest = longest.max(since.elapsed());
                }
            }
            Err(KvError::Unavailable(_) | KvError::Backend(_)) => {
                tally[k].1 += 1;
                failing_since[k].get_or_insert_with(Instant::now);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(other) => panic!("unexpected failure {other:?}"),
        }
        if let Some(since) = failing_since[k] {
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "no recovery within 30 s"
            );
        }
        if i.is_multiple_of(64) {
            tokio::task::yield_now().await;
        }
    }
    (tally, longest)
}

async fn assert_nothing_lost(store: &RedisStore, keys: &[String], tally: &Tally) {
    let mut acked_total = 0;
    for (key, (acked, failed)) in keys.iter().zip(tally) {
        let stored: i64 = match store.get(key).await.expect("read back") {
            Some(v) => std::str::from_utf8(&v)
                .expect("utf8")
                .parse()
                .expect("integer"),
            None => 0,
        };
        assert!(
            stored >= *acked && stored <= acked + failed,
            "{key}: stored {stored}, acknowledged {acked}, failed {failed}"
        );
        acked_total += acked;
    }
    assert!(
        acked_total > 100,
        "the traffic ran ({acked_total} increments)"
    );
}

fn migrate_slot(cluster: &Cluster, slot: u16) -> (u16, u16) {
    let topology = cluster.topology(0);
    let source = topology
        .iter()
        .find(|n| n.master && n.serves(slot))
        .expect("owner")
        .clone();
    let target = topology
        .iter()
        .find(|n| n.master && n.id != source.id)
        .expect("another master")
        .clone();
    let (src, dst) = (cluster.index_of(source.port), cluster.index_of(target.port));
    let slot_s = slot.to_string();
    assert_eq!(
        cluster.nodes[dst].cli(&["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &source.id]),
        "OK"
    );
    assert_eq!(
        cluster.nodes[src].cli(&["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &target.id]),
        "OK"
    );
    // Move the keys a few at a time, with traffic in between: requests for moved keys
    // get ASK, for the others the source still answers.
    loop {
        let keys = cluster.nodes[src].cli(&["CLUSTER", "GETKEYSINSLOT", &slot_s, "3"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let port = target.port.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(keys);
        let reply = cluster.nodes[src].cli(&args);
        assert!(reply == "OK" || reply == "NOKEY", "MIGRATE: {reply}");
        std::thread::sleep(Duration::from_millis(30));
    }
    for node in &cluster.nodes {
        node.cli(&["CLUSTER", "SETSLOT", &slot_s, "NODE", &target.id]);
    }
    (source.port, target.port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migration_under_traffic_loses_no_increment() {
    let Some(cluster) = Cluster::start("a_slot_migration_under_traffic_loses_no_increment") else {
        return;
    };
    let cluster = Arc::new(cluster);
    let store = cluster_store(&cluster).await;
    // One hash tag: every key in the migrating slot.
    let keys: Vec<String> = (0..KEYS).map(|i| format!("{{moving}}:{i}")).collect();
    let slot: u16 = cluster.nodes[0]
        .cli(&["CLUSTER", "KEYSLOT", "mv:{moving}:0"])
        .parse()
        .expect("slot");
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(traffic(store.clone(), keys.clone(), Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let c = Arc::clone(&cluster);
    let (from, to) = tokio::task::spawn_blocking(move || migrate_slot(&c, slot))
        .await
        .expect("migration");
    // Traffic goes on after the move (MOVED from the old owner).
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (tally, outage) = load.await.expect("traffic");
    eprintln!("slot {slot} moved {from} -> {to}; longest a key could not be written {outage:?}");
    let asking = cluster.nodes[cluster.index_of(to)].cli(&["INFO", "commandstats"]);
    assert!(
        asking.contains("cmdstat_asking:calls="),
        "requests were redirected with ASK during the migration: {asking}"
    );

    assert_eq!(
        cluster.nodes[cluster.index_of(from)].cli(&[
            "CLUSTER",
            "COUNTKEYSINSLOT",
            &slot.to_string()
        ]),
        "0",
        "the old owner holds none of the slot's keys"
    );
    assert_nothing_lost(&store, &keys, &tally).await;
}

async fn failover_under_traffic(test: &str, kill: bool) {
    let Some(cluster) = Cluster::start_with(test, 1) else {
        return;
    };
    let mut cluster = cluster;
    let store = cluster_store(&cluster).await;
    let keys: Vec<String> = (0..KEYS).map(|i| format!("key{i}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(traffic(store.clone(), keys.clone(), Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(400)).await;

    let topology = cluster.topology(0);
    let master = topology
        .iter()
        .find(|n| n.master && !n.slots.is_empty())
        .expect("master")
        .clone();
    let replica = topology
        .iter()
        .find(|n| n.replica_of.as_deref() == Some(master.id.as_str()))
        .expect("its replica")
        .clone();
    let started = Instant::now();
    if kill {
        let i = cluster.index_of(master.port);
        cluster.nodes[i].kill();
    } else {
        let i = cluster.index_of(replica.port);
        assert_eq!(cluster.nodes[i].cli(&["CLUSTER", "FAILOVER"]), "OK");
    }
    // Wait until the replica serves the slots, then let traffic run a while more.
    let r = cluster.index_of(replica.port);
    while !cluster.nodes[r].cli(&["ROLE"]).starts_with("master") {
        assert!(started.elapsed() < Duration::from_secs(30), "no failover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.wait_ok(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let (tally, outage) = load.await.expect("traffic");
    eprintln!(
        "{}: replica promoted after {:?}; longest a key could not be written {outage:?}",
        if kill {
            "killed master"
        } else {
            "CLUSTER FAILOVER"
        },
        started.elapsed()
    );
    assert_nothing_lost(&store, &keys, &tally).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_cluster_failover_under_traffic_loses_no_increment() {
    failover_under_traffic(
        "a_manual_cluster_failover_under_traffic_loses_no_increment",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cluster_master_is_replaced_and_no_acknowledged_increment_is_lost() {
    failover_under_traffic(
        "a_killed_cluster_master_is_replaced_and_no_acknowledged_increment_is_lost",
        true,
    )
    .await;
}
