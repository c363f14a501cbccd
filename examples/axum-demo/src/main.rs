//! The kv demo on axum: `cargo run -p axum-demo`, then open <http://127.0.0.1:3000>.
//!
//! Same routes and behaviour as `actix-demo` (what they share is in `demo-common`):
//! `/slow` is cached 10 s, `/me` is a session, `/api/limited` allows 5 requests per 10 s
//! per client (per user when logged in). `REDIS_URL` moves everything to Redis, so
//! several replicas share it; `PORT` or `--port N` picks the port. `/metrics` serves the
//! middlewares' and the store's metrics in the Prometheus text format.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use demo_common::{Config, USER_HEADER};
use kv_core::cache::Cache;
use kv_tower::session::{Session, SessionFailure, SessionLayer};
use kv_tower::{CacheLayer, RateLimitLayer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    demo_common::init_tracing();
    let metrics = demo_common::install_metrics()?;
    let config = Config::from_env()?;
    let store = demo_common::open_store(&config).await?;
    let key = demo_common::session_key(&store).await?;

    let cache = Cache::builder(store.clone())
        .key_prefix("demo:cache:")
        .build()?;
    let app = Router::new()
        .route("/", get(|| async { Html(demo_common::INDEX_HTML) }))
        .route("/slow", get(slow).layer(CacheLayer::new(cache)))
        .route("/me", get(me))
        .route("/login", post(login))
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
        .layer(SessionLayer::new(demo_common::sessions(store, key)?));

    let addr = SocketAddr::from(([127, 0, 0, 1], config.port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("axum demo on http://{addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
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
        [(header::CONTENT_TYPE, "application/json")],
        demo_common::me_json(user.as_deref(), visits),
    ))
}

async fn login(session: Session, form: Bytes) -> Result<Response, SessionFailure> {
    let Some(user) = demo_common::form_user(&form) else {
        return Ok((StatusCode::BAD_REQUEST, "a form field `user` is required").into_response());
    };
    session.login(&user).await?; // keeps the data, cycles the id
    Ok(Redirect::to("/me").into_response())
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
