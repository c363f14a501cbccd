//! Degraded mode (`FailureMode::Local`): while the store is unreachable each replica
//! decides with its share of the quota, and the outage is counted (and logged) once.

use kv_test_support as support;

use std::net::SocketAddr;
use std::time::Duration;

use kv_core::rate_limit::{FailureMode, KeySource, Policy, RateLimiter, Verdict};
use kv_core::testing::UnavailableStore;
use kv_core::{ManualClock, RedisStore};

fn request(peer: &str) -> http::Request<()> {
    let mut r = http::Request::new(());
    r.extensions_mut()
        .insert(peer.parse::<SocketAddr>().expect("addr"));
    r
}

async fn allowed<S: kv_core::Store>(limiter: &RateLimiter<S>, peer: &str, n: usize) -> usize {
    let mut allowed = 0;
    for _ in 0..n {
        allowed += usize::from(limiter.check(&request(peer)).await.is_allowed());
    }
    allowed
}

#[tokio::test]
async fn a_store_that_is_down_gets_the_local_share_not_open_nor_closed() {
    let clock = ManualClock::new();
    let build = |mode| {
        RateLimiter::builder(UnavailableStore::new())
            .policy(Policy::fixed_window("w", 10, Duration::from_secs(60)))
            .policy(Policy::gcra("g", 1000, Duration::from_secs(60)).key(KeySource::global()))
            .on_store_error(mode)
            .clock(clock.clone())
            .build()
            .expect("limiter")
    };
    assert_eq!(
        allowed(&build(FailureMode::Open), "198.51.100.1:1", 50).await,
        50
    );
    assert_eq!(
        allowed(&build(FailureMode::Closed), "198.51.100.1:1", 50).await,
        0
    );
    let local = build(FailureMode::Local { replicas: 2 });
    // 10 per minute shared by 2 replicas: 5 here, per client.
    assert_eq!(allowed(&local, "198.51.100.1:1", 50).await, 5);
    assert_eq!(
        allowed(&local, "198.51.100.2:1", 50).await,
        5,
        "per key, as the policy"
    );
    let Verdict::Reject { answer, .. } = local.check(&request("198.51.100.1:1")).await else {
        panic!("the local share is spent");
    };
    assert_eq!(answer.status, http::StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.headers.contains_key("retry-after"));
    assert_eq!(local.outages(), 1, "one outage, however many requests");
    clock.advance(Duration::from_secs(12)); // one local emission interval (60 s / 5)
    assert_eq!(allowed(&local, "198.51.100.1:1", 5).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_an_outage_is_local_then_shared_again_and_counted_once() {
    let Some(mut server) =
        support::owned_server("on_redis_an_outage_is_local_then_shared_again_and_counted_once")
    else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .command_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("connect");
    let limiter = RateLimiter::builder(store)
        .policy(Policy::fixed_window("w", 6, Duration::from_secs(3600)))
        .on_store_error(FailureMode::Local { replicas: 3 })
        .build()
        .expect("limiter");
    assert_eq!(
        allowed(&limiter, "198.51.100.9:1", 4).await,
        4,
        "shared quota, store up"
    );
    assert_eq!(limiter.outages(), 0);
    server.kill();
    // 6 / 3 replicas = 2 locally, and one outage for all these requests.
    assert_eq!(allowed(&limiter, "198.51.100.9:1", 10).await, 2);
    assert_eq!(limiter.outages(), 1);
    server.restart();
    // Back on the store (a fresh server: the counter starts over), once it reconnects.
    let mut back = false;
    for _ in 0..50 {
        if let Verdict::Allow {
            decision: Some(d), ..
        } = limiter.check(&request("198.51.100.10:1")).await
            && d.policies()[0].limit == 6
        {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the shared quota is in force again");
    assert_eq!(limiter.outages(), 1);
    server.kill();
    let _ = limiter.check(&request("198.51.100.9:1")).await;
    assert_eq!(limiter.outages(), 2, "a second outage is a second event");
}
