//! Instruction counts per request, for callgrind: `instr <scenario> <iterations>`
//! (driven by `benches/instr.sh`, which compares two builds, and `.ci/instr-check`, which
//! compares one build with `benches/instr-baseline.txt`).
//! Only `kv_measured_loop*` is counted (after 200 warm-up requests), so setup and the
//! stores' background threads are not; instructions / N is the per-request count,
//! repeatable on a noisy machine where wall-clock benches move by 20%.
//!
//! Scenarios (`instr list` prints them): kv's hot paths beside the peer each one replaces
//! (`tower_governor`, `tower-sessions`, `actix-governor`) and the baselines their
//! overheads are measured from (`bare`, `noop`, `cache_bare`, `cache_miss_baseline`,
//! `actix_bare`, `actix_cache_bare`), so a ratio of overheads is one subtraction away.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, header};
use kv_core::cache::Cache;
use kv_core::rate_limit::{HeaderOptions, Policy, RateLimiter};
use kv_core::session::SessionManager;
use kv_core::{MemoryStore, Store};
use kv_tower::session::{Session, SessionLayer};
use kv_tower::{CacheLayer, RateLimitLayer};
use tower::ServiceExt;

const HUGE: u32 = 1_000_000_000;
const WARM_UP: u64 = 200;

/// Every scenario, in the order `.ci/instr-check` prints them.
pub const SCENARIOS: &[&str] = &[
    "bare",
    "noop",
    "tower_governor",
    "rl_gcra",
    "rl_gcra_no_headers",
    "rl_gcra_burst",
    "rl_fixed",
    "rl_fixed_no_headers",
    "rl_sliding",
    "session_untouched",
    "session_read",
    "session_write",
    "ts_untouched",
    "ts_read",
    "ts_write",
    "cache_bare",
    "cache_hit",
    "cache_miss_baseline",
    "cache_miss",
    "actix_bare",
    "actix_governor",
    "actix_rl_gcra",
    "actix_rl_fixed",
    "actix_cache_bare",
    "actix_cache_hit",
];

/// What every axum request of a scenario looks like.
#[derive(Default)]
struct Shape {
    cookie: Option<String>,
    /// Distinct paths, one per request (the cache-miss scenarios); `/` when empty.
    paths: Vec<String>,
    /// A store written once per request beside the handler (`cache_miss_baseline`).
    write: Option<MemoryStore>,
}

impl Shape {
    fn request(&self, i: u64) -> Request<Body> {
        let path = self
            .paths
            .get(i as usize % self.paths.len().max(1))
            .map_or("/", String::as_str);
        let mut b = Request::builder()
            .uri(path)
            .header(header::HOST, "bench.example");
        if let Some(cookie) = &self.cookie {
            b = b.header(header::COOKIE, cookie);
        }
        let mut r = b.body(Body::empty()).expect("request");
        r.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 7], 40_000))));
        r
    }
}

fn bare() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

fn limiter(policy: Policy, headers: bool) -> RateLimiter<MemoryStore> {
    RateLimiter::builder(MemoryStore::new())
        .policy(policy)
        .header_options(HeaderOptions {
            ietf: headers,
            ..HeaderOptions::default()
        })
        .build()
        .expect("limiter")
}

fn limited(policy: Policy, headers: bool) -> Router {
    bare().layer(RateLimitLayer::new(limiter(policy, headers)))
}

fn gcra() -> Policy {
    Policy::gcra("g", HUGE, Duration::from_secs(1))
}

fn fixed() -> Policy {
    Policy::fixed_window("f", HUGE, Duration::from_secs(3600))
}

fn sessions(route: Router) -> Router {
    let manager = SessionManager::builder(MemoryStore::new())
        .cookie_name("sid")
        .secure(false)
        .build()
        .expect("sessions");
    route.layer(SessionLayer::new(manager))
}

fn kv_session_route(write: bool) -> Router {
    Router::new().route(
        "/",
        get(move |s: Session| async move {
            if write || s.get::<String>("k").await.expect("get").is_none() {
                s.insert("k", "value").await.expect("insert");
            }
            "ok"
        }),
    )
}

fn ts_session_route(write: bool) -> Router {
    Router::new().route(
        "/",
        get(move |s: tower_sessions::Session| async move {
            if write || s.get::<String>("k").await.expect("get").is_none() {
                s.insert("k", "value").await.expect("insert");
            }
            "ok"
        }),
    )
}

fn ts_sessions(route: Router) -> Router {
    route.layer(
        tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
            .with_secure(false),
    )
}

/// The cookie a first request through `app` sets (`name=value`).
fn first_cookie(rt: &tokio::runtime::Runtime, app: &Router) -> String {
    let first = rt
        .block_on(app.clone().oneshot(Shape::default().request(0)))
        .expect("response");
    let set = first.headers()[header::SET_COOKIE].to_str().expect("ascii");
    set.split(';').next().expect("pair").to_owned()
}

/// The handler of the cache scenarios: a small fresh, cacheable body.
fn cacheable() -> Router {
    Router::new()
        .fallback(|| async { ([(header::CACHE_CONTROL, "max-age=3600")], "a cached body") })
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
    let scenario = args.next().expect("scenario (or `list`)");
    if scenario == "list" {
        for s in SCENARIOS {
            println!("{s}");
        }
        return;
    }
    let iters: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .expect("iterations");
    if let Some(actix) = scenario.strip_prefix("actix_") {
        return actix_main(actix, iters);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let mut shape = Shape::default();
    let distinct = || (0..WARM_UP + iters).map(|i| format!("/miss/{i}")).collect();
    let app = match scenario.as_str() {
        "bare" => bare(),
        "noop" => bare().layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r)),
        "tower_governor" => {
            let config = tower_governor::governor::GovernorConfigBuilder::default()
                .per_nanosecond(1)
                .burst_size(HUGE)
                .finish()
                .expect("config");
            bare().layer(tower_governor::GovernorLayer::new(config))
        }
        "rl_gcra" => limited(gcra(), true),
        "rl_gcra_no_headers" => limited(gcra(), false),
        // A burst a real policy has (the others' is huge, as tower_governor's here): the
        // `RateLimit` values a burst of 100 can send are formatted once, at build time.
        "rl_gcra_burst" => limited(gcra().burst(100), true),
        "rl_fixed" => limited(fixed(), true),
        "rl_fixed_no_headers" => limited(fixed(), false),
        "rl_sliding" => limited(
            Policy::sliding_window("s", HUGE, Duration::from_secs(3600)),
            true,
        ),
        "session_untouched" => sessions(bare()),
        "session_read" | "session_write" => {
            let app = sessions(kv_session_route(scenario == "session_write"));
            shape.cookie = Some(first_cookie(&rt, &app));
            app
        }
        "ts_untouched" => ts_sessions(bare()),
        "ts_read" | "ts_write" => {
            let app = ts_sessions(ts_session_route(scenario == "ts_write"));
            shape.cookie = Some(first_cookie(&rt, &app));
            app
        }
        "cache_bare" => cacheable(),
        "cache_hit" => {
            let cache = Cache::builder(MemoryStore::new()).build().expect("cache");
            cacheable().layer(CacheLayer::new(cache))
        }
        // The miss path (every request a new URL: look-up, handler, store write) and what
        // it is measured against: the handler plus one store write of the same size.
        "cache_miss" => {
            shape.paths = distinct();
            let cache = Cache::builder(MemoryStore::new()).build().expect("cache");
            cacheable().layer(CacheLayer::new(cache))
        }
        "cache_miss_baseline" => {
            shape.paths = distinct();
            shape.write = Some(MemoryStore::new());
            cacheable()
        }
        other => panic!("unknown scenario {other}"),
    };
    // As `axum::serve` does (`into_make_service`): the routes and their layers are built
    // once, not for every request (a `Router` called without this rebuilds each handler's
    // route and re-applies its layers per request, which no server pays).
    let app = app.with_state(());
    drive(&rt, &app, &shape, 0, WARM_UP);
    kv_measured_loop(&rt, &app, &shape, iters);
}

/// Only this function is counted (`--collect-atstart=no --toggle-collect=*kv_measured_loop*`).
#[inline(never)]
fn kv_measured_loop(rt: &tokio::runtime::Runtime, app: &Router, shape: &Shape, iters: u64) {
    drive(rt, app, shape, WARM_UP, iters);
}

fn drive(rt: &tokio::runtime::Runtime, app: &Router, shape: &Shape, from: u64, iters: u64) {
    // The entry the baseline writes: the size of what the cache stores for this response.
    let entry = Bytes::from(vec![b'e'; 176]);
    rt.block_on(async {
        for i in from..from + iters {
            let response = app
                .clone()
                .oneshot(shape.request(i))
                .await
                .expect("response");
            assert!(response.status().is_success());
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            std::hint::black_box(body);
            if let Some(store) = &shape.write {
                let key = format!("kv:cache:G:bench.example/miss/{i}");
                store
                    .set(&key, entry.clone(), Some(Duration::from_secs(3600)))
                    .await
                    .expect("set");
            }
        }
    });
}

const PEER: &str = "198.51.100.7:40000";

async fn actix_ok() -> &'static str {
    "ok"
}

async fn actix_page() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(&b"a cached body"[..])
}

fn actix_main(scenario: &str, iters: u64) {
    use actix_web::{App, test, web};
    let rt = actix_rt::Runtime::new().expect("runtime");
    macro_rules! run {
        ($app:expr) => {{
            let app = rt.block_on(test::init_service($app));
            actix_drive(&rt, &app, WARM_UP);
            kv_measured_loop_actix(&rt, &app, iters);
        }};
    }
    let ok = || web::get().to(actix_ok);
    match scenario {
        "bare" => run!(App::new().route("/", ok())),
        "governor" => {
            let config = actix_governor::GovernorConfigBuilder::default()
                .nanoseconds_per_request(1)
                .burst_size(HUGE)
                .finish()
                .expect("config");
            run!(
                App::new()
                    .wrap(actix_governor::Governor::new(&config))
                    .route("/", ok())
            )
        }
        "rl_gcra" => run!(
            App::new()
                .wrap(kv_actix::RateLimitMiddleware::new(limiter(gcra(), true)))
                .route("/", ok())
        ),
        "rl_fixed" => run!(
            App::new()
                .wrap(kv_actix::RateLimitMiddleware::new(limiter(fixed(), true)))
                .route("/", ok())
        ),
        "cache_bare" => run!(App::new().route("/", web::get().to(actix_page))),
        "cache_hit" => {
            let cache = Cache::builder(MemoryStore::new()).build().expect("cache");
            run!(
                App::new()
                    .wrap(kv_actix::CacheMiddleware::new(cache))
                    .route("/", web::get().to(actix_page))
            )
        }
        other => panic!("unknown scenario actix_{other}"),
    }
}

/// Only this function (and `kv_measured_loop`) is counted.
#[inline(never)]
fn kv_measured_loop_actix<S, B>(rt: &actix_rt::Runtime, app: &S, iters: u64)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    actix_drive(rt, app, iters);
}

fn actix_drive<S, B>(rt: &actix_rt::Runtime, app: &S, iters: u64)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    use actix_web::test;
    rt.block_on(async {
        for _ in 0..iters {
            let request = test::TestRequest::get()
                .uri("/")
                .insert_header(("host", "bench.example"))
                .peer_addr(PEER.parse::<SocketAddr>().expect("addr"))
                .to_request();
            let response = test::call_service(app, request).await;
            assert!(response.status().is_success());
            std::hint::black_box(test::read_body(response).await);
        }
    });
}
