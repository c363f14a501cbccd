//! Per-request overhead of `RateLimitLayer` over a bare axum handler called in process,
//! beside `tower_governor`'s `GovernorLayer` with the same (never exceeded) quota, same
//! run. Run: `cargo bench -p kv-benches --bench rate_limit`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use kv_core::rate_limit::{HeaderOptions, Policy, RateLimiter};
use kv_core::{AnyStore, MemoryStore, Store};
use kv_tower::RateLimitLayer;
use tower::ServiceExt;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;

const HUGE: u32 = 1_000_000_000;

fn request() -> Request<Body> {
    let mut r = Request::builder()
        .uri("/")
        .body(Body::empty())
        .expect("request");
    r.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 7], 40_000))));
    r
}

fn bare() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

fn kv<St: Store>(policy: Policy, store: St, headers: bool) -> Router {
    let limiter = RateLimiter::builder(store)
        .policy(policy)
        .header_options(HeaderOptions {
            ietf: headers,
            ..HeaderOptions::default()
        })
        .build()
        .expect("limiter");
    bare().layer(RateLimitLayer::new(limiter))
}

fn governor() -> Router {
    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(HUGE)
        .finish()
        .expect("config");
    bare().layer(GovernorLayer::new(config))
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let window = Duration::from_secs(3600);
    let apps: Vec<(&str, Router)> = vec![
        ("bare_axum", bare()),
        (
            "noop_layer",
            bare().layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r)),
        ),
        ("tower_governor", governor()),
        (
            "kv_gcra",
            kv(
                Policy::gcra("g", HUGE, Duration::from_secs(1)),
                MemoryStore::new(),
                true,
            ),
        ),
        (
            "kv_gcra_no_headers",
            kv(
                Policy::gcra("g", HUGE, Duration::from_secs(1)),
                MemoryStore::new(),
                false,
            ),
        ),
        (
            "kv_fixed_window_memory",
            kv(
                Policy::fixed_window("f", HUGE, window),
                MemoryStore::new(),
                true,
            ),
        ),
        (
            "kv_fixed_window_memory_no_headers",
            kv(
                Policy::fixed_window("f", HUGE, window),
                MemoryStore::new(),
                false,
            ),
        ),
        (
            "kv_sliding_window_memory",
            kv(
                Policy::sliding_window("s", HUGE, window),
                MemoryStore::new(),
                true,
            ),
        ),
        (
            "kv_fixed_window_any_store",
            kv(
                Policy::fixed_window("f", HUGE, window),
                AnyStore::new(MemoryStore::new()),
                true,
            ),
        ),
    ];
    let mut g = c.benchmark_group("rate_limit_request");
    for (name, app) in apps {
        // Sanity: every variant admits and answers 200.
        let status = rt
            .block_on(app.clone().oneshot(request()))
            .expect("response")
            .status();
        assert_eq!(status, 200, "{name}");
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let response = app.clone().oneshot(request()).await.expect("response");
                        std::hint::black_box(response);
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();

    // The engine alone (no axum, no tower): what kv-core spends per decision.
    let mut g = c.benchmark_group("rate_limit_engine");
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(SocketAddr::from(([198, 51, 100, 7], 40_000)));
    for (name, policy, ietf) in [
        (
            "gcra",
            Policy::gcra("g", HUGE, Duration::from_secs(1)),
            true,
        ),
        (
            "gcra_no_headers",
            Policy::gcra("g", HUGE, Duration::from_secs(1)),
            false,
        ),
        (
            "fixed_window_memory",
            Policy::fixed_window("f", HUGE, window),
            true,
        ),
    ] {
        let limiter = RateLimiter::builder(MemoryStore::new())
            .policy(policy)
            .header_options(HeaderOptions {
                ietf,
                ..HeaderOptions::default()
            })
            .build()
            .expect("limiter");
        g.bench_function(name, |b| {
            b.iter(|| match limiter.check(&req) {
                kv_core::Step::Ready(v) => v,
                kv_core::Step::Pending(decide) => rt.block_on(decide),
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = rate_limit;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(rate_limit);
