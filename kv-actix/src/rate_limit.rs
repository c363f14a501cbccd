//! Rate limiting for actix-web: [`RateLimiter`], the same engine as `kv_tower`'s
//! `RateLimitLayer` (`kv_core::rate_limit`), as an actix `Transform`.
//!
//! ```
//! # #[actix_web::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use actix_web::{App, test, web};
//! use kv_actix::RateLimiter;
//! use kv_core::{MemoryStore, rate_limit::{KeySource, Policy, RateLimiter as Engine}};
//!
//! let engine = Engine::builder(MemoryStore::new())
//!     .policy(Policy::fixed_window("per-minute", 1, Duration::from_secs(60)).key(KeySource::global()))
//!     .build()?;
//! let app = test::init_service(
//!     App::new()
//!         .wrap(RateLimiter::new(engine))
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

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready as ready_poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpResponse};
use kv_core::Store;
use kv_core::rate_limit::{Headers, Prepared, RateLimiter as Engine, Verdict};
use pin_project_lite::pin_project;

use crate::view::{View, actix_status, header};

/// The rate-limit middleware: `App::wrap(RateLimiter::new(engine))`, or on a `Scope` /
/// `Resource`. Cheap to clone.
pub struct RateLimiter<St> {
    engine: Engine<St>,
}

impl<St: Store> RateLimiter<St> {
    /// A middleware enforcing `engine`'s policies.
    pub fn new(engine: Engine<St>) -> Self {
        RateLimiter { engine }
    }
}

impl<St> Clone for RateLimiter<St> {
    fn clone(&self) -> Self {
        RateLimiter {
            engine: self.engine.clone(),
        }
    }
}

impl<St: Store> fmt::Debug for RateLimiter<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("engine", &self.engine)
            .finish()
    }
}

impl<S, B, St> Transform<S, ServiceRequest> for RateLimiter<St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    St: Store,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RateLimiterMiddleware<S, St>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RateLimiterMiddleware {
            service: Rc::new(service),
            engine: self.engine.clone(),
        }))
    }
}

/// The service [`RateLimiter`] wraps around the inner one.
pub struct RateLimiterMiddleware<S, St> {
    service: Rc<S>,
    engine: Engine<St>,
}

impl<S, St: Store> fmt::Debug for RateLimiterMiddleware<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiterMiddleware")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl<S, B, St> Service<ServiceRequest> for RateLimiterMiddleware<S, St>
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
        let prepared = self.engine.prepare(&View::new(&req));
        let pending = match prepared {
            Prepared::Count(pending) => pending,
            Prepared::Done(verdict) => return answer(&self.service, *verdict, req),
        };
        if let Some(verdict) = self.engine.decide_in_process(&pending) {
            return answer(&self.service, verdict, req);
        }
        // The store must be asked: one boxed future (next to a network round trip).
        let service = Rc::clone(&self.service);
        let decide = self.engine.decide(pending);
        RateLimitFuture::from(State::Boxed {
            fut: Box::pin(async move {
                match decide.await {
                    Verdict::Allow { headers, .. } => {
                        let response = service.call(req).await?;
                        Ok(with_headers(response, headers).map_into_left_body())
                    }
                    reject => Ok(rejection(req, reject)),
                }
            }),
        })
    }
}

fn answer<S, B>(service: &S, verdict: Verdict, req: ServiceRequest) -> RateLimitFuture<S::Future, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    match verdict {
        Verdict::Allow { headers, .. } => RateLimitFuture::from(State::Calling {
            fut: service.call(req),
            headers,
        }),
        reject => RateLimitFuture::from(State::Answered {
            response: Some(rejection(req, reject)),
        }),
    }
}

/// The response for a verdict that does not reach the service.
fn rejection<B>(req: ServiceRequest, verdict: Verdict) -> ServiceResponse<EitherBody<B>> {
    let (status, headers, body) = match verdict {
        Verdict::Reject {
            status,
            headers,
            body,
            ..
        } => (status, headers, body),
        // Not reached: allowed verdicts go to the service.
        Verdict::Allow { headers, .. } => (http::StatusCode::OK, headers, bytes::Bytes::new()),
    };
    let mut response = HttpResponse::new(actix_status(status));
    for (name, value) in &headers {
        if let Some((name, value)) = header(name, value) {
            response.headers_mut().append(name, value);
        }
    }
    let response = response.set_body(body).map_into_boxed_body();
    req.into_response(response).map_into_right_body()
}

fn with_headers<B>(mut response: ServiceResponse<B>, headers: Headers) -> ServiceResponse<B> {
    let map = response.headers_mut();
    for (name, value) in &headers {
        if let Some((name, value)) = header(name, value) {
            map.append(name, value);
        }
    }
    response
}

type Boxed<B> = Pin<Box<dyn Future<Output = Result<ServiceResponse<EitherBody<B>>, Error>>>>;

pin_project! {
    /// The response future of [`RateLimiterMiddleware`]: the in-process decisions
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
        Calling { #[pin] fut: F, headers: Headers },
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
        match self.project().state.project() {
            Proj::Calling { fut, headers } => {
                let response = ready_poll!(fut.poll(cx))?;
                let headers = std::mem::take(headers);
                Poll::Ready(Ok(with_headers(response, headers).map_into_left_body()))
            }
            Proj::Answered { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
            Proj::Boxed { fut } => fut.as_mut().poll(cx),
        }
    }
}
