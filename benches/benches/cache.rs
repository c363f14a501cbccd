//! Response caching through `CacheLayer` on an axum `Router`, called in process, same run:
//! - a hit on a MemoryStore beside the bare handler returning the same static body;
//! - the miss path beside the bare handler plus one store write of the same entry size;
//! - a hit on RedisStore, without and with the near cache.
//!
//! Run: `cargo bench -p kv-benches --bench cache` (Redis: a `redis-server` on a free port,
//! or `KV_BENCH_REDIS_URL`; its benches are skipped without one).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt;
use kv_benches::BenchRedis;
use kv_core::cache::Cache;
use kv_core::clock::ManualClock;
use kv_core::{MemoryStore, RedisStore, Store};
use kv_tower::CacheLayer;
use tower::ServiceExt;

/// The static body every variant answers with.
const BODY: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor \
                    incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis \
                    nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.";

async fn handler() -> ([(&'static str, &'static str); 2], &'static str) {
    (
        [
            ("cache-control", "max-age=3600"),
            ("content-type", "text/plain; charset=utf-8"),
        ],
        BODY,
    )
}

fn bare() -> Router {
    Router::new().fallback(handler)
}

fn cached<St: Store>(cache: Cache<St>) -> Router {
    bare().layer(CacheLayer::new(cache))
}

fn request(path: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("host", "bench.example")
        .body(Body::empty())
        .expect("request")
}

/// One request, body read to the end (a hit and a handler both produce a body).
async fn call(app: &Router, path: &str) -> Bytes {
    let response = app.clone().oneshot(request(path)).await.expect("response");
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

fn timed(
    rt: &tokio::runtime::Runtime,
    app: &Router,
    path: &'static str,
) -> impl FnMut(u64) -> Duration {
    move |iters| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(call(app, path).await);
            }
            start.elapsed()
        })
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");

    let mut g = c.benchmark_group("cache_hit");
    let bare_app = bare();
    assert_eq!(rt.block_on(call(&bare_app, "/")), BODY);
    g.bench_function("bare_handler", |b| {
        b.iter_custom(timed(&rt, &bare_app, "/"))
    });

    let memory = cached(Cache::builder(MemoryStore::new()).build().expect("cache"));
    rt.block_on(call(&memory, "/"));
    let hit = rt
        .block_on(memory.clone().oneshot(request("/")))
        .expect("response");
    assert_eq!(hit.headers()["x-cache"], "HIT");
    g.bench_function("hit_memory", |b| b.iter_custom(timed(&rt, &memory, "/")));

    let redis = BenchRedis::start();
    if let Some(server) = &redis {
        let store = rt
            .block_on(RedisStore::connect(&server.url))
            .expect("redis");
        let plain = cached(
            Cache::builder(store.clone())
                .key_prefix("bench:plain:")
                .build()
                .expect("cache"),
        );
        let near = cached(
            Cache::builder(store)
                .key_prefix("bench:near:")
                .near_cache(10_000, Duration::from_secs(10))
                .build()
                .expect("cache"),
        );
        for app in [&plain, &near] {
            rt.block_on(call(app, "/"));
            let hit = rt
                .block_on(app.clone().oneshot(request("/")))
                .expect("response");
            assert_eq!(hit.headers()["x-cache"], "HIT");
        }
        g.bench_function("hit_redis", |b| b.iter_custom(timed(&rt, &plain, "/")));
        g.bench_function("hit_redis_near_cache", |b| {
            b.iter_custom(timed(&rt, &near, "/"))
        });
    } else {
        eprintln!("SKIPPED Redis cache benches: no redis-server (or KV_BENCH_REDIS_URL)");
    }
    g.finish();

    // The miss path: the handler runs and its response is stored. 10 000 URLs in turn;
    // after each round the (manual) clock moves past the entries' freshness and TTL, so
    // every request misses and writes. Beside it: the bare handler plus one store write of
    // an entry of the same size, over the same number of keys.
    let mut g = c.benchmark_group("cache_miss");
    let store = MemoryStore::new();
    let entry = Bytes::from(vec![b'e'; BODY.len() + 160]);
    let keys: Vec<String> = (0..ROUND)
        .map(|i| format!("kv:cache:G:bench.example/miss/{i}"))
        .collect();
    let counter = AtomicU64::new(0);
    let bare_write = |iters: u64| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(call(&bare_app, "/").await);
                let n = counter.fetch_add(1, Ordering::Relaxed) as usize % ROUND;
                store
                    .set(&keys[n], entry.clone(), Some(Duration::from_secs(3600)))
                    .await
                    .expect("set");
            }
            start.elapsed()
        })
    };
    let clock = ManualClock::new();
    let miss_app = cached(
        Cache::builder(MemoryStore::with_clock(clock.clone()))
            .clock(clock.clone())
            .build()
            .expect("cache"),
    );
    let paths: Vec<String> = (0..ROUND).map(|i| format!("/miss/{i}")).collect();
    let next = AtomicU64::new(0);
    let miss = |iters: u64| {
        rt.block_on(async {
            let mut elapsed = Duration::ZERO;
            let mut start = Instant::now();
            for _ in 0..iters {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize % ROUND;
                if n == 0 {
                    elapsed += start.elapsed();
                    clock.advance(Duration::from_secs(2 * 3600));
                    start = Instant::now();
                }
                let response = miss_app
                    .clone()
                    .oneshot(request(&paths[n]))
                    .await
                    .expect("response");
                debug_assert_eq!(response.headers()["x-cache"], "MISS");
                std::hint::black_box(response.into_body().collect().await.expect("body"));
            }
            elapsed + start.elapsed()
        })
    };
    g.bench_function("bare_handler_plus_store_write", |b| {
        b.iter_custom(bare_write)
    });
    g.bench_function("miss_memory", |b| b.iter_custom(miss));
    g.finish();

    // Paired ratios: the variants alternate in short blocks, so that load from other
    // processes hits both sides alike; the median block ratio is printed.
    let hit = timed(&rt, &memory, "/");
    let bare_t = timed(&rt, &bare_app, "/");
    report("hit_memory / bare_handler", hit, bare_t);
    report(
        "miss_memory / (bare_handler + store write)",
        miss,
        bare_write,
    );
    if let Some(server) = &redis {
        let store = rt
            .block_on(RedisStore::connect(&server.url))
            .expect("redis");
        let near = cached(
            Cache::builder(store)
                .key_prefix("bench:near2:")
                .near_cache(10_000, Duration::from_secs(10))
                .build()
                .expect("cache"),
        );
        rt.block_on(call(&near, "/"));
        let near_t = timed(&rt, &near, "/");
        let hit = timed(&rt, &memory, "/");
        report("hit_redis_near_cache / hit_memory", near_t, hit);
    }
    drop(redis);
}

/// URLs (and keys) per round of the miss bench.
const ROUND: usize = 10_000;

/// Runs `a` and `b` alternately in blocks of 2 000 iterations, 25 times, and prints the
/// median of the per-block ratios a / b.
fn report(name: &str, mut a: impl FnMut(u64) -> Duration, mut b: impl FnMut(u64) -> Duration) {
    let mut ratios: Vec<f64> = (0..25)
        .map(|_| {
            let ta = a(2_000).as_secs_f64();
            let tb = b(2_000).as_secs_f64();
            ta / tb
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "RATIO {name}: {:.2} (median of 25 paired blocks)",
        ratios[12]
    );
}

criterion_group! {
    name = cache;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(cache);
