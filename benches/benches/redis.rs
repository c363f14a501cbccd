//! `RedisStore` against the raw `redis` crate doing the same command, same run, on a real
//! `redis-server` on loopback: the round trip per op, sequential and with 16 concurrent
//! tasks on one store (multiplexing). Run: `cargo bench -p kv-benches --bench redis`
//! (starts its own `redis-server`, or uses `KV_BENCH_REDIS_URL`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use kv_benches::BenchRedis;
use kv_core::rate_limit::{Policy, RateLimiter};
use kv_core::{RedisStore, Store};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

const TTL: Duration = Duration::from_secs(600);
const KEYS: u64 = 1000;

#[derive(Clone, Copy)]
enum Op {
    Get,
    Set,
    IncrBy,
    IncrByTtl,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set_ttl",
            Op::IncrBy => "incr_by",
            Op::IncrByTtl => "incr_by_ttl",
        }
    }
}

async fn kv_op(store: &RedisStore, op: Op, i: u64, value: &Bytes) {
    let key = format!("k{}", i % KEYS);
    match op {
        Op::Get => drop(black_box(store.get(&key).await.expect("get"))),
        Op::Set => store
            .set(&key, value.clone(), Some(TTL))
            .await
            .expect("set"),
        Op::IncrBy => drop(black_box(
            store
                .incr_by(&format!("c{}", i % KEYS), 1, None)
                .await
                .expect("incr"),
        )),
        Op::IncrByTtl => drop(black_box(
            store
                .incr_by(&format!("t{}", i % KEYS), 1, Some(TTL))
                .await
                .expect("incr"),
        )),
    }
}

static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local created = redis.call('EXISTS', KEYS[1]) == 0 \
         redis.call('INCRBY', KEYS[1], ARGV[1]) \
         if created then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
         return redis.call('GET', KEYS[1])",
    )
});

/// The same commands through the raw client (the store's prefix is "kv:").
async fn raw_op(conn: &ConnectionManager, op: Op, i: u64, value: &Bytes) {
    let mut conn = conn.clone();
    let key = format!("kv:k{}", i % KEYS);
    match op {
        Op::Get => {
            let v: Option<Bytes> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("get");
            drop(black_box(v));
        }
        Op::Set => {
            let () = redis::cmd("SET")
                .arg(&key)
                .arg(value.as_ref())
                .arg("PX")
                .arg(TTL.as_millis() as u64)
                .query_async(&mut conn)
                .await
                .expect("set");
        }
        Op::IncrBy => {
            let v: i64 = redis::cmd("INCRBY")
                .arg(format!("kv:c{}", i % KEYS))
                .arg(1)
                .query_async(&mut conn)
                .await
                .expect("incr");
            black_box(v);
        }
        Op::IncrByTtl => {
            let v: Bytes = SCRIPT
                .key(format!("kv:t{}", i % KEYS))
                .arg(1)
                .arg(TTL.as_millis() as u64)
                .invoke_async(&mut conn)
                .await
                .expect("script");
            black_box(v);
        }
    }
}

fn benches(c: &mut Criterion) {
    let Some(server) = BenchRedis::start() else {
        eprintln!("redis bench skipped: no redis-server (install it or set KV_BENCH_REDIS_URL)");
        return;
    };
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt"),
    );
    let (store, raw) = rt.block_on(async {
        let store = RedisStore::builder(&server.url)
            .key_prefix("kv:")
            .build()
            .await
            .expect("store");
        let client = redis::Client::open(server.url.as_str()).expect("client");
        let raw = ConnectionManager::new_with_config(client, ConnectionManagerConfig::new())
            .await
            .expect("raw");
        let value = Bytes::from(vec![b'v'; 64]);
        for i in 0..KEYS {
            kv_op(&store, Op::Set, i, &value).await;
        }
        (store, raw)
    });
    let value = Bytes::from(vec![b'v'; 64]);

    for op in [Op::Get, Op::Set, Op::IncrBy, Op::IncrByTtl] {
        let mut g = c.benchmark_group(format!("redis_{}", op.name()));
        for concurrency in [1u64, 16] {
            let label = if concurrency == 1 {
                "sequential".to_owned()
            } else {
                format!("{concurrency}_tasks")
            };
            g.bench_function(format!("kv_redis_store/{label}"), |b| {
                b.iter_custom(|iters| {
                    let store = store.clone();
                    let value = value.clone();
                    rt.block_on(async move {
                        let start = Instant::now();
                        let mut tasks = Vec::new();
                        for t in 0..concurrency {
                            let (store, value) = (store.clone(), value.clone());
                            tasks.push(tokio::spawn(async move {
                                let mut i = t;
                                while i < iters {
                                    kv_op(&store, op, i, &value).await;
                                    i += concurrency;
                                }
                            }));
                        }
                        for task in tasks {
                            task.await.expect("task");
                        }
                        start.elapsed()
                    })
                })
            });
            g.bench_function(format!("raw_redis_crate/{label}"), |b| {
                b.iter_custom(|iters| {
                    let raw = raw.clone();
                    let value = value.clone();
                    rt.block_on(async move {
                        let start = Instant::now();
                        let mut tasks = Vec::new();
                        for t in 0..concurrency {
                            let (raw, value) = (raw.clone(), value.clone());
                            tasks.push(tokio::spawn(async move {
                                let mut i = t;
                                while i < iters {
                                    raw_op(&raw, op, i, &value).await;
                                    i += concurrency;
                                }
                            }));
                        }
                        for task in tasks {
                            task.await.expect("task");
                        }
                        start.elapsed()
                    })
                })
            });
        }
        g.finish();
    }
    // A rate-limit decision on Redis costs one round trip, however many policies.
    let peer = std::net::SocketAddr::from(([198, 51, 100, 9], 1));
    let one = RateLimiter::builder(store.clone())
        .policy(Policy::fixed_window(
            "f",
            1_000_000_000,
            Duration::from_secs(3600),
        ))
        .build()
        .expect("limiter");
    let three = RateLimiter::builder(store.clone())
        .policy(Policy::fixed_window(
            "per-second",
            1_000_000_000,
            Duration::from_secs(1),
        ))
        .policy(Policy::sliding_window(
            "per-minute",
            1_000_000_000,
            Duration::from_secs(60),
        ))
        .policy(Policy::fixed_window(
            "per-hour",
            1_000_000_000,
            Duration::from_secs(3600),
        ))
        .build()
        .expect("limiter");
    let mut g = c.benchmark_group("redis_rate_limit_decision");
    for (name, limiter) in [("1_policy", one), ("3_policies_4_commands", three)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let limiter = limiter.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut req = http::Request::new(());
                        req.extensions_mut().insert(peer);
                        assert!(limiter.check(&req).await.is_allowed());
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
    drop(server);
}

criterion_group! {
    name = redis_benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(redis_benches);
