//! The rate-limit engine over real stores: Redis (fixed and sliding windows, through the
//! real-server harness) and a slow store that shows the store calls of every policy are
//! issued concurrently (one round trip per decision).

use kv_test_support as support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kv_core::clock::ManualClock;
use kv_core::rate_limit::{Policy, RateLimiter, Verdict};
use kv_core::{MemoryStore, RedisStore, Store, Ttl};

fn request(peer: &str) -> http::Request<()> {
    let mut r = http::Request::new(());
    r.extensions_mut()
        .insert(peer.parse::<SocketAddr>().expect("addr"));
    r
}

async fn concurrent_allowed<St: Store + Clone>(
    limiter: &RateLimiter<St>,
    peer: &str,
    n: usize,
) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let fut = limiter.check(&request(peer));
        tasks.spawn(async move { fut.await.is_allowed() });
    }
    let mut allowed = 0;
    while let Some(ok) = tasks.join_next().await {
        allowed += usize::from(ok.expect("task"));
    }
    allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_exactly_n_of_4n_concurrent_requests_pass() {
    let Some(redis) = support::server("on_redis_exactly_n_of_4n_concurrent_requests_pass") else {
        return;
    };
    let prefix = format!("rl{}:", std::process::id());
    let store = RedisStore::builder(redis.url())
        .key_prefix(prefix)
        .build()
        .await
        .expect("connect");
    for policy in [
        Policy::fixed_window("fixed", 25, Duration::from_secs(60)),
        Policy::sliding_window("sliding", 25, Duration::from_secs(60)),
    ] {
        let name = policy.name().to_owned();
        let limiter = RateLimiter::builder(store.clone())
            .policy(policy)
            .build()
            .expect("limiter");
        assert_eq!(
            concurrent_allowed(&limiter, "198.51.100.40:1", 100).await,
            25,
            "{name}"
        );
        // Another client is not affected.
        assert!(
            limiter
                .check(&request("198.51.100.41:1"))
                .await
                .is_allowed(),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_windows_reset_and_counters_carry_their_ttl() {
    let Some(redis) = support::server("on_redis_windows_reset_and_counters_carry_their_ttl") else {
        return;
    };
    let store = RedisStore::builder(redis.url())
        .key_prefix(format!("rw{}:", std::process::id()))
        .build()
        .await
        .expect("connect");
    let window = Duration::from_millis(400);
    let limiter = RateLimiter::builder(store.clone())
        .policy(Policy::fixed_window("short", 2, window))
        .key_prefix("")
        .build()
        .expect("limiter");
    let peer = request("198.51.100.42:1");
    // Denied within one window ...
    let mut denied_wait = None;
    for _ in 0..5 {
        if let Verdict::Reject { decision, .. } = limiter.check(&peer).await {
            denied_wait = decision.and_then(|d| d.retry_after());
            break;
        }
    }
    let wait = denied_wait.expect("the third request of a window is denied");
    assert!(wait <= window, "{wait:?}");
    // ... and admitted again once the window has passed (a short real wait: Redis keeps real time).
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    assert!(limiter.check(&peer).await.is_allowed());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis() as u64;
    let key = format!("short:ip:198.51.100.42:{}", now_ms / 400);
    match store.ttl(&key).await.expect("ttl") {
        // The rest of the window, and the counter's linger (at most one more window).
        Ttl::Expires(left) => assert!(left <= window * 2),
        Ttl::Missing => {} // the window just rolled over
        Ttl::Persistent => panic!("a counter without a TTL"),
    }
}

/// A store whose every call takes 100 ms (of tokio's paused clock) and that records how
/// many calls were in flight at once.
#[derive(Debug, Clone, Default)]
struct SlowStore {
    inner: MemoryStore,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    /// When set, every call moves this clock forward by this much before it reaches the
    /// inner store: a call in flight while time passes (across a window's end).
    late: Arc<std::sync::Mutex<Option<(ManualClock, Duration)>>>,
}

impl SlowStore {
    async fn slow<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some((clock, by)) = self.late.lock().expect("lock").as_ref() {
            clock.advance(*by);
        }
        f.await
    }
}

impl Store for SlowStore {
    async fn get(&self, key: &str) -> kv_core::Result<Option<Bytes>> {
        self.slow(self.inner.get(key)).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> kv_core::Result<()> {
        self.slow(self.inner.set(key, value, ttl)).await
    }
    async fn set_nx(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> kv_core::Result<bool> {
        self.slow(self.inner.set_nx(key, value, ttl)).await
    }
    async fn del(&self, key: &str) -> kv_core::Result<bool> {
        self.slow(self.inner.del(key)).await
    }
    async fn expire(&self, key: &str, ttl: Duration) -> kv_core::Result<bool> {
        self.slow(self.inner.expire(key, ttl)).await
    }
    async fn ttl(&self, key: &str) -> kv_core::Result<Ttl> {
        self.slow(self.inner.ttl(key)).await
    }
    async fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> kv_core::Result<i64> {
        self.slow(self.inner.incr_by(key, delta, ttl)).await
    }
    async fn hget_all(&self, key: &str) -> kv_core::Result<Vec<(String, Bytes)>> {
        self.slow(self.inner.hget_all(key)).await
    }
    async fn hset(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> kv_core::Result<()> {
        self.slow(self.inner.hset(key, fields, ttl)).await
    }
    async fn hdel(&self, key: &str, fields: Vec<String>) -> kv_core::Result<usize> {
        self.slow(self.inner.hdel(key, fields)).await
    }
    async fn throttle(
        &self,
        key: &str,
        request: kv_core::store::Throttle,
    ) -> kv_core::Result<kv_core::store::ThrottleReply> {
        self.slow(self.inner.throttle(key, request)).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_decision_costs_one_round_trip_however_many_policies() {
    let store = SlowStore::default();
    let limiter = RateLimiter::builder(store.clone())
        .policy(Policy::fixed_window(
            "per-second",
            10,
            Duration::from_secs(1),
        ))
        .policy(Policy::sliding_window(
            "per-minute",
            100,
            Duration::from_secs(60),
        ))
        .policy(Policy::fixed_window(
            "per-hour",
            1000,
            Duration::from_secs(3600),
        ))
        .policy(Policy::gcra("steady", 50, Duration::from_secs(1)))
        .build()
        .expect("limiter");
    let start = tokio::time::Instant::now();
    let verdict = limiter.check(&request("198.51.100.43:1")).await;
    let took = start.elapsed();
    assert!(verdict.is_allowed());
    // fixed (1 call) + sliding (2 calls) + fixed (1 call) + GCRA in the store (1 call:
    // the store is not in process), all at once: one "round trip".
    assert_eq!(store.calls.load(Ordering::SeqCst), 5);
    assert_eq!(store.max_in_flight.load(Ordering::SeqCst), 5);
    assert_eq!(
        took,
        Duration::from_millis(100),
        "store calls ran one after another"
    );
}

/// A request decided just before its window ends that reaches the store just after is
/// still counted in its own window: its counter must not have expired with the window
/// (else it is recreated at 1 and the request admitted above the quota).
#[tokio::test(start_paused = true)]
async fn a_count_that_reaches_the_store_after_its_window_ended_still_counts_in_it() {
    let clock = ManualClock::new(); // a whole second
    clock.advance(Duration::from_millis(990)); // 10 ms before the window ends
    let inner = MemoryStore::builder()
        .clock(clock.clone())
        .build()
        .expect("store");
    let store = SlowStore {
        inner,
        ..SlowStore::default()
    };
    let limiter = RateLimiter::builder(store.clone())
        .clock(clock.clone())
        .policy(Policy::fixed_window("w", 3, Duration::from_secs(1)))
        .build()
        .expect("limiter");
    let peer = request("198.51.100.44:1");
    for i in 0..3 {
        assert!(limiter.check(&peer).await.is_allowed(), "request {i}");
    }
    // The fourth is decided at 990 ms, in the full window, and reaches the store at
    // 1 010 ms: refused, as the window it was decided in is full.
    *store.late.lock().expect("lock") = Some((clock.clone(), Duration::from_millis(20)));
    assert!(!limiter.check(&peer).await.is_allowed());
    // The next window starts afresh (the lingering counter is not its counter).
    *store.late.lock().expect("lock") = None;
    assert!(limiter.check(&peer).await.is_allowed());
}
