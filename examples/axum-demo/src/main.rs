//! The kv demo on axum: `cargo run -p axum-demo`, then open <http://127.0.0.1:3000>.
//!
//! Same routes and behaviour as `actix-demo` (what they share is in `demo-common`):
//! `/` is a live dashboard, `/slow` is cached 10 s, `/me` is a session, `/api/limited`
//! allows 5 requests per 10 s per user (20 per address), `/login` 10 attempts per minute
//! per address. `REDIS_URL` moves everything to Redis, so several replicas share it;
//! `PORT` or `--port N` picks the port; `--help` lists the rest. `/metrics` serves the
//! middlewares' and the store's metrics in the Prometheus text format.
//!
//! Served through hyper's HTTP/1 connection builder rather than `axum::serve`, for its
//! header-read timeout: a client that never finishes its request head, or a keep-alive
//! connection idle for longer than `--client-timeout`, is dropped.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use demo_common::{Config, USER_HEADER};
use hyper_util::rt::{TokioIo, TokioTimer};
use kv_core::AnyStore;
use kv_core::cache::Cache;
use kv_core::session::Key;
use kv_tower::session::{Session, SessionFailure, SessionLayer};
use kv_tower::{CacheLayer, RateLimitLayer};
use tower_http::trace::TraceLayer;
use tower_service::Service as _;
use tracing::Span;

const NAME: &str = "axum-demo";

#[tokio::main]
async fn main() {
    demo_common::init_tracing();
    let config = Config::from_env_or_exit(NAME);
    if let Err(e) = run(config).await {
        demo_common::exit_with(NAME, e);
    }
}

async fn run(config: Config) -> Result<(), String> {
    let metrics = demo_common::install_metrics()?;
    let store = demo_common::open_store(&config).await?;
    let key = demo_common::session_key(&store).await?;
    demo_common::keep_session_key_shared(store.clone(), &key);
    let app = app(&config, store, key.key, metrics).map_err(|e| format!("bad settings: {e}"))?;

    let addr = SocketAddr::from(([127, 0, 0, 1], config.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| demo_common::bind_error(config.port, &e))?;
    tracing::info!("axum demo on http://{addr}");
    serve(listener, app, config.client_timeout).await;
    Ok(())
}

fn app(
    config: &Config,
    store: AnyStore,
    key: Key,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Result<Router, kv_core::ConfigError> {
    let cache = Cache::builder(store.clone())
        .key_prefix("demo:cache:")
        .build()?;
    let login_limiter = demo_common::login_limiter(store.clone(), config.login_limit)?;
    Ok(Router::new()
        .route("/", get(index))
        .route("/slow", get(slow).layer(CacheLayer::new(cache)))
        .route("/me", get(me))
        .route(
            "/login",
            post(login).layer(RateLimitLayer::new(login_limiter)),
        )
        .route("/logout", post(logout))
        .route(
            "/api/limited",
            get(limited)
                .layer(RateLimitLayer::new(demo_common::limiter(store.clone())?))
                .layer(middleware::from_fn(user_header)),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move {
                    (
                        [(header::CONTENT_TYPE, demo_common::METRICS_CONTENT_TYPE)],
                        text,
                    )
                }
            }),
        )
        .layer(SessionLayer::new(demo_common::sessions(store, key)?))
        .layer(DefaultBodyLimit::max(demo_common::MAX_BODY_BYTES))
        .layer(middleware::from_fn(request_limits))
        .layer(middleware::from_fn(friendly_errors))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_failure(())
                .on_response(|res: &Response, latency: Duration, _: &Span| {
                    let h = |name| res.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
                    let status = res.status().as_u16();
                    let verdict = demo_common::ratelimit_verdict(status, h("ratelimit").is_some());
                    tracing::info!("{}", demo_common::access_fields(status, latency, h("x-cache"), verdict));
                }),
        ))
}

/// The accept loop: one hyper HTTP/1 connection per client, with the header-read
/// timeout (it also bounds how long a keep-alive connection may sit idle before its next
/// request), the peer address for the rate limiter.
async fn serve(listener: tokio::net::TcpListener, app: Router, client_timeout: Duration) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(client_timeout)
        .keep_alive(true);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move { app.call(req).await }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "connection closed: {e}");
            }
        });
    }
}

async fn index() -> impl IntoResponse {
    let headers = demo_common::PAGE_HEADERS.map(|(n, v)| (n, v));
    (headers, Html(demo_common::INDEX_HTML))
}

async fn slow() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, demo_common::SLOW_CACHE_CONTROL),
            (header::CONTENT_TYPE, "application/json"),
        ],
        demo_common::slow().await,
    )
}

async fn me(session: Session) -> Result<impl IntoResponse, SessionFailure> {
    let visits = session.get::<u64>("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    let user = session.user().await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, demo_common::ME_CACHE_CONTROL),
        ],
        demo_common::me_json(user.as_deref(), visits),
    ))
}

async fn login(
    session: Session,
    headers: HeaderMap,
    form: Bytes,
) -> Result<Response, SessionFailure> {
    let Some(user) = demo_common::form_user(&form) else {
        return Ok((StatusCode::BAD_REQUEST, "a form field `user` is required").into_response());
    };
    session.login(&user).await?; // keeps the data, cycles the id
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    Ok(Redirect::to(demo_common::after_login(accept)).into_response())
}

async fn logout(session: Session) -> Result<Redirect, SessionFailure> {
    session.flush().await?;
    Ok(Redirect::to("/"))
}

async fn limited() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"ok":true}"#,
    )
}

/// Puts the logged-in user in the header the rate limiter keys on (after removing any
/// value the client sent).
async fn user_header(session: Session, mut req: Request, next: Next) -> Response {
    req.headers_mut().remove(USER_HEADER);
    if let Ok(Some(user)) = session.user().await
        && let Ok(value) = HeaderValue::from_str(&user)
    {
        req.headers_mut().insert(USER_HEADER, value);
    }
    next.run(req).await
}

/// The request limits both demos share: `431` past the header count or size, `413` past
/// the declared body size.
async fn request_limits(req: Request, next: Next) -> Response {
    let headers = req.headers();
    let verdict = demo_common::check_request(
        headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
        headers
            .get(header::CONTENT_LENGTH)
            .map(HeaderValue::as_bytes),
    );
    match verdict {
        Some(431) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.into_response(),
        Some(_) => StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        None => next.run(req).await,
    }
}

/// Error bodies a person can read: HTML for a browser, JSON for an API client; the
/// status and the other headers (`Retry-After`, `RateLimit`, `Allow`) are kept.
async fn friendly_errors(req: Request, next: Next) -> Response {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let html = demo_common::wants_html(accept);
    let res = next.run(req).await;
    let status = res.status().as_u16();
    if !demo_common::is_friendly_error(status) {
        return res;
    }
    let retry_after = res
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let (content_type, body) = demo_common::error_answer(status, retry_after, html);
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Response::from_parts(parts, Body::from(body))
}
