//! Quotas per key, resolved per request by a function and changed while running: every
//! algorithm, on the memory store and on a real redis-server; the headers show the quota
//! that applied.

use kv_test_support as support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kv_core::rate_limit::{
    KeySource, Policy, Quota, RateLimiter, Verdict, parse_rate_limit_header,
};
use kv_core::{MemoryStore, RedisStore, Store};

const HOUR: Duration = Duration::from_secs(3600);

fn request(api_key: &str) -> http::Request<()> {
    let mut r = http::Request::builder()
        .header("x-api-key", api_key)
        .body(())
        .expect("request");
    r.extensions_mut()
        .insert("198.51.100.7:1".parse::<SocketAddr>().expect("addr"));
    r
}

type Plans = Arc<RwLock<HashMap<String, Quota>>>;

fn tiered(policy: Policy, plans: &Plans) -> Policy {
    let plans = Arc::clone(plans);
    policy
        .key(KeySource::header(http::HeaderName::from_static(
            "x-api-key",
        )))
        .quota_by(move |_req, key| {
            let plan = key.strip_prefix("h:")?.split('-').next()?;
            plans.read().ok()?.get(plan).copied()
        })
}

/// Requests of `api_key` admitted out of `n`, and the `RateLimit-Policy` quota of the last.
async fn send<S: Store>(limiter: &RateLimiter<S>, api_key: &str, n: usize) -> (usize, i64) {
    let (mut allowed, mut quota) = (0, 0);
    for _ in 0..n {
        let verdict = limiter.check(&request(api_key)).await;
        allowed += usize::from(verdict.is_allowed());
        let headers = match &verdict {
            Verdict::Allow { headers, .. } => headers.iter().cloned().collect::<http::HeaderMap>(),
            Verdict::Reject { answer, .. } => answer.headers.clone(),
        };
        let value = headers
            .get("ratelimit-policy")
            .expect("RateLimit-Policy")
            .to_str()
            .expect("ascii");
        let parsed = parse_rate_limit_header(value);
        quota = parsed[0]
            .1
            .iter()
            .find(|(k, _)| k == "q")
            .map(|(_, v)| *v)
            .expect("q");
    }
    (allowed, quota)
}

async fn tiers_apply_and_change_while_running<S: Store + Clone>(store: S) {
    for policy in [
        Policy::fixed_window("fixed", 100, HOUR),
        Policy::sliding_window("sliding", 100, HOUR),
        Policy::gcra("gcra", 100, HOUR),
    ] {
        let name = policy.name().to_owned();
        let plans: Plans = Arc::new(RwLock::new(HashMap::from([
            ("free".to_owned(), Quota::new(2, HOUR)),
            ("pro".to_owned(), Quota::new(5, HOUR)),
        ])));
        let limiter = RateLimiter::builder(store.clone())
            .key_prefix(format!("q{}:", std::process::id()))
            .policy(tiered(policy, &plans))
            .build()
            .expect("limiter");
        assert_eq!(
            send(&limiter, "free-a", 4).await,
            (2, 2),
            "{name}: free tier"
        );
        assert_eq!(send(&limiter, "pro-b", 7).await, (5, 5), "{name}: pro tier");
        assert_eq!(
            send(&limiter, "other-c", 3).await,
            (3, 100),
            "{name}: no plan: the policy's own"
        );
        // Upgraded while running: the next request gets the new quota, no restart.
        plans
            .write()
            .expect("lock")
            .insert("free".to_owned(), Quota::new(9, HOUR));
        let (allowed, quota) = send(&limiter, "free-d", 10).await;
        assert_eq!((allowed, quota), (9, 9), "{name}: changed at run time");
    }
}

#[tokio::test]
async fn tiers_on_the_memory_store() {
    tiers_apply_and_change_while_running(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_on_redis() {
    let Some(server) = support::server("tiers_on_redis") else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.expect("connect");
    tiers_apply_and_change_while_running(store).await;
}

#[test]
fn a_quota_per_request_needs_gcra_state_in_the_store() {
    let plans: Plans = Arc::default();
    let refused = RateLimiter::builder(MemoryStore::new())
        .policy(
            tiered(Policy::gcra("g", 1, HOUR), &plans)
                .gcra_state(kv_core::rate_limit::GcraState::InProcess),
        )
        .build();
    assert!(refused.is_err());
    let limiter = RateLimiter::builder(MemoryStore::new())
        .policy(tiered(Policy::gcra("g", 1, HOUR), &plans))
        .build()
        .expect("limiter");
    assert_eq!(limiter.tracked_keys(), 0);
}
