//! The key API — check, consume with a cost, read the state, reset — on the memory store
//! and on a real redis-server, for every algorithm whose state is in the store.

use kv_test_support as support;

use std::net::SocketAddr;
use std::time::Duration;

use kv_core::rate_limit::{GcraState, KeySource, LimitKey, Policy, RateLimiter};
use kv_core::{MemoryStore, RedisStore, Store};

const HOUR: Duration = Duration::from_secs(3600);

fn login(user: &str) -> http::Request<()> {
    let mut r = http::Request::builder()
        .header("x-user", user)
        .body(())
        .expect("request");
    r.extensions_mut()
        .insert("198.51.100.7:1".parse::<SocketAddr>().expect("addr"));
    r
}

async fn key_api<S: Store + Clone>(store: S, prefix: &str) {
    for policy in [
        Policy::fixed_window("fixed", 5, HOUR),
        Policy::sliding_window("sliding", 5, HOUR),
        Policy::gcra("gcra", 5, HOUR).gcra_state(GcraState::Store),
    ] {
        let name = policy.name().to_owned();
        let limiter = RateLimiter::builder(store.clone())
            .key_prefix(format!("{prefix}{name}:"))
            .policy(policy.key(KeySource::header(http::HeaderName::from_static("x-user"))))
            .build()
            .expect("limiter");
        let alice = LimitKey::header("alice");
        let state = limiter.state(&alice).await.expect("state");
        assert_eq!(state.policies()[0].remaining, 5, "{name}: untouched");
        // Consume with a cost, then requests see it.
        let spent = limiter.consume(&alice, 3).await.expect("consume");
        assert!(spent.allowed());
        assert_eq!(spent.policies()[0].remaining, 2, "{name}");
        assert!(limiter.check(&login("alice")).await.is_allowed(), "{name}");
        assert_eq!(
            limiter.state(&alice).await.expect("state").policies()[0].remaining,
            1,
            "{name}"
        );
        // Check without spending: a cost of 1 passes, 2 does not; nothing changes.
        assert!(
            limiter.check_key(&alice, 1).await.expect("check").allowed(),
            "{name}"
        );
        let too_much = limiter.check_key(&alice, 2).await.expect("check");
        assert!(
            !too_much.allowed() && too_much.retry_after().is_some(),
            "{name}"
        );
        assert_eq!(
            limiter.state(&alice).await.expect("state").policies()[0].remaining,
            1,
            "{name}: a check spends nothing"
        );
        assert!(limiter.check(&login("alice")).await.is_allowed(), "{name}");
        assert!(
            !limiter.check(&login("alice")).await.is_allowed(),
            "{name}: spent"
        );
        let state = limiter.state(&alice).await.expect("state");
        assert_eq!(state.policies()[0].remaining, 0, "{name}");
        assert!(
            state.retry_after().is_some(),
            "{name}: the state says how long to wait"
        );
        // Another key is independent; a reset gives the whole quota back.
        assert_eq!(
            limiter
                .state(&LimitKey::header("bob"))
                .await
                .expect("state")
                .policies()[0]
                .remaining,
            5
        );
        limiter.reset(&alice).await.expect("reset");
        assert_eq!(
            limiter.state(&alice).await.expect("state").policies()[0].remaining,
            5,
            "{name}: reset"
        );
        assert!(limiter.check(&login("alice")).await.is_allowed(), "{name}");
    }
}

#[tokio::test]
async fn the_key_api_on_the_memory_store() {
    key_api(MemoryStore::new(), "k:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_api_on_redis() {
    let Some(server) = support::server("the_key_api_on_redis") else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.expect("connect");
    key_api(store, &format!("k{}:", std::process::id())).await;
}

#[tokio::test]
async fn ip_keys_match_what_requests_are_counted_under() {
    let limiter = RateLimiter::builder(MemoryStore::new())
        .policy(Policy::fixed_window("per-ip", 2, HOUR))
        .build()
        .expect("limiter");
    let mut r = http::Request::new(());
    r.extensions_mut()
        .insert("[2001:db8:1:2::9]:1".parse::<SocketAddr>().expect("addr"));
    assert!(limiter.check(&r).await.is_allowed());
    // The same /64, as the IP source groups it.
    let key = LimitKey::ip("2001:db8:1:2:ffff::1".parse().expect("ip"));
    assert_eq!(
        limiter.state(&key).await.expect("state").policies()[0].remaining,
        1
    );
    limiter.reset(&key).await.expect("reset");
    assert_eq!(
        limiter.state(&key).await.expect("state").policies()[0].remaining,
        2
    );
}
