//! `CacheLayer` driven over HTTP on an axum `Router` (in process), on a MemoryStore and on a
//! real Redis (started on a free loopback port; skipped without `redis-server` unless
//! `KV_REQUIRE_REDIS=1`), and around a hyper client talking to a real TCP server.

use kv_test_support as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use kv_core::cache::Cache;
use kv_core::clock::ManualClock;
use kv_core::{AnyStore, MemoryStore, RedisStore, Store};
use kv_tower::CacheLayer;
use kv_tower::cache::CacheService;
use tower::{Service, ServiceExt};

/// How many times each route's handler ran.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn app<St: Store>(cache: Cache<St>, calls: &Calls) -> Router {
    let c = calls.clone();
    let slow = move || {
        let c = c.clone();
        async move {
            c.hit();
            tokio::time::sleep(Duration::from_millis(200)).await;
            ([("cache-control", "max-age=60")], "slow")
        }
    };
    let c = calls.clone();
    let echo = move |h: HeaderMap| {
        let c = c.clone();
        async move {
            c.hit();
            let who = format!("{}{}", header(&h, "x-user"), header(&h, "authorization"));
            let cc = match header(&h, "x-mode") {
                "private" => "private, max-age=60",
                "no-store" => "no-store, max-age=60",
                _ => "max-age=60",
            };
            let mut res = axum::response::Response::new(Body::from(format!("hello {who}")));
            res.headers_mut()
                .insert("cache-control", cc.parse().expect("cc"));
            if header(&h, "x-mode") == "cookie" {
                res.headers_mut()
                    .insert("set-cookie", format!("sid={who}").parse().expect("cookie"));
            }
            res
        }
    };
    let c = calls.clone();
    let vary = move |h: HeaderMap| {
        let c = c.clone();
        async move {
            c.hit();
            (
                [
                    ("cache-control", "max-age=60"),
                    ("vary", "Accept-Encoding, Accept-Language"),
                ],
                format!(
                    "{}|{}",
                    header(&h, "accept-encoding"),
                    header(&h, "accept-language")
                ),
            )
        }
    };
    let c = calls.clone();
    let etag = move || {
        let c = c.clone();
        async move {
            c.hit();
            (
                [("cache-control", "max-age=60"), ("etag", "\"v1\"")],
                "tagged",
            )
        }
    };
    let c = calls.clone();
    let swr = move || {
        let c = c.clone();
        async move {
            let n = c.hit();
            (
                [("cache-control", "max-age=1, stale-while-revalidate=60")],
                format!("v{n}"),
            )
        }
    };
    let c = calls.clone();
    let write = move || {
        let c = c.clone();
        async move {
            c.hit();
            StatusCode::NO_CONTENT
        }
    };
    Router::new()
        .route("/slow", get(slow))
        .route("/echo", get(echo))
        .route("/vary", get(vary))
        .route("/etag", get(etag))
        .route("/swr", get(swr))
        .route("/write", post(write))
        .layer(CacheLayer::new(cache))
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn x_cache(&self) -> &str {
        header(&self.headers, "x-cache")
    }
}

async fn send(app: &Router, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "example.com");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let response = app
        .clone()
        .oneshot(b.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn get_(app: &Router, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(app, Method::GET, path, headers).await
}

/// The stores every scenario runs on: a MemoryStore, and a Redis when one can be started.
/// The `Target` keeps a test's own redis-server alive.
async fn stores(test: &str) -> Vec<(AnyStore, Option<support::Target>)> {
    let mut out = vec![(AnyStore::new(MemoryStore::new()), None)];
    if let Some(target) = support::server(test) {
        let redis = RedisStore::connect(&target.url()).await.expect("connect");
        out.push((AnyStore::new(redis), Some(target)));
    }
    out
}

/// A cache under a prefix of its own (tests may share an external Redis).
fn cache(store: AnyStore, test: &str) -> Cache<AnyStore> {
    Cache::builder(store)
        .key_prefix(format!("kv-tower-test:{test}:{}:", std::process::id()))
        .build()
        .expect("valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_run_a_slow_handler_once() {
    for (store, _guard) in stores("fifty_concurrent").await {
        let calls = Calls::default();
        let app = app(cache(store.clone(), "fifty"), &calls);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move { get_(&app, "/slow", &[]).await }));
        }
        let mut misses = 0;
        for t in tasks {
            let r = t.await.expect("task");
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.body, "slow");
            misses += usize::from(r.x_cache() == "MISS");
        }
        assert_eq!(calls.get(), 1, "{}", store.backend_name());
        assert_eq!(misses, 1);
    }
}

#[tokio::test]
async fn set_cookie_authorization_private_and_no_store_never_leak_between_users() {
    for (store, _guard) in stores("no_leak").await {
        let calls = Calls::default();
        let app = app(cache(store.clone(), "leak"), &calls);
        for mode in ["cookie", "private", "no-store"] {
            let alice = get_(&app, "/echo", &[("x-user", "alice"), ("x-mode", mode)]).await;
            assert_eq!(alice.body, "hello alice");
            let bob = get_(&app, "/echo", &[("x-user", "bob"), ("x-mode", mode)]).await;
            assert_eq!(bob.body, "hello bob", "{mode} on {}", store.backend_name());
            assert_eq!(bob.x_cache(), "MISS");
            if mode == "cookie" {
                assert_eq!(header(&bob.headers, "set-cookie"), "sid=bob");
            }
        }
        let alice = get_(&app, "/echo?auth", &[("authorization", "Bearer alice")]).await;
        assert_eq!(alice.body, "hello Bearer alice");
        let bob = get_(&app, "/echo?auth", &[("authorization", "Bearer bob")]).await;
        assert_eq!(bob.body, "hello Bearer bob");
        let anon = get_(&app, "/echo?auth", &[]).await;
        assert_eq!(anon.body, "hello ");
        assert_eq!(calls.get(), 9);
    }
}

#[tokio::test]
async fn vary_on_accept_encoding_and_accept_language_keeps_variants_apart() {
    for (store, _guard) in stores("vary").await {
        let calls = Calls::default();
        let app = app(cache(store.clone(), "vary"), &calls);
        let variants = [
            [("accept-encoding", "gzip"), ("accept-language", "fr")],
            [("accept-encoding", "br"), ("accept-language", "fr")],
            [("accept-encoding", "gzip"), ("accept-language", "en")],
        ];
        for v in &variants {
            assert_eq!(get_(&app, "/vary", v).await.x_cache(), "MISS");
        }
        for v in &variants {
            let r = get_(&app, "/vary", v).await;
            assert_eq!(r.x_cache(), "HIT", "{v:?} on {}", store.backend_name());
            assert_eq!(r.body, format!("{}|{}", v[0].1, v[1].1));
        }
        assert_eq!(calls.get(), 3);
    }
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry_and_304_from_a_matching_etag() {
    for (store, _guard) in stores("head_304").await {
        let calls = Calls::default();
        let app = app(cache(store.clone(), "head"), &calls);
        get_(&app, "/etag", &[]).await;
        let head = send(&app, Method::HEAD, "/etag", &[]).await;
        assert_eq!(head.x_cache(), "HIT");
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        let nm = get_(&app, "/etag", &[("if-none-match", "\"v1\"")]).await;
        assert_eq!(nm.status, StatusCode::NOT_MODIFIED);
        assert_eq!(header(&nm.headers, "etag"), "\"v1\"");
        assert!(nm.body.is_empty());
        let full = get_(&app, "/etag", &[("if-none-match", "\"v0\"")]).await;
        assert_eq!(full.status, StatusCode::OK);
        assert_eq!(full.body, "tagged");
        assert_eq!(calls.get(), 1, "{}", store.backend_name());
    }
}

#[tokio::test]
async fn a_successful_post_invalidates_and_purge_drops_the_url() {
    for (store, _guard) in stores("invalidate").await {
        let calls = Calls::default();
        let layer_cache = cache(store.clone(), "inv");
        let app = app(layer_cache.clone(), &calls);
        get_(&app, "/etag", &[]).await;
        assert_eq!(get_(&app, "/etag", &[]).await.x_cache(), "HIT");
        // a POST to another URL leaves it alone
        let w = send(&app, Method::POST, "/write", &[]).await;
        assert_eq!(w.x_cache(), "BYPASS");
        assert_eq!(get_(&app, "/etag", &[]).await.x_cache(), "HIT");
        layer_cache
            .purge(&"http://example.com/etag".parse().expect("uri"))
            .await
            .expect("purge");
        assert_eq!(get_(&app, "/etag", &[]).await.x_cache(), "MISS");
        let stats = layer_cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.bypasses), (2, 2, 1));
    }
}

#[tokio::test]
async fn stale_while_revalidate_refreshes_in_the_background() {
    let clock = ManualClock::new();
    let calls = Calls::default();
    let cache = Cache::builder(MemoryStore::new())
        .clock(clock.clone())
        .build()
        .expect("valid");
    let app = app(cache, &calls);
    assert_eq!(get_(&app, "/swr", &[]).await.body, "v1");
    clock.advance(Duration::from_secs(5));
    let stale = get_(&app, "/swr", &[]).await;
    assert_eq!(stale.body, "v1");
    assert_eq!(stale.x_cache(), "HIT");
    // the refresh runs on the runtime: wait for it
    for _ in 0..200 {
        if get_(&app, "/swr", &[]).await.body == "v2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(get_(&app, "/swr", &[]).await.body, "v2");
    assert_eq!(calls.get(), 2);
}

/// A route that streams `total` bytes in 64 KiB chunks; after the first chunk it waits for
/// `go` (so the test can prove the first bytes arrive before the rest exists); `fail`
/// ends it with an error after the first chunk.
fn streaming_app(
    cache: Cache<MemoryStore>,
    total: usize,
    calls: &Calls,
    fail: bool,
) -> (Router, Arc<tokio::sync::Notify>) {
    let go = Arc::new(tokio::sync::Notify::new());
    let g = go.clone();
    let c = calls.clone();
    let handler = move || {
        let g = g.clone();
        let c = c.clone();
        async move {
            c.hit();
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![b'x'; 64 << 10]);
                let mut sent = 0;
                let first = chunk.slice(..chunk.len().min(total));
                sent += first.len();
                if tx.send(Ok(first)).await.is_err() {
                    return;
                }
                g.notified().await;
                if fail {
                    let _ = tx.send(Err(std::io::Error::other("broken"))).await;
                    return;
                }
                while sent < total {
                    let n = chunk.len().min(total - sent);
                    sent += n;
                    if tx.send(Ok(chunk.slice(..n))).await.is_err() {
                        return;
                    }
                }
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            let mut res = axum::response::Response::new(Body::from_stream(stream));
            res.headers_mut()
                .insert("cache-control", "max-age=60".parse().expect("cc"));
            res.headers_mut()
                .insert("content-length", total.to_string().parse().expect("len"));
            res
        }
    };
    (
        Router::new()
            .route("/big", get(handler))
            .layer(CacheLayer::new(cache)),
        go,
    )
}

const TEN_MB: usize = 10 << 20;

#[tokio::test]
async fn a_10_mb_body_streams_through_and_is_cached_when_the_bound_allows() {
    for (max_body, cached) in [(960 << 10, false), (16 << 20, true)] {
        let store = MemoryStore::builder()
            .max_value_len(12 << 20)
            .max_bytes(1 << 30)
            .build()
            .expect("store");
        let cache = Cache::builder(store.clone())
            .max_body_bytes(max_body)
            .build()
            .expect("valid");
        let calls = Calls::default();
        let (app, go) = streaming_app(cache.clone(), TEN_MB, &calls, false);
        let response = app
            .clone()
            .oneshot(
                Request::get("/big")
                    .header("host", "example.com")
                    .body(Body::empty())
                    .expect("req"),
            )
            .await
            .expect("infallible");
        assert_eq!(header(response.headers(), "x-cache"), "MISS");
        let mut body = response.into_body();
        // the first chunk arrives while the handler has not produced the rest
        let first = body.frame().await.expect("frame").expect("ok");
        assert_eq!(first.into_data().expect("data").len(), 64 << 10);
        go.notify_one();
        let rest = body.collect().await.expect("rest").to_bytes();
        assert_eq!(store.len(), usize::from(cached));
        assert_eq!(cache.stats().stored, u64::from(cached));
        assert_eq!(rest.len() + (64 << 10), TEN_MB);
        if !cached {
            // the handler runs again: let its second chunk go at once
            go.notify_one();
        }
        let again = get_(&app, "/big", &[]).await;
        if cached {
            assert_eq!(again.x_cache(), "HIT");
            assert_eq!(again.body.len(), TEN_MB);
            assert_eq!(calls.get(), 1);
        } else {
            assert_eq!(again.x_cache(), "MISS");
            assert_eq!(again.body.len(), TEN_MB);
            assert_eq!(calls.get(), 2);
        }
    }
}

#[tokio::test]
async fn a_client_that_goes_away_or_a_body_error_leaves_no_entry() {
    for fail in [false, true] {
        let store = MemoryStore::new();
        let cache = Cache::builder(store.clone()).build().expect("valid");
        let calls = Calls::default();
        let (app, go) = streaming_app(cache, 200 << 10, &calls, fail);
        let response = app
            .clone()
            .oneshot(
                Request::get("/big")
                    .header("host", "example.com")
                    .body(Body::empty())
                    .expect("req"),
            )
            .await
            .expect("infallible");
        let mut body = response.into_body();
        body.frame().await.expect("frame").expect("ok");
        go.notify_one();
        if fail {
            let mut errored = false;
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    errored = true;
                    break;
                }
            }
            assert!(errored);
        }
        drop(body);
        assert_eq!(store.len(), 0, "fail={fail}");
        go.notify_one();
        let again = app
            .clone()
            .oneshot(
                Request::get("/big")
                    .header("host", "example.com")
                    .body(Body::empty())
                    .expect("req"),
            )
            .await
            .expect("infallible");
        assert_eq!(header(again.headers(), "x-cache"), "MISS");
        assert_eq!(calls.get(), 2);
    }
}

#[tokio::test]
async fn the_layer_wraps_a_single_route() {
    let calls = Calls::default();
    let c = calls.clone();
    let cache = Cache::builder(MemoryStore::new()).build().expect("valid");
    let app = Router::new()
        .route(
            "/cached",
            get(move || {
                let c = c.clone();
                async move {
                    c.hit();
                    ([("cache-control", "max-age=60")], "cached")
                }
            })
            .layer(CacheLayer::new(cache)),
        )
        .route(
            "/plain",
            get(|| async { ([("cache-control", "max-age=60")], "plain") }),
        );
    get_(&app, "/cached", &[]).await;
    assert_eq!(get_(&app, "/cached", &[]).await.x_cache(), "HIT");
    assert_eq!(get_(&app, "/plain", &[]).await.x_cache(), "");
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn the_layer_makes_a_hyper_client_a_caching_proxy() {
    let calls = Calls::default();
    let c = calls.clone();
    let origin = Router::new().route(
        "/",
        get(move || {
            let c = c.clone();
            async move {
                c.hit();
                ([("cache-control", "max-age=60")], "from origin")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, origin).await });

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let cache = Cache::builder(MemoryStore::new()).build().expect("valid");
    let mut proxy = CacheService::new(client, cache);
    for expected in ["MISS", "HIT"] {
        let req = Request::get(format!("http://{addr}/"))
            .body(Full::new(Bytes::new()))
            .expect("req");
        let res = proxy
            .ready()
            .await
            .expect("ready")
            .call(req)
            .await
            .expect("response");
        assert_eq!(header(res.headers(), "x-cache"), expected);
        let body = res.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body, "from origin");
    }
    assert_eq!(calls.get(), 1);
    server.abort();
}

#[tokio::test]
async fn an_empty_body_is_stored_even_if_never_polled() {
    let calls = Calls::default();
    let c = calls.clone();
    let cache = Cache::builder(MemoryStore::new()).build().expect("valid");
    let app = Router::new()
        .route(
            "/empty",
            get(move || {
                let c = c.clone();
                async move {
                    c.hit();
                    (StatusCode::NO_CONTENT, [("cache-control", "max-age=60")])
                }
            }),
        )
        .layer(CacheLayer::new(cache));
    for expected in ["MISS", "HIT"] {
        // servers never poll a 204's body: the body is dropped unread
        let response = app
            .clone()
            .oneshot(Request::get("/empty").body(Body::empty()).expect("req"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(header(response.headers(), "x-cache"), expected);
    }
    assert_eq!(calls.get(), 1);
}

/// A request with exactly these `Host` lines (none, one, or several) and this version.
async fn with_hosts(app: &Router, uri: &str, hosts: &[&str], version: http::Version) -> Reply {
    let mut b = Request::builder().uri(uri).version(version);
    for h in hosts {
        b = b.header("host", *h);
    }
    let response = app
        .clone()
        .oneshot(b.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

#[tokio::test]
async fn a_smuggled_repeated_malformed_or_missing_host_never_reaches_a_key() {
    use http::Version;
    let calls = Calls::default();
    let cache = Cache::builder(MemoryStore::new())
        .require_host(true)
        .build()
        .expect("valid");
    let app = app(cache, &calls);
    // Each of these requests, sent twice, runs the handler twice: nothing was stored for
    // it, so nothing it said can be served to another request.
    let hostile: [(&str, &[&str]); 4] = [
        // Two `Host` lines: which one a proxy in front used is unknowable.
        ("/echo", &["victim.example", "attacker.example"]),
        // Not an RFC 3986 `host[:port]`: a path, a space, an over-long port.
        ("/echo", &["victim.example/other"]),
        ("/echo", &["victim.example:123456"]),
        // HTTP/1.1 naming no host at all (`require_host`).
        ("/echo", &[]),
    ];
    for (path, hosts) in hostile {
        let before = calls.get();
        for _ in 0..2 {
            let r = with_hosts(&app, path, hosts, Version::HTTP_11).await;
            assert_eq!(r.status, StatusCode::OK, "{hosts:?}");
            assert_ne!(r.x_cache(), "HIT", "{hosts:?}");
        }
        assert_eq!(calls.get(), before + 2, "{hosts:?} was cached");
    }
    // An absolute-form target names the host: a `Host` line beside it does not move the
    // entry to another host's key.
    let before = calls.get();
    let r = with_hosts(
        &app,
        "http://a.example/echo",
        &["b.example"],
        Version::HTTP_11,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = with_hosts(&app, "/echo", &["b.example"], Version::HTTP_11).await;
    assert_ne!(
        r.x_cache(),
        "HIT",
        "the entry went under the Host line's key"
    );
    let r = with_hosts(&app, "/echo", &["a.example"], Version::HTTP_11).await;
    assert_eq!(r.x_cache(), "HIT", "the entry is under the target's host");
    assert_eq!(calls.get(), before + 2);
}
