//! Instruction counts per request, for callgrind: `instr <scenario> <iterations>`
//! (driven by `benches/instr.sh`, which compares two builds).
//! Only `kv_measured_loop` is counted (after 200 warm-up requests), so setup and the
//! stores' background threads are not; instructions / N is the per-request count,
//! repeatable on a noisy machine where wall-clock benches move by 20%.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::{Request, header};
use kv_core::MemoryStore;
use kv_core::cache::Cache;
use kv_core::rate_limit::{HeaderOptions, Policy, RateLimiter};
use kv_core::session::SessionManager;
use kv_tower::session::{Session, SessionLayer};
use kv_tower::{CacheLayer, RateLimitLayer};
use tower::ServiceExt;

const HUGE: u32 = 1_000_000_000;

fn request(cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri("http://example.com/");
    if let Some(cookie) = cookie {
        b = b.header(header::COOKIE, cookie);
    }
    let mut r = b.body(Body::empty()).expect("request");
    r.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 7], 40_000))));
    r
}

fn bare() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

fn limited(policy: Policy, headers: bool) -> Router {
    let limiter = RateLimiter::builder(MemoryStore::new())
        .policy(policy)
        .header_options(HeaderOptions {
            ietf: headers,
            ..HeaderOptions::default()
        })
        .build()
        .expect("limiter");
    bare().layer(RateLimitLayer::new(limiter))
}

fn sessions(route: Router) -> Router {
    let manager = SessionManager::builder(MemoryStore::new())
        .cookie_name("sid")
        .secure(false)
        .build()
        .expect("sessions");
    route.layer(SessionLayer::new(manager))
}

fn main() {
    // With the `metrics` feature and KV_INSTR_RECORDER set: a real recorder (the
    // Prometheus one the demos use), installed before the middlewares are built.
    #[cfg(feature = "metrics")]
    let _metrics = std::env::var_os("KV_INSTR_RECORDER").map(|_| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("recorder")
    });
    let mut args = std::env::args().skip(1);
    let scenario = args.next().expect("scenario");
    let iters: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .expect("iterations");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let window = Duration::from_secs(3600);
    let mut cookie: Option<String> = None;
    let app = match scenario.as_str() {
        "bare" => bare(),
        "noop" => bare().layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r)),
        "rl_gcra" => limited(Policy::gcra("g", HUGE, Duration::from_secs(1)), true),
        "rl_gcra_no_headers" => limited(Policy::gcra("g", HUGE, Duration::from_secs(1)), false),
        "rl_fixed" => limited(Policy::fixed_window("f", HUGE, window), true),
        "rl_fixed_no_headers" => limited(Policy::fixed_window("f", HUGE, window), false),
        "rl_sliding" => limited(Policy::sliding_window("s", HUGE, window), true),
        "session_untouched" => sessions(bare()),
        "session_read" | "session_write" => {
            let write = scenario == "session_write";
            let route = Router::new().route(
                "/",
                get(move |s: Session| async move {
                    if write || s.get::<String>("k").await.expect("get").is_none() {
                        s.insert("k", "value").await.expect("insert");
                    }
                    "ok"
                }),
            );
            let app = sessions(route);
            let first = rt
                .block_on(app.clone().oneshot(request(None)))
                .expect("response");
            let set = first.headers()[header::SET_COOKIE].to_str().expect("ascii");
            cookie = Some(set.split(';').next().expect("pair").to_owned());
            app
        }
        "cache_hit" => {
            let cache = Cache::builder(MemoryStore::new()).build().expect("cache");
            let route = Router::new().route(
                "/",
                get(|| async { ([(header::CACHE_CONTROL, "max-age=3600")], "a cached body") }),
            );
            route.layer(CacheLayer::new(cache))
        }
        other => panic!("unknown scenario {other}"),
    };
    drive(&rt, &app, cookie.as_deref(), 200);
    kv_measured_loop(&rt, &app, cookie.as_deref(), iters);
}

/// Only this function is counted (`--collect-atstart=no --toggle-collect=*kv_measured_loop*`).
#[inline(never)]
fn kv_measured_loop(rt: &tokio::runtime::Runtime, app: &Router, cookie: Option<&str>, iters: u64) {
    drive(rt, app, cookie, iters);
}

fn drive(rt: &tokio::runtime::Runtime, app: &Router, cookie: Option<&str>, iters: u64) {
    rt.block_on(async {
        for _ in 0..iters {
            let response = app
                .clone()
                .oneshot(request(cookie))
                .await
                .expect("response");
            assert!(response.status().is_success());
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            std::hint::black_box(body);
        }
    });
}
