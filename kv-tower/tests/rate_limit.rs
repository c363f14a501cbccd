//! `RateLimitLayer` driven over HTTP (in process) on an axum `Router`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use kv_core::clock::ManualClock;
use kv_core::rate_limit::{
    FailureMode, HeaderOptions, KeySource, Policy, RateLimiter, RejectBody, parse_rate_limit_header,
};
use kv_core::testing::UnavailableStore;
use kv_core::{MemoryStore, Store};
use kv_tower::RateLimitLayer;
use tower::ServiceExt;

fn app<St: Store>(limiter: RateLimiter<St>) -> Router {
    Router::new()
        .route(
            "/limited",
            get(|| async { "ok" }).layer(RateLimitLayer::new(limiter)),
        )
        .route("/free", get(|| async { "free" }))
}

fn req(path: &str, peer: &str, xff: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri(path);
    if let Some(xff) = xff {
        b = b.header("x-forwarded-for", xff);
    }
    let mut r = b.body(Body::empty()).expect("request");
    r.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().expect("addr")));
    r
}

async fn send(app: &Router, r: Request<Body>) -> (StatusCode, http::HeaderMap, Bytes) {
    let response: Response<Body> = app.clone().oneshot(r).await.expect("infallible");
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.expect("body").to_bytes(),
    )
}

fn text(headers: &http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_4n_concurrent_requests_exactly_n_pass_for_every_algorithm() {
    for policy in [
        Policy::fixed_window("fixed", 20, Duration::from_secs(3600)),
        Policy::sliding_window("sliding", 20, Duration::from_secs(3600)),
        Policy::gcra("gcra", 20, Duration::from_secs(3600)),
    ] {
        let name = policy.name().to_owned();
        let app = app(RateLimiter::builder(MemoryStore::new())
            .policy(policy)
            .build()
            .expect("limiter"));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..80 {
            let app = app.clone();
            tasks.spawn(async move {
                send(&app, req("/limited", "198.51.100.20:1234", None))
                    .await
                    .0
            });
        }
        let (mut ok, mut limited) = (0, 0);
        while let Some(status) = tasks.join_next().await {
            match status.expect("task") {
                StatusCode::OK => ok += 1,
                StatusCode::TOO_MANY_REQUESTS => limited += 1,
                other => panic!("{name}: unexpected {other}"),
            }
        }
        assert_eq!((ok, limited), (20, 60), "{name}");
    }
}

#[tokio::test]
async fn headers_have_the_draft_formats_on_allowed_and_denied_responses() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(MemoryStore::with_clock(clock.clone()))
        .policy(Policy::fixed_window(
            "per-minute",
            2,
            Duration::from_secs(60),
        ))
        .clock(clock.clone())
        .build()
        .expect("limiter");
    let app = app(limiter);
    let (status, headers, body) = send(&app, req("/limited", "198.51.100.21:1", None)).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    let policy = parse_rate_limit_header(&text(&headers, "ratelimit-policy"));
    assert_eq!(
        policy,
        [(
            "per-minute".to_owned(),
            vec![("q".to_owned(), 2), ("w".to_owned(), 60)]
        )]
    );
    let state = parse_rate_limit_header(&text(&headers, "ratelimit"));
    assert_eq!(state[0].0, "per-minute");
    assert_eq!(state[0].1[0], ("r".to_owned(), 1));
    let t = state[0].1[1].1;
    assert!(state[0].1[1].0 == "t" && (1..=60).contains(&t), "{state:?}");

    send(&app, req("/limited", "198.51.100.21:1", None)).await;
    let (status, headers, body) = send(&app, req("/limited", "198.51.100.21:1", None)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = text(&headers, "retry-after")
        .parse()
        .expect("Retry-After is an integer");
    assert!(retry >= 1 && retry as i64 <= t, "retry {retry}, t {t}");
    let state = parse_rate_limit_header(&text(&headers, "ratelimit"));
    assert_eq!(state[0].1[0], ("r".to_owned(), 0));
    assert_eq!(text(&headers, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(
        &body[..],
        b"Too Many Requests: rate limit \"per-minute\" exceeded\n"
    );

    // The window resets on (injected) time.
    clock.advance(Duration::from_secs(retry));
    let (status, ..) = send(&app, req("/limited", "198.51.100.21:1", None)).await;
    assert_eq!(status, StatusCode::OK);
    // Other routes are not limited.
    for _ in 0..5 {
        let (status, headers, _) = send(&app, req("/free", "198.51.100.21:1", None)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get("ratelimit").is_none());
    }
}

#[tokio::test]
async fn a_spoofed_x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let limiter = RateLimiter::builder(MemoryStore::new())
        .policy(
            Policy::fixed_window("w", 1, Duration::from_secs(3600))
                .key(KeySource::client_ip(["10.0.0.0/8".parse().expect("net")])),
        )
        .build()
        .expect("limiter");
    let app = app(limiter);
    // The attacker connects directly and rotates X-Forwarded-For: one key all the same.
    let (first, ..) = send(&app, req("/limited", "203.0.113.9:5000", Some("1.1.1.1"))).await;
    let (second, ..) = send(&app, req("/limited", "203.0.113.9:5000", Some("2.2.2.2"))).await;
    let (third, ..) = send(
        &app,
        req("/limited", "203.0.113.9:5001", Some("3.3.3.3, 10.0.0.1")),
    )
    .await;
    assert_eq!(
        (first, second, third),
        (
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        )
    );
    // Behind our trusted proxy, distinct clients are distinct keys ...
    let (a, ..) = send(&app, req("/limited", "10.0.0.5:80", Some("198.51.100.30"))).await;
    let (b, ..) = send(&app, req("/limited", "10.0.0.5:80", Some("198.51.100.31"))).await;
    assert_eq!((a, b), (StatusCode::OK, StatusCode::OK));
    // ... and a client prepending a fake hop is still itself (the right-most untrusted hop).
    let (c, ..) = send(
        &app,
        req("/limited", "10.0.0.5:80", Some("9.9.9.9, 198.51.100.30")),
    )
    .await;
    assert_eq!(c, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn two_policies_on_one_route_and_a_problem_json_denial() {
    let limiter = RateLimiter::builder(MemoryStore::new())
        .policy(Policy::gcra("per-second", 10, Duration::from_secs(1)))
        .policy(Policy::fixed_window(
            "per-hour",
            3,
            Duration::from_secs(3600),
        ))
        .header_options(HeaderOptions {
            body: RejectBody::ProblemJson,
            ..HeaderOptions::default()
        })
        .build()
        .expect("limiter");
    let app = app(limiter);
    for remaining in [2, 1, 0] {
        let (status, headers, _) = send(&app, req("/limited", "198.51.100.22:1", None)).await;
        assert_eq!(status, StatusCode::OK);
        let state = parse_rate_limit_header(&text(&headers, "ratelimit"));
        assert_eq!(
            state.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["per-second", "per-hour"]
        );
        assert_eq!(state[1].1[0], ("r".to_owned(), remaining));
    }
    let (status, headers, body) = send(&app, req("/limited", "198.51.100.22:1", None)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(text(&headers, "content-type"), "application/problem+json");
    let body = String::from_utf8(body.to_vec()).expect("utf8");
    assert!(
        body.contains("\"violated-policies\":[\"per-hour\"]"),
        "{body}"
    );
    assert!(body.contains("quota-exceeded"), "{body}");
    assert_eq!(
        parse_rate_limit_header(&text(&headers, "ratelimit-policy")).len(),
        2
    );
}

#[tokio::test]
async fn shadow_mode_never_rejects_over_http() {
    let limiter = RateLimiter::builder(MemoryStore::new())
        .policy(Policy::fixed_window("w", 1, Duration::from_secs(3600)))
        .shadow(true)
        .build()
        .expect("limiter");
    let app = app(limiter);
    for i in 0..10 {
        let (status, headers, _) = send(&app, req("/limited", "198.51.100.23:1", None)).await;
        assert_eq!(status, StatusCode::OK, "request {i}");
        let state = parse_rate_limit_header(&text(&headers, "ratelimit"));
        // Limit 1: nothing remains from the first request on, yet nothing is rejected.
        assert_eq!(state[0].1[0], ("r".to_owned(), 0));
    }
}

#[tokio::test]
async fn a_failing_store_fails_open_or_closed_as_configured() {
    let open = app(RateLimiter::builder(UnavailableStore::new())
        .policy(Policy::fixed_window("w", 1, Duration::from_secs(1)))
        .build()
        .expect("limiter"));
    for _ in 0..3 {
        let (status, headers, body) = send(&open, req("/limited", "198.51.100.24:1", None)).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        assert!(headers.get("ratelimit").is_none());
    }
    let closed = app(RateLimiter::builder(UnavailableStore::new())
        .policy(Policy::sliding_window("w", 1, Duration::from_secs(1)))
        .on_store_error(FailureMode::Closed)
        .build()
        .expect("limiter"));
    let (status, _, body) = send(&closed, req("/limited", "198.51.100.24:1", None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !String::from_utf8_lossy(&body).contains("store down"),
        "the cause stays in the logs"
    );
}

#[tokio::test]
async fn a_request_without_a_peer_address_gets_a_500_not_a_panic() {
    let app = app(RateLimiter::builder(MemoryStore::new())
        .policy(Policy::fixed_window("w", 1, Duration::from_secs(1)))
        .build()
        .expect("limiter"));
    let r = Request::builder()
        .uri("/limited")
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = send(&app, r).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(String::from_utf8_lossy(&body).contains("could not identify the client"));
}

/// The peer is `PeerAddr` when a layer set one (a PROXY-protocol acceptor, say), whatever
/// `ConnectInfo` says; then `ConnectInfo`; a bare `SocketAddr` only when it is alone.
#[tokio::test]
async fn a_peer_addr_extension_wins_over_connect_info_and_a_bare_socket_addr() {
    let app = app(RateLimiter::builder(MemoryStore::new())
        .policy(Policy::gcra("g", 1, Duration::from_secs(3600)))
        .build()
        .expect("limiter"));
    let with = |connect: &str, peer: Option<&str>, bare: Option<&str>| {
        let mut r = req("/limited", connect, None);
        if let Some(peer) = peer {
            r.extensions_mut()
                .insert(kv_core::PeerAddr(peer.parse().expect("addr")));
        }
        if let Some(bare) = bare {
            r.extensions_mut()
                .insert(bare.parse::<SocketAddr>().expect("addr"));
        }
        r
    };
    // 192.0.2.1 spends its one request through `PeerAddr`, behind two other connections.
    let first = with("198.51.100.1:1", Some("192.0.2.1:1"), None);
    assert_eq!(send(&app, first).await.0, StatusCode::OK);
    let again = with(
        "198.51.100.2:1",
        Some("192.0.2.1:2"),
        Some("198.51.100.3:1"),
    );
    assert_eq!(send(&app, again).await.0, StatusCode::TOO_MANY_REQUESTS);
    // The connections themselves were never counted: ConnectInfo's own budget is whole,
    // and it is ConnectInfo, not the bare SocketAddr beside it, that counts next.
    let connect = with("198.51.100.1:9", None, Some("192.0.2.1:3"));
    assert_eq!(send(&app, connect).await.0, StatusCode::OK);
    let connect = with("198.51.100.1:10", None, Some("198.51.100.4:1"));
    assert_eq!(send(&app, connect).await.0, StatusCode::TOO_MANY_REQUESTS);
    // A bare SocketAddr alone is the peer.
    let bare = |addr: &str| {
        let mut r = Request::builder()
            .uri("/limited")
            .body(Body::empty())
            .expect("request");
        r.extensions_mut()
            .insert(addr.parse::<SocketAddr>().expect("addr"));
        r
    };
    assert_eq!(send(&app, bare("198.51.100.5:1")).await.0, StatusCode::OK);
    assert_eq!(
        send(&app, bare("198.51.100.5:2")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}
