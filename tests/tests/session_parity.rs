//! Sessions v2 through both frameworks: the same requests to an axum app (kv-tower) and an
//! actix-web app (kv-actix) over the same engine configuration, on `MemoryStore` and on a
//! real `redis-server`. Both must answer alike (ids and tokens, which are random, are
//! compared by shape), and each point of issue 14 holds on both stores:
//! duplicate cookies, cross-origin protection and the synchronizer token, flood
//! resistance (anonymous idle timeout, protected records), key rotation, per-session
//! lifetimes, token mode (OWASP ASVS V3.5), `update_or`, actix's `SessionExt`.

use kv_test_support as support;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test as atest, web};
use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use kv_core::session::{Key, SessionManager, SessionManagerBuilder};
use kv_core::{AnyStore, MemoryStore, RedisStore};
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------
// The harness: one request shape, two apps.

#[derive(Clone)]
struct Req {
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
}

fn get(path: &'static str) -> Req {
    Req {
        method: "GET",
        path,
        headers: vec![("host", "app.example".to_owned())],
    }
}

fn post(path: &'static str) -> Req {
    Req {
        method: "POST",
        ..get(path)
    }
}

impl Req {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn cookie(self, pairs: &[&str]) -> Self {
        self.header("cookie", pairs.join("; "))
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// The `name=value` pair of the `Set-Cookie`, if any.
    fn cookie(&self) -> Option<String> {
        self.header("set-cookie")
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
    }
    /// What both apps must agree on: status, body (random tokens by length), the session
    /// headers with their random values masked.
    fn shape(&self) -> (u16, String, Vec<String>) {
        let body = if self.body.len() == 22 && !self.body.contains(' ') {
            "<token>".to_owned()
        } else {
            self.body.clone()
        };
        let mut headers: Vec<String> = self
            .headers
            .iter()
            .filter(|(n, _)| {
                ["set-cookie", "x-session-token", "content-type"].contains(&n.as_str())
            })
            .map(|(n, v)| {
                let v = match v.split_once(';') {
                    Some((pair, rest)) if n == "set-cookie" => {
                        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                        let value = if value.is_empty() { "" } else { "<id>" };
                        format!("{name}={value};{rest}")
                    }
                    _ if n == "x-session-token" => "<token>".to_owned(),
                    _ => v.clone(),
                };
                format!("{n}: {v}")
            })
            .collect();
        headers.sort();
        (self.status, body, headers)
    }
}

type Sent<'a> = Pin<Box<dyn Future<Output = Reply> + 'a>>;

trait Target {
    fn send(&self, req: Req) -> Sent<'_>;
}

struct AxumApp(Router);

impl Target for AxumApp {
    fn send(&self, req: Req) -> Sent<'_> {
        Box::pin(async move {
            let mut builder = http::Request::builder().method(req.method).uri(req.path);
            for (name, value) in &req.headers {
                builder = builder.header(*name, value.as_str());
            }
            let request = builder.body(Body::empty()).expect("request");
            let response = self.0.clone().oneshot(request).await.expect("infallible");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            Reply {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect(),
                body: String::from_utf8_lossy(&body).into_owned(),
            }
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
            let mut request = atest::TestRequest::default().method(method).uri(req.path);
            for (name, value) in &req.headers {
                request = request.insert_header((*name, value.as_str()));
            }
            let response = atest::call_service(&self.0, request.to_request()).await;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
                .collect();
            let body = atest::read_body(response).await;
            Reply {
                status,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            }
        })
    }
}

/// The routes, once per framework, doing the same thing.
mod routes {
    use std::time::Duration;

    use http::StatusCode;
    use kv_actix::session::{Session as ASession, SessionFailure as AFailure};
    use kv_tower::session::{Session as TSession, SessionFailure as TFailure};

    pub(super) const DAY: Duration = Duration::from_secs(24 * 3600);

    fn expiry_text(e: Option<kv_core::session::SessionExpiry>) -> String {
        e.map_or("none".to_owned(), |e| {
            format!(
                "{} {}",
                e.idle_timeout.as_secs(),
                e.absolute_timeout.as_secs()
            )
        })
    }

    pub(super) async fn t_whoami(s: TSession) -> Result<String, TFailure> {
        Ok(s.user().await?.unwrap_or_else(|| "anonymous".into()))
    }
    pub(super) async fn t_login(s: TSession, h: http::HeaderMap) -> Result<&'static str, TFailure> {
        let user = h
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("alice");
        s.login(user).await?;
        Ok("welcome")
    }
    pub(super) async fn t_logout(s: TSession) -> Result<&'static str, TFailure> {
        s.flush().await?;
        Ok("bye")
    }
    pub(super) async fn t_cycle(s: TSession) -> Result<&'static str, TFailure> {
        s.cycle_id().await?;
        Ok("cycled")
    }
    pub(super) async fn t_me(s: TSession) -> Result<String, TFailure> {
        s.update_or("visits", 1u32, |n| n + 1).await?;
        Ok(s.get::<u32>("visits").await?.unwrap_or(0).to_string())
    }
    pub(super) async fn t_csrf(s: TSession) -> Result<String, TFailure> {
        Ok(s.csrf_token().await?)
    }
    pub(super) async fn t_transfer(
        s: TSession,
        h: http::HeaderMap,
    ) -> Result<(StatusCode, &'static str), TFailure> {
        let token = h
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(if s.verify_csrf_token(token).await? {
            (StatusCode::OK, "sent")
        } else {
            (StatusCode::FORBIDDEN, "bad token")
        })
    }
    pub(super) async fn t_remember(s: TSession) -> Result<&'static str, TFailure> {
        s.login("alice").await?;
        s.set_lifetime(7 * DAY, 30 * DAY).await?;
        Ok("remembered")
    }
    pub(super) async fn t_expiry(s: TSession) -> Result<String, TFailure> {
        Ok(expiry_text(s.expiry().await?))
    }

    pub(super) async fn a_whoami(s: ASession) -> Result<String, AFailure> {
        Ok(s.user()?.unwrap_or_else(|| "anonymous".into()))
    }
    pub(super) async fn a_login(
        s: ASession,
        r: actix_web::HttpRequest,
    ) -> Result<&'static str, AFailure> {
        let user = r
            .headers()
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("alice");
        s.login(user)?;
        Ok("welcome")
    }
    pub(super) async fn a_logout(s: ASession) -> Result<&'static str, AFailure> {
        s.purge()?;
        Ok("bye")
    }
    pub(super) async fn a_cycle(s: ASession) -> Result<&'static str, AFailure> {
        s.renew()?;
        Ok("cycled")
    }
    pub(super) async fn a_me(s: ASession) -> Result<String, AFailure> {
        s.update_or("visits", 1u32, |n| n + 1)?;
        Ok(s.get::<u32>("visits")?.unwrap_or(0).to_string())
    }
    pub(super) async fn a_csrf(s: ASession) -> Result<String, AFailure> {
        s.csrf_token()
    }
    pub(super) async fn a_transfer(
        s: ASession,
        r: actix_web::HttpRequest,
    ) -> Result<actix_web::HttpResponse, AFailure> {
        let token = r
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(if s.verify_csrf_token(token)? {
            actix_web::HttpResponse::Ok()
                .content_type("text/plain; charset=utf-8")
                .body("sent")
        } else {
            actix_web::HttpResponse::Forbidden()
                .content_type("text/plain; charset=utf-8")
                .body("bad token")
        })
    }
    pub(super) async fn a_remember(s: ASession) -> Result<&'static str, AFailure> {
        s.login("alice")?;
        s.set_lifetime(7 * DAY, 30 * DAY)?;
        Ok("remembered")
    }
    pub(super) async fn a_expiry(s: ASession) -> Result<String, AFailure> {
        Ok(expiry_text(s.expiry()?))
    }
}

/// The axum and actix-web apps over these two managers (one each).
async fn apps(axum_manager: SessionManager, actix_manager: SessionManager) -> [Box<dyn Target>; 2] {
    use axum::routing::{get as aget, post as apost};
    use kv_actix::session::SessionExt;
    use routes::*;
    let axum = AxumApp(
        Router::new()
            .route("/whoami", aget(t_whoami))
            .route("/login", apost(t_login))
            .route("/logout", apost(t_logout))
            .route("/cycle", apost(t_cycle))
            .route("/me", apost(t_me))
            .route("/csrf", aget(t_csrf))
            .route("/transfer", apost(t_transfer))
            .route("/remember", apost(t_remember))
            .route("/expiry", aget(t_expiry))
            .route("/untouched", apost(|| async { "hello" }))
            .layer(kv_tower::session::SessionLayer::new(axum_manager)),
    );
    // Only logged-in sessions reach /admin: a guard reads the session (SessionExt).
    let logged_in = actix_web::guard::fn_guard(|ctx| {
        let Some(session) = ctx.get_session() else {
            return false;
        };
        // A guard is synchronous: it sees the session when the store answers in place.
        matches!(session.load(), kv_core::Step::Ready(Ok(())))
            && session.data().user().ok().flatten().is_some()
    });
    let actix = atest::init_service(
        App::new()
            // Other middleware reaches the session too (SessionExt on ServiceRequest).
            .wrap_fn(|req, srv| {
                let has = req.get_session().is_some();
                let fut = srv.call(req);
                async move {
                    let mut res = fut.await?;
                    if has && res.request().path() == "/admin" {
                        res.headers_mut().insert(
                            actix_web::http::header::HeaderName::from_static("x-saw-session"),
                            actix_web::http::header::HeaderValue::from_static("yes"),
                        );
                    }
                    Ok(res)
                }
            })
            .wrap(kv_actix::SessionMiddleware::new(actix_manager))
            .route("/whoami", web::get().to(a_whoami))
            .route("/login", web::post().to(a_login))
            .route("/logout", web::post().to(a_logout))
            .route("/cycle", web::post().to(a_cycle))
            .route("/me", web::post().to(a_me))
            .route("/csrf", web::get().to(a_csrf))
            .route("/transfer", web::post().to(a_transfer))
            .route("/remember", web::post().to(a_remember))
            .route("/expiry", web::get().to(a_expiry))
            .route("/untouched", web::post().to(|| async { "hello" }))
            .route(
                "/admin",
                web::get().guard(logged_in).to(|| async { "admin" }),
            )
            .route(
                "/ext",
                web::get().to(|req: actix_web::HttpRequest| async move {
                    // Code without the extractor (SessionExt on HttpRequest), any store.
                    let session = req.get_session().expect("middleware installed");
                    session.user().await.ok().flatten().unwrap_or_default()
                }),
            ),
    )
    .await;
    [Box::new(axum), Box::new(ActixApp(actix))]
}

/// Where a test's sessions live.
#[derive(Clone)]
enum Backend {
    Memory,
    Redis(String),
}

impl Backend {
    /// MemoryStore, and a real redis-server when one can run here.
    fn all(test: &str) -> (Vec<Backend>, Option<support::Target>) {
        let redis = support::server(test);
        let mut backends = vec![Backend::Memory];
        if let Some(redis) = &redis {
            backends.push(Backend::Redis(redis.url()));
        }
        (backends, redis)
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// A store for one app (`app` keeps the two apps' keys apart on one Redis).
    async fn store(&self, test: &str, app: &str) -> AnyStore {
        match self {
            Backend::Memory => {
                let mut builder = MemoryStore::builder();
                for prefix in SessionManager::protected_prefixes_for("session:") {
                    builder = builder.protect_prefix(prefix);
                }
                AnyStore::new(builder.build().expect("store"))
            }
            Backend::Redis(url) => AnyStore::new(
                RedisStore::builder(url.clone())
                    .key_prefix(format!("{test}:{}:{app}:", std::process::id()))
                    .build()
                    .await
                    .expect("connect"),
            ),
        }
    }
}

/// Both apps over `backend`, each manager made by `configure` from its own store.
async fn apps_on(
    backend: &Backend,
    test: &str,
    configure: impl Fn(SessionManagerBuilder) -> SessionManagerBuilder,
) -> [Box<dyn Target>; 2] {
    let a = SessionManager::builder(backend.store(test, "axum").await);
    let b = SessionManager::builder(backend.store(test, "actix").await);
    let a = configure(a.cookie_name("sid").secure(false));
    let b = configure(b.cookie_name("sid").secure(false));
    apps(a.build().expect("config"), b.build().expect("config")).await
}

/// Sends `req` to both apps; their replies must have the same shape.
async fn both(apps: &[Box<dyn Target>; 2], req: Req) -> [Reply; 2] {
    let a = apps[0].send(req.clone()).await;
    let b = apps[1].send(req.clone()).await;
    assert_eq!(
        a.shape(),
        b.shape(),
        "axum and actix differ on {} {}",
        req.method,
        req.path
    );
    [a, b]
}

/// Sends `make(app's cookie/token)` to each app and compares.
async fn each(
    apps: &[Box<dyn Target>; 2],
    state: &[String; 2],
    make: impl Fn(&str) -> Req,
) -> [Reply; 2] {
    let a = apps[0].send(make(&state[0])).await;
    let b = apps[1].send(make(&state[1])).await;
    assert_eq!(a.shape(), b.shape());
    [a, b]
}

fn cookies(replies: &[Reply; 2]) -> [String; 2] {
    [0, 1].map(|i| replies[i].cookie().expect("a session cookie"))
}

// ---------------------------------------------------------------------------------------
// Defect 1: a dead cookie must not hide the live one.

#[actix_web::test]
async fn a_dead_cookie_sent_first_does_not_hide_the_live_session_alike() {
    let (backends, _redis) = Backend::all("parity_duplicate_cookies");
    for backend in &backends {
        let apps = apps_on(backend, "dup", |b| b.signed(Key::from(&[5u8; 64]))).await;
        // Mallory's validly signed cookie, logged out: dead, but it verifies.
        let dead = cookies(&both(&apps, post("/login").header("x-user", "mallory")).await);
        each(&apps, &dead, |c| post("/logout").cookie(&[c])).await;
        let alice = cookies(&both(&apps, post("/login")).await);
        let state = [0, 1].map(|i| format!("{}; {}", dead[i], alice[i]));
        // Planted first (cookie tossing): alice stays logged in, and her cookie stays.
        let r = each(&apps, &state, |c| get("/whoami").cookie(&[c])).await;
        assert_eq!(r[0].body, "alice", "{}", backend.name());
        let r = each(&apps, &state, |c| post("/me").cookie(&[c])).await;
        assert_eq!((r[0].body.as_str(), r[0].cookie()), ("1", None));
        let r = each(&apps, &alice, |c| get("/whoami").cookie(&[c])).await;
        assert_eq!(r[0].body, "alice");
    }
}

// ---------------------------------------------------------------------------------------
// Defect 2: login CSRF; cross-origin protection and the synchronizer token.

#[actix_web::test]
async fn a_cross_site_login_post_is_refused_before_the_handler_alike() {
    let (backends, _redis) = Backend::all("parity_cross_origin");
    for backend in &backends {
        let apps = apps_on(backend, "csrf", |b| b).await;
        let attack = post("/login")
            .header("origin", "http://evil.example")
            .header("sec-fetch-site", "cross-site")
            .header("content-type", "application/x-www-form-urlencoded");
        let r = both(&apps, attack).await;
        assert_eq!(
            (r[0].status, r[0].body.as_str()),
            (403, "Forbidden"),
            "{}",
            backend.name()
        );
        assert!(r[0].cookie().is_none(), "no session was set");
        // Older browsers: a foreign Origin alone; every unsafe method.
        let r = both(
            &apps,
            post("/untouched").header("origin", "https://evil.example"),
        )
        .await;
        assert_eq!(r[0].status, 403);
        // Same origin, and clients that send neither header, reach the handler.
        let r = both(
            &apps,
            post("/login").header("sec-fetch-site", "same-origin"),
        )
        .await;
        assert_eq!(r[0].body, "welcome");
        let r = both(&apps, post("/login").header("origin", "http://app.example")).await;
        assert_eq!(r[0].body, "welcome");
        let r = both(&apps, post("/login")).await;
        assert_eq!(r[0].body, "welcome");
        // Safe methods pass whatever their origin.
        let cross = get("/whoami").header("sec-fetch-site", "cross-site");
        assert_eq!(both(&apps, cross).await[0].status, 200);
    }
}

#[actix_web::test]
async fn the_synchronizer_token_guards_a_form_alike() {
    let (backends, _redis) = Backend::all("parity_csrf_token");
    for backend in &backends {
        let apps = apps_on(backend, "token", |b| b).await;
        let r = both(&apps, get("/csrf")).await;
        let tokens = [r[0].body.clone(), r[1].body.clone()];
        let sessions = cookies(&r);
        let with = |i: usize, token: &str| {
            post("/transfer")
                .cookie(&[&sessions[i]])
                .header("x-csrf-token", token)
        };
        for i in 0..2 {
            let ok = apps[i].send(with(i, &tokens[i])).await;
            assert_eq!(
                (ok.status, ok.body.as_str()),
                (200, "sent"),
                "{}",
                backend.name()
            );
            let other = apps[i].send(with(i, &tokens[1 - i])).await;
            assert_eq!(other.status, 403, "another session's token");
            let none = apps[i].send(with(i, "")).await;
            assert_eq!(none.status, 403);
        }
        // A session that never asked for one refuses every token.
        let r = both(
            &apps,
            post("/transfer").header("x-csrf-token", tokens[0].clone()),
        )
        .await;
        assert_eq!(r[0].status, 403);
    }
}

// ---------------------------------------------------------------------------------------
// Defect 3: an anonymous flood must not evict logged-in users.

#[actix_web::test]
async fn an_anonymous_flood_evicts_no_logged_in_user_alike() {
    const BOUND: usize = 256 << 10;
    let store = || {
        let mut builder = MemoryStore::builder()
            .max_bytes(BOUND)
            .max_value_len(4 << 10)
            .shards(4);
        for prefix in SessionManager::protected_prefixes_for("session:") {
            builder = builder.protect_prefix(prefix);
        }
        builder.build().expect("store")
    };
    let (a, b) = (store(), store());
    let manager = |s: &MemoryStore| {
        SessionManager::builder(s.clone())
            .cookie_name("sid")
            .secure(false)
            .build()
            .expect("config")
    };
    let apps = apps(manager(&a), manager(&b)).await;
    let mut users = Vec::new();
    for i in 0..20 {
        let r = both(&apps, post("/login").header("x-user", format!("user{i}"))).await;
        users.push(cookies(&r));
    }
    // Cookieless visits that write the session, far more than the bound holds.
    for _ in 0..4_000 {
        let r = both(&apps, post("/me")).await;
        assert_eq!(r[0].body, "1");
    }
    for app_store in [&a, &b] {
        assert!(app_store.used_bytes() <= BOUND, "memory within the bound");
        assert!(app_store.len() < 4_000, "the flood was evicted");
    }
    for (i, user) in users.iter().enumerate() {
        let r = each(&apps, user, |c| get("/whoami").cookie(&[c])).await;
        assert_eq!(
            r[0].body,
            format!("user{i}"),
            "zero logged-in sessions lost"
        );
    }
}

#[actix_web::test]
async fn anonymous_records_idle_out_sooner_on_both_stores() {
    let test = "parity_anonymous_idle";
    let Some(redis) = support::server(test) else {
        return;
    };
    let url = redis.url();
    let backend = Backend::Redis(url.clone());
    let apps = apps_on(&backend, "idle", |b| {
        b.anonymous_idle_timeout(Duration::from_secs(120))
            .idle_timeout(Duration::from_secs(1800))
    })
    .await;
    let anonymous = cookies(&both(&apps, post("/me")).await);
    let alice = cookies(&both(&apps, post("/login")).await);
    for (i, app) in ["axum", "actix"].into_iter().enumerate() {
        let prefix = format!("idle:{}:{app}:session:", std::process::id());
        let id = |c: &str| c.split_once('=').expect("pair").1.to_owned();
        let pttl = |key: String| -> i64 {
            support::cli_url(&url, &["PTTL", &key])
                .trim()
                .parse()
                .expect("pttl")
        };
        let anon = pttl(format!("{prefix}{}", id(&anonymous[i])));
        let user = id(&alice[i]);
        assert!(
            user.starts_with("u."),
            "logged-in records are of the protected class"
        );
        let logged = pttl(format!("{prefix}{user}"));
        assert!(
            (110_000..=120_000).contains(&anon),
            "{app}: anonymous PTTL {anon}"
        );
        assert!(
            (1_790_000..=1_800_000).contains(&logged),
            "{app}: logged-in PTTL {logged}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Feature 5: key rotation.

#[actix_web::test]
async fn key_rotation_accepts_old_cookies_and_reissues_them_alike() {
    let (backends, _redis) = Backend::all("parity_key_rotation");
    let (old, new) = (Key::from(&[1u8; 64]), Key::from(&[2u8; 64]));
    for backend in &backends {
        let stores = [
            backend.store("rot", "axum").await,
            backend.store("rot", "actix").await,
        ];
        let build = |keys: Vec<Key>| {
            let m = |s: &AnyStore| {
                SessionManager::builder(s.clone())
                    .cookie_name("sid")
                    .secure(false)
                    .signed_keys(keys.clone())
                    .build()
                    .expect("config")
            };
            (m(&stores[0]), m(&stores[1]))
        };
        let (a, b) = build(vec![old.clone()]);
        let apps_old = apps(a, b).await;
        let cookie = cookies(&both(&apps_old, post("/login")).await);
        let (a, b) = build(vec![new.clone(), old.clone()]);
        let apps_rotated = apps(a, b).await;
        let r = each(&apps_rotated, &cookie, |c| get("/whoami").cookie(&[c])).await;
        assert_eq!(r[0].body, "alice", "{}", backend.name());
        let reissued = cookies(&r);
        assert_ne!(reissued, cookie, "re-issued under the new key");
        let r = each(&apps_rotated, &reissued, |c| get("/whoami").cookie(&[c])).await;
        assert!(r[0].cookie().is_none(), "not re-issued twice");
        let (a, b) = build(vec![new.clone()]);
        let apps_new = apps(a, b).await;
        let r = each(&apps_new, &reissued, |c| get("/whoami").cookie(&[c])).await;
        assert_eq!(r[0].body, "alice");
        let r = each(&apps_new, &cookie, |c| get("/whoami").cookie(&[c])).await;
        assert_eq!(r[0].body, "anonymous", "the retired key no longer verifies");
    }
}

// ---------------------------------------------------------------------------------------
// Feature 6: per-session lifetime.

#[actix_web::test]
async fn remember_me_lifetimes_are_kept_in_the_record_alike() {
    let (backends, redis) = Backend::all("parity_remember_me");
    for backend in &backends {
        let apps = apps_on(backend, "remember", |b| {
            b.max_idle_timeout(7 * routes::DAY)
                .max_absolute_timeout(30 * routes::DAY)
        })
        .await;
        let r = both(&apps, post("/remember")).await;
        assert!(
            r[0].header("set-cookie")
                .is_some_and(|c| c.contains("Max-Age=2592000")),
            "{}",
            backend.name()
        );
        let remembered = cookies(&r);
        let r = each(&apps, &remembered, |c| get("/expiry").cookie(&[c])).await;
        assert_eq!(r[0].body, "604800 2592000");
        // An ordinary session keeps the manager's timeouts (30 min idle, 12 h).
        let plain = cookies(&both(&apps, post("/login")).await);
        let r = each(&apps, &plain, |c| get("/expiry").cookie(&[c])).await;
        assert_eq!(r[0].body, "1800 43200");
        assert_eq!(both(&apps, get("/expiry")).await[0].body, "none");
        if let (Backend::Redis(url), Some(_)) = (backend, &redis) {
            let id = remembered[0].split_once('=').expect("pair").1;
            let key = format!("remember:{}:axum:session:{id}", std::process::id());
            let pttl: i64 = support::cli_url(url, &["PTTL", &key])
                .trim()
                .parse()
                .expect("pttl");
            assert!(
                pttl > 6 * 24 * 3600 * 1000,
                "the record's TTL is its own idle timeout"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Feature 4: token mode (OWASP ASVS V3.5).

#[actix_web::test]
async fn asvs_v3_5_2_token_mode_uses_server_side_session_tokens_alike() {
    let (backends, _redis) = Backend::all("parity_token_mode");
    for backend in &backends {
        let apps = apps_on(backend, "bearer", SessionManagerBuilder::bearer_token).await;
        let r = both(&apps, post("/login")).await;
        assert!(
            r[0].header("set-cookie").is_none(),
            "{}: no cookie",
            backend.name()
        );
        let tokens = [0, 1].map(|i| r[i].header("x-session-token").expect("token").to_owned());
        let bearer = |t: &str| get("/whoami").header("authorization", format!("Bearer {t}"));
        assert_eq!(each(&apps, &tokens, bearer).await[0].body, "alice");
        // Cookies are not read in token mode.
        let r = each(&apps, &tokens, |t| {
            get("/whoami").cookie(&[&format!("sid={t}")])
        })
        .await;
        assert_eq!(r[0].body, "anonymous");
        // Cycling hands back a new token; the old one is dead.
        let r = each(&apps, &tokens, |t| {
            post("/cycle").header("authorization", format!("Bearer {t}"))
        })
        .await;
        let cycled = [0, 1].map(|i| r[i].header("x-session-token").expect("new").to_owned());
        assert_ne!(cycled, tokens);
        assert_eq!(each(&apps, &tokens, bearer).await[0].body, "anonymous");
        assert_eq!(each(&apps, &cycled, bearer).await[0].body, "alice");
        // Logout ends it on the server.
        each(&apps, &cycled, |t| {
            post("/logout").header("authorization", format!("Bearer {t}"))
        })
        .await;
        assert_eq!(each(&apps, &cycled, bearer).await[0].body, "anonymous");
        // A cross-origin API client is not refused in token mode.
        let r = both(
            &apps,
            post("/login").header("origin", "https://spa.example"),
        )
        .await;
        assert_eq!(r[0].status, 200);
    }
}

#[actix_web::test]
async fn asvs_v3_5_3_tokens_are_signed_and_tampering_is_refused_alike() {
    let (backends, _redis) = Backend::all("parity_token_signed");
    let name = http::HeaderName::from_static("x-api-session");
    for backend in &backends {
        let apps = apps_on(backend, "signed", |b| {
            b.header_token(name.clone()).private(Key::from(&[8u8; 64]))
        })
        .await;
        let r = both(&apps, post("/login")).await;
        let tokens = [0, 1].map(|i| r[i].header("x-api-session").expect("token").to_owned());
        let r = each(&apps, &tokens, |t| {
            get("/whoami").header("x-api-session", t)
        })
        .await;
        assert_eq!(r[0].body, "alice", "{}", backend.name());
        let forged = tokens.clone().map(|t| {
            let mut bytes = t.into_bytes();
            bytes[4] = if bytes[4] == b'A' { b'B' } else { b'A' };
            String::from_utf8(bytes).expect("ascii")
        });
        let r = each(&apps, &forged, |t| {
            get("/whoami").header("x-api-session", t)
        })
        .await;
        assert_eq!(r[0].body, "anonymous");
    }
}

// ---------------------------------------------------------------------------------------
// Feature 7: typed update, actix's SessionExt.

#[actix_web::test]
async fn update_or_counts_and_actix_reaches_the_session_from_guards_and_middleware() {
    let (backends, _redis) = Backend::all("parity_update_ext");
    for backend in &backends {
        let apps = apps_on(backend, "update", |b| b).await;
        let first = both(&apps, post("/me")).await;
        let session = cookies(&first);
        let r = each(&apps, &session, |c| post("/me").cookie(&[c])).await;
        assert_eq!(r[0].body, "2", "{}", backend.name());
        let r = each(&apps, &session, |c| post("/me").cookie(&[c])).await;
        assert_eq!(r[0].body, "3");
        // actix: code without the extractor reaches the session (HttpRequest), and so do
        // other middleware (ServiceRequest)...
        let actix = &apps[1];
        let login = actix.send(post("/login")).await;
        let cookie = login.cookie().expect("cookie");
        let ext = actix.send(get("/ext").cookie(&[&cookie])).await;
        assert_eq!((ext.status, ext.body.as_str()), (200, "alice"));
        let anonymous = actix.send(get("/admin")).await;
        assert!(
            matches!(anonymous.status, 404 | 405),
            "{}",
            anonymous.status
        );
        assert_eq!(anonymous.header("x-saw-session"), Some("yes"));
        // ... and guards (synchronous: on a store that answers in place).
        if let Backend::Memory = backend {
            let admin = actix.send(get("/admin").cookie(&[&cookie])).await;
            assert_eq!((admin.status, admin.body.as_str()), (200, "admin"));
        }
    }
}
