//! The kv demo on actix-web: `cargo run -p actix-demo`, then open <http://127.0.0.1:3000>.
//!
//! Same routes and behaviour as `axum-demo` (what they share is in `demo-common`):
//! `/` is a live dashboard, `/slow` is cached 10 s, `/me` is a session, `/api/limited`
//! allows 5 requests per 10 s per user (20 per address), `/login` 10 attempts per minute
//! per address. `REDIS_URL` moves everything to Redis, so several replicas share it;
//! `PORT` or `--port N` picks the port; `--help` lists the rest. `/metrics` serves the
//! middlewares' and the store's metrics in the Prometheus text format.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{KeepAlive, StatusCode};
use actix_web::middleware::{Logger, Next, from_fn};
use actix_web::{App, Error, HttpRequest, HttpResponse, HttpServer, Route, guard, web};
use demo_common::{Config, USER_HEADER};
use kv_actix::session::{Session, SessionFailure};
use kv_actix::{CacheMiddleware, RateLimitMiddleware, SessionMiddleware};
use kv_core::cache::Cache;

const NAME: &str = "actix-demo";

#[actix_web::main]
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
    let settings = |e: kv_core::ConfigError| format!("bad settings: {e}");
    let cache = Cache::builder(store.clone())
        .key_prefix("demo:cache:")
        .build()
        .map_err(settings)?;
    let limiter = demo_common::limiter(store.clone()).map_err(settings)?;
    let login_limiter =
        demo_common::login_limiter(store.clone(), config.login_limit).map_err(settings)?;
    let sessions = demo_common::sessions(store, key.key).map_err(settings)?;

    let addr = ("127.0.0.1", config.port);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(SessionMiddleware::new(sessions.clone()))
            .wrap(from_fn(request_limits))
            .wrap(from_fn(friendly_errors))
            .wrap(access_log())
            .app_data(web::PayloadConfig::new(demo_common::MAX_BODY_BYTES))
            .service(web::resource("/").route(get_or_head().to(index)))
            .service(
                web::resource("/slow")
                    .wrap(CacheMiddleware::new(cache.clone()))
                    .route(get_or_head().to(slow)),
            )
            .service(web::resource("/me").route(get_or_head().to(me)))
            .service(
                web::resource("/login")
                    .wrap(RateLimitMiddleware::new(login_limiter.clone()))
                    .route(web::post().to(login)),
            )
            .service(web::resource("/logout").route(web::post().to(logout)))
            .service(
                web::resource("/api/limited")
                    .wrap(RateLimitMiddleware::new(limiter.clone()))
                    .wrap(from_fn(user_header))
                    .route(get_or_head().to(limited)),
            )
            .service(web::resource("/healthz").route(get_or_head().to(|| async { "ok" })))
            .app_data(web::Data::new(metrics.clone()))
            .service(web::resource("/metrics").route(get_or_head().to(metrics_page)))
            .default_service(web::to(|| async { HttpResponse::NotFound().finish() }))
    })
    // A client must send its request head within the timeout (else `408` and closed), and
    // an idle keep-alive connection is closed after it.
    .client_request_timeout(config.client_timeout)
    .keep_alive(KeepAlive::Timeout(config.client_timeout))
    .bind(addr)
    .map_err(|e| demo_common::bind_error(config.port, &e))?;
    // Announced only once bound: a script waiting for this line can connect right away.
    tracing::info!("actix-web demo on http://{}:{}", addr.0, addr.1);
    server
        .run()
        .await
        .map_err(|e| format!("the server stopped: {e}"))
}

/// `GET`, and `HEAD` wherever `GET` is (actix's `web::get()` matches `GET` only; axum's
/// `get` answers both).
fn get_or_head() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// One line per request, the same fields as the axum demo's:
/// `method=GET path=/slow status=200 ms=501.2 cache=MISS ratelimit=-`.
fn access_log() -> Logger {
    Logger::new(
        "method=%{METHOD}xi path=%U status=%s ms=%D cache=%{x-cache}o ratelimit=%{VERDICT}xo",
    )
    .custom_request_replace("METHOD", |req| req.method().to_string())
    .custom_response_replace("VERDICT", |res| {
        let status = res.status().as_u16();
        let limited = res.headers().contains_key("ratelimit");
        demo_common::ratelimit_verdict(status, limited).to_owned()
    })
}

async fn metrics_page(
    handle: web::Data<metrics_exporter_prometheus::PrometheusHandle>,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(demo_common::METRICS_CONTENT_TYPE)
        .body(handle.render())
}

async fn index() -> HttpResponse {
    let mut response = HttpResponse::Ok();
    for (name, value) in demo_common::PAGE_HEADERS {
        response.insert_header((name, value));
    }
    response
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
        .insert_header((header::CACHE_CONTROL, demo_common::ME_CACHE_CONTROL))
        .content_type("application/json")
        .body(demo_common::me_json(user.as_deref(), visits)))
}

async fn login(
    req: HttpRequest,
    session: Session,
    form: web::Bytes,
) -> Result<HttpResponse, SessionFailure> {
    let Some(user) = demo_common::form_user(&form) else {
        return Ok(HttpResponse::BadRequest().body("a form field `user` is required"));
    };
    session.login(&user)?; // keeps the data, cycles the id
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    Ok(see_other(demo_common::after_login(accept)))
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

/// The request limits both demos share: `431` past the header count or size, `413` past
/// the declared body size.
async fn request_limits(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let headers = req.headers();
    let verdict = demo_common::check_request(
        headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
        headers
            .get(header::CONTENT_LENGTH)
            .map(HeaderValue::as_bytes),
    );
    let status = match verdict {
        Some(431) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        Some(_) => StatusCode::PAYLOAD_TOO_LARGE,
        None => return Ok(next.call(req).await?.map_into_boxed_body()),
    };
    Ok(req.into_response(HttpResponse::new(status)))
}

/// Error bodies a person can read: HTML for a browser, JSON for an API client; the
/// status and the other headers (`Retry-After`, `RateLimit`, `Allow`) are kept.
async fn friendly_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let html = demo_common::wants_html(accept);
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    if !demo_common::is_friendly_error(status) {
        return Ok(res.map_into_boxed_body());
    }
    let retry_after = res
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let (content_type, body) = demo_common::error_answer(status, retry_after, html);
    let mut res = res.map_body(|_, _| BoxBody::new(body));
    let headers = res.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(res)
}
