//! The kv demo on actix-web: `cargo run -p actix-demo`, then open <http://127.0.0.1:3000>.
//!
//! Same routes and behaviour as `axum-demo` (what they share is in `demo-common`):
//! `/slow` is cached 10 s, `/me` is a session, `/api/limited` allows 5 requests per 10 s
//! per client (per user when logged in). `REDIS_URL` moves everything to Redis, so
//! several replicas share it; `PORT` or `--port N` picks the port. `/metrics` serves the
//! middlewares' and the store's metrics in the Prometheus text format.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, Error, HttpResponse, HttpServer, web};
use demo_common::{Config, USER_HEADER};
use kv_actix::session::{Session, SessionFailure};
use kv_actix::{CacheMiddleware, RateLimitMiddleware, SessionMiddleware};
use kv_core::cache::Cache;

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    demo_common::init_tracing();
    let metrics = demo_common::install_metrics()?;
    let config = Config::from_env()?;
    let store = demo_common::open_store(&config).await?;
    let key = demo_common::session_key(&store).await?;
    let cache = Cache::builder(store.clone())
        .key_prefix("demo:cache:")
        .build()?;
    let limiter = demo_common::limiter(store.clone())?;
    let sessions = demo_common::sessions(store, key)?;

    let addr = ("127.0.0.1", config.port);
    tracing::info!("actix-web demo on http://{}:{}", addr.0, addr.1);
    HttpServer::new(move || {
        App::new()
            .wrap(SessionMiddleware::new(sessions.clone()))
            .route("/", web::get().to(index))
            .service(
                web::resource("/slow")
                    .wrap(CacheMiddleware::new(cache.clone()))
                    .route(web::get().to(slow)),
            )
            .route("/me", web::get().to(me))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .service(
                web::resource("/api/limited")
                    .wrap(RateLimitMiddleware::new(limiter.clone()))
                    .wrap(from_fn(user_header))
                    .route(web::get().to(limited)),
            )
            .route("/healthz", web::get().to(|| async { "ok" }))
            .app_data(web::Data::new(metrics.clone()))
            .route("/metrics", web::get().to(metrics_page))
    })
    .bind(addr)?
    .run()
    .await?;
    Ok(())
}

async fn metrics_page(
    handle: web::Data<metrics_exporter_prometheus::PrometheusHandle>,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(demo_common::METRICS_CONTENT_TYPE)
        .body(handle.render())
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(demo_common::INDEX_HTML)
}

async fn slow() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, demo_common::SLOW_CACHE_CONTROL))
        .content_type("application/json")
        .body(demo_common::slow().await)
}

async fn me(session: Session) -> Result<HttpResponse, SessionFailure> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", visits)?;
    let user = session.user()?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(demo_common::me_json(user.as_deref(), visits)))
}

async fn login(session: Session, form: web::Bytes) -> Result<HttpResponse, SessionFailure> {
    let Some(user) = demo_common::form_user(&form) else {
        return Ok(HttpResponse::BadRequest().body("a form field `user` is required"));
    };
    session.login(&user)?; // keeps the data, cycles the id
    Ok(see_other("/me"))
}

async fn logout(session: Session) -> Result<HttpResponse, SessionFailure> {
    session.purge()?;
    Ok(see_other("/"))
}

fn see_other(to: &'static str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

async fn limited() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"ok":true}"#)
}

/// Puts the logged-in user in the header the rate limiter keys on (after removing any
/// value the client sent).
async fn user_header(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let name = HeaderName::from_static(USER_HEADER);
    req.headers_mut().remove(&name);
    let session = req.extract::<Session>().await?;
    if let Ok(Some(user)) = session.user()
        && let Ok(value) = HeaderValue::from_str(&user)
    {
        req.headers_mut().insert(name, value);
    }
    next.call(req).await
}
