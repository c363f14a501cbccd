//! GCRA shared through the store: replicas on one Redis (one server and a 3-master
//! cluster) or one shared store share one budget; the decisions match `governor`'s;
//! what the clocks of the replicas do.

use kv_test_support as support;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::Quota;
use governor::clock::FakeRelativeClock;
use governor::middleware::StateInformationMiddleware;
use kv_core::rate_limit::{GcraClock, GcraState, KeySource, Policy, RateLimiter, Verdict};
use kv_core::store::Throttle;
use kv_core::testing::RemoteLike;
use kv_core::{ManualClock, MemoryStore, RedisStore, Store, Ttl};

fn request() -> http::Request<()> {
    let mut r = http::Request::new(());
    r.extensions_mut()
        .insert("198.51.100.7:1".parse::<SocketAddr>().expect("addr"));
    r
}

fn gcra() -> Policy {
    Policy::gcra("g", 10, Duration::from_secs(60)).key(KeySource::global())
}

async fn redis(url: &str, prefix: &str) -> RedisStore {
    RedisStore::builder(url)
        .key_prefix(prefix)
        .build()
        .await
        .expect("connect")
}

/// Requests sent one at a time, in turn to each replica: how many were admitted.
async fn round_robin<S: Store>(replicas: &[RateLimiter<S>], requests: usize) -> usize {
    let mut allowed = 0;
    for i in 0..requests {
        allowed += usize::from(
            replicas[i % replicas.len()]
                .check(&request())
                .await
                .is_allowed(),
        );
    }
    allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_redis_share_one_gcra_budget() {
    let Some(server) = support::server("replicas_on_one_redis_share_one_gcra_budget") else {
        return;
    };
    for n in [2, 4] {
        let prefix = format!("gs{}-{n}:", std::process::id());
        let mut replicas = Vec::new();
        for _ in 0..n {
            // Each replica its own connection, as separate processes would have.
            let store = redis(&server.url(), &prefix).await;
            replicas.push(
                RateLimiter::builder(store)
                    .policy(gcra())
                    .build()
                    .expect("limiter"),
            );
        }
        assert_eq!(
            round_robin(&replicas, 10 * n).await,
            10,
            "{n} replicas admit one burst of 10, not {n} × 10"
        );
    }
}

/// 4 replicas × 25 concurrent requests against a burst of 10: exactly 10 pass.
async fn four_by_twenty_five<S: Store + Clone>(replicas: Vec<RateLimiter<S>>) -> usize {
    assert_eq!(replicas.len(), 4);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..25 {
        for replica in &replicas {
            let fut = replica.check(&request());
            tasks.spawn(async move { fut.await.is_allowed() });
        }
    }
    let mut allowed = 0;
    while let Some(ok) = tasks.join_next().await {
        allowed += usize::from(ok.expect("task"));
    }
    allowed
}

fn replicas_over<S: Store + Clone>(store: &S, state: GcraState) -> Vec<RateLimiter<S>> {
    (0..4)
        .map(|_| {
            RateLimiter::builder(store.clone())
                .policy(gcra().gcra_state(state))
                .build()
                .expect("limiter")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_by_25_concurrent_admit_exactly_10_on_a_shared_memory_store() {
    let store = MemoryStore::new();
    assert_eq!(
        four_by_twenty_five(replicas_over(&store, GcraState::Store)).await,
        10
    );
    // The same through the async path of a store without a local face (Auto: in the store).
    let remote = RemoteLike(MemoryStore::new());
    assert_eq!(
        four_by_twenty_five(replicas_over(&remote, GcraState::Auto)).await,
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_by_25_concurrent_admit_exactly_10_on_redis() {
    let Some(server) = support::server("four_replicas_by_25_concurrent_admit_exactly_10_on_redis")
    else {
        return;
    };
    let prefix = format!("g4{}:", std::process::id());
    let mut replicas = Vec::new();
    for _ in 0..4 {
        let store = redis(&server.url(), &prefix).await;
        replicas.push(
            RateLimiter::builder(store)
                .policy(gcra())
                .build()
                .expect("limiter"),
        );
    }
    assert_eq!(four_by_twenty_five(replicas).await, 10);
    // The state is one key with the TAT and a TTL of at most the whole budget (60 s).
    let probe = redis(&server.url(), &prefix).await;
    match probe.ttl("rl:g:global").await.expect("ttl") {
        Ttl::Expires(left) => assert!(
            left <= Duration::from_secs(60) && left > Duration::from_secs(50),
            "{left:?}"
        ),
        other => panic!("the GCRA key needs a TTL, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_by_25_concurrent_admit_exactly_10_on_a_redis_cluster() {
    let Some(cluster) = support::Cluster::start(
        "four_replicas_by_25_concurrent_admit_exactly_10_on_a_redis_cluster",
    ) else {
        return;
    };
    let mut replicas = Vec::new();
    for _ in 0..4 {
        let store = RedisStore::cluster_builder(cluster.urls())
            .key_prefix("g4c:")
            .build()
            .await
            .expect("connect to cluster");
        replicas.push(
            RateLimiter::builder(store)
                .policy(gcra())
                .build()
                .expect("limiter"),
        );
    }
    assert_eq!(four_by_twenty_five(replicas).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_skewed_clocks_on_redis() {
    let Some(server) = support::server("replicas_with_skewed_clocks_on_redis") else {
        return;
    };
    let base = SystemTime::now();
    let skew = Duration::from_secs(18); // three emission intervals of 6 s
    let pair = |prefix: String, clock: GcraClock| {
        let url = server.url();
        async move {
            let mut replicas = Vec::new();
            for offset in [Duration::ZERO, skew] {
                let store = redis(&url, &prefix).await;
                replicas.push(
                    RateLimiter::builder(store)
                        .policy(gcra())
                        .clock(ManualClock::starting_at(base + offset))
                        .gcra_clock(clock)
                        .build()
                        .expect("limiter"),
                );
            }
            replicas
        }
    };
    let pid = std::process::id();
    // The store's clock (the default): the replicas' clocks do not matter.
    let replicas = pair(format!("sk{pid}a:"), GcraClock::Store).await;
    assert_eq!(round_robin(&replicas, 40).await, 10);
    // The callers' clocks: the replica that is ahead sees the quota refilled early and
    // admits skew / interval = 3 more once the other has spent the burst ...
    let replicas = pair(format!("sk{pid}b:"), GcraClock::Caller).await;
    assert_eq!(round_robin(&replicas[..1], 20).await, 10);
    assert_eq!(round_robin(&replicas[1..], 20).await, 3);
    // ... and the one that is behind denies everything after the other spent the burst.
    let replicas = pair(format!("sk{pid}c:"), GcraClock::Caller).await;
    assert_eq!(round_robin(&replicas[1..], 20).await, 10);
    assert_eq!(round_robin(&replicas[..1], 20).await, 0);
}

/// A small deterministic generator for the schedules (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// `throttle` against `governor` on one random schedule: every decision, remaining
/// capacity and wait agree. `manual`: the store reads this clock (moved here); without
/// it, the time is passed with each call (the caller's clock).
async fn differential<S: Store>(
    store: &S,
    key: &str,
    interval_ms: u64,
    burst: u32,
    manual: Option<&ManualClock>,
    seed: u64,
) {
    let interval = Duration::from_millis(interval_ms);
    let gov_clock = FakeRelativeClock::default();
    let quota = Quota::with_period(interval)
        .expect("quota")
        .allow_burst(NonZeroU32::new(burst).expect("burst"));
    let governor = governor::RateLimiter::direct_with_clock(quota, gov_clock.clone())
        .with_middleware::<StateInformationMiddleware>();
    let base = SystemTime::now().duration_since(UNIX_EPOCH).expect("time");
    let mut rng = Rng(seed | 1);
    let mut elapsed = Duration::ZERO;
    let (mut admitted, mut denied) = (0, 0);
    for step in 0..1500 {
        // Bursts (no gap) half of the time, else up to three intervals.
        let gap = if rng.below(2) == 0 {
            0
        } else {
            rng.below(3 * interval_ms + 1)
        };
        let gap = Duration::from_millis(gap);
        elapsed += gap;
        gov_clock.advance(gap);
        let cost = if rng.below(5) == 0 {
            1 + rng.below(u64::from(burst) + 1) as u32
        } else {
            1
        };
        let mut request = Throttle::new(interval, burst).cost(cost);
        match manual {
            Some(clock) => clock.advance(gap),
            None => request = request.at(base + elapsed),
        }
        let ours = store.throttle(key, request).await.expect("throttle");
        let context = format!("step {step} at {elapsed:?}, cost {cost}: {ours:?}");
        match governor.check_n(NonZeroU32::new(cost).expect("cost")) {
            Ok(Ok(snapshot)) => {
                admitted += 1;
                assert!(ours.allowed, "governor admits, {context}");
                assert_eq!(
                    ours.remaining,
                    u64::from(snapshot.remaining_burst_capacity()),
                    "{context}"
                );
            }
            Ok(Err(not_until)) => {
                denied += 1;
                assert!(!ours.allowed, "governor denies, {context}");
                let wait = not_until.wait_time_from(governor::clock::Clock::now(&gov_clock));
                assert_eq!(ours.retry_after, wait, "{context}");
            }
            Err(_) => {
                assert!(!ours.allowed, "governor: more than the burst, {context}");
                assert_eq!(ours.retry_after, Duration::MAX, "{context}");
            }
        }
    }
    assert!(
        admitted > 100 && denied > 100,
        "the schedule tested both ({admitted}/{denied})"
    );
}

#[tokio::test]
async fn throttle_on_the_memory_store_decides_as_governor_does() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    for (i, (interval, burst)) in [(250, 4), (7, 1), (1000, 25)].into_iter().enumerate() {
        differential(
            &store,
            &format!("d{i}"),
            interval,
            burst,
            Some(&clock),
            0x5eed + i as u64,
        )
        .await;
        differential(
            &store,
            &format!("c{i}"),
            interval,
            burst,
            None,
            0xc0ffee + i as u64,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_on_redis_decides_as_governor_does() {
    let Some(server) = support::server("throttle_on_redis_decides_as_governor_does") else {
        return;
    };
    let store = redis(&server.url(), &format!("gd{}:", std::process::id())).await;
    for (i, (interval, burst)) in [(250, 4), (7, 1), (1000, 25)].into_iter().enumerate() {
        differential(
            &store,
            &format!("d{i}"),
            interval,
            burst,
            None,
            0xabcd + i as u64,
        )
        .await;
    }
}

/// The engine over the store (`GcraState::Store`) and over `governor` in process
/// (`GcraState::InProcess`) answer every request of a random schedule alike.
#[tokio::test]
async fn the_limiter_decides_alike_with_state_in_the_store_or_in_process() {
    let clock = ManualClock::new();
    let limiter = |state: GcraState| {
        RateLimiter::builder(MemoryStore::with_clock(clock.clone()))
            .policy(
                Policy::gcra("g", 4, Duration::from_secs(1))
                    .burst(3)
                    .gcra_state(state),
            )
            .clock(clock.clone())
            .build()
            .expect("limiter")
    };
    let (store, local) = (limiter(GcraState::Store), limiter(GcraState::InProcess));
    assert_eq!(local.tracked_keys() + store.tracked_keys(), 0);
    let mut rng = Rng(42);
    let mut denied = 0;
    for step in 0..1000 {
        clock.advance(Duration::from_millis(rng.below(400)));
        let (a, b) = (store.check(&request()).await, local.check(&request()).await);
        let state = |v: &Verdict| match v {
            Verdict::Allow { decision, .. } | Verdict::Reject { decision, .. } => {
                let p = &decision.as_ref().expect("a decision").policies()[0];
                (p.allowed(), p.remaining, p.retry_after)
            }
        };
        assert_eq!(state(&a), state(&b), "step {step}");
        denied += usize::from(!a.is_allowed());
    }
    assert!(denied > 100, "{denied}");
    assert_eq!(store.tracked_keys(), 0, "nothing in process");
    let _ = store.check(&request()).await;
    assert!(
        store
            .store()
            .get("rl:g:ip:198.51.100.7")
            .await
            .expect("get")
            .is_some(),
        "the TAT is in the store"
    );
}
