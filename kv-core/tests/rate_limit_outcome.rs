//! Counting by outcome (charged after the handler) and bans, fail2ban style, on the
//! memory store and a real redis-server; ban and unban by key.

use kv_test_support as support;

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use kv_core::rate_limit::{LimitKey, Policy, RateLimiter, Verdict};
use kv_core::{MemoryStore, RedisStore, Store};

const MINUTE: Duration = Duration::from_secs(60);

fn request() -> http::Request<()> {
    let mut r = http::Request::new(());
    r.extensions_mut()
        .insert("198.51.100.7:1".parse::<SocketAddr>().expect("addr"));
    r
}

/// One request through the limiter to a "handler" answering `status`: what the client
/// gets (the handler's status, or the limiter's).
async fn send<S: Store>(limiter: &RateLimiter<S>, status: StatusCode) -> (StatusCode, Verdict) {
    let verdict = limiter.check(&request()).await;
    match &verdict {
        Verdict::Allow { decision, .. } => {
            if let Some(decision) = decision {
                limiter.after_response(decision, status).await;
            }
            (status, verdict)
        }
        Verdict::Reject { answer, .. } => (answer.status, verdict),
    }
}

async fn counts_only_failures<S: Store + Clone>(store: S, prefix: &str) {
    let limiter = RateLimiter::builder(store)
        .key_prefix(prefix)
        .policy(
            Policy::fixed_window("logins", 3, MINUTE).count_if(|s| s == StatusCode::UNAUTHORIZED),
        )
        .policy(Policy::gcra("g", 3, MINUTE).count_if(|s| s.is_client_error()))
        .build()
        .expect("limiter");
    // Successes are free: many pass, none counted.
    for _ in 0..10 {
        assert_eq!(send(&limiter, StatusCode::OK).await.0, StatusCode::OK);
    }
    // Three failures are charged after the handler ...
    for _ in 0..3 {
        assert_eq!(
            send(&limiter, StatusCode::UNAUTHORIZED).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // ... and the fourth attempt is refused before reaching it, even a right password.
    let (status, verdict) = send(&limiter, StatusCode::OK).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let Verdict::Reject {
        decision: Some(d), ..
    } = verdict
    else {
        panic!("a 429 with its decision")
    };
    assert!(d.violated().any(|p| &*p.name == "logins") && d.violated().any(|p| &*p.name == "g"));
    // By key: a reset lets the next attempt in; consume charges as a failure would.
    let key = LimitKey::ip("198.51.100.7".parse().expect("ip"));
    limiter.reset(&key).await.expect("reset");
    assert_eq!(send(&limiter, StatusCode::OK).await.0, StatusCode::OK);
    limiter.consume(&key, 3).await.expect("consume");
    assert_eq!(
        send(&limiter, StatusCode::OK).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn bans_after_strikes<S: Store + Clone>(store: S, prefix: &str) {
    let limiter = RateLimiter::builder(store)
        .key_prefix(prefix)
        .policy(Policy::ban("ban", 3, 10 * MINUTE, 60 * MINUTE))
        .build()
        .expect("limiter");
    for expected_left in [3, 2, 1] {
        let (status, verdict) = send(&limiter, StatusCode::FORBIDDEN).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let Verdict::Allow { headers, .. } = verdict else {
            panic!("not banned yet")
        };
        let ratelimit = headers
            .iter()
            .find(|(n, _)| n == "ratelimit")
            .expect("RateLimit")
            .1
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            ratelimit.starts_with(&format!("\"ban\";r={expected_left};")),
            "{ratelimit}"
        );
        let policy = headers
            .iter()
            .find(|(n, _)| n == "ratelimit-policy")
            .expect("policy")
            .1
            .clone();
        assert_eq!(
            policy, "\"ban\";q=3;w=600",
            "the ban is a policy in the headers"
        );
    }
    // Banned: refused before the handler, Retry-After is the ban left.
    let (status, verdict) = send(&limiter, StatusCode::OK).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let Verdict::Reject { answer, .. } = verdict else {
        panic!("banned")
    };
    let retry: u64 = answer.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!((3590..=3600).contains(&retry), "{retry}");
    // Lifted by key, then imposed by key.
    let key = LimitKey::ip("198.51.100.7".parse().expect("ip"));
    limiter.unban(&key).await.expect("unban");
    assert_eq!(send(&limiter, StatusCode::OK).await.0, StatusCode::OK);
    assert_eq!(
        limiter.state(&key).await.expect("state").policies()[0].remaining,
        3,
        "strikes forgotten"
    );
    limiter
        .ban(&key, Duration::from_secs(30))
        .await
        .expect("ban");
    let (status, verdict) = send(&limiter, StatusCode::OK).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(verdict_retry(&verdict) <= Duration::from_secs(30));
    limiter.reset(&key).await.expect("reset lifts bans too");
    assert_eq!(send(&limiter, StatusCode::OK).await.0, StatusCode::OK);
}

fn verdict_retry(v: &Verdict) -> Duration {
    match v {
        Verdict::Reject {
            decision: Some(d), ..
        } => d.retry_after().expect("a wait"),
        _ => panic!("rejected with a decision"),
    }
}

#[tokio::test]
async fn on_the_memory_store() {
    counts_only_failures(MemoryStore::new(), "o:").await;
    bans_after_strikes(MemoryStore::new(), "b:").await;
    let no_ban = RateLimiter::builder(MemoryStore::new())
        .policy(Policy::fixed_window("w", 1, MINUTE))
        .build()
        .expect("limiter");
    assert!(
        no_ban.ban(&LimitKey::global(), MINUTE).await.is_err(),
        "no ban policy: a typed error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis() {
    let Some(server) = support::server("rate_limit_outcome_on_redis") else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.expect("connect");
    let pid = std::process::id();
    counts_only_failures(store.clone(), &format!("o{pid}:")).await;
    bans_after_strikes(store, &format!("b{pid}:")).await;
}
