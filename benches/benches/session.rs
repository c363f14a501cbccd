//! Per-request overhead of `SessionLayer` over a bare axum handler called in process,
//! beside `tower-sessions` with its memory store doing the same, same run:
//! (a) a handler that does not touch the session, without and with a session cookie;
//! (b) a request with a cookie whose handler reads one value; (c) one that writes one.
//! Then the same on `RedisStore` (a real `redis-server` on loopback), beside a bare
//! `GET` round trip. Run: `cargo bench -p kv-benches --bench session`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, header};
use kv_benches::BenchRedis;
use kv_core::session::SessionManager;
use kv_core::{MemoryStore, RedisStore, Store};
use kv_tower::session::{Session, SessionLayer};
use tower::ServiceExt;

type Ts = tower_sessions::Session;

fn request(cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri("/");
    if let Some(cookie) = cookie {
        b = b.header(header::COOKIE, cookie);
    }
    b.body(Body::empty()).expect("request")
}

/// The four handlers, for kv's extractor.
fn kv_routes() -> [(&'static str, Router); 4] {
    [
        (
            "untouched",
            Router::new().route("/", get(|| async { "ok" })),
        ),
        (
            "read",
            Router::new().route(
                "/",
                get(|s: Session| async move {
                    let v: Option<String> = s.get("k").await.expect("get");
                    v.unwrap_or_default()
                }),
            ),
        ),
        (
            "write",
            Router::new().route(
                "/",
                get(|s: Session| async move {
                    s.insert("k", "value").await.expect("insert");
                    "ok"
                }),
            ),
        ),
        // Used once to create the session the other requests carry.
        (
            "create",
            Router::new().route(
                "/",
                get(|s: Session| async move {
                    s.insert("k", "value").await.expect("insert");
                    "ok"
                }),
            ),
        ),
    ]
}

/// The same four handlers, for tower-sessions' extractor.
fn ts_routes() -> [(&'static str, Router); 4] {
    [
        (
            "untouched",
            Router::new().route("/", get(|| async { "ok" })),
        ),
        (
            "read",
            Router::new().route(
                "/",
                get(|s: Ts| async move {
                    let v: Option<String> = s.get("k").await.expect("get");
                    v.unwrap_or_default()
                }),
            ),
        ),
        (
            "write",
            Router::new().route(
                "/",
                get(|s: Ts| async move {
                    s.insert("k", "value").await.expect("insert");
                    "ok"
                }),
            ),
        ),
        (
            "create",
            Router::new().route(
                "/",
                get(|s: Ts| async move {
                    s.insert("k", "value").await.expect("insert");
                    "ok"
                }),
            ),
        ),
    ]
}

/// The `name=value` pair of the cookie a first request creates.
fn make_cookie(rt: &tokio::runtime::Runtime, create: &Router) -> String {
    let response = rt
        .block_on(create.clone().oneshot(request(None)))
        .expect("response");
    let set = response.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii");
    set.split(';').next().expect("pair").to_owned()
}

fn time(rt: &tokio::runtime::Runtime, app: &Router, cookie: Option<&str>, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let response = app
                .clone()
                .oneshot(request(cookie))
                .await
                .expect("response");
            assert!(response.status().is_success());
            std::hint::black_box(response);
        }
        start.elapsed()
    })
}

fn kv_apps(store: impl Store + Clone) -> Vec<(&'static str, Router)> {
    let manager = SessionManager::builder(store)
        .build()
        .expect("session config");
    kv_routes()
        .into_iter()
        .map(|(name, r)| (name, r.layer(SessionLayer::new(manager.clone()))))
        .collect()
}

fn ts_apps() -> Vec<(&'static str, Router)> {
    let layer = tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
        .with_secure(false);
    ts_routes()
        .into_iter()
        .map(|(name, r)| (name, r.layer(layer.clone())))
        .collect()
}

fn run_group(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    group: &str,
    contenders: Vec<(&'static str, Vec<(&'static str, Router)>)>,
) {
    let mut g = c.benchmark_group(group);
    let bare = Router::new().route("/", get(|| async { "ok" }));
    g.bench_function("bare_axum", |b| {
        b.iter_custom(|iters| time(rt, &bare, None, iters))
    });
    // The same request with a session-sized cookie: the baseline of the cookie cases
    // (building and dropping the header is part of every such request).
    let cookie_baseline = format!("__Host-session={}", "A".repeat(22));
    g.bench_function("bare_axum_cookie", |b| {
        b.iter_custom(|iters| time(rt, &bare, Some(&cookie_baseline), iters))
    });
    // What any layer costs in axum's `Router::layer` (the per-route service wrapping).
    let noop = bare
        .clone()
        .layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r));
    g.bench_function("noop_layer", |b| {
        b.iter_custom(|iters| time(rt, &noop, None, iters))
    });
    for (who, apps) in contenders {
        let create = &apps[3].1;
        let cookie = make_cookie(rt, create);
        for (case, app) in &apps[..3] {
            let cases: &[(&str, Option<&str>)] = if *case == "untouched" {
                &[
                    ("untouched_no_cookie", None),
                    ("untouched_cookie", Some(&cookie)),
                ]
            } else {
                &[(case, Some(&cookie))]
            };
            for (label, cookie) in cases {
                g.bench_function(format!("{who}/{label}"), |b| {
                    b.iter_custom(|iters| time(rt, app, *cookie, iters))
                });
            }
        }
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    run_group(
        c,
        &rt,
        "session_memory",
        vec![
            ("kv", kv_apps(MemoryStore::new())),
            ("tower_sessions", ts_apps()),
        ],
    );

    let Some(redis) = BenchRedis::start() else {
        eprintln!("redis-server not available: skipping the Redis session benches");
        return;
    };
    let store = rt
        .block_on(RedisStore::connect(&redis.url))
        .expect("connect");
    let mut g = c.benchmark_group("session_redis_rtt");
    g.bench_function("raw_get", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(store.get("missing").await.expect("get"));
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    run_group(c, &rt, "session_redis", vec![("kv", kv_apps(store))]);
    drop(redis);
}

criterion_group! {
    name = session;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(session);
