//! Response caching for actix-web: [`CacheMiddleware`], the same engine as `kv_tower`'s
//! `CacheLayer` ([`kv_core::cache`]), as an actix `Transform`.
//!
//! ```
//! # #[actix_web::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use actix_web::{App, HttpResponse, test, web};
//! use kv_actix::CacheMiddleware;
//! use kv_core::{MemoryStore, cache::Cache};
//!
//! let cache = Cache::builder(MemoryStore::new()).build()?;
//! let app = test::init_service(
//!     App::new().wrap(CacheMiddleware::new(cache)).route(
//!         "/",
//!         web::get().to(|| async { HttpResponse::Ok().insert_header(("cache-control", "max-age=60")).body("hello") }),
//!     ),
//! )
//! .await;
//! for expected in ["MISS", "HIT"] {
//!     let response = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
//!     assert_eq!(response.headers().get("x-cache").unwrap(), expected);
//!     assert_eq!(test::read_body(response).await, "hello"); // stored once the body ended
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Every decision is the engine's; this middleware hands the request to it as a
//! `RequestView` (its headers converted to `http` 1.x, which the cache keeps), converts the
//! response head back and forth, and copies a cacheable body while it streams to the client (the entry is stored when the body
//! ends; a body error, a client gone mid-body or a body over the bound stores nothing).
//! **`stale-while-revalidate` differs from tower's**: actix cannot dispatch a second
//! request outside its server, so there is no background request. Instead the first
//! request that finds the entry stale within its `stale-while-revalidate` window (the one
//! that wins the refresh) is itself forwarded as the revalidation and waits for it;
//! requests arriving meanwhile get the stale entry at once, and every request after it
//! gets the refreshed entry. So one client per refresh pays the origin's latency, where
//! under tower none does. `stale-if-error` applies to 5xx
//! responses, which is how actix handlers' errors arrive.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready as ready_poll};

use actix_web::Error;
use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderMap as ActixHeaders, HeaderName as ActixName};
use bytes::Bytes;
use futures_util::future::Either;
use http::HeaderMap;
use kv_core::cache::{BodyRecorder, Cache, Forward, LastChunk, Lookup, Outcome};
use kv_core::{Answer, Step, Store};
use pin_project_lite::pin_project;

use crate::answer::to_response;
use crate::view::{View, actix_status, header, status, to_http};

/// The cache middleware: `App::wrap(CacheMiddleware::new(cache))`, or on a `Scope` /
/// `Resource`. Cheap to clone.
pub struct CacheMiddleware<St> {
    engine: Cache<St>,
}

impl<St: Store> CacheMiddleware<St> {
    /// A middleware over `engine` (its store, policy and counters).
    pub fn new(engine: Cache<St>) -> Self {
        CacheMiddleware { engine }
    }

    /// The engine: counters and purging.
    pub fn engine(&self) -> &Cache<St> {
        &self.engine
    }
}

impl<St> Clone for CacheMiddleware<St> {
    fn clone(&self) -> Self {
        CacheMiddleware {
            engine: self.engine.clone(),
        }
    }
}

impl<St: Store> fmt::Debug for CacheMiddleware<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheMiddleware")
            .field("engine", &self.engine)
            .finish()
    }
}

impl<S, B, St> Transform<S, ServiceRequest> for CacheMiddleware<St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    St: Store,
{
    type Response = ServiceResponse<EitherBody<CacheBody<B>, BoxBody>>;
    type Error = Error;
    type Transform = CacheService<S, St>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CacheService {
            service: Rc::new(service),
            engine: self.engine.clone(),
        }))
    }
}

/// The service [`CacheMiddleware`] wraps around the inner one.
pub struct CacheService<S, St> {
    service: Rc<S>,
    engine: Cache<St>,
}

impl<S, St: Store> fmt::Debug for CacheService<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheService")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

type Reply<B> = Result<ServiceResponse<EitherBody<CacheBody<B>, BoxBody>>, Error>;

// The response future of `CacheService`: a hit decided in process (the embedded store,
// the near cache) is answered without a boxed future.
type CacheFuture<B> = Either<Ready<Reply<B>>, Pin<Box<dyn Future<Output = Reply<B>>>>>;

impl<S, B, St> Service<ServiceRequest> for CacheService<S, St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    St: Store,
{
    type Response = ServiceResponse<EitherBody<CacheBody<B>, BoxBody>>;
    type Error = Error;
    type Future = CacheFuture<B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let lookup = self.engine.lookup(&View::new(&req));
        let service = Rc::clone(&self.service);
        match lookup {
            // `stale-while-revalidate`: this request won the refresh; actix cannot
            // dispatch a second request of its own (see `hit`), so this one revalidates
            // while concurrent ones get the stale entry.
            // (A `HEAD` cannot stand in for the `GET` the refresh is: it gets the stale
            // entry, and dropping the refresh lets another request take it.)
            Step::Ready(Lookup::Hit {
                refresh: Some(refresh),
                ..
            }) if req.method() == actix_web::http::Method::GET => {
                Either::Right(Box::pin(forwarded(service, req, refresh)))
            }
            Step::Ready(Lookup::Hit { response, .. }) => {
                Either::Left(ready(Ok(hit(req, response))))
            }
            Step::Ready(Lookup::Forward(forward)) => {
                Either::Right(Box::pin(forwarded(service, req, forward)))
            }
            // The lookup waits for the store; it owns what it read of the request.
            Step::Pending(lookup) => Either::Right(Box::pin(async move {
                match lookup.await {
                    Lookup::Hit {
                        refresh: Some(refresh),
                        ..
                    } if req.method() == actix_web::http::Method::GET => {
                        forwarded(service, req, refresh).await
                    }
                    Lookup::Hit { response, .. } => Ok(hit(req, response)),
                    Lookup::Forward(forward) => forwarded(service, req, forward).await,
                }
            })),
        }
    }
}

/// A cache hit (fresh, `304`, or stale within `stale-while-revalidate`). No background
/// dispatch under actix: a second dispatch would need a second `HttpRequest`, which
/// actix cannot build outside its server (a clone of the request's shares it, and routing
/// needs it unshared), so the request that wins a `stale-while-revalidate` refresh is
/// forwarded itself (see `CacheService::call`).
fn hit<B>(
    req: ServiceRequest,
    answer: Answer,
) -> ServiceResponse<EitherBody<CacheBody<B>, BoxBody>> {
    req.into_response(to_response(answer))
        .map_body(|_, body| EitherBody::right(body))
}

/// The inner service's response, its body copied by `recorder`.
fn through<B>(
    response: ServiceResponse<B>,
    recorder: BodyRecorder,
) -> ServiceResponse<EitherBody<CacheBody<B>, BoxBody>> {
    response.map_body(|_, body| EitherBody::left(CacheBody::new(body, recorder)))
}

/// Calls the inner service for a request the cache forwards, and hands its response to
/// the engine.
async fn forwarded<S, B, St>(
    service: Rc<S>,
    mut req: ServiceRequest,
    mut forward: Box<Forward<St>>,
) -> Reply<B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
    St: Store,
{
    // Revalidation replaces the client's conditionals with the entry's validators.
    let mut validators = HeaderMap::new();
    forward.prepare(&mut validators);
    if !validators.is_empty() {
        replace_conditionals(req.headers_mut(), &validators);
    }
    // actix handlers' errors arrive as (5xx) responses, where `stale-if-error` applies;
    // a service that fails outright has no request left to answer with.
    let mut response = service.call(req).await?;
    let mut head = to_http(response.headers());
    if let BodySize::Sized(n) = response.response().body().size() {
        forward.set_body_len(Some(n));
    }
    let outcome = forward.response(status(response.status()), &mut head).await;
    Ok(match outcome {
        Outcome::Pass => {
            replace_headers(response.headers_mut(), &head);
            through(response, BodyRecorder::none())
        }
        Outcome::Record(recorder) => {
            replace_headers(response.headers_mut(), &head);
            if let Some(sent) = recorder.status() {
                *response.response_mut().status_mut() = actix_status(sent);
            }
            // actix never polls an empty body (a 204, an empty 200, a redirect): store
            // such an entry now rather than waiting for an end that never comes.
            let recorder = match response.response().body().size() {
                BodySize::None | BodySize::Sized(0) => {
                    (*recorder).finish().await;
                    BodyRecorder::none()
                }
                // actix may stop polling once the announced length went out: the last
                // chunk waits for the entry to be stored, so the next request finds it.
                _ => BodyRecorder::new(Some(recorder), LastChunk::AfterStore),
            };
            through(response, recorder)
        }
        Outcome::Replace(replacement) => {
            let (http_req, _) = response.into_parts();
            hit(
                ServiceRequest::from_parts(http_req, Payload::None),
                replacement,
            )
        }
    })
}

/// Makes actix-web's headers equal to `head` (the engine may add, change or remove some).
fn replace_headers(target: &mut ActixHeaders, head: &HeaderMap) {
    target.clear();
    for (name, value) in head {
        if let Some((name, value)) = header(name, value) {
            target.append(name, value);
        }
    }
}

/// Replaces the request's conditional headers with the validators `Forward::prepare` set.
fn replace_conditionals(target: &mut ActixHeaders, validators: &HeaderMap) {
    for name in [
        http::header::IF_NONE_MATCH,
        http::header::IF_MODIFIED_SINCE,
        http::header::IF_MATCH,
        http::header::IF_UNMODIFIED_SINCE,
    ]
    .iter()
    .chain(validators.keys())
    {
        if let Ok(name) = ActixName::from_bytes(name.as_str().as_bytes()) {
            target.remove(&name);
        }
    }
    for (name, value) in validators {
        if let Some((name, value)) = header(name, value) {
            target.append(name, value);
        }
    }
}

pin_project! {
    /// The inner service's body on its way to the client, copied into the cache (by
    /// kv-core's [`BodyRecorder`]) when the response is being stored. The entry is stored
    /// before the body's last chunk or end is handed out, so the next request finds it.
    pub struct CacheBody<B> {
        #[pin]
        inner: B,
        recorder: BodyRecorder,
        held: Option<Bytes>,
        ended: bool,
    }
}

impl<B> CacheBody<B> {
    fn new(inner: B, recorder: BodyRecorder) -> Self {
        CacheBody {
            inner,
            recorder,
            held: None,
            ended: false,
        }
    }
}

impl<B> fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBody")
            .field("recorder", &self.recorder)
            .finish_non_exhaustive()
    }
}

impl<B: MessageBody> MessageBody for CacheBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        match self.recorder.size() {
            Some(n) => BodySize::Sized(n),
            None => self.inner.size(),
        }
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let mut this = self.project();
        // kv-core's state machine decides; this only polls the inner body and the store.
        loop {
            ready_poll!(this.recorder.poll_store(cx));
            // While draining (a range sent, the whole response still being recorded), the
            // chunk to send waits for the inner body's end.
            if this.held.is_some() && !this.recorder.draining() {
                return Poll::Ready(this.held.take().map(Ok));
            }
            if *this.ended {
                return Poll::Ready(this.held.take().map(Ok));
            }
            match ready_poll!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => {
                    // actix has no end-of-stream hint: the end is the announced length
                    // (which the recorder knows) or the inner body's `None`.
                    let hold = this.recorder.chunk(&chunk, false, cx);
                    if let Some(out) = this.recorder.emit(chunk) {
                        if hold || this.recorder.draining() {
                            *this.held = Some(out);
                            continue;
                        }
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Some(Err(err)) => {
                    this.recorder.error();
                    return Poll::Ready(Some(Err(err)));
                }
                None => {
                    *this.ended = true;
                    this.recorder.end();
                }
            }
        }
    }
}
