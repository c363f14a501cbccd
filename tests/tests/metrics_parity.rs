//! Metrics parity: the same scripted traffic through an axum app (kv-tower) and an
//! actix-web app (kv-actix), each with its own cache, rate limiter and session manager on
//! its own `MemoryStore`, moves every kv counter by the same exact amounts. One test in
//! this binary: the recorder is process-wide.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{App, HttpResponse, test as atest, web};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use kv_core::MemoryStore;
use kv_core::cache::Cache;
use kv_core::rate_limit::{Policy, RateLimiter};
use kv_core::session::SessionManager;
use kv_test_support::metrics_capture::{self, Metric};
use tower::ServiceExt;

type Engines = (
    Cache<MemoryStore>,
    RateLimiter<MemoryStore>,
    RateLimiter<MemoryStore>,
    SessionManager,
);

/// The cache, a fixed-window limiter, a GCRA limiter in its lean configuration (one
/// in-process policy: `RateLimiter::admit`'s shortcut, which counts on its own) and the
/// session manager.
fn engines() -> Engines {
    let store = MemoryStore::new();
    let cache = Cache::builder(store.clone()).build().expect("cache");
    let limiter = RateLimiter::builder(store.clone())
        .policy(Policy::fixed_window(
            "per-client",
            3,
            Duration::from_secs(60),
        ))
        .build()
        .expect("limiter");
    let paced = RateLimiter::builder(store.clone())
        .policy(Policy::gcra("paced", 2, Duration::from_secs(60)))
        .build()
        .expect("limiter");
    let sessions = SessionManager::builder(store).build().expect("sessions");
    (cache, limiter, paced, sessions)
}

/// (method, path, with the session cookie)
const SCRIPT: &[(&str, &str)] = &[
    ("GET", "/cached"),
    ("GET", "/cached"),
    ("GET", "/cached"),
    ("POST", "/cached"),
    ("GET", "/limited"),
    ("GET", "/limited"),
    ("GET", "/limited"),
    ("GET", "/limited"),
    ("GET", "/paced"),
    ("GET", "/paced"),
    ("GET", "/paced"),
    ("GET", "/visit"),
    ("GET", "/visit"),
    ("POST", "/cycle"),
    ("POST", "/logout"),
];

const PEER: &str = "203.0.113.7:5000";

fn cookie_of(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get("set-cookie")?.to_str().ok()?;
    let pair = value.split(';').next()?;
    // A removal (`Max-Age=0`) ends the session on the client too.
    (!value.contains("Max-Age=0")).then(|| pair.to_owned())
}

async fn run_axum() -> Vec<u16> {
    use kv_tower::session::{Session, SessionFailure, SessionLayer};
    let (cache, limiter, paced, sessions) = engines();
    let cached = || async { ([("cache-control", "max-age=60")], "cached") };
    async fn visit(s: Session) -> Result<String, SessionFailure> {
        let n: u32 = s.get("n").await?.unwrap_or(0) + 1;
        s.insert("n", n).await?;
        Ok(n.to_string())
    }
    async fn cycle(s: Session) -> Result<&'static str, SessionFailure> {
        s.cycle_id().await?;
        Ok("cycled")
    }
    async fn logout(s: Session) -> Result<&'static str, SessionFailure> {
        s.flush().await?;
        Ok("bye")
    }
    let app = Router::new()
        .route(
            "/cached",
            axum::routing::get(cached)
                .post(|| async { "posted" })
                .layer(kv_tower::CacheLayer::new(cache)),
        )
        .route(
            "/limited",
            axum::routing::get(|| async { "ok" }).layer(kv_tower::RateLimitLayer::new(limiter)),
        )
        .route(
            "/paced",
            axum::routing::get(|| async { "ok" }).layer(kv_tower::RateLimitLayer::new(paced)),
        )
        .route("/visit", axum::routing::get(visit))
        .route("/cycle", axum::routing::post(cycle))
        .route("/logout", axum::routing::post(logout))
        .layer(SessionLayer::new(sessions));
    let mut cookie: Option<String> = None;
    let mut statuses = Vec::new();
    for (method, path) in SCRIPT {
        let mut builder = http::Request::builder().method(*method).uri(*path);
        if let Some(c) = &cookie {
            builder = builder.header("cookie", c.as_str());
        }
        let mut request = builder.body(Body::empty()).expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(PEER.parse::<SocketAddr>().expect("addr")));
        let response = app.clone().oneshot(request).await.expect("infallible");
        statuses.push(response.status().as_u16());
        if let Some(c) = cookie_of(response.headers()) {
            cookie = Some(c);
        }
        let _ = response.into_body().collect().await.expect("body");
    }
    statuses
}

async fn run_actix() -> Vec<u16> {
    use kv_actix::session::{Session, SessionFailure};
    let (cache, limiter, paced, sessions) = engines();
    async fn visit(s: Session) -> Result<String, SessionFailure> {
        let n: u32 = s.get("n")?.unwrap_or(0) + 1;
        s.insert("n", n)?;
        Ok(n.to_string())
    }
    async fn cycle(s: Session) -> Result<&'static str, SessionFailure> {
        s.renew()?;
        Ok("cycled")
    }
    async fn logout(s: Session) -> Result<&'static str, SessionFailure> {
        s.purge()?;
        Ok("bye")
    }
    let app = atest::init_service(
        App::new()
            .wrap(kv_actix::SessionMiddleware::new(sessions))
            .service(
                web::resource("/cached")
                    .wrap(kv_actix::CacheMiddleware::new(cache))
                    .route(web::get().to(|| async {
                        HttpResponse::Ok()
                            .insert_header(("cache-control", "max-age=60"))
                            .body("cached")
                    }))
                    .route(web::post().to(|| async { "posted" })),
            )
            .service(
                web::resource("/limited")
                    .wrap(kv_actix::RateLimitMiddleware::new(limiter))
                    .route(web::get().to(|| async { "ok" })),
            )
            .service(
                web::resource("/paced")
                    .wrap(kv_actix::RateLimitMiddleware::new(paced))
                    .route(web::get().to(|| async { "ok" })),
            )
            .route("/visit", web::get().to(visit))
            .route("/cycle", web::post().to(cycle))
            .route("/logout", web::post().to(logout)),
    )
    .await;
    let mut cookie: Option<String> = None;
    let mut statuses = Vec::new();
    for (method, path) in SCRIPT {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = atest::TestRequest::default()
            .method(method)
            .uri(path)
            .peer_addr(PEER.parse().expect("addr"));
        if let Some(c) = &cookie {
            request = request.insert_header(("cookie", c.as_str()));
        }
        let response = atest::call_service(&app, request.to_request()).await;
        statuses.push(response.status().as_u16());
        let mut headers = http::HeaderMap::new();
        if let Some(v) = response.headers().get("set-cookie") {
            headers.insert(
                "set-cookie",
                http::HeaderValue::from_bytes(v.as_bytes()).expect("value"),
            );
        }
        if let Some(c) = cookie_of(&headers) {
            cookie = Some(c);
        }
        let _ = atest::read_body(response).await;
    }
    statuses
}

/// What changed between two snapshots, kv's metrics only, as sorted (series, delta).
fn delta(before: &[Metric], after: &[Metric]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = after
        .iter()
        .filter(|m| m.name.starts_with("kv_"))
        .filter_map(|m| {
            let old = before
                .iter()
                .find(|b| b.name == m.name && b.labels == m.labels)
                .map_or(0.0, |b| b.value);
            let d = (m.value - old).round() as i64;
            let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (d != 0).then(|| (format!("{}{{{}}}", m.name, labels.join(",")), d))
        })
        .collect();
    out.sort();
    out
}

#[actix_web::test]
async fn the_same_traffic_moves_the_same_counters_through_both_frameworks() {
    metrics_capture::install();

    let before = metrics_capture::snapshot();
    let axum_statuses = run_axum().await;
    let axum = delta(&before, &metrics_capture::snapshot());

    let before = metrics_capture::snapshot();
    let actix_statuses = run_actix().await;
    let actix = delta(&before, &metrics_capture::snapshot());

    assert_eq!(axum_statuses, actix_statuses, "the same answers");
    assert_eq!(
        axum_statuses,
        [
            200, 200, 200, 200, 200, 200, 200, 429, 200, 200, 429, 200, 200, 200, 200
        ]
    );
    assert_eq!(axum, actix, "the same counters");
    let expected: Vec<(String, i64)> = [
        ("kv_cache_requests_total{outcome=bypass}", 1),
        ("kv_cache_requests_total{outcome=hit}", 2),
        ("kv_cache_requests_total{outcome=miss}", 1),
        ("kv_cache_stores_total{}", 1),
        (
            "kv_rate_limit_decisions_total{outcome=allowed,policy=paced}",
            2,
        ),
        (
            "kv_rate_limit_decisions_total{outcome=allowed,policy=per-client}",
            3,
        ),
        (
            "kv_rate_limit_decisions_total{outcome=denied,policy=paced}",
            1,
        ),
        (
            "kv_rate_limit_decisions_total{outcome=denied,policy=per-client}",
            1,
        ),
        ("kv_session_creations_total{}", 1),
        ("kv_session_ends_total{reason=cycle}", 1),
        ("kv_session_ends_total{reason=logout}", 1),
        ("kv_session_loads_total{}", 3),
        ("kv_session_saves_total{}", 4),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(axum, expected);
}
