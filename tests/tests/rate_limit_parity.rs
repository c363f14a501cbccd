//! Rate limiting v2 through both frameworks: the same limiter configuration behind an axum
//! app (kv-tower) and an actix-web app (kv-actix) answers alike — custom rejections, the
//! decision in the handler, CORS preflights, client IPs behind CDNs — and replicas of
//! either framework on one store (a real redis-server included) share one GCRA budget.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, HttpResponse, test as atest, web};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use kv_core::rate_limit::{
    Decision, FailureMode, ForwardedHeader, KeySource, Policy, RateLimiter as Engine,
};
use kv_core::testing::{RemoteLike, UnavailableStore};
use kv_core::{Answer, MemoryStore, RedisStore, Store};
use kv_test_support as support;
use tower::ServiceExt;

#[derive(Clone)]
struct Req {
    method: &'static str,
    headers: Vec<(&'static str, String)>,
    peer: SocketAddr,
}

fn get() -> Req {
    Req {
        method: "GET",
        headers: Vec::new(),
        peer: "203.0.113.9:40000".parse().expect("addr"),
    }
}

impl Req {
    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
    fn peer(mut self, peer: &str) -> Self {
        self.peer = peer.parse().expect("addr");
        self
    }
}

/// Status, the headers the limiter owns (sorted), body.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn new(status: u16, all: Vec<(String, String)>, body: Vec<u8>) -> Self {
        let mut headers: Vec<(String, String)> = all
            .into_iter()
            .filter(|(n, _)| {
                n.starts_with("ratelimit")
                    || n == "retry-after"
                    || n == "content-type"
                    || n == "x-error"
            })
            .collect();
        headers.sort();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
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
            let mut builder = http::Request::builder().method(req.method).uri("/");
            for (name, value) in &req.headers {
                builder = builder.header(*name, value.as_str());
            }
            let mut request = builder.body(Body::empty()).expect("request");
            request.extensions_mut().insert(ConnectInfo(req.peer));
            let response = self.0.clone().oneshot(request).await.expect("infallible");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("body").to_bytes().to_vec();
            let headers = parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            Reply::new(parts.status.as_u16(), headers, body)
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
                .uri("/")
                .peer_addr(req.peer);
            for (name, value) in &req.headers {
                request = request.insert_header((*name, value.as_str()));
            }
            let response = atest::call_service(&self.0, request.to_request()).await;
            let status = response.status().as_u16();
            let headers = response
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
            Reply::new(status, headers, body)
        })
    }
}

/// The handler's view of the decision: `remaining=<n>` of the first policy, or `none`.
fn remaining_text(decision: Option<&Decision>) -> String {
    decision.and_then(|d| d.policies().first()).map_or_else(
        || "none".to_owned(),
        |p| format!("remaining={}", p.remaining),
    )
}

fn axum_app<S: Store>(limiter: Engine<S>) -> AxumApp {
    let handler = |headers: http::HeaderMap, decision: Option<axum::Extension<Decision>>| async move {
        let status = headers
            .get("x-status")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .and_then(|s| http::StatusCode::from_u16(s).ok())
            .unwrap_or(http::StatusCode::OK);
        (status, remaining_text(decision.as_ref().map(|d| &d.0)))
    };
    AxumApp(
        Router::new()
            .route("/", axum::routing::any(handler))
            .layer(kv_tower::RateLimitLayer::new(limiter)),
    )
}

async fn actix_app<S: Store>(
    limiter: Engine<S>,
) -> ActixApp<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
> {
    let handler = |req: actix_web::HttpRequest, decision: Option<web::ReqData<Decision>>| async move {
        let status = req
            .headers()
            .get("x-status")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .and_then(|s| actix_web::http::StatusCode::from_u16(s).ok())
            .unwrap_or(actix_web::http::StatusCode::OK);
        HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(remaining_text(decision.as_deref()))
    };
    ActixApp(
        atest::init_service(
            App::new()
                .wrap(kv_actix::RateLimitMiddleware::new(limiter))
                .route("/", web::to(handler)),
        )
        .await,
    )
}

/// Sends `script` to both apps (each with its own limiter from `make`); every reply must
/// match. Returns the replies.
async fn alike<S: Store>(make: impl Fn() -> Engine<S>, script: &[Req]) -> Vec<Reply> {
    let axum = axum_app(make());
    let actix = actix_app(make()).await;
    let mut replies = Vec::new();
    for req in script {
        let a = axum.send(req.clone()).await;
        let b = actix.send(req.clone()).await;
        assert_eq!(
            a, b,
            "axum and actix differ on {} {:?}",
            req.method, req.headers
        );
        replies.push(a);
    }
    replies
}

fn statuses(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.status).collect()
}

#[actix_web::test]
async fn a_custom_rejection_keeps_the_rate_limit_headers_alike() {
    let make = || {
        Engine::builder(MemoryStore::new())
            .policy(Policy::fixed_window(
                "per-hour",
                1,
                Duration::from_secs(3600),
            ))
            .on_reject(|decision| {
                let mut answer = Answer::new(
                    http::StatusCode::TOO_MANY_REQUESTS,
                    http::HeaderMap::new(),
                    format!(
                        r#"{{"error":"slow_down","policy":"{}","retry_in":{}}}"#,
                        decision.denied_by().map_or("", |p| &p.name),
                        decision.retry_after().map_or(0, |d| d.as_secs().max(1))
                    )
                    .into(),
                );
                answer.headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                answer
                    .headers
                    .insert("x-error", http::HeaderValue::from_static("rate"));
                answer
            })
            .build()
            .expect("limiter")
    };
    let replies = alike(make, &[get(), get()]).await;
    assert_eq!(statuses(&replies), [200, 429]);
    let denied = &replies[1];
    assert_eq!(denied.header("content-type"), Some("application/json"));
    assert_eq!(denied.header("x-error"), Some("rate"));
    assert!(
        denied
            .body
            .starts_with(r#"{"error":"slow_down","policy":"per-hour","retry_in":"#),
        "{}",
        denied.body
    );
    assert!(denied.header("retry-after").is_some() && denied.header("ratelimit").is_some());
}

#[actix_web::test]
async fn the_handler_reads_the_remaining_quota_alike_when_asked() {
    let make = |expose: bool| {
        move || {
            Engine::builder(MemoryStore::new())
                .policy(Policy::gcra("g", 3, Duration::from_secs(60)))
                .decision_in_extensions(expose)
                .build()
                .expect("limiter")
        }
    };
    let replies = alike(make(true), &[get(), get()]).await;
    assert_eq!(replies[0].body, "remaining=2");
    assert_eq!(replies[1].body, "remaining=1");
    let replies = alike(make(false), &[get()]).await;
    assert_eq!(replies[0].body, "none", "off by default: nothing invented");
}

#[actix_web::test]
async fn preflights_pass_uncounted_by_default_and_are_counted_when_asked() {
    let preflight = get()
        .method("OPTIONS")
        .header("access-control-request-method", "POST");
    let script = [
        preflight.clone(),
        preflight.clone(),
        preflight.clone(),
        get(),
        get().method("OPTIONS"),
        get(),
    ];
    let make = |count: bool| {
        move || {
            Engine::builder(MemoryStore::new())
                .policy(Policy::fixed_window("w", 2, Duration::from_secs(3600)))
                .count_preflights(count)
                .build()
                .expect("limiter")
        }
    };
    let replies = alike(make(false), &script).await;
    // Preflights: no limit, no headers; a plain OPTIONS counts like any request.
    assert_eq!(statuses(&replies), [200, 200, 200, 200, 200, 429]);
    assert_eq!(replies[0].header("ratelimit"), None);
    let replies = alike(make(true), &script).await;
    assert_eq!(statuses(&replies), [200, 200, 429, 429, 429, 429]);
}

#[actix_web::test]
async fn cdn_client_ip_headers_are_believed_from_the_cdn_only_alike() {
    let cdn = ["173.245.48.0/20".parse().expect("cidr")];
    let make = || {
        Engine::builder(MemoryStore::new())
            .policy(
                Policy::fixed_window("per-ip", 1, Duration::from_secs(3600)).key(
                    KeySource::client_ip(cdn).forwarded_header(ForwardedHeader::CfConnectingIp),
                ),
            )
            .build()
            .expect("limiter")
    };
    let via_cdn = |client: &str| {
        get()
            .peer("173.245.48.10:443")
            .header("cf-connecting-ip", client)
    };
    let script = [
        // The attacker, directly: its spoofed header is not its key (its own address is).
        get().header("cf-connecting-ip", "192.0.2.1"),
        get().header("cf-connecting-ip", "192.0.2.2"),
        // Through the CDN, the header is the client: two clients, one request each.
        via_cdn("192.0.2.1"),
        via_cdn("192.0.2.2"),
        via_cdn("192.0.2.1"),
        // Garbage from the CDN: the CDN's address, never a guess.
        via_cdn("192.0.2.3, 192.0.2.4"),
        via_cdn("not an ip"),
    ];
    let replies = alike(make, &script).await;
    assert_eq!(statuses(&replies), [200, 429, 200, 200, 429, 200, 429]);
}

#[actix_web::test]
async fn rfc7239_forwarded_is_parsed_alike() {
    let make = || {
        Engine::builder(MemoryStore::new())
            .policy(
                Policy::fixed_window("per-ip", 1, Duration::from_secs(3600)).key(
                    KeySource::client_ip(["10.0.0.0/8".parse().expect("cidr")])
                        .forwarded_header(ForwardedHeader::Forwarded),
                ),
            )
            .build()
            .expect("limiter")
    };
    let proxied = |value: &str| get().peer("10.0.0.2:1").header("forwarded", value);
    let script = [
        proxied(r#"for="[2001:db8:cafe::17]:4711";proto=https"#),
        proxied(r#"for="[2001:db8:cafe::99]";by="x,y""#), // same /64
        proxied(r#"for=192.0.2.60;proto=http;by=203.0.113.43"#),
        proxied(r#"for="_hidden", for=192.0.2.61"#),
        proxied(r#"for="unterminated"#), // the proxy's own address
        proxied(r#"for="_gazonk""#),     // again the proxy
    ];
    let replies = alike(make, &script).await;
    assert_eq!(statuses(&replies), [200, 429, 200, 200, 200, 429]);
}

#[actix_web::test]
async fn degraded_mode_answers_alike() {
    let make = || {
        Engine::builder(UnavailableStore::new())
            .policy(Policy::fixed_window("w", 4, Duration::from_secs(3600)))
            .on_store_error(FailureMode::Local { replicas: 2 })
            .build()
            .expect("limiter")
    };
    let replies = alike(make, &[get(), get(), get()]).await;
    assert_eq!(statuses(&replies), [200, 200, 429]);
    assert!(replies[2].header("retry-after").is_some());
}

/// Replicas of both frameworks on one shared store spend one GCRA budget.
async fn shared_budget<S: Store + Clone>(store: S) -> usize {
    let make = || {
        Engine::builder(store.clone())
            .policy(Policy::gcra("g", 10, Duration::from_secs(60)))
            .build()
            .expect("limiter")
    };
    let (axum_a, axum_b) = (axum_app(make()), axum_app(make()));
    let (actix_a, actix_b) = (actix_app(make()).await, actix_app(make()).await);
    let replicas: [&dyn Target; 4] = [&axum_a, &actix_a, &axum_b, &actix_b];
    let mut allowed = 0;
    for i in 0..40 {
        allowed += usize::from(replicas[i % 4].send(get()).await.status == 200);
    }
    allowed
}

#[actix_web::test]
async fn replicas_of_both_frameworks_share_one_gcra_budget() {
    assert_eq!(shared_budget(RemoteLike(MemoryStore::new())).await, 10);
    let Some(server) = support::server("replicas_of_both_frameworks_share_one_gcra_budget") else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .key_prefix(format!("rlp{}:", std::process::id()))
        .build()
        .await
        .expect("connect");
    assert_eq!(shared_budget(store).await, 10);
}

/// Outcome counting and bans through both frameworks, on an in-process store and on the
/// async path (a store without a local face: the charge is awaited after the handler).
async fn outcome_and_ban_alike<S: Store + Clone>(store: impl Fn() -> S) {
    let fail = || get().header("x-status", "401");
    let make = || {
        Engine::builder(store())
            .policy(
                Policy::fixed_window("failures", 2, Duration::from_secs(3600))
                    .count_if(|s| s == http::StatusCode::UNAUTHORIZED),
            )
            .build()
            .expect("limiter")
    };
    let replies = alike(make, &[get(), get(), get(), fail(), fail(), get(), fail()]).await;
    // Successes are not counted; two failures are, after the handler; then refused.
    assert_eq!(statuses(&replies), [200, 200, 200, 401, 401, 429, 429]);
    let make = || {
        Engine::builder(store())
            .policy(Policy::ban(
                "ban",
                2,
                Duration::from_secs(600),
                Duration::from_secs(3600),
            ))
            .build()
            .expect("limiter")
    };
    let banned = get().header("x-status", "403");
    let replies = alike(make, &[banned.clone(), banned.clone(), get(), get()]).await;
    assert_eq!(statuses(&replies), [403, 403, 429, 429]);
    assert_eq!(
        replies[0].header("ratelimit-policy"),
        Some("\"ban\";q=2;w=600")
    );
    assert_eq!(replies[0].header("ratelimit"), Some("\"ban\";r=2;t=600"));
    assert_eq!(replies[2].header("retry-after"), Some("3600"));
}

#[actix_web::test]
async fn counting_by_outcome_and_bans_answer_alike() {
    outcome_and_ban_alike(MemoryStore::new).await;
    outcome_and_ban_alike(|| RemoteLike(MemoryStore::new())).await;
}

/// The `RateLimit-Policy` line: one per response, the same through both frameworks,
/// whether constant (converted once by the actix middleware), resolved per request (a
/// quota by header: converted per response) or turned off.
#[actix_web::test]
async fn the_policy_header_is_alike_constant_per_request_or_off() {
    let constant = || {
        Engine::builder(MemoryStore::new())
            .policy(Policy::gcra("paced", 2, Duration::from_secs(60)))
            .build()
            .expect("limiter")
    };
    let script = [get(), get(), get()];
    let replies = alike(constant, &script).await;
    assert_eq!(statuses(&replies), [200, 200, 429]);
    for reply in &replies {
        let lines: Vec<_> = reply
            .headers
            .iter()
            .filter(|(n, _)| n == "ratelimit-policy")
            .collect();
        assert_eq!(lines.len(), 1, "{reply:?}");
        assert_eq!(lines[0].1, "\"paced\";q=2;w=60");
    }

    // A client sending `x-tier: gold` gets 5 a minute: the policy value follows.
    let per_request = || {
        Engine::builder(MemoryStore::new())
            .policy(
                Policy::fixed_window("tiered", 1, Duration::from_secs(60)).quota_by(|req, _| {
                    (req.header(&http::HeaderName::from_static("x-tier"))
                        == Some(b"gold".as_slice()))
                    .then(|| kv_core::rate_limit::Quota::new(5, Duration::from_secs(60)))
                }),
            )
            .build()
            .expect("limiter")
    };
    let gold = || get().header("x-tier", "gold").peer("203.0.113.10:1");
    let script = [get(), gold(), get(), gold()];
    let replies = alike(per_request, &script).await;
    assert_eq!(statuses(&replies), [200, 200, 429, 200]);
    let policies: Vec<_> = replies
        .iter()
        .map(|r| r.header("ratelimit-policy"))
        .collect();
    assert_eq!(
        policies,
        [
            Some("\"tiered\";q=1;w=60"),
            Some("\"tiered\";q=5;w=60"),
            Some("\"tiered\";q=1;w=60"),
            Some("\"tiered\";q=5;w=60")
        ]
    );

    let off = || {
        Engine::builder(MemoryStore::new())
            .policy(Policy::gcra("quiet", 2, Duration::from_secs(60)))
            .header_options(kv_core::rate_limit::HeaderOptions {
                ietf: false,
                ..Default::default()
            })
            .build()
            .expect("limiter")
    };
    let replies = alike(off, &[get(), get(), get()]).await;
    assert_eq!(statuses(&replies), [200, 200, 429]);
    assert!(
        replies
            .iter()
            .all(|r| r.header("ratelimit-policy").is_none() && r.header("ratelimit").is_none())
    );
}

/// The actix middleware keeps the last `RateLimit` value it converted for a GCRA limiter
/// (whose values kv-core formats ahead) and reuses it when the next is the same bytes: two
/// clients at different counts, interleaved, must each get their own value, request for
/// request as through axum, never the other's or a stale one.
#[actix_web::test]
async fn the_ratelimit_value_kept_by_the_actix_middleware_is_never_another_clients() {
    let make = || {
        Engine::builder(MemoryStore::new())
            .policy(Policy::gcra("paced", 4, Duration::from_secs(60)))
            .build()
            .expect("limiter")
    };
    let a = || get().peer("203.0.113.1:1");
    let b = || get().peer("203.0.113.2:1");
    let script = [a(), b(), b(), a(), b(), b(), a(), b(), a(), a()];
    let replies = alike(make, &script).await;
    assert_eq!(
        statuses(&replies),
        [200, 200, 200, 200, 200, 200, 200, 429, 200, 429]
    );
    let values: Vec<_> = replies.iter().map(|r| r.header("ratelimit")).collect();
    assert_eq!(
        values,
        [
            Some("\"paced\";r=3;t=15"),
            Some("\"paced\";r=3;t=15"),
            Some("\"paced\";r=2;t=30"),
            Some("\"paced\";r=2;t=30"),
            Some("\"paced\";r=1;t=45"),
            Some("\"paced\";r=0;t=60"),
            Some("\"paced\";r=1;t=45"),
            Some("\"paced\";r=0;t=60"),
            Some("\"paced\";r=0;t=60"),
            Some("\"paced\";r=0;t=60"),
        ]
    );
}
