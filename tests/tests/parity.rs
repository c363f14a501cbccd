//! Parity: one behaviour suite, written once against a "send this request, give me
//! status / headers / body" interface, run against an axum app (kv-tower) and an actix-web
//! app (kv-actix) configured the same way. Both must answer alike: same statuses, same
//! headers (names and formats; session ids, which are random, are masked) and same bodies.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test as atest, web};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use kv_core::MemoryStore;
use kv_core::rate_limit::{HeaderOptions, KeySource, Policy, RateLimiter as Engine, RejectBody};
use kv_core::session::SessionManager;
use kv_core::testing::UnavailableStore;
use tower::ServiceExt;

/// One request of the suite.
#[derive(Clone)]
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    peer: SocketAddr,
}

#[derive(Clone, Copy)]
struct HeadRequest;

fn get(path: &str) -> Req {
    Req {
        method: "GET",
        path: path.to_owned(),
        headers: Vec::new(),
        peer: "203.0.113.9:40000".parse().expect("addr"),
    }
}

impl Req {
    fn post(mut self) -> Self {
        self.method = "POST";
        self
    }
    fn head(mut self) -> Self {
        self.method = "HEAD";
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn peer(mut self, peer: &str) -> Self {
        self.peer = peer.parse().expect("addr");
        self
    }
}

/// What the suite compares.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    status: u16,
    /// The headers the middlewares own, lower-case names, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

const COMPARED: &[&str] = &[
    "ratelimit",
    "ratelimit-policy",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "content-type",
    "set-cookie",
    "x-cache",
    "age",
    "etag",
    "cache-control",
    "vary",
];

impl Reply {
    fn new(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        let mut headers: Vec<(String, String)> = headers
            .into_iter()
            .filter(|(n, _)| COMPARED.contains(&n.as_str()))
            .map(|(n, v)| {
                let v = if n == "set-cookie" {
                    mask_cookie(&v)
                } else {
                    v
                };
                (n, v)
            })
            .collect();
        headers.sort();
        Reply {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A `Set-Cookie` with its (random) value masked, so that two apps can be compared.
fn mask_cookie(set_cookie: &str) -> String {
    let (pair, rest) = set_cookie.split_once(';').unwrap_or((set_cookie, ""));
    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
    let value = if value.is_empty() { "" } else { "<id>" };
    format!("{name}={value};{rest}")
}

type Sent<'a> = Pin<Box<dyn Future<Output = (Reply, Option<String>)> + 'a>>;

/// An app under test. `send` also returns the raw `name=value` cookie pair it set.
trait Target {
    fn send(&self, req: Req) -> Sent<'_>;
}

struct AxumApp(Router);

impl Target for AxumApp {
    fn send(&self, req: Req) -> Sent<'_> {
        Box::pin(async move {
            let mut builder = http::Request::builder()
                .method(req.method)
                .uri(req.path.as_str());
            for (name, value) in &req.headers {
                builder = builder.header(*name, value.as_str());
            }
            let mut request = builder.body(Body::empty()).expect("request");
            if req.method == "HEAD" {
                // Servers strip HEAD bodies; oneshot does not: compare what a client sees.
                request.extensions_mut().insert(HeadRequest);
            }
            request.extensions_mut().insert(ConnectInfo(req.peer));
            let response = self.0.clone().oneshot(request).await.expect("infallible");
            let (parts, body) = response.into_parts();
            let mut body = body.collect().await.expect("body").to_bytes().to_vec();
            if req.method == "HEAD" {
                body.clear();
            }
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let cookie = cookie_pair(&headers);
            (Reply::new(parts.status.as_u16(), headers, body), cookie)
        })
    }
}

struct ActixApp<S>(S);

impl<S, B> Target for ActixApp<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    fn send(&self, req: Req) -> Sent<'_> {
        Box::pin(async move {
            let method =
                actix_web::http::Method::from_bytes(req.method.as_bytes()).expect("method");
            let mut request = atest::TestRequest::default()
                .method(method)
                .uri(&req.path)
                .peer_addr(req.peer);
            for (name, value) in &req.headers {
                request = request.insert_header((*name, value.as_str()));
            }
            let response = atest::call_service(&self.0, request.to_request()).await;
            let status = response.status().as_u16();
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let body = atest::read_body(response).await.to_vec();
            let cookie = cookie_pair(&headers);
            (Reply::new(status, headers, body), cookie)
        })
    }
}

fn cookie_pair(headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n == "set-cookie")
        .and_then(|(_, v)| v.split(';').next())
        .map(str::to_owned)
}

/// Sends the same script to both apps; every reply must match. Returns the replies.
async fn same(axum: &dyn Target, actix: &dyn Target, script: &[Req]) -> Vec<Reply> {
    let mut replies = Vec::new();
    for req in script {
        let (a, _) = axum.send(req.clone()).await;
        let (b, _) = actix.send(req.clone()).await;
        assert_eq!(a, b, "axum and actix differ on {} {}", req.method, req.path);
        replies.push(a);
    }
    replies
}

// ---------------------------------------------------------------------------------------
// Rate limiting.

fn limiter(policy: Policy, options: HeaderOptions) -> Engine<MemoryStore> {
    Engine::builder(MemoryStore::new())
        .policy(policy)
        .header_options(options)
        .build()
        .expect("limiter")
}

async fn rate_limit_parity(make: impl Fn() -> Engine<MemoryStore>, script: &[Req]) -> Vec<Reply> {
    let axum = AxumApp(
        Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .layer(kv_tower::RateLimitLayer::new(make())),
    );
    let actix = atest::init_service(
        App::new()
            .wrap(kv_actix::RateLimitMiddleware::new(make()))
            .route("/", web::get().to(|| async { "ok" })),
    )
    .await;
    same(&axum, &ActixApp(actix), script).await
}

#[actix_web::test]
async fn rate_limit_answers_alike_allowed_and_denied() {
    let script = vec![get("/"); 3];
    let replies = rate_limit_parity(
        || {
            limiter(
                Policy::fixed_window("per-hour", 2, Duration::from_secs(3600)),
                HeaderOptions {
                    legacy: true,
                    ..HeaderOptions::default()
                },
            )
        },
        &script,
    )
    .await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 429]);
    assert!(replies[2].header("retry-after").is_some());
    assert!(replies[2].header("ratelimit").is_some());
    assert!(replies[0].header("ratelimit-policy").is_some());
    assert!(replies[0].header("x-ratelimit-limit").is_some());
}

#[actix_web::test]
async fn rate_limit_problem_json_bodies_are_identical() {
    let script = vec![get("/"); 2];
    let replies = rate_limit_parity(
        || {
            limiter(
                Policy::gcra("burst", 1, Duration::from_secs(60)),
                HeaderOptions {
                    body: RejectBody::ProblemJson,
                    ..HeaderOptions::default()
                },
            )
        },
        &script,
    )
    .await;
    assert_eq!(replies[1].status, 429);
    assert_eq!(
        replies[1].header("content-type"),
        Some("application/problem+json")
    );
    assert!(String::from_utf8_lossy(&replies[1].body).contains("quota-exceeded"));
}

#[actix_web::test]
async fn rate_limit_trusts_forwarded_headers_only_from_trusted_proxies_alike() {
    let trusted = ["10.0.0.0/8".parse().expect("cidr")];
    let make = || {
        limiter(
            Policy::fixed_window("per-ip", 1, Duration::from_secs(3600))
                .key(KeySource::client_ip(trusted)),
            HeaderOptions::default(),
        )
    };
    let script = vec![
        // A client talking to us directly cannot pick its key with a spoofed header.
        get("/").header("x-forwarded-for", "198.51.100.1"),
        get("/").header("x-forwarded-for", "198.51.100.2"),
        // Behind our proxy, the right-most untrusted hop is the client.
        get("/")
            .peer("10.1.2.3:5000")
            .header("x-forwarded-for", "192.0.2.50"),
        get("/")
            .peer("10.1.2.3:5000")
            .header("x-forwarded-for", "192.0.2.50"),
        get("/")
            .peer("10.9.9.9:5000")
            .header("x-forwarded-for", "6.6.6.6, 192.0.2.51"),
    ];
    let replies = rate_limit_parity(make, &script).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 429, 200, 429, 200]);
}

// ---------------------------------------------------------------------------------------
// Sessions.

mod session_routes {
    use kv_actix::session::{Session as ASession, SessionFailure as AFailure};
    use kv_tower::session::{Session as TSession, SessionFailure as TFailure};

    pub(super) async fn t_whoami(s: TSession) -> Result<String, TFailure> {
        Ok(s.user().await?.unwrap_or_else(|| "anonymous".into()))
    }
    pub(super) async fn t_login(s: TSession) -> Result<&'static str, TFailure> {
        s.login("alice").await?;
        s.insert("theme", "dark").await?;
        Ok("welcome")
    }
    pub(super) async fn t_logout(s: TSession) -> Result<&'static str, TFailure> {
        s.flush().await?;
        Ok("bye")
    }
    pub(super) async fn t_theme(s: TSession) -> Result<String, TFailure> {
        Ok(s.get::<String>("theme").await?.unwrap_or_default())
    }
    pub(super) async fn t_cycle(s: TSession) -> Result<&'static str, TFailure> {
        s.cycle_id().await?;
        Ok("cycled")
    }

    pub(super) async fn a_whoami(s: ASession) -> Result<String, AFailure> {
        Ok(s.user()?.unwrap_or_else(|| "anonymous".into()))
    }
    pub(super) async fn a_login(s: ASession) -> Result<&'static str, AFailure> {
        s.login("alice")?;
        s.insert("theme", "dark")?;
        Ok("welcome")
    }
    pub(super) async fn a_logout(s: ASession) -> Result<&'static str, AFailure> {
        s.purge()?;
        Ok("bye")
    }
    pub(super) async fn a_theme(s: ASession) -> Result<String, AFailure> {
        Ok(s.get::<String>("theme")?.unwrap_or_default())
    }
    pub(super) async fn a_cycle(s: ASession) -> Result<&'static str, AFailure> {
        s.renew()?;
        Ok("cycled")
    }
}

async fn session_apps(
    manager: impl Fn() -> SessionManager,
) -> (
    AxumApp,
    ActixApp<
        impl Service<
            actix_http::Request,
            Response = ServiceResponse<impl actix_web::body::MessageBody>,
            Error = actix_web::Error,
        >,
    >,
) {
    use axum::routing::{get as aget, post as apost};
    use session_routes::*;
    let axum = AxumApp(
        Router::new()
            .route("/whoami", aget(t_whoami))
            .route("/login", apost(t_login))
            .route("/logout", apost(t_logout))
            .route("/theme", aget(t_theme))
            .route("/cycle", apost(t_cycle))
            .route("/untouched", aget(|| async { "hello" }))
            .layer(kv_tower::session::SessionLayer::new(manager())),
    );
    let actix = atest::init_service(
        App::new()
            .wrap(kv_actix::SessionMiddleware::new(manager()))
            .route("/whoami", web::get().to(a_whoami))
            .route("/login", web::post().to(a_login))
            .route("/logout", web::post().to(a_logout))
            .route("/theme", web::get().to(a_theme))
            .route("/cycle", web::post().to(a_cycle))
            .route("/untouched", web::get().to(|| async { "hello" })),
    )
    .await;
    (axum, ActixApp(actix))
}

/// Runs a login flow on one app, carrying its cookie like a browser.
async fn flow(app: &dyn Target) -> Vec<Reply> {
    let mut cookie: Option<String> = None;
    let mut replies = Vec::new();
    let steps = [
        get("/untouched"),
        get("/whoami"),
        get("/login").post(),
        get("/whoami"),
        get("/theme"),
        get("/cycle").post(),
        get("/whoami"),
        get("/logout").post(),
        get("/whoami"),
    ];
    for step in steps {
        let req = match &cookie {
            Some(c) => step.header("cookie", c.clone()),
            None => step,
        };
        let (reply, set) = app.send(req).await;
        if let Some(set) = set {
            cookie = Some(set);
        }
        replies.push(reply);
    }
    replies
}

#[actix_web::test]
async fn session_flow_answers_alike() {
    let (axum, actix) = session_apps(|| {
        SessionManager::builder(MemoryStore::new())
            .build()
            .expect("config")
    })
    .await;
    let a = flow(&axum).await;
    let b = flow(&actix).await;
    assert_eq!(a, b);
    let bodies: Vec<String> = a
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(
        bodies,
        [
            "hello",
            "anonymous",
            "welcome",
            "alice",
            "dark",
            "cycled",
            "alice",
            "bye",
            "anonymous"
        ]
    );
    // New ids on login and cycle; a removal cookie on logout.
    assert!(
        a[2].header("set-cookie")
            .is_some_and(|c| c.starts_with("__Host-session=<id>;"))
    );
    assert!(a[5].header("set-cookie").is_some());
    assert!(
        a[7].header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
    assert!(a[0].header("set-cookie").is_none() && a[3].header("set-cookie").is_none());
}

#[actix_web::test]
async fn forged_cookies_and_store_failures_answer_alike() {
    let (axum, actix) = session_apps(|| {
        SessionManager::builder(MemoryStore::new())
            .signed(kv_core::session::Key::from(&[7u8; 64]))
            .build()
            .expect("config")
    })
    .await;
    let script = [
        get("/whoami").header("cookie", "__Host-session=AAAAAAAAAAAAAAAAAAAAAA"),
        get("/whoami").header("cookie", "__Host-session=garbage%00"),
        get("/untouched").header("cookie", "__Host-session=garbage"),
    ];
    let replies = same(&axum, &actix, &script).await;
    assert_eq!(replies[0].body, b"anonymous");

    let (axum, actix) = session_apps(|| {
        SessionManager::builder(UnavailableStore::new())
            .build()
            .expect("config")
    })
    .await;
    let script = [
        get("/whoami").header("cookie", "__Host-session=AAAAAAAAAAAAAAAAAAAAAA"),
        get("/login").post(),
        get("/untouched").header("cookie", "__Host-session=AAAAAAAAAAAAAAAAAAAAAA"),
    ];
    let replies = same(&axum, &actix, &script).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert_eq!(replies[0].body, b"Internal Server Error");
}

#[actix_web::test]
async fn the_extractor_without_the_middleware_is_a_500_naming_it() {
    let app =
        atest::init_service(App::new().route("/whoami", web::get().to(session_routes::a_whoami)))
            .await;
    let (reply, _) = ActixApp(app).send(get("/whoami")).await;
    assert_eq!(reply.status, 500);
    let body = String::from_utf8_lossy(&reply.body);
    assert!(
        body.contains("SessionMiddleware") && body.contains("forgot"),
        "{body}"
    );
}

// ---------------------------------------------------------------------------------------
// Response caching.

mod cache_routes {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A per-app counter, so that each app's handler runs can be told apart.
    #[derive(Clone, Default)]
    pub(super) struct Runs(Arc<AtomicU64>);

    impl Runs {
        pub(super) fn next(&self) -> u64 {
            self.0.fetch_add(1, Ordering::SeqCst) + 1
        }
    }

    /// (status, headers, body) of each route, shared by both frameworks.
    pub(super) fn answer(
        path: &str,
        lang: Option<&str>,
        runs: &Runs,
    ) -> (u16, Vec<(&'static str, String)>, String) {
        let n = runs.next();
        match path {
            "/page" => (
                200,
                vec![
                    ("cache-control", "max-age=60".into()),
                    ("etag", "\"v1\"".into()),
                ],
                format!("page {n}"),
            ),
            "/vary" => (
                200,
                vec![
                    ("cache-control", "max-age=60".into()),
                    ("vary", "accept-language".into()),
                ],
                format!("lang {} {n}", lang.unwrap_or("-")),
            ),
            "/private" => (
                200,
                vec![("cache-control", "private, max-age=60".into())],
                format!("mine {n}"),
            ),
            "/cookie" => (
                200,
                vec![
                    ("cache-control", "max-age=60".into()),
                    ("set-cookie", "a=b".into()),
                ],
                format!("cookie {n}"),
            ),
            _ => (200, vec![], format!("updated {n}")),
        }
    }
}

async fn cache_apps() -> (
    AxumApp,
    ActixApp<
        impl Service<
            actix_http::Request,
            Response = ServiceResponse<impl actix_web::body::MessageBody>,
            Error = actix_web::Error,
        >,
    >,
) {
    use cache_routes::{Runs, answer};
    let engine = || {
        kv_core::cache::Cache::builder(MemoryStore::new())
            .build()
            .expect("cache")
    };

    let runs = Runs::default();
    let axum_handler = move |uri: http::Uri, headers: http::HeaderMap| {
        let runs = runs.clone();
        async move {
            let lang = headers.get("accept-language").and_then(|v| v.to_str().ok());
            let (status, hs, body) = answer(uri.path(), lang, &runs);
            let mut response = axum::response::Response::new(Body::from(body));
            *response.status_mut() = http::StatusCode::from_u16(status).expect("status");
            for (name, value) in hs {
                response
                    .headers_mut()
                    .append(name, value.parse().expect("value"));
            }
            response
        }
    };
    let axum = AxumApp(
        Router::new()
            .route(
                "/page",
                axum::routing::get(axum_handler.clone()).post(axum_handler.clone()),
            )
            .route("/vary", axum::routing::get(axum_handler.clone()))
            .route("/private", axum::routing::get(axum_handler.clone()))
            .route("/cookie", axum::routing::get(axum_handler))
            .layer(kv_tower::CacheLayer::new(engine())),
    );

    let runs = Runs::default();
    let actix_handler = move |req: actix_web::HttpRequest| {
        let runs = runs.clone();
        async move {
            let lang = req
                .headers()
                .get("accept-language")
                .and_then(|v| v.to_str().ok());
            let (status, hs, body) = answer(req.path(), lang, &runs);
            let mut response = actix_web::HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status).expect("status"),
            );
            for (name, value) in hs {
                response.append_header((name, value));
            }
            response.body(body)
        }
    };
    let actix = atest::init_service(
        App::new()
            .wrap(kv_actix::CacheMiddleware::new(engine()))
            .route("/page", web::get().to(actix_handler.clone()))
            .route("/page", web::post().to(actix_handler.clone()))
            .route("/vary", web::get().to(actix_handler.clone()))
            .route("/private", web::get().to(actix_handler.clone()))
            .route("/cookie", web::get().to(actix_handler)),
    )
    .await;
    (axum, ActixApp(actix))
}

#[actix_web::test]
async fn the_cache_answers_alike() {
    let (axum, actix) = cache_apps().await;
    let script = [
        get("/page"),
        get("/page"),
        get("/page").head(),
        get("/page").header("if-none-match", "\"v1\""),
        get("/vary").header("accept-language", "en"),
        get("/vary").header("accept-language", "fr"),
        get("/vary").header("accept-language", "en"),
        get("/private"),
        get("/private"),
        get("/cookie"),
        get("/cookie"),
        get("/page").post(),
        get("/page"),
    ];
    let replies = same(&axum, &actix, &script).await;
    let labels: Vec<&str> = replies
        .iter()
        .map(|r| r.header("x-cache").unwrap_or("-"))
        .collect();
    assert_eq!(
        labels,
        [
            "MISS", "HIT", "HIT", "HIT", "MISS", "MISS", "HIT", "MISS", "MISS", "MISS", "MISS",
            "BYPASS", "MISS"
        ]
    );
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses[3], 304);
    assert_eq!(replies[1].body, b"page 1");
    assert!(replies[2].body.is_empty(), "HEAD has no body");
    assert_eq!(replies[6].body, b"lang en 2");
    assert_eq!(
        replies[8].body, b"mine 5",
        "private is never served from the cache"
    );
    assert_eq!(
        replies[10].body, b"cookie 7",
        "Set-Cookie responses are not stored"
    );
    assert_eq!(
        replies[12].body, b"page 9",
        "a successful POST invalidated /page"
    );
    assert!(replies[1].header("age").is_some());
}
