//! The server the floods hit: kv's three middlewares on one bounded `MemoryStore`, on
//! axum (kv-tower) or actix-web (kv-actix), each route keyed so that every request can be
//! a new key.
//!
//! `flood-server --port P [--framework axum|actix] [--max-bytes N]`
//!
//! - `GET /cache/K`: a 1 KiB response cached 10 minutes (one entry per `K`);
//! - `GET /session`: writes to the session (one record per request without a cookie);
//! - `GET /gcra`: GCRA with its state in process, keyed by `x-key`, 10 per second, pruned
//!   every second;
//! - `GET /fixed`: a fixed window in the store, keyed by `x-key`, 10 per 10 s;
//! - `GET /stats`: the store's figures and the in-process GCRA keys, as JSON;
//! - `GET /healthz`.

use std::time::Duration;

use http::HeaderName;
use kv_core::MemoryStore;
use kv_core::cache::Cache;
use kv_core::rate_limit::{GcraState, KeySource, Policy, RateLimiter};
use kv_core::session::SessionManager;

/// The 1 KiB body of `/cache/K`.
const BODY: &[u8; 1024] = &[b'x'; 1024];

struct Parts {
    store: MemoryStore,
    cache: Cache<MemoryStore>,
    sessions: SessionManager,
    gcra: RateLimiter<MemoryStore>,
    fixed: RateLimiter<MemoryStore>,
    max_bytes: usize,
}

fn parts(max_bytes: usize) -> Result<Parts, String> {
    let store = MemoryStore::builder()
        .max_bytes(max_bytes)
        // Values here are at most a 1 KiB response and its head: a small bound then
        // still leaves each shard room for many of the largest entry.
        .max_value_len(16 << 10)
        .max_key_len(1 << 10)
        .expiry_interval(Duration::from_millis(100))
        .build()
        .map_err(|e| e.to_string())?;
    let key = || KeySource::header(HeaderName::from_static("x-key"));
    let cache = Cache::builder(store.clone())
        .key_prefix("cache:")
        .build()
        .map_err(|e| e.to_string())?;
    let sessions = SessionManager::builder(store.clone())
        .cookie_name("flood-session")
        .secure(false)
        .build()
        .map_err(|e| e.to_string())?;
    let gcra = RateLimiter::builder(store.clone())
        .key_prefix("gcra:")
        .prune_interval(Duration::from_secs(1))
        .policy(
            Policy::gcra("gcra", 10, Duration::from_secs(1))
                .gcra_state(GcraState::InProcess)
                .key(key()),
        )
        .build()
        .map_err(|e| e.to_string())?;
    let fixed = RateLimiter::builder(store.clone())
        .key_prefix("fixed:")
        .policy(Policy::fixed_window("fixed", 10, Duration::from_secs(10)).key(key()))
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Parts {
        store,
        cache,
        sessions,
        gcra,
        fixed,
        max_bytes,
    })
}

fn stats(parts: &Parts) -> String {
    let s = parts.store.stats();
    serde_json::json!({
        "keys": s.keys,
        "bytes": s.bytes,
        "max_bytes": parts.max_bytes,
        "evictions": s.evictions,
        "expirations": s.expirations,
        "gcra_tracked_keys": parts.gcra.tracked_keys(),
    })
    .to_string()
}

fn main() -> Result<(), String> {
    let mut port = 3100u16;
    let mut framework = "axum".to_owned();
    let mut max_bytes = 64usize << 20;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--framework" => framework = value()?,
            "--max-bytes" => {
                max_bytes = value()?.parse().map_err(|e| format!("--max-bytes: {e}"))?;
            }
            "--help" | "-h" => {
                println!("flood-server --port P [--framework axum|actix] [--max-bytes N]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    let parts = parts(max_bytes)?;
    match framework.as_str() {
        "axum" => axum_server::run(port, parts),
        "actix" => actix_server::run(port, parts),
        other => Err(format!("--framework {other:?}: axum or actix")),
    }
}

mod axum_server {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use axum::Router;
    use axum::http::header;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use kv_tower::session::{Session, SessionFailure, SessionLayer};
    use kv_tower::{CacheLayer, RateLimitLayer};

    use super::{BODY, Parts, stats};

    pub(super) fn run(port: u16, parts: Parts) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let parts = Arc::new(parts);
            let for_stats = Arc::clone(&parts);
            let app = Router::new()
                .route(
                    "/cache/{key}",
                    get(|| async { ([(header::CACHE_CONTROL, "public, max-age=600")], &BODY[..]) })
                        .layer(CacheLayer::new(parts.cache.clone())),
                )
                .route(
                    "/session",
                    get(session).layer(SessionLayer::new(parts.sessions.clone())),
                )
                .route(
                    "/gcra",
                    get(|| async { "ok" }).layer(RateLimitLayer::new(parts.gcra.clone())),
                )
                .route(
                    "/fixed",
                    get(|| async { "ok" }).layer(RateLimitLayer::new(parts.fixed.clone())),
                )
                .route(
                    "/stats",
                    get(move || {
                        let body = stats(&for_stats);
                        async move { ([(header::CONTENT_TYPE, "application/json")], body) }
                    }),
                )
                .route("/healthz", get(|| async { "ok" }));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .map_err(|e| e.to_string())
        })
    }

    async fn session(session: Session) -> Result<impl IntoResponse, SessionFailure> {
        session.insert("n", 1u8).await?;
        Ok("ok")
    }
}

mod actix_server {
    use std::sync::Arc;

    use actix_web::{App, HttpResponse, HttpServer, web};
    use kv_actix::session::{Session, SessionFailure};
    use kv_actix::{CacheMiddleware, RateLimitMiddleware, SessionMiddleware};

    use super::{BODY, Parts, stats};

    pub(super) fn run(port: u16, parts: Parts) -> Result<(), String> {
        let parts = Arc::new(parts);
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let for_stats = Arc::clone(&parts);
                App::new()
                    .service(
                        web::resource("/cache/{key}")
                            .wrap(CacheMiddleware::new(parts.cache.clone()))
                            .route(web::get().to(|| async {
                                HttpResponse::Ok()
                                    .insert_header(("cache-control", "public, max-age=600"))
                                    .body(&BODY[..])
                            })),
                    )
                    .service(
                        web::resource("/session")
                            .wrap(SessionMiddleware::new(parts.sessions.clone()))
                            .route(web::get().to(session)),
                    )
                    .service(
                        web::resource("/gcra")
                            .wrap(RateLimitMiddleware::new(parts.gcra.clone()))
                            .route(web::get().to(|| async { "ok" })),
                    )
                    .service(
                        web::resource("/fixed")
                            .wrap(RateLimitMiddleware::new(parts.fixed.clone()))
                            .route(web::get().to(|| async { "ok" })),
                    )
                    .route(
                        "/stats",
                        web::get().to(move || {
                            let body = stats(&for_stats);
                            async move {
                                HttpResponse::Ok()
                                    .content_type("application/json")
                                    .body(body)
                            }
                        }),
                    )
                    .route("/healthz", web::get().to(|| async { "ok" }))
            })
            .bind(("127.0.0.1", port))
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?
            .run()
            .await
            .map_err(|e| e.to_string())
        })
    }

    async fn session(session: Session) -> Result<HttpResponse, SessionFailure> {
        session.insert("n", 1u8)?;
        Ok(HttpResponse::Ok().body("ok"))
    }
}
