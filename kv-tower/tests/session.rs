//! `SessionLayer` and the `Session` extractor on an axum `Router`: over a real HTTP client
//! with a cookie jar (reqwest against a loopback server) and in process (`oneshot`), on
//! `MemoryStore` and on a real `redis-server`.
//!
//! The tests named `asvs_v3_*` each show one requirement of OWASP ASVS 4.0.3, chapter V3
//! (Session Management), level 2.

use kv_test_support as support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::{get, post};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use kv_core::clock::ManualClock;
use kv_core::session::{Key, SameSite, SessionManager, SessionManagerBuilder};
use kv_core::testing::{CountingStore, UnavailableStore};
use kv_core::{MemoryStore, RedisStore, Store};
use kv_tower::session::{Session, SessionFailure, SessionLayer};
use tower::ServiceExt;

type Answer = Result<String, SessionFailure>;

/// The routes every test uses; the same on both stores.
fn routes() -> Router {
    Router::new()
        .route("/untouched", get(|| async { "hello" }))
        .route(
            "/whoami",
            get(|s: Session| async move {
                Ok::<_, SessionFailure>(s.user().await?.unwrap_or_else(|| "anonymous".into()))
            }),
        )
        .route(
            "/login/{user}",
            post(|s: Session, Path(user): Path<String>| async move {
                s.login(&user).await?;
                Answer::Ok(format!("welcome {user}"))
            }),
        )
        .route(
            "/logout",
            post(|s: Session| async move {
                s.flush().await?;
                Answer::Ok("bye".into())
            }),
        )
        .route(
            "/get/{key}",
            get(|s: Session, Path(key): Path<String>| async move {
                Answer::Ok(s.get::<String>(&key).await?.unwrap_or_default())
            }),
        )
        .route(
            "/set/{key}/{value}",
            post(
                |s: Session, Path((key, value)): Path<(String, String)>| async move {
                    s.insert(&key, value).await?;
                    Answer::Ok("ok".into())
                },
            ),
        )
        .route(
            "/slow-set/{key}/{value}",
            post(
                |s: Session, Path((key, value)): Path<(String, String)>| async move {
                    // Load, then wait while the other request loads too: both read the
                    // same version before either saves.
                    s.load().await?;
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    s.insert(&key, value).await?;
                    Answer::Ok("ok".into())
                },
            ),
        )
        .route(
            "/cycle",
            post(|s: Session| async move {
                s.cycle_id().await?;
                Answer::Ok("cycled".into())
            }),
        )
        .route(
            "/end-others",
            post(|s: Session| async move { Answer::Ok(s.end_other_sessions().await?.to_string()) }),
        )
        .route(
            "/devices",
            get(|s: Session| async move {
                let list = s.user_sessions().await?;
                Answer::Ok(
                    list.iter()
                        .map(|d| format!("{}{}", d.handle, if d.current { "*" } else { "" }))
                        .collect::<Vec<_>>()
                        .join(","),
                )
            }),
        )
        .route(
            "/fail/{key}/{value}",
            post(
                |s: Session, Path((key, value)): Path<(String, String)>| async move {
                    s.insert(&key, value).await?;
                    Ok::<_, SessionFailure>((StatusCode::INTERNAL_SERVER_ERROR, "oops"))
                },
            ),
        )
}

fn app(manager: SessionManager) -> Router {
    routes().layer(SessionLayer::new(manager))
}

/// A manager fit for plain-HTTP loopback tests (no `Secure`, so no `__Host-` name).
fn http_builder(store: impl Store) -> SessionManagerBuilder {
    SessionManager::builder(store)
        .cookie_name("sid")
        .secure(false)
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{addr}")
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client")
}

async fn call(client: &reqwest::Client, method: &str, url: String) -> (StatusCode, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let response = client.request(method, url).send().await.expect("send");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    (status, response.text().await.expect("text"))
}

/// In process: one request, with an optional `Cookie` header.
async fn send(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, body)
}

/// The `name=value` pair of a response's `Set-Cookie`, as a browser sends it back.
fn pair(headers: &HeaderMap) -> Option<String> {
    let set = headers.get(header::SET_COOKIE)?.to_str().ok()?;
    Some(set.split(';').next()?.trim().to_owned())
}

fn set_cookie(headers: &HeaderMap) -> String {
    headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn redis_store(test: &str) -> Option<(support::Target, RedisStore)> {
    let redis = support::server(test)?;
    let store = RedisStore::builder(redis.url())
        .key_prefix(format!("{test}:{}:", std::process::id()))
        .build()
        .await
        .expect("connect");
    Some((redis, store))
}

// ---------------------------------------------------------------------------------------
// Flows over a real HTTP client, on both stores.

async fn login_logout_flow(store: impl Store + Clone) {
    let base = serve(app(http_builder(store).build().expect("config"))).await;
    let client = browser();
    assert_eq!(
        call(&client, "GET", format!("{base}/whoami")).await.1,
        "anonymous"
    );
    let (status, body) = call(&client, "POST", format!("{base}/login/alice")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "welcome alice"));
    assert_eq!(
        call(&client, "GET", format!("{base}/whoami")).await.1,
        "alice"
    );
    call(&client, "POST", format!("{base}/set/cart/42")).await;
    assert_eq!(
        call(&client, "GET", format!("{base}/get/cart")).await.1,
        "42"
    );
    call(&client, "POST", format!("{base}/logout")).await;
    assert_eq!(
        call(&client, "GET", format!("{base}/whoami")).await.1,
        "anonymous"
    );
    assert_eq!(call(&client, "GET", format!("{base}/get/cart")).await.1, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_logout_through_a_cookie_jar_on_memory() {
    login_logout_flow(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_logout_through_a_cookie_jar_on_redis() {
    let Some((_redis, store)) = redis_store("login_logout_redis").await else {
        return;
    };
    login_logout_flow(store).await;
}

async fn concurrent_writers(store: impl Store + Clone) {
    let base = serve(app(http_builder(store).build().expect("config"))).await;
    let client = browser();
    call(&client, "POST", format!("{base}/set/start/1")).await;
    let (a, b) = tokio::join!(
        call(&client, "POST", format!("{base}/slow-set/a/from-a")),
        call(&client, "POST", format!("{base}/slow-set/b/from-b")),
    );
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK));
    assert_eq!(
        call(&client, "GET", format!("{base}/get/a")).await.1,
        "from-a"
    );
    assert_eq!(
        call(&client, "GET", format!("{base}/get/b")).await.1,
        "from-b"
    );
    assert_eq!(
        call(&client, "GET", format!("{base}/get/start")).await.1,
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_writers_of_different_keys_lose_nothing_on_memory() {
    concurrent_writers(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_writers_of_different_keys_lose_nothing_on_redis() {
    let Some((_redis, store)) = redis_store("concurrent_writers_redis").await else {
        return;
    };
    concurrent_writers(store).await;
}

async fn fixation_is_refused(store: impl Store + Clone) {
    let base = serve(app(http_builder(store).build().expect("config"))).await;
    // The attacker plants a well-formed id in the victim's browser.
    let planted = "AAAAAAAAAAAAAAAAAAAAAA";
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/login/victim"))
        .header("cookie", format!("sid={planted}"))
        .send()
        .await
        .expect("send");
    let issued = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        issued.starts_with("sid=") && !issued.contains(planted),
        "{issued}"
    );
    // The planted id does not log the attacker in.
    let (_, who) = {
        let r = client
            .get(format!("{base}/whoami"))
            .header("cookie", format!("sid={planted}"))
            .send()
            .await
            .expect("send");
        (r.status(), r.text().await.expect("text"))
    };
    assert_eq!(who, "anonymous");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_session_id_is_not_adopted_on_memory() {
    fixation_is_refused(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_session_id_is_not_adopted_on_redis() {
    let Some((_redis, store)) = redis_store("fixation_redis").await else {
        return;
    };
    fixation_is_refused(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_records_are_hashes_readable_with_redis_cli_and_expire_when_idle() {
    let Some(redis) = support::server("redis_records_readable") else {
        return;
    };
    let prefix = format!("rr{}:", std::process::id());
    let store = RedisStore::builder(redis.url())
        .key_prefix(prefix.clone())
        .build()
        .await
        .expect("connect");
    let manager = SessionManager::builder(store)
        .idle_timeout(Duration::from_millis(600))
        .build()
        .expect("config");
    let app = app(manager);
    let (_, headers, _) = send(&app, "POST", "/set/theme/dark", None).await;
    let cookie = pair(&headers).expect("cookie");
    let id = cookie.split_once('=').expect("=").1;
    let key = format!("{prefix}session:{id}");
    let theme = support::cli_url(&redis.url(), &["HGET", &key, "theme"]);
    assert_eq!(theme.trim(), "\"dark\"");
    let pttl: i64 = support::cli_url(&redis.url(), &["PTTL", &key])
        .trim()
        .parse()
        .expect("pttl");
    assert!(pttl > 0 && pttl <= 600, "{pttl}");
    let (_, _, body) = send(&app, "GET", "/get/theme", Some(&cookie)).await;
    assert_eq!(&body[..], b"dark");
    // Idle past the timeout (a real server's clock: a short real wait).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, _, body) = send(&app, "GET", "/get/theme", Some(&cookie)).await;
    assert_eq!(&body[..], b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_an_untouched_request_costs_no_round_trip_and_a_read_one() {
    let Some((_redis, store)) = redis_store("redis_round_trips").await else {
        return;
    };
    let counting = CountingStore::new(store);
    let app = app(SessionManager::builder(counting.clone())
        .build()
        .expect("config"));
    let (_, headers, _) = send(&app, "POST", "/set/a/1", None).await;
    let cookie = pair(&headers).expect("cookie");
    counting.reset();
    send(&app, "GET", "/untouched", Some(&cookie)).await;
    assert_eq!(counting.calls().total(), 0);
    send(&app, "GET", "/get/a", Some(&cookie)).await;
    // HGETALL and PTTL, sent together: one round trip; nothing written.
    let calls = counting.calls();
    assert_eq!((calls.hget_all, calls.ttl, calls.writes()), (1, 1, 0));
    counting.reset();
    send(&app, "POST", "/set/b/2", Some(&cookie)).await;
    let calls = counting.calls();
    assert_eq!((calls.reads(), calls.hset, calls.writes()), (2, 1, 1));
}

// ---------------------------------------------------------------------------------------
// In process.

#[tokio::test]
async fn untouched_and_read_only_requests_write_nothing() {
    let store = CountingStore::new(MemoryStore::new());
    let app = app(SessionManager::builder(store.clone())
        .build()
        .expect("config"));
    let (_, headers, _) = send(&app, "GET", "/untouched", None).await;
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert_eq!(store.calls().total(), 0);
    let (_, headers, _) = send(&app, "POST", "/set/a/1", None).await;
    let cookie = pair(&headers).expect("cookie");
    assert_eq!(store.calls().writes(), 1);
    store.reset();
    let (_, headers, _) = send(&app, "GET", "/untouched", Some(&cookie)).await;
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert_eq!(store.calls().total(), 0);
    let (_, headers, body) = send(&app, "GET", "/get/a", Some(&cookie)).await;
    assert_eq!(&body[..], b"1");
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert_eq!((store.calls().reads(), store.calls().writes()), (2, 0));
}

#[tokio::test]
async fn forged_and_tampered_cookies_are_no_session_not_an_error() {
    let store = CountingStore::new(MemoryStore::new());
    let manager = SessionManager::builder(store.clone())
        .signed(Key::generate())
        .build()
        .expect("config");
    let app = app(manager);
    let (_, headers, _) = send(&app, "POST", "/login/alice", None).await;
    let cookie = pair(&headers).expect("cookie");
    let (_, _, body) = send(&app, "GET", "/whoami", Some(&cookie)).await;
    assert_eq!(&body[..], b"alice");
    let mut tampered = cookie.clone().into_bytes();
    let at = tampered.len() - 3;
    tampered[at] = if tampered[at] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    store.reset();
    for forged in [
        tampered.as_str(),
        "__Host-session=AAAAAAAAAAAAAAAAAAAAAA",
        "__Host-session=%00%ff",
        "__Host-session=",
        "__Host-session",
    ] {
        let (status, _, body) = send(&app, "GET", "/whoami", Some(forged)).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"anonymous"[..]));
    }
    // A forged cookie never reaches the store.
    assert_eq!(store.calls().total(), 0);
    let oversize = format!("__Host-session={}", "A".repeat(64 * 1024));
    let (status, _, body) = send(&app, "GET", "/whoami", Some(&oversize)).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"anonymous"[..]));
}

/// The layer recycles a finished session's allocation for the next request on the same
/// thread (`Session::recycle`): whoever comes next must see only their own session.
#[tokio::test]
async fn the_next_request_on_a_thread_never_sees_the_previous_ones_session() {
    let store = CountingStore::new(MemoryStore::new());
    let app = app(SessionManager::builder(store.clone())
        .build()
        .expect("config"));
    let (_, headers, _) = send(&app, "POST", "/login/alice", None).await;
    let alice = pair(&headers).expect("cookie");
    let (_, headers, _) = send(&app, "POST", "/login/bob", None).await;
    let bob = pair(&headers).expect("cookie");
    assert_ne!(alice, bob);
    let forged = "__Host-session=AAAAAAAAAAAAAAAAAAAAAA";
    for round in 0..3 {
        for (path, cookie, expected) in [
            ("/whoami", Some(alice.as_str()), "alice"),
            ("/whoami", None, "anonymous"),
            ("/untouched", Some(bob.as_str()), "hello"),
            ("/whoami", Some(forged), "anonymous"),
            ("/whoami", Some(bob.as_str()), "bob"),
            ("/untouched", Some(alice.as_str()), "hello"),
            ("/whoami", None, "anonymous"),
        ] {
            let (status, headers, body) = send(&app, "GET", path, cookie).await;
            assert_eq!(
                (status, &body[..]),
                (StatusCode::OK, expected.as_bytes()),
                "round {round}: {path} with {cookie:?}"
            );
            // A read sets no cookie; a forged one of our name is only cleared.
            let cleared = headers.get(header::SET_COOKIE).map(|set| {
                let set = set.to_str().expect("ascii");
                set.starts_with("__Host-session=;") && set.contains("Max-Age=0")
            });
            let forged_cookie = cookie == Some(forged);
            assert_eq!(
                cleared,
                forged_cookie.then_some(true),
                "{path} with {cookie:?}"
            );
        }
    }
    // An anonymous write after Alice's read starts a session of its own.
    let (_, _, _) = send(&app, "GET", "/whoami", Some(&alice)).await;
    let (_, headers, _) = send(&app, "POST", "/set/k/v", None).await;
    let fresh = pair(&headers).expect("a new session");
    assert!(fresh != alice && fresh != bob);
    let (_, _, body) = send(&app, "GET", "/whoami", Some(&fresh)).await;
    assert_eq!(&body[..], b"anonymous");
}

#[tokio::test]
async fn a_handler_answering_5xx_saves_nothing() {
    let store = CountingStore::new(MemoryStore::new());
    let app = app(SessionManager::builder(store.clone())
        .build()
        .expect("config"));
    let (status, headers, _) = send(&app, "POST", "/fail/a/1", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert_eq!(store.calls().writes(), 0);
}

#[tokio::test]
async fn a_store_failure_is_an_opaque_500() {
    let app = app(SessionManager::builder(UnavailableStore::new())
        .build()
        .expect("config"));
    let cookie = "__Host-session=AAAAAAAAAAAAAAAAAAAAAA";
    for (method, path) in [("GET", "/get/a"), ("POST", "/set/a/1")] {
        let (status, headers, body) = send(&app, method, path, Some(cookie)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(&body[..], b"Internal Server Error");
        assert!(headers.get(header::SET_COOKIE).is_none());
    }
    // A new session fails at its save, after the handler answered 200.
    let (status, headers, _) = send(&app, "POST", "/set/a/1", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(headers.get(header::SET_COOKIE).is_none());
    // The untouched route still works while the store is down.
    let (status, _, _) = send(&app, "GET", "/untouched", Some(cookie)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_500_naming_the_layer() {
    let (status, _, body) = send(&routes(), "GET", "/whoami", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("SessionLayer") && text.contains("forgot"),
        "{text}"
    );
}

#[tokio::test]
async fn cookie_attributes_are_exactly_as_configured() {
    let key = Key::generate();
    let manager = SessionManager::builder(MemoryStore::new())
        .cookie_name("app_sid")
        .cookie_path("/shop")
        .cookie_domain("shop.example.com")
        .same_site(SameSite::Strict)
        .private(key)
        .absolute_timeout(Duration::from_secs(3600))
        .build()
        .expect("config");
    let (_, headers, _) = send(&app(manager), "POST", "/set/a/1", None).await;
    let set = set_cookie(&headers);
    let value = pair(&headers).expect("pair");
    let value = value.split_once('=').expect("=").1;
    assert_eq!(
        set,
        format!(
            "app_sid={value}; HttpOnly; SameSite=Strict; Secure; Path=/shop; \
             Domain=shop.example.com; Max-Age=3600"
        )
    );
    let browser_only = SessionManager::builder(MemoryStore::new())
        .browser_session_cookie()
        .build()
        .expect("config");
    let (_, headers, _) = send(&app(browser_only), "POST", "/set/a/1", None).await;
    assert!(!set_cookie(&headers).contains("Max-Age"));
}

// ---------------------------------------------------------------------------------------
// OWASP ASVS 4.0.3, V3 (Session Management), level 2.

/// A manager on a manual clock, and its app.
fn timed(idle: Duration, absolute: Duration) -> (ManualClock, Router) {
    let clock = ManualClock::new();
    let manager = SessionManager::builder(MemoryStore::with_clock(clock.clone()))
        .clock(clock.clone())
        .idle_timeout(idle)
        .absolute_timeout(absolute)
        .build()
        .expect("config");
    (clock, app(manager))
}

/// V3.1.1: the session token is never in the URL, and a token in the URL (or any place
/// but the cookie) is not accepted.
#[tokio::test]
async fn asvs_v3_1_1_token_only_in_a_cookie_never_in_the_url() {
    let app = app(SessionManager::builder(MemoryStore::new())
        .build()
        .expect("config"));
    let (_, headers, body) = send(&app, "POST", "/login/alice", None).await;
    let cookie = pair(&headers).expect("cookie");
    let id = cookie.split_once('=').expect("=").1.to_owned();
    assert!(headers.get(header::LOCATION).is_none());
    assert!(!String::from_utf8_lossy(&body).contains(&id));
    for path in [
        format!("/whoami?__Host-session={id}"),
        format!("/whoami?session={id}"),
        format!("/whoami;jsessionid={id}"),
    ] {
        let (_, _, body) = send(&app, "GET", &path, None).await;
        assert_ne!(&body[..], b"alice", "{path}");
    }
    let (_, _, body) = send(&app, "GET", "/whoami", Some(&cookie)).await;
    assert_eq!(&body[..], b"alice");
}

/// V3.2.1: a new session token on authentication.
#[tokio::test]
async fn asvs_v3_2_1_new_session_token_on_authentication() {
    let app = app(SessionManager::builder(MemoryStore::new())
        .build()
        .expect("config"));
    let (_, headers, _) = send(&app, "POST", "/set/theme/dark", None).await;
    let anonymous = pair(&headers).expect("cookie");
    let (_, headers, _) = send(&app, "POST", "/login/alice", Some(&anonymous)).await;
    let logged_in = pair(&headers).expect("cookie");
    assert_ne!(anonymous, logged_in);
    // The pre-login token is dead; the data moved with the session.
    let (_, _, body) = send(&app, "GET", "/get/theme", Some(&anonymous)).await;
    assert_eq!(&body[..], b"");
    let (_, _, body) = send(&app, "GET", "/get/theme", Some(&logged_in)).await;
    assert_eq!(&body[..], b"dark");
    // And on an explicit cycle.
    let (_, headers, _) = send(&app, "POST", "/cycle", Some(&logged_in)).await;
    let cycled = pair(&headers).expect("cookie");
    assert_ne!(cycled, logged_in);
    let (_, _, body) = send(&app, "GET", "/whoami", Some(&cycled)).await;
    assert_eq!(&body[..], b"alice");
    let (_, _, body) = send(&app, "GET", "/whoami", Some(&logged_in)).await;
    assert_eq!(&body[..], b"anonymous");
}

/// V3.2.2: session tokens have at least 64 bits of entropy (ours: 128 random bits; every
/// bit position is about evenly 0 and 1 over many tokens, and none repeats).
#[tokio::test]
async fn asvs_v3_2_2_tokens_have_at_least_64_bits_of_entropy() {
    let app = app(SessionManager::builder(MemoryStore::new())
        .build()
        .expect("config"));
    let mut ones = [0u32; 128];
    let mut seen = std::collections::HashSet::new();
    const N: u32 = 2000;
    for _ in 0..N {
        let (_, headers, _) = send(&app, "POST", "/set/a/1", None).await;
        let cookie = pair(&headers).expect("cookie");
        let id = cookie.split_once('=').expect("=").1.to_owned();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&id)
            .expect("base64url");
        assert_eq!(bytes.len(), 16);
        for (i, byte) in bytes.iter().enumerate() {
            for bit in 0..8 {
                ones[i * 8 + bit] += u32::from(byte >> bit & 1);
            }
        }
        assert!(seen.insert(id));
    }
    // Each bit is set in 50% ± 7% of tokens: a stuck or biased bit fails, a fair one
    // stays inside (±140 of 2000 is 6.3 standard deviations: about one false alarm in
    // 20 million runs over the 128 bits; ±5% failed about once in a thousand).
    for count in ones {
        assert!((N * 43 / 100..=N * 57 / 100).contains(&count), "{count}");
    }
}

/// V3.2.3: the token is stored in the browser in a cookie with the protective attributes.
/// V3.4.1 (`Secure`), V3.4.2 (`HttpOnly`), V3.4.3 (`SameSite`) and V3.4.4 (`__Host-`
/// prefix with `Path=/` and no `Domain`) are the defaults.
#[tokio::test]
async fn asvs_v3_2_3_and_v3_4_1_to_v3_4_4_default_cookie_attributes() {
    let app = app(SessionManager::builder(MemoryStore::new())
        .build()
        .expect("config"));
    let (_, headers, _) = send(&app, "POST", "/set/a/1", None).await;
    let set = set_cookie(&headers);
    let attrs: Vec<&str> = set.split(';').map(str::trim).collect();
    assert!(attrs[0].starts_with("__Host-session="), "V3.4.4 {set}");
    assert!(attrs.contains(&"Secure"), "V3.4.1 {set}");
    assert!(attrs.contains(&"HttpOnly"), "V3.4.2 {set}");
    assert!(attrs.contains(&"SameSite=Lax"), "V3.4.3 {set}");
    assert!(attrs.contains(&"Path=/"), "V3.4.4 {set}");
    assert!(!set.contains("Domain"), "V3.4.4 {set}");
    // The prefix cannot be combined with attributes browsers refuse it with.
    assert!(
        SessionManager::builder(MemoryStore::new())
            .cookie_domain("example.com")
            .build()
            .is_err()
    );
}

/// V3.4.5: the cookie's path can be set as precisely as the application needs.
#[tokio::test]
async fn asvs_v3_4_5_cookie_path_is_configurable() {
    let manager = SessionManager::builder(MemoryStore::new())
        .cookie_name("__Secure-sid")
        .cookie_path("/app")
        .build()
        .expect("config");
    let (_, headers, _) = send(&app(manager), "POST", "/set/a/1", None).await;
    assert!(set_cookie(&headers).contains("Path=/app"));
}

/// V3.3.1: logout invalidates the session on the server: replaying the old cookie
/// (the back button, a copied token) does not resume it.
#[tokio::test]
async fn asvs_v3_3_1_logout_invalidates_the_token_on_the_server() {
    let store = MemoryStore::new();
    let app = app(SessionManager::builder(store.clone())
        .build()
        .expect("config"));
    let (_, headers, _) = send(&app, "POST", "/login/alice", None).await;
    let cookie = pair(&headers).expect("cookie");
    let (_, headers, _) = send(&app, "POST", "/logout", Some(&cookie)).await;
    let removal = set_cookie(&headers);
    assert!(removal.contains("Max-Age=0"), "{removal}");
    let (_, _, body) = send(&app, "GET", "/whoami", Some(&cookie)).await;
    assert_eq!(&body[..], b"anonymous");
    // The record is gone from the store, and so is its entry in alice's index.
    assert_eq!(store.len(), 0);
}

/// V3.3.2: an idle timeout, and an absolute timeout that forces re-authentication even
/// when the session is used all the time (injected time).
#[tokio::test]
async fn asvs_v3_3_2_idle_and_absolute_timeouts() {
    let (clock, app) = timed(Duration::from_secs(30 * 60), Duration::from_secs(12 * 3600));
    // Idle: 31 minutes without a request ends the session.
    let (_, headers, _) = send(&app, "POST", "/login/alice", None).await;
    let cookie = pair(&headers).expect("cookie");
    clock.advance(Duration::from_secs(29 * 60));
    let (_, _, body) = send(&app, "GET", "/whoami", Some(&cookie)).await;
    assert_eq!(&body[..], b"alice", "a read is activity");
    clock.advance(Duration::from_secs(29 * 60));
    let (_, _, body) = send(&app, "GET", "/whoami", Some(&cookie)).await;
    assert_eq!(
        &body[..],
        b"alice",
        "still within 30 idle minutes of the last read"
    );
    clock.advance(Duration::from_secs(31 * 60));
    let (_, _, body) = send(&app, "GET", "/whoami", Some(&cookie)).await;
    assert_eq!(&body[..], b"anonymous");

    // Absolute: a request every 20 minutes, and still out after 12 hours.
    let (_, headers, _) = send(&app, "POST", "/login/bob", None).await;
    let cookie = pair(&headers).expect("cookie");
    let mut alive_for = Duration::ZERO;
    loop {
        clock.advance(Duration::from_secs(20 * 60));
        alive_for += Duration::from_secs(20 * 60);
        let (_, _, body) = send(&app, "GET", "/whoami", Some(&cookie)).await;
        if &body[..] != b"bob" {
            break;
        }
        assert!(alive_for < Duration::from_secs(12 * 3600));
    }
    assert!(alive_for >= Duration::from_secs(12 * 3600 - 20 * 60));
}

/// V3.3.3 (and the "log out everywhere" part of V3.3.4): after a password change the
/// user can end every other session; the application can end all of them.
#[tokio::test]
async fn asvs_v3_3_3_terminate_all_other_sessions_after_a_password_change() {
    let manager = SessionManager::builder(MemoryStore::new())
        .build()
        .expect("config");
    let app = app(manager.clone());
    let mut devices = Vec::new();
    for _ in 0..3 {
        let (_, headers, _) = send(&app, "POST", "/login/alice", None).await;
        devices.push(pair(&headers).expect("cookie"));
    }
    let (_, headers, _) = send(&app, "POST", "/login/mallory", None).await;
    let mallory = pair(&headers).expect("cookie");
    let (_, _, body) = send(&app, "POST", "/end-others", Some(&devices[0])).await;
    assert_eq!(&body[..], b"2");
    let who = |cookie: String| {
        let app = app.clone();
        async move {
            let (_, _, body) = send(&app, "GET", "/whoami", Some(&cookie)).await;
            String::from_utf8(body.to_vec()).expect("utf8")
        }
    };
    assert_eq!(who(devices[0].clone()).await, "alice");
    assert_eq!(who(devices[1].clone()).await, "anonymous");
    assert_eq!(who(devices[2].clone()).await, "anonymous");
    assert_eq!(manager.end_user_sessions("alice").await.expect("end"), 1);
    assert_eq!(who(devices[0].clone()).await, "anonymous");
    assert_eq!(who(mallory).await, "mallory");
}

/// V3.3.4: users can view their active sessions (devices) and log out of any of them.
#[tokio::test]
async fn asvs_v3_3_4_users_can_view_and_end_their_active_sessions() {
    let manager = SessionManager::builder(MemoryStore::new())
        .build()
        .expect("config");
    let app = app(manager.clone());
    let mut devices = Vec::new();
    for _ in 0..2 {
        let (_, headers, _) = send(&app, "POST", "/login/frank", None).await;
        devices.push(pair(&headers).expect("cookie"));
    }
    let (_, _, body) = send(&app, "GET", "/devices", Some(&devices[0])).await;
    let listed = String::from_utf8(body.to_vec()).expect("utf8");
    let handles: Vec<&str> = listed.split(',').collect();
    assert_eq!(handles.len(), 2, "{listed}");
    assert_eq!(handles.iter().filter(|h| h.ends_with('*')).count(), 1);
    // No handle is (part of) a session id shown in a cookie.
    for device in &devices {
        assert!(
            handles
                .iter()
                .all(|h| !device.contains(h.trim_end_matches('*')))
        );
    }
    let other = handles
        .iter()
        .find(|h| !h.ends_with('*'))
        .expect("the other device");
    assert!(manager.end_user_session("frank", other).await.expect("end"));
    let (_, _, body) = send(&app, "GET", "/whoami", Some(&devices[1])).await;
    assert_eq!(&body[..], b"anonymous");
    let (_, _, body) = send(&app, "GET", "/whoami", Some(&devices[0])).await;
    assert_eq!(&body[..], b"frank");
}

#[test]
fn the_missing_layer_rejection_is_an_error_that_names_the_layer() {
    let err: Box<dyn std::error::Error + Send + Sync> =
        Box::new(kv_tower::session::MissingSessionLayer);
    let text = err.to_string();
    assert!(
        text.contains("SessionLayer") && text.contains("forgot"),
        "{text}"
    );
    assert_eq!(
        kv_tower::session::MissingSessionLayer.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}
