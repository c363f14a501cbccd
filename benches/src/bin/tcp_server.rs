//! The loopback-TCP comparison's server (`benches/tcp.sh` drives it with `wrk`): one axum
//! server, one port, the same handler behind each contender, side by side so that one run
//! compares them under the same conditions:
//!
//! | route | what |
//! |---|---|
//! | `/bare` | the handler alone |
//! | `/noop` | behind a no-op tower layer (what any layer costs in axum) |
//! | `/governor` | `tower_governor`'s `GovernorLayer` (peer IP key) |
//! | `/kv/gcra`, `/kv/gcra-no-headers`, `/kv/fixed` | kv's `RateLimitLayer` on a `MemoryStore` |
//! | `/kv/session/read`, `/kv/session/write`, `/kv/session/untouched` | kv's `SessionLayer` |
//! | `/ts/session/read`, `/ts/session/write`, `/ts/session/untouched` | `tower-sessions` (memory store) |
//! | `/kv/cache` | kv's `CacheLayer` on a `MemoryStore` (a hit after the first request) |
//! | `/origin/{*rest}` | a 1 KiB cacheable body: the origin of the `cache-proxy` comparison |
//!
//! Every quota is far beyond what a run sends. `tcp_server [PORT]` (default 8090); the
//! runtime's worker threads: `KV_TCP_WORKERS` (default 1, so the load generator has the
//! other core).
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::header;
use kv_core::MemoryStore;
use kv_core::cache::Cache;
use kv_core::rate_limit::{HeaderOptions, Policy, RateLimiter};
use kv_core::session::SessionManager;
use kv_tower::session::{Session, SessionLayer};
use kv_tower::{CacheLayer, RateLimitLayer};

const HUGE: u32 = 1_000_000_000;

async fn ok() -> &'static str {
    "ok"
}

fn limited(path: &str, policy: Policy, ietf: bool) -> Router {
    let limiter = RateLimiter::builder(MemoryStore::new())
        .policy(policy)
        .header_options(HeaderOptions {
            ietf,
            ..HeaderOptions::default()
        })
        .build()
        .expect("limiter");
    Router::new()
        .route(path, get(ok))
        .layer(RateLimitLayer::new(limiter))
}

fn kv_sessions() -> Router {
    let manager = SessionManager::builder(MemoryStore::new())
        .cookie_name("sid")
        .secure(false)
        .build()
        .expect("sessions");
    Router::new()
        .route("/kv/session/untouched", get(ok))
        .route(
            "/kv/session/read",
            get(|s: Session| async move {
                let v: Option<String> = s.get("k").await.unwrap_or_default();
                v.unwrap_or_default()
            }),
        )
        .route(
            "/kv/session/write",
            get(|s: Session| async move {
                let _ = s.insert("k", "value").await;
                "ok"
            }),
        )
        .layer(SessionLayer::new(manager))
}

fn ts_sessions() -> Router {
    type Ts = tower_sessions::Session;
    Router::new()
        .route("/ts/session/untouched", get(ok))
        .route(
            "/ts/session/read",
            get(|s: Ts| async move {
                let v: Option<String> = s.get("k").await.unwrap_or_default();
                v.unwrap_or_default()
            }),
        )
        .route(
            "/ts/session/write",
            get(|s: Ts| async move {
                let _ = s.insert("k", "value").await;
                "ok"
            }),
        )
        .layer(
            tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
                .with_secure(false),
        )
}

fn app() -> Router {
    let governor = tower_governor::governor::GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(HUGE)
        .finish()
        .expect("config");
    let window = Duration::from_secs(3600);
    let cache = Cache::builder(MemoryStore::new()).build().expect("cache");
    let origin_body: &'static str = Box::leak("x".repeat(1024).into_boxed_str());
    Router::new()
        .route("/bare", get(ok))
        .merge(
            Router::new()
                .route("/noop", get(ok))
                .layer(tower::util::MapRequestLayer::new(
                    |r: http::Request<axum::body::Body>| r,
                )),
        )
        .merge(
            Router::new()
                .route("/governor", get(ok))
                .layer(tower_governor::GovernorLayer::new(governor)),
        )
        .merge(limited(
            "/kv/gcra",
            Policy::gcra("g", HUGE, Duration::from_secs(1)),
            true,
        ))
        .merge(limited(
            "/kv/gcra-no-headers",
            Policy::gcra("g", HUGE, Duration::from_secs(1)),
            false,
        ))
        .merge(limited(
            "/kv/fixed",
            Policy::fixed_window("f", HUGE, window),
            true,
        ))
        .merge(kv_sessions())
        .merge(ts_sessions())
        .merge(
            Router::new()
                .route(
                    "/kv/cache",
                    get(|| async { ([(header::CACHE_CONTROL, "max-age=3600")], "a cached body") }),
                )
                .layer(CacheLayer::new(cache)),
        )
        .route(
            "/origin/{*rest}",
            get(move || async move {
                (
                    [
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                        (header::CONTENT_TYPE, "text/plain"),
                    ],
                    origin_body,
                )
            }),
        )
}

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8090);
    let workers = std::env::var("KV_TCP_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .expect("bind");
        eprintln!("tcp_server listening on 127.0.0.1:{port}");
        axum::serve(
            listener,
            app().into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
}
