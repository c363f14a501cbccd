//! The three layers stacked with `tower::ServiceBuilder` over a plain `tower::service_fn`
//! answering `Response<Full<Bytes>>` — no axum `Router` converting bodies between them —
//! in both orders, on one `MemoryStore`: a `429` past the limit, a cache `HIT`, and a
//! session written by one request and read back by the next.

use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use kv_core::MemoryStore;
use kv_core::cache::Cache;
use kv_core::rate_limit::{KeySource, Policy, RateLimiter};
use kv_core::session::SessionManager;
use kv_tower::session::SessionLayer;
use kv_tower::{CacheLayer, RateLimitLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Requests the limiter admits in its window.
const LIMIT: u32 = 6;

/// The handler: `/page` is cacheable (and counted), `/login` writes the session, `/whoami`
/// reads it back; every other path answers `no-store`.
#[derive(Clone, Default)]
struct Handler {
    pages: Arc<AtomicUsize>,
}

impl Handler {
    async fn handle(self, req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
        // What the axum `Session` extractor reads: the handle SessionLayer put in the request.
        let session = req.extensions().get::<kv_core::session::Session>().cloned();
        let (cache_control, body) = match req.uri().path() {
            "/page" => {
                let n = self.pages.fetch_add(1, Ordering::SeqCst) + 1;
                ("public, max-age=60", format!("page {n}"))
            }
            "/login" => {
                let session = session.expect("SessionLayer is installed");
                session.insert("user", "ada").await.expect("insert");
                ("no-store", "welcome".to_owned())
            }
            "/whoami" => {
                let session = session.expect("SessionLayer is installed");
                let user: Option<String> = session.get("user").await.expect("get");
                ("no-store", user.unwrap_or_else(|| "anonymous".to_owned()))
            }
            _ => ("no-store", "other".to_owned()),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, cache_control.parse().expect("value"));
        Ok(response)
    }
}

struct Layers {
    rate_limit: RateLimitLayer<MemoryStore>,
    session: SessionLayer,
    cache: CacheLayer<MemoryStore>,
    handler: Handler,
}

fn layers() -> Layers {
    let store = MemoryStore::new();
    let limiter = RateLimiter::builder(store.clone())
        .policy(
            Policy::fixed_window("all", LIMIT, Duration::from_secs(3600)).key(KeySource::global()),
        )
        .build()
        .expect("limiter");
    let sessions = SessionManager::builder(store.clone())
        .build()
        .expect("sessions");
    let cache = Cache::builder(store).build().expect("cache");
    Layers {
        rate_limit: RateLimitLayer::new(limiter),
        session: SessionLayer::new(sessions),
        cache: CacheLayer::new(cache),
        handler: Handler::default(),
    }
}

/// One request (with an optional `Cookie`), its body read to the end.
async fn send<S, B>(svc: &mut S, path: &str, cookie: Option<&str>) -> (StatusCode, HeaderMap, Bytes)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Debug,
    B: Body<Data = Bytes>,
    B::Error: Debug,
{
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let request = request.body(Full::new(Bytes::new())).expect("request");
    let response = svc
        .ready()
        .await
        .expect("ready")
        .call(request)
        .await
        .expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, body)
}

fn x_cache(headers: &HeaderMap) -> &str {
    headers
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The same story through either stack. `hits_are_counted`: whether a cache hit reaches
/// the limiter (it does when the limiter is outside the cache).
async fn exercise<S, B>(mut svc: S, pages: &AtomicUsize, hits_are_counted: bool)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Debug,
    B: Body<Data = Bytes>,
    B::Error: Debug,
{
    let mut counted = 0;

    // A cacheable page: stored on the first GET, a hit on the second.
    let (status, headers, body) = send(&mut svc, "/page", None).await;
    counted += 1;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(x_cache(&headers), "MISS");
    assert_eq!(body, "page 1");
    let (status, headers, body) = send(&mut svc, "/page", None).await;
    counted += usize::from(hits_are_counted);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(x_cache(&headers), "HIT");
    assert_eq!(body, "page 1");
    assert_eq!(
        pages.load(Ordering::SeqCst),
        1,
        "the hit never reached the handler"
    );

    // The session: written by one request, its cookie sent back on the next.
    let (status, headers, body) = send(&mut svc, "/login", None).await;
    counted += 1;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "welcome");
    let set_cookie = headers
        .get(header::SET_COOKIE)
        .expect("the session layer set a cookie")
        .to_str()
        .expect("ascii");
    assert!(set_cookie.starts_with("__Host-session="), "{set_cookie}");
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();
    let (status, _, body) = send(&mut svc, "/whoami", Some(&cookie)).await;
    counted += 1;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ada");
    let (_, _, body) = send(&mut svc, "/whoami", None).await;
    counted += 1;
    assert_eq!(body, "anonymous");

    // The limit: what is left of the window is admitted, the next request is not.
    let counted = u32::try_from(counted).expect("small");
    for _ in counted..LIMIT {
        let (status, _, _) = send(&mut svc, "/other", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, headers, body) = send(&mut svc, "/other", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert!(!headers.contains_key(header::SET_COOKIE));
    // The limiter's own answer is built in the inner body type (`B::from(bytes)`): its
    // text arrives whole, whichever layer's body type that is.
    assert_eq!(body, "Too Many Requests: rate limit \"all\" exceeded\n");
}

#[tokio::test]
async fn rate_limit_over_session_over_cache_over_a_service_fn() {
    let Layers {
        rate_limit,
        session,
        cache,
        handler,
    } = layers();
    let pages = Arc::clone(&handler.pages);
    let svc = ServiceBuilder::new()
        .layer(rate_limit)
        .layer(session)
        .layer(cache)
        .service_fn(move |req| handler.clone().handle(req));
    exercise(svc, &pages, true).await;
}

#[tokio::test]
async fn cache_over_session_over_rate_limit_over_a_service_fn() {
    let Layers {
        rate_limit,
        session,
        cache,
        handler,
    } = layers();
    let pages = Arc::clone(&handler.pages);
    let svc = ServiceBuilder::new()
        .layer(cache)
        .layer(session)
        .layer(rate_limit)
        .service_fn(move |req| handler.clone().handle(req));
    exercise(svc, &pages, false).await;
}

/// A stack's response is what axum serves: `Response<KvBody<..>>` is `IntoResponse`.
#[test]
fn a_stack_is_an_axum_response() {
    fn is_into_response<T: axum::response::IntoResponse>() {}
    type Stack = kv_tower::RateLimit<
        kv_tower::session::SessionService<
            kv_tower::CacheService<
                tower::util::ServiceFn<fn(Request<Full<Bytes>>) -> std::future::Ready<Resp>>,
                MemoryStore,
            >,
        >,
        MemoryStore,
    >;
    type Resp = Result<Response<Full<Bytes>>, Infallible>;
    is_into_response::<<Stack as Service<Request<Full<Bytes>>>>::Response>();
}

/// A request body type with nothing: not `Default`, not a `Body`.
struct Opaque;

/// A `stale-while-revalidate` refresh needs no way to make a request body: the request
/// answered stale is sent on, with its own body.
#[tokio::test]
async fn a_background_refresh_takes_any_request_body() {
    let clock = kv_core::clock::ManualClock::new();
    let cache = Cache::builder(MemoryStore::new())
        .clock(clock.clone())
        .build()
        .expect("cache");
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let mut svc = ServiceBuilder::new()
        .layer(CacheLayer::new(cache))
        .service_fn(move |req: Request<Opaque>| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let Opaque = req.into_body();
            let mut response = Response::new(Full::new(Bytes::from(format!("v{n}"))));
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                "max-age=1, stale-while-revalidate=60"
                    .parse()
                    .expect("value"),
            );
            std::future::ready(Ok::<_, Infallible>(response))
        });
    let mut get = async move || {
        let request = Request::get("/swr").body(Opaque).expect("request");
        let response = svc
            .ready()
            .await
            .expect("ready")
            .call(request)
            .await
            .expect("response");
        let label = x_cache(response.headers()).to_owned();
        let body = response.into_body().collect().await.expect("body");
        (label, body.to_bytes())
    };
    assert_eq!(get().await, ("MISS".to_owned(), Bytes::from("v1")));
    clock.advance(Duration::from_secs(5));
    // Stale: answered at once, refreshed in the background.
    assert_eq!(get().await, ("HIT".to_owned(), Bytes::from("v1")));
    for _ in 0..200 {
        if get().await.1 == "v2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(get().await.1, "v2");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// A cross-site form post through a plain stack: the session layer's `403` is built in the
/// inner service's body type, with its text, and the handler's login never happens (no
/// cookie set), in either order of the layers.
#[tokio::test]
async fn a_cross_site_post_is_refused_in_the_inner_body_type() {
    for session_outside in [true, false] {
        let Layers {
            rate_limit,
            session,
            handler,
            ..
        } = layers();
        let handler = move |req| handler.clone().handle(req);
        let request = || {
            Request::post("/login")
                .header("sec-fetch-site", "cross-site")
                .header(header::ORIGIN, "https://attacker.example")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from_static(b"user=mallory")))
                .expect("request")
        };
        let response = if session_outside {
            ServiceBuilder::new()
                .layer(session)
                .layer(rate_limit)
                .service_fn(handler)
                .oneshot(request())
                .await
        } else {
            ServiceBuilder::new()
                .layer(rate_limit)
                .layer(session)
                .service_fn(handler)
                .oneshot(request())
                .await
        }
        .expect("response");
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{session_outside}"
        );
        assert!(!response.headers().contains_key(header::SET_COOKIE));
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, "Forbidden");
    }
}
