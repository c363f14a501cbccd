//! Rate limiting for actix-web: [`RateLimitMiddleware`], the same engine as `kv_tower`'s
//! `RateLimitLayer` ([`kv_core::rate_limit`]), as an actix `Transform`.
//!
//! ```
//! # #[actix_web::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use actix_web::{App, test, web};
//! use kv_actix::RateLimitMiddleware;
//! use kv_core::{MemoryStore, rate_limit::{KeySource, Policy, RateLimiter}};
//!
//! let limiter = RateLimiter::builder(MemoryStore::new())
//!     .policy(Policy::fixed_window("per-minute", 1, Duration::from_secs(60)).key(KeySource::global()))
//!     .build()?;
//! let app = test::init_service(
//!     App::new()
//!         .wrap(RateLimitMiddleware::new(limiter))
//!         .route("/", web::get().to(|| async { "ok" })),
//! )
//! .await;
//! assert_eq!(test::call_service(&app, test::TestRequest::get().to_request()).await.status(), 200);
//! assert_eq!(test::call_service(&app, test::TestRequest::get().to_request()).await.status(), 429);
//! # Ok(())
//! # }
//! ```
//!
//! The peer address is the TCP peer (`HttpRequest::peer_addr`), never a header taken on
//! trust: `KeySource::client_ip(trusted)` applies its trusted-proxy rules to
//! `X-Forwarded-For` / `Forwarded` exactly as under tower (actix's
//! `ConnectionInfo::realip_remote_addr` believes any client, so it is not used).
//! `KeySource::extension` reads `http` extensions, which actix requests do not have: use
//! `KeySource::custom` with a header or the peer instead.
//!
//! With `RateLimiterBuilder::decision_in_extensions(true)` a handler reads the decision
//! (remaining quota) as `web::ReqData<kv_core::rate_limit::Decision>`. Wrap CORS *after*
//! this middleware (`.wrap(rate_limit).wrap(cors)`: the last `wrap` is the outermost),
//! so that a `429` carries CORS headers; preflights pass uncounted by default.

use std::cell::RefCell;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready as ready_poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage};
use kv_core::rate_limit::{Decision, Headers, RateLimiter, Verdict};
use kv_core::{Answer, Step, StepFuture, Store};
use pin_project_lite::pin_project;

use crate::answer::to_response;
use crate::view::{View, header};
use actix_web::http::header::{HeaderName as ActixName, HeaderValue as ActixValue};

/// The rate-limit middleware: `App::wrap(RateLimitMiddleware::new(limiter))`, or on a
/// `Scope` / `Resource`. Cheap to clone.
pub struct RateLimitMiddleware<St> {
    limiter: RateLimiter<St>,
}

impl<St: Store> RateLimitMiddleware<St> {
    /// A middleware enforcing `limiter`'s policies.
    pub fn new(limiter: RateLimiter<St>) -> Self {
        RateLimitMiddleware { limiter }
    }
}

impl<St> Clone for RateLimitMiddleware<St> {
    fn clone(&self) -> Self {
        RateLimitMiddleware {
            limiter: self.limiter.clone(),
        }
    }
}

impl<St: Store> fmt::Debug for RateLimitMiddleware<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitMiddleware")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S, B, St> Transform<S, ServiceRequest> for RateLimitMiddleware<St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    St: Store,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RateLimitService<S, St>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        // The constant `RateLimit-Policy` value, as actix-web's type once for all requests
        // (converting a value validates and copies it: ~280 instructions a response).
        let policy = self.limiter.policy_header().and_then(|value| {
            let actix = ActixValue::from_bytes(value.as_bytes()).ok()?;
            Some((value.clone(), actix))
        });
        ready(Ok(RateLimitService {
            service: Rc::new(service),
            limiter: self.limiter.clone(),
            converted: Rc::new(Converted {
                policy,
                repeats: self.limiter.repeats_state_values(),
                last_state: RefCell::new(None),
            }),
        }))
    }
}

/// The service [`RateLimitMiddleware`] wraps around the inner one.
pub struct RateLimitService<S, St> {
    service: Rc<S>,
    limiter: RateLimiter<St>,
    converted: Rc<Converted>,
}

/// The IETF fields already in actix-web's type (converting a value validates and copies
/// it: ~280 instructions): the limiter's constant `RateLimit-Policy`, and, for a limiter
/// whose `RateLimit` values repeat (`repeats_state_values`: GCRA values kv-core formats
/// ahead), the last one this worker's service sent, reused when the next is the same
/// bytes (a client whose bucket stays full, or clients at the same count). Anything else
/// is converted anew; a window's values, which change with the clock, are not kept
/// (keeping each would cost more than it saves: +658 instructions on a fixed window).
struct Converted {
    policy: Option<(http::HeaderValue, ActixValue)>,
    repeats: bool,
    last_state: RefCell<Option<(http::HeaderValue, ActixValue)>>,
}

impl Converted {
    /// `RateLimit`'s `value` in actix-web's type, kept for the next response (the caller
    /// asks only when `repeats`).
    fn state(&self, value: &http::HeaderValue) -> Option<ActixValue> {
        let mut last = self.last_state.borrow_mut();
        if let Some((seen, actix)) = last.as_ref()
            && seen == value
        {
            return Some(actix.clone());
        }
        let actix = ActixValue::from_bytes(value.as_bytes()).ok()?;
        *last = Some((value.clone(), actix.clone()));
        Some(actix)
    }
}

impl<S, St: Store> fmt::Debug for RateLimitService<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<S, B, St> Service<ServiceRequest> for RateLimitService<S, St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    St: Store,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = RateLimitFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // The common case writes its headers here and moves no verdict.
        let mut headers = Headers::new();
        let check = self.limiter.admit_into(&View::new(&req), &mut headers);
        let decide = match check {
            None => return call(&self.service, &self.converted, headers, None, req),
            // Decided in process (GCRA, the embedded store, bypass, no key): no future.
            Some(Step::Ready(verdict)) => {
                return answer(&self.service, &self.limiter, &self.converted, verdict, req);
            }
            Some(Step::Pending(decide)) => decide,
        };
        // The store must be asked: one boxed future (next to a network round trip).
        let service = Rc::clone(&self.service);
        let limiter = self.limiter.clone();
        RateLimitFuture::from(State::Boxed {
            fut: Box::pin(async move {
                match decide.await {
                    Verdict::Allow { headers, decision } => {
                        let after = prepare(&limiter, &req, decision);
                        let response = service.call(req).await?;
                        if let Some(after) = after
                            && let Step::Pending(charge) = after(status_of(&response))
                        {
                            charge.await;
                        }
                        Ok(with_headers(response, None, &headers).map_into_left_body())
                    }
                    Verdict::Reject { answer, .. } => Ok(rejection(req, answer)),
                }
            }),
        })
    }
}

fn answer<S, B, St: Store>(
    service: &S,
    limiter: &RateLimiter<St>,
    converted: &Rc<Converted>,
    verdict: Verdict,
    req: ServiceRequest,
) -> RateLimitFuture<S::Future, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    match verdict {
        Verdict::Allow { headers, decision } => {
            let after = prepare(limiter, &req, decision);
            call(service, converted, headers, after, req)
        }
        Verdict::Reject { answer, .. } => RateLimitFuture::from(State::Answered {
            response: Some(rejection(req, answer)),
        }),
    }
}

/// Calls the service for an allowed request; its response gets `headers`.
fn call<S, B>(
    service: &S,
    converted: &Rc<Converted>,
    headers: Headers,
    after: Option<After>,
    req: ServiceRequest,
) -> RateLimitFuture<S::Future, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    RateLimitFuture::from(State::Calling {
        fut: service.call(req),
        headers,
        after,
        converted: Rc::clone(converted),
    })
}

/// The charge after the response (policies counted by outcome), given its status.
type After = Box<dyn FnOnce(http::StatusCode) -> Step<(), StepFuture<()>>>;

/// Before the call: the decision where the handler can read it
/// (`web::ReqData<Decision>`), if asked, and the charge after the response, if a policy
/// counts by outcome.
fn prepare<St: Store>(
    limiter: &RateLimiter<St>,
    req: &ServiceRequest,
    decision: Option<Decision>,
) -> Option<After> {
    let decision = decision?;
    let after = limiter
        .charge_after(&decision)
        .map(|charge| charge as After);
    if limiter.decision_in_extensions() {
        req.extensions_mut().insert(decision);
    }
    after
}

/// The status of an actix response as the engine's `http` 1.x type.
fn status_of<B>(response: &ServiceResponse<B>) -> http::StatusCode {
    http::StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// The response to a request that does not reach the service.
fn rejection<B>(req: ServiceRequest, answer: Answer) -> ServiceResponse<EitherBody<B>> {
    req.into_response(to_response(answer)).map_into_right_body()
}

/// Adds the verdict's headers to the response, in actix-web's types: the IETF fields from
/// `converted` when it has them, the others converted here.
fn with_headers<B>(
    mut response: ServiceResponse<B>,
    converted: Option<&Converted>,
    headers: &Headers,
) -> ServiceResponse<B> {
    const RATELIMIT_POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");
    const RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");
    const ACTIX_RATELIMIT_POLICY: ActixName = ActixName::from_static("ratelimit-policy");
    const ACTIX_RATELIMIT: ActixName = ActixName::from_static("ratelimit");
    let map = response.headers_mut();
    for (name, value) in headers {
        let ready = converted.and_then(|converted| match &converted.policy {
            Some((policy, actix)) if *name == RATELIMIT_POLICY && value == policy => {
                Some((ACTIX_RATELIMIT_POLICY, actix.clone()))
            }
            _ if converted.repeats && *name == RATELIMIT => {
                converted.state(value).map(|value| (ACTIX_RATELIMIT, value))
            }
            _ => None,
        });
        let pair = ready.or_else(|| header(name, value));
        if let Some((name, value)) = pair {
            map.append(name, value);
        }
    }
    response
}

type Boxed<B> = Pin<Box<dyn Future<Output = Result<ServiceResponse<EitherBody<B>>, Error>>>>;

pin_project! {
    /// The response future of [`RateLimitService`]: the in-process decisions
    /// (GCRA, the embedded store) allocate nothing.
    pub struct RateLimitFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = Proj]
    enum State<F, B> {
        // Allowed: the service is running.
        Calling { #[pin] fut: F, headers: Headers, after: Option<After>, converted: Rc<Converted> },
        // The response is ready; the charge after it is being written.
        Charging { charge: StepFuture<()>, response: Option<ServiceResponse<EitherBody<B>>> },
        // Rejected at once.
        Answered { response: Option<ServiceResponse<EitherBody<B>>> },
        // Waiting on the store.
        Boxed { fut: Boxed<B> },
    }
}

impl<F, B> From<State<F, B>> for RateLimitFuture<F, B> {
    fn from(state: State<F, B>) -> Self {
        RateLimitFuture { state }
    }
}

impl<F, B> Future for RateLimitFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            return match this.state.as_mut().project() {
                Proj::Calling {
                    fut,
                    headers,
                    after,
                    converted,
                } => {
                    let response = ready_poll!(fut.poll(cx))?;
                    let status = status_of(&response);
                    let response =
                        with_headers(response, Some(converted), headers).map_into_left_body();
                    match after.take().map(|after| after(status)) {
                        None | Some(Step::Ready(())) => Poll::Ready(Ok(response)),
                        Some(Step::Pending(charge)) => {
                            this.state.set(State::Charging {
                                charge,
                                response: Some(response),
                            });
                            continue;
                        }
                    }
                }
                Proj::Charging { charge, response } => {
                    ready_poll!(charge.as_mut().poll(cx));
                    match response.take() {
                        Some(response) => Poll::Ready(Ok(response)),
                        None => Poll::Pending,
                    }
                }
                Proj::Answered { response } => match response.take() {
                    Some(response) => Poll::Ready(Ok(response)),
                    None => Poll::Pending,
                },
                Proj::Boxed { fut } => fut.as_mut().poll(cx),
            };
        }
    }
}
