//! `RedisStore` behind Redis Sentinel (feature `redis-sentinel`), against a real primary,
//! a replica and three sentinels: a killed primary and a manual failover are survived
//! without rebuilding the store, calls fail `Unavailable` within the command timeout in
//! between, no acknowledged increment is lost, and the rate limiter and sessions work
//! through it.

use kv_test_support as support;

use std::time::{Duration, Instant};

use http::StatusCode;
use kv_core::rate_limit::{Policy, RateLimiter};
use kv_core::session::SessionManager;
use kv_core::{KvError, RedisStore, Store};
use support::SentinelGroup;

const TIMEOUT: Duration = Duration::from_millis(300);

async fn store_for(group: &SentinelGroup) -> RedisStore {
    RedisStore::sentinel_builder(&group.master, group.sentinel_addrs())
        .command_timeout(TIMEOUT)
        .connect_timeout(Duration::from_millis(300))
        .key_prefix("sent:")
        .build()
        .await
        .expect("connect through the sentinels")
}

/// Increments `n` until `until` says stop; every call is bounded by the command timeout
/// and every failure is `Unavailable`. Returns (acknowledged increments, the longest run
/// of failures).
async fn increment_through(
    store: &RedisStore,
    mut until: impl FnMut(usize, Duration) -> bool,
) -> (i64, Duration) {
    let mut acked = 0;
    let mut failing_since: Option<Instant> = None;
    let mut longest = Duration::ZERO;
    let started = Instant::now();
    loop {
        let call = Instant::now();
        let result = store.incr_by("n", 1, None).await;
        assert!(
            call.elapsed() < TIMEOUT + Duration::from_millis(250),
            "a call took {:?}, beyond the command timeout",
            call.elapsed()
        );
        match result {
            Ok(_) => {
                acked += 1;
                if let Some(since) = failing_since.take() {
                    longest = longest.max(since.elapsed());
                }
            }
            Err(KvError::Unavailable(_)) => {
                failing_since.get_or_insert_with(Instant::now);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(other) => panic!("a failover failure must be Unavailable, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no recovery within 40 s"
        );
        if failing_since.is_none() && until(usize::try_from(acked).unwrap_or(0), started.elapsed())
        {
            return (acked, longest);
        }
    }
}

async fn the_engines_work(store: &RedisStore) {
    let limiter = RateLimiter::builder(store.clone())
        .policy(Policy::fixed_window(
            "after-failover",
            3,
            Duration::from_secs(60),
        ))
        .build()
        .expect("limiter");
    let mut request = http::Request::new(());
    request
        .extensions_mut()
        .insert("10.0.0.1:1".parse::<std::net::SocketAddr>().expect("addr"));
    let mut allowed = 0;
    for _ in 0..5 {
        allowed += usize::from(limiter.check(&request).await.is_allowed());
    }
    assert_eq!(allowed, 3, "the limiter counts on the new primary");

    let sessions = SessionManager::builder(store.clone())
        .build()
        .expect("sessions");
    let session = sessions.start(&http::Request::new(()));
    session.insert("user", "alice").await.expect("insert");
    let cookie = session
        .end(StatusCode::OK)
        .await
        .expect("saved on the new primary")
        .expect("cookie");
    let pair = cookie
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let mut again = http::Request::new(());
    again
        .headers_mut()
        .insert(http::header::COOKIE, pair.parse().expect("header"));
    let session = sessions.start(&again);
    assert_eq!(
        session
            .get::<String>("user")
            .await
            .expect("load")
            .as_deref(),
        Some("alice")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_without_rebuilding_the_store() {
    let Some(mut group) = SentinelGroup::start(
        "a_killed_primary_is_replaced_without_rebuilding_the_store",
        1000,
    ) else {
        return;
    };
    let store = store_for(&group).await;
    let (before, _) = increment_through(&store, |acked, _| acked >= 50).await;
    let old = group.primary_port().expect("primary");
    group.wait_replicated(old);

    group.server(old).kill();
    let killed = Instant::now();
    let (after, outage) = increment_through(&store, |acked, _| acked >= 50).await;
    let new = group.primary_port().expect("new primary");
    assert_ne!(new, old, "the sentinels promoted the replica");
    eprintln!(
        "killed primary: calls failed for {outage:?}; recovered {:?} after the kill",
        killed.elapsed()
    );

    let stored: i64 = support::cli(new, &["GET", "sent:n"])
        .parse()
        .expect("integer");
    assert_eq!(
        stored,
        before + after,
        "every acknowledged increment is on the new primary"
    );
    the_engines_work(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_failover_moves_the_store_to_the_new_primary() {
    let Some(group) =
        SentinelGroup::start("a_manual_failover_moves_the_store_to_the_new_primary", 1000)
    else {
        return;
    };
    let store = store_for(&group).await;
    let (before, _) = increment_through(&store, |acked, _| acked >= 20).await;
    let old = group.primary_port().expect("primary");
    group.wait_replicated(old);

    let reply = group.sentinel_cli(&["SENTINEL", "FAILOVER", &group.master]);
    assert_eq!(reply, "OK", "sentinel failover");
    // The old primary goes on taking writes until Sentinel demotes it; the store must
    // not wait for that: within its check interval (1 s) it writes to the new primary.
    let started = Instant::now();
    let new = loop {
        match group.primary_port() {
            Some(port) if port != old => break port,
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no failover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let read = |port: u16| {
        support::cli(port, &["GET", "sent:n"])
            .parse::<i64>()
            .unwrap_or(0)
    };
    let (on_new, on_old) = (read(new), read(old));
    let (acked, _) = increment_through(&store, |acked, _| acked >= 50).await;
    assert_eq!(acked, 50);
    assert_eq!(
        read(new),
        on_new + 50,
        "every increment lands on the new primary"
    );
    assert!(read(old) <= on_old.max(on_new), "none on the old one");
    assert!(
        before <= on_new,
        "what the old primary had reached the new one"
    );
    the_engines_work(&store).await;
}
