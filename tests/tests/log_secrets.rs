//! What kv logs holds no secret: traffic through both frameworks on a password-protected
//! Redis — logins, a rate limit exceeded, cached pages, a store outage — with every span
//! and event captured at `TRACE`; the capture never contains the client's IP, a session
//! id, a cookie, a user name, a store key or the Redis password. One test in this binary:
//! the subscriber is process-wide.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{App, test as atest, web};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use kv_core::cache::Cache;
use kv_core::rate_limit::{Policy, RateLimiter};
use kv_core::session::SessionManager;
use kv_core::{AnyStore, RedisStore};
use kv_test_support as support;
use tower::ServiceExt;

const PASSWORD: &str = "redis-pw-never-logged";
const PEER: &str = "198.51.100.77:41000";
const USER: &str = "alice-the-user-name";

async fn engines(url: &str) -> Engines {
    let store = AnyStore::new(
        RedisStore::builder(url)
            .command_timeout(Duration::from_millis(200))
            .build()
            .await
            .expect("connect"),
    );
    let cache = Cache::builder(store.clone()).build().expect("cache");
    let limiter = RateLimiter::builder(store.clone())
        .policy(Policy::fixed_window(
            "per-client",
            2,
            Duration::from_secs(60),
        ))
        .build()
        .expect("limiter");
    let sessions = SessionManager::builder(store).build().expect("sessions");
    (cache, limiter, sessions)
}

/// (method, path)
const SCRIPT: &[(&str, &str)] = &[
    ("GET", "/cached"),
    ("GET", "/cached"),
    ("GET", "/limited"),
    ("GET", "/limited"),
    ("GET", "/limited"),
    ("POST", "/login"),
    ("GET", "/me"),
];

fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

type Engines = (Cache<AnyStore>, RateLimiter<AnyStore>, SessionManager);

async fn through_axum(engines: Engines, cookies: &mut Vec<String>) {
    use kv_tower::session::{Session, SessionFailure, SessionLayer};
    let (cache, limiter, sessions) = engines;
    async fn login(s: Session) -> Result<&'static str, SessionFailure> {
        s.login(USER).await?;
        Ok("in")
    }
    async fn me(s: Session) -> Result<String, SessionFailure> {
        Ok(s.user().await?.unwrap_or_default())
    }
    let app = Router::new()
        .route(
            "/cached",
            axum::routing::get(|| async { ([("cache-control", "max-age=60")], "page") })
                .layer(kv_tower::CacheLayer::new(cache)),
        )
        .route(
            "/limited",
            axum::routing::get(|| async { "ok" }).layer(kv_tower::RateLimitLayer::new(limiter)),
        )
        .route("/login", axum::routing::post(login))
        .route("/me", axum::routing::get(me))
        .layer(SessionLayer::new(sessions));
    let mut cookie: Option<String> = None;
    for (method, path) in SCRIPT {
        let mut b = http::Request::builder().method(*method).uri(*path);
        if let Some(c) = &cookie {
            b = b.header("cookie", c.as_str());
        }
        let mut request = b.body(Body::empty()).expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(PEER.parse::<SocketAddr>().expect("addr")));
        let response = app.clone().oneshot(request).await.expect("infallible");
        if let Some(v) = response.headers().get("set-cookie") {
            let c = pair(v.to_str().expect("ascii"));
            cookies.push(c.clone());
            cookie = Some(c);
        }
        let _ = response.into_body().collect().await;
    }
}

async fn through_actix(engines: Engines, cookies: &mut Vec<String>) {
    use kv_actix::session::{Session, SessionFailure};
    let (cache, limiter, sessions) = engines;
    async fn login(s: Session) -> Result<&'static str, SessionFailure> {
        s.login(USER)?;
        Ok("in")
    }
    async fn me(s: Session) -> Result<String, SessionFailure> {
        Ok(s.user()?.unwrap_or_default())
    }
    let app = atest::init_service(
        App::new()
            .wrap(kv_actix::SessionMiddleware::new(sessions))
            .service(
                web::resource("/cached")
                    .wrap(kv_actix::CacheMiddleware::new(cache))
                    .route(web::get().to(|| async {
                        actix_web::HttpResponse::Ok()
                            .insert_header(("cache-control", "max-age=60"))
                            .body("page")
                    })),
            )
            .service(
                web::resource("/limited")
                    .wrap(kv_actix::RateLimitMiddleware::new(limiter))
                    .route(web::get().to(|| async { "ok" })),
            )
            .route("/login", web::post().to(login))
            .route("/me", web::get().to(me)),
    )
    .await;
    let mut cookie: Option<String> = None;
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
        if let Some(v) = response.headers().get("set-cookie") {
            let c = pair(v.to_str().expect("ascii"));
            cookies.push(c.clone());
            cookie = Some(c);
        }
        let _ = atest::read_body(response).await;
    }
}

#[actix_web::test]
async fn nothing_kv_logs_holds_an_ip_an_id_a_cookie_a_user_a_key_or_a_password() {
    let Some(mut redis) = support::available_for("log_secrets")
        .then(|| support::RedisServer::start(support::free_port(), &["--requirepass", PASSWORD]))
    else {
        return;
    };
    let logs = support::CapturedLogs::default();
    tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        // Every span is printed when it closes, with its fields.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .init();
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", redis.port);
    let mut cookies = Vec::new();
    through_axum(engines(&url).await, &mut cookies).await;
    through_actix(engines(&url).await, &mut cookies).await;
    // A store outage: every middleware logs its failure.
    let during = engines(&url).await;
    redis.kill();
    through_axum(during, &mut cookies).await;

    let text = logs.text();
    assert!(
        text.contains("kv.rate_limit"),
        "the spans were captured: {text}"
    );
    assert!(
        text.contains("db.system.name"),
        "the store spans were captured"
    );
    assert!(
        text.contains("rate limit exceeded") && text.contains("per-client"),
        "the 429 was logged with its policy"
    );
    assert!(
        text.contains("rate limit store failed") && text.contains("the session failed"),
        "the outage was logged"
    );
    assert!(cookies.len() >= 2, "sessions were issued: {cookies:?}");
    let ip = PEER.split(':').next().expect("ip");
    let mut secrets: Vec<String> = vec![ip.to_owned(), USER.to_owned(), PASSWORD.to_owned()];
    for cookie in &cookies {
        let value = cookie.split_once('=').map_or("", |(_, v)| v);
        if value.len() >= 16 {
            secrets.push(value.to_owned());
            // The id alone, as a store key would hold it (a signed cookie's value carries it).
            secrets.push(value.chars().take(16).collect());
        }
    }
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{secret:?} appears in the logs"
        );
    }
    // A store key: a prefix followed by an id-like run (16+ id characters).
    for prefix in ["session:", "session:u.", "rl:"] {
        let leak = text.match_indices(prefix).find(|(at, _)| {
            text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .count()
                >= 16
        });
        assert!(
            leak.is_none(),
            "a store key appears in the logs: {:?}",
            leak.map(|(at, _)| &text[at..(at + 60).min(text.len())])
        );
    }
}
