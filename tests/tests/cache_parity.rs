//! Issue 13's cache defects over real HTTP, on both frameworks and both backends: an axum
//! app (kv-tower) and an actix-web app (kv-actix) served on loopback ports, each over a
//! `MemoryStore` and over a `RedisStore` (a redis-server of the harness), sent raw
//! HTTP/1.1 (so that a client can send the Host header an attacker would). Both apps must
//! answer alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use axum::Router;
use axum::body::Body;
use kv_core::ManualClock;
use kv_core::cache::Cache;
use kv_core::{AnyStore, MemoryStore, RedisStore};
use kv_test_support as support;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// What came back on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wire {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Wire {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request (`Connection: close`) with these headers; a `Host` is added unless
/// one is given.
async fn send(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Wire {
    let mut req = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("host: {addr}\r\n"));
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("connection: close\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    parse(&raw, method == "HEAD")
}

fn parse(raw: &[u8], head: bool) -> Wire {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let text = String::from_utf8_lossy(&raw[..split]);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if head {
        assert!(rest.is_empty(), "a HEAD response has no body");
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Wire {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16)
            .expect("chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 4 + size..];
    }
}

const LEN_BODY: &str = "fifty-two bytes of body, more or less, exactly here!";
const RANGE_BODY: &str = "0123456789abcdef";

/// What every route answers: (status, headers, body), the same in both apps.
fn answer(
    path_and_query: &str,
    x_status: Option<&str>,
) -> (u16, Vec<(&'static str, String)>, String) {
    let cached = |v: &str| vec![("cache-control", v.to_owned())];
    let path = path_and_query.split('?').next().unwrap_or("");
    match path {
        "/len" => (200, cached("max-age=60"), LEN_BODY.to_owned()),
        "/range" | "/range-slow" => {
            let mut h = cached("max-age=60");
            h.push(("etag", "\"r1\"".to_owned()));
            (200, h, RANGE_BODY.to_owned())
        }
        "/swr" => (
            200,
            cached("max-age=10, stale-while-revalidate=60"),
            String::new(),
        ),
        "/flaky" => match x_status.and_then(|s| s.parse().ok()) {
            Some(code) => (code, Vec::new(), "down".to_owned()),
            None => (
                200,
                cached("max-age=1, stale-if-error=60"),
                "good".to_owned(),
            ),
        },
        _ => (200, cached("max-age=60"), format!("route {path_and_query}")),
    }
}

/// For `/swr`: counts the run and names it (`v1`, `v2`, ..); every run after the first
/// waits for a permit of the gate.
async fn swr_run(path: &str, (runs, gate): &(Arc<AtomicUsize>, Arc<Semaphore>)) -> String {
    if path != "/swr" {
        return String::new();
    }
    let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
    if n > 1 {
        gate.acquire().await.expect("gate").forget();
    }
    format!("v{n}")
}

/// Waits (polling, at most 5 s) until `f` holds.
async fn until(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out");
}

/// A running pair of apps over one store kind, and how often the slow route ran.
struct Apps {
    axum: SocketAddr,
    actix: SocketAddr,
    axum_slow: Arc<AtomicUsize>,
    actix_slow: Arc<AtomicUsize>,
    /// `/swr` runs, and the gate its second and later runs wait at.
    axum_swr: (Arc<AtomicUsize>, Arc<Semaphore>),
    actix_swr: (Arc<AtomicUsize>, Arc<Semaphore>),
    clock: ManualClock,
    _redis: Option<support::Target>,
}

/// The stores: a MemoryStore, and a Redis when one can be started (the harness says
/// SKIPPED otherwise, and fails with `KV_REQUIRE_REDIS=1`).
async fn store_kinds(test: &str) -> Vec<Option<support::Target>> {
    let mut out = vec![None];
    if let Some(target) = support::server(test) {
        out.push(Some(target));
    }
    out
}

async fn engine(
    redis: &Option<support::Target>,
    clock: &ManualClock,
    app: &str,
) -> Cache<AnyStore> {
    let store = match redis {
        Some(target) => AnyStore::new(RedisStore::connect(&target.url()).await.expect("redis")),
        None => AnyStore::new(MemoryStore::with_clock(clock.clone())),
    };
    Cache::builder(store)
        .key_prefix(format!("cache-parity:{app}:{}:", std::process::id()))
        .clock(clock.clone())
        .build()
        .expect("cache")
}

async fn start(redis: Option<support::Target>) -> Apps {
    let clock = ManualClock::new();
    // axum, served by hyper.
    let axum_slow = Arc::new(AtomicUsize::new(0));
    let slow = axum_slow.clone();
    let axum_swr = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
    let swr = axum_swr.clone();
    let handler = move |uri: http::Uri, headers: http::HeaderMap| {
        let slow = slow.clone();
        let swr = swr.clone();
        async move {
            if uri.path() == "/range-slow" {
                slow.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let run = swr_run(uri.path(), &swr).await;
            let pq = uri.path_and_query().map_or("/", |p| p.as_str());
            let x_status = headers.get("x-status").and_then(|v| v.to_str().ok());
            let (status, hs, mut body) = answer(pq, x_status);
            body.push_str(&run);
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
    let router = Router::new()
        .route("/{*rest}", axum::routing::get(handler))
        .layer(kv_tower::CacheLayer::new(
            engine(&redis, &clock, "axum").await,
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let axum = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });

    // actix-web, served by its own server.
    let actix_slow = Arc::new(AtomicUsize::new(0));
    let slow = actix_slow.clone();
    let actix_swr = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
    let swr = actix_swr.clone();
    let actix_engine = engine(&redis, &clock, "actix").await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let actix = listener.local_addr().expect("addr");
    let server = HttpServer::new(move || {
        let slow = slow.clone();
        let swr = swr.clone();
        App::new()
            .wrap(kv_actix::CacheMiddleware::new(actix_engine.clone()))
            .default_service(web::to(move |req: HttpRequest| {
                let slow = slow.clone();
                let swr = swr.clone();
                async move {
                    if req.path() == "/range-slow" {
                        slow.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let run = swr_run(req.path(), &swr).await;
                    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                    let x_status = req.headers().get("x-status").and_then(|v| v.to_str().ok());
                    let (status, hs, mut body) = answer(pq, x_status);
                    body.push_str(&run);
                    let mut response = HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(status).expect("status"),
                    );
                    for (name, value) in hs {
                        response.append_header((name, value));
                    }
                    response.body(body)
                }
            }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    Apps {
        axum,
        actix,
        axum_slow,
        actix_slow,
        axum_swr,
        actix_swr,
        clock,
        _redis: redis,
    }
}

/// The headers two apps must agree on (the rest is each server's own).
fn owned(w: &Wire) -> (u16, Vec<(String, String)>, Vec<u8>) {
    const COMPARED: &[&str] = &["x-cache", "content-length", "content-range", "age", "etag"];
    let mut h: Vec<(String, String)> = w
        .headers
        .iter()
        .filter(|(n, _)| COMPARED.contains(&n.as_str()))
        .cloned()
        .collect();
    h.sort();
    (w.status, h, w.body.clone())
}

/// Sends the same request to both apps (the `Host` given as a template: `{addr}` is each
/// app's address); both must answer alike. Returns the axum app's answer.
async fn both(apps: &Apps, method: &str, target: &str, headers: &[(&str, &str)]) -> Wire {
    let mut replies = Vec::new();
    for addr in [apps.axum, apps.actix] {
        let hs: Vec<(&str, String)> = headers
            .iter()
            .map(|(n, v)| (*n, v.replace("{addr}", &addr.to_string())))
            .collect();
        let hs: Vec<(&str, &str)> = hs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let wire = send(
            addr,
            method,
            &target.replace("{addr}", &addr.to_string()),
            &hs,
        )
        .await;
        replies.push(wire);
    }
    let (a, b) = (&replies[0], &replies[1]);
    assert_eq!(
        owned(a),
        owned(b),
        "axum and actix differ on {method} {target} {headers:?}"
    );
    replies.swap_remove(0)
}

#[actix_web::test]
async fn a_host_header_cannot_plant_a_response_under_another_url() {
    for redis in store_kinds("a_host_header_cannot_plant").await {
        let apps = start(redis).await;
        // The attacker: route /slow, with the rest of the victim's URL in Host.
        let planted = both(&apps, "GET", "/slow", &[("host", "{addr}/slow?v=X")]).await;
        assert_eq!(planted.status, 200, "the frameworks accept the Host");
        assert_eq!(planted.header("x-cache"), Some("BYPASS"));
        // The victim's URL gets its own response, not the planted one.
        let victim = both(&apps, "GET", "/slow?v=X/slow", &[]).await;
        assert_eq!(victim.header("x-cache"), Some("MISS"));
        assert_eq!(victim.body, b"route /slow?v=X/slow");
        assert_eq!(
            both(&apps, "GET", "/slow?v=X/slow", &[])
                .await
                .header("x-cache"),
            Some("HIT")
        );
        // Not a host at all: served, never cached.
        for _ in 0..2 {
            let odd = both(&apps, "GET", "/odd", &[("host", "not a host/<>\"'")]).await;
            assert_eq!((odd.status, odd.header("x-cache")), (200, Some("BYPASS")));
        }
    }
}

#[actix_web::test]
async fn head_from_the_cache_carries_the_get_length() {
    for redis in store_kinds("head_from_the_cache").await {
        let apps = start(redis).await;
        let get = both(&apps, "GET", "/len", &[]).await;
        assert_eq!(get.body.len(), 52);
        let head = both(&apps, "HEAD", "/len", &[]).await;
        assert_eq!(head.header("x-cache"), Some("HIT"));
        assert_eq!(head.header("content-length"), Some("52"));
    }
}

#[actix_web::test]
async fn ranges_are_served_from_the_entry_with_206_416_and_if_range() {
    for redis in store_kinds("ranges_are_served").await {
        let apps = start(redis).await;
        // A range miss: the whole response fetched and stored, the range sent.
        let first = both(&apps, "GET", "/range", &[("range", "bytes=2-5")]).await;
        assert_eq!((first.status, &first.body[..]), (206, &b"2345"[..]));
        assert_eq!(first.header("content-range"), Some("bytes 2-5/16"));
        assert_eq!(first.header("x-cache"), Some("MISS"));
        let whole = both(&apps, "GET", "/range", &[]).await;
        assert_eq!((whole.status, whole.header("x-cache")), (200, Some("HIT")));
        assert_eq!(whole.body, RANGE_BODY.as_bytes());
        let part = both(&apps, "GET", "/range", &[("range", "bytes=0-4")]).await;
        assert_eq!(
            (part.status, &part.body[..], part.header("x-cache")),
            (206, &b"01234"[..], Some("HIT"))
        );
        assert_eq!(part.header("content-range"), Some("bytes 0-4/16"));
        assert_eq!(part.header("content-length"), Some("5"));
        let suffix = both(&apps, "GET", "/range", &[("range", "bytes=-3")]).await;
        assert_eq!(suffix.body, b"def");
        let beyond = both(&apps, "GET", "/range", &[("range", "bytes=99-")]).await;
        assert_eq!(beyond.status, 416);
        assert_eq!(beyond.header("content-range"), Some("bytes */16"));
        let matching = both(
            &apps,
            "GET",
            "/range",
            &[("range", "bytes=0-0"), ("if-range", "\"r1\"")],
        )
        .await;
        assert_eq!((matching.status, &matching.body[..]), (206, &b"0"[..]));
        let changed = both(
            &apps,
            "GET",
            "/range",
            &[("range", "bytes=0-0"), ("if-range", "\"r0\"")],
        )
        .await;
        assert_eq!((changed.status, changed.body.len()), (200, 16));
        let multi = both(&apps, "GET", "/range", &[("range", "bytes=0-0,4-5")]).await;
        assert_eq!((multi.status, multi.body.len()), (200, 16));
    }
}

#[actix_web::test]
async fn twenty_concurrent_range_requests_run_the_handler_once() {
    for redis in store_kinds("twenty_concurrent_range").await {
        let apps = start(redis).await;
        for (addr, calls) in [(apps.axum, &apps.axum_slow), (apps.actix, &apps.actix_slow)] {
            let mut tasks = Vec::new();
            for _ in 0..20 {
                tasks.push(tokio::spawn(async move {
                    send(addr, "GET", "/range-slow", &[("range", "bytes=0-4")]).await
                }));
            }
            for t in tasks {
                let wire = t.await.expect("task");
                assert_eq!((wire.status, &wire.body[..]), (206, &b"01234"[..]));
                assert_ne!(wire.header("x-cache"), Some("BYPASS"));
            }
            assert_eq!(
                calls.load(Ordering::SeqCst),
                1,
                "one handler run for {addr}"
            );
        }
    }
}

#[actix_web::test]
async fn stale_if_error_serves_only_500_502_503_504() {
    for redis in store_kinds("stale_if_error_serves_only").await {
        let apps = start(redis).await;
        assert_eq!(both(&apps, "GET", "/flaky", &[]).await.body, b"good");
        apps.clock.advance(Duration::from_secs(5));
        for code in ["500", "502", "503", "504"] {
            let got = both(&apps, "GET", "/flaky", &[("x-status", code)]).await;
            assert_eq!((got.status, &got.body[..]), (200, &b"good"[..]), "{code}");
        }
        for code in ["501", "505", "507"] {
            let got = both(&apps, "GET", "/flaky", &[("x-status", code)]).await;
            assert_eq!(got.status.to_string(), code, "{code} passes through");
            assert_eq!(got.body, b"down");
        }
    }
}

#[actix_web::test]
async fn stale_while_revalidate_refreshes_on_both_frameworks() {
    for redis in store_kinds("stale_while_revalidate_refreshes").await {
        let apps = start(redis).await;
        for addr in [apps.axum, apps.actix] {
            assert_eq!(send(addr, "GET", "/swr", &[]).await.body, b"v1");
        }
        apps.clock.advance(Duration::from_secs(20));

        // tower: the stale entry at once, the refresh in the background.
        let (runs, gate) = &apps.axum_swr;
        let stale = send(apps.axum, "GET", "/swr", &[]).await;
        assert_eq!(
            (&stale.body[..], stale.header("x-cache")),
            (&b"v1"[..], Some("HIT"))
        );
        until(|| runs.load(Ordering::SeqCst) == 2).await;
        let meanwhile = send(apps.axum, "GET", "/swr", &[]).await;
        assert_eq!(meanwhile.body, b"v1", "one refresh at a time");
        gate.add_permits(1);
        let mut fresh = Vec::new();
        for _ in 0..500 {
            fresh = send(apps.axum, "GET", "/swr", &[]).await.body;
            if fresh == b"v2" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(fresh, b"v2", "refreshed in the background");

        // actix: the request that wins the refresh revalidates; the others meanwhile get
        // the stale entry; afterwards everyone gets the refreshed one.
        let (runs, gate) = &apps.actix_swr;
        let addr = apps.actix;
        let winner = tokio::spawn(async move { send(addr, "GET", "/swr", &[]).await });
        until(|| runs.load(Ordering::SeqCst) == 2).await;
        let meanwhile = send(apps.actix, "GET", "/swr", &[]).await;
        assert_eq!(
            (&meanwhile.body[..], meanwhile.header("x-cache")),
            (&b"v1"[..], Some("HIT"))
        );
        gate.add_permits(1);
        let winner = winner.await.expect("task");
        assert_eq!(winner.body, b"v2");
        let after = send(apps.actix, "GET", "/swr", &[]).await;
        assert_eq!(
            (&after.body[..], after.header("x-cache")),
            (&b"v2"[..], Some("HIT"))
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(apps.axum_swr.0.load(Ordering::SeqCst), 2);
    }
}
