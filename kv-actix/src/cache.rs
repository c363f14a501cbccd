//! Response caching for actix-web: [`Cache`], the same engine as `kv_tower`'s
//! `CacheLayer` ([`kv_core::cache`]), as an actix `Transform`.
//!
//! ```
//! # #[actix_web::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use actix_web::{App, HttpResponse, test, web};
//! use kv_core::{MemoryStore, cache::Cache as Engine};
//!
//! let engine = Engine::builder(MemoryStore::new()).build()?;
//! let app = test::init_service(
//!     App::new().wrap(kv_actix::Cache::new(engine)).route(
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
//! Every decision is the engine's; this middleware converts the request head (method,
//! URI, headers) to `http` 1.x for the lookup, the response head back and forth, and copies
//! a cacheable body while it streams to the client (the entry is stored when the body
//! ends; a body error, a client gone mid-body or a body over the bound stores nothing).
//! Unlike under tower, `stale-while-revalidate` serves the stale entry without a
//! background refresh (actix cannot build a second request outside its server); the next
//! request after the stale window refreshes it. `stale-if-error` applies to 5xx
//! responses, which is how actix handlers' errors arrive.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{
    HeaderMap as ActixHeaders, HeaderName as ActixName, HeaderValue as ActixValue,
};
use actix_web::{Error, HttpResponse};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use kv_core::Store;
use kv_core::cache::{Cache as Engine, Lookup, Outcome, Recorder, RequestHead, Served};
use pin_project_lite::pin_project;

use crate::view::{actix_status, method, status};

/// The cache middleware: `App::wrap(Cache::new(engine))`, or on a `Scope` / `Resource`.
pub struct Cache<St> {
    engine: Engine<St>,
}

impl<St: Store> Cache<St> {
    /// A middleware over `engine` (its store, policy and counters).
    pub fn new(engine: Engine<St>) -> Self {
        Cache { engine }
    }

    /// The engine: counters and purging.
    pub fn engine(&self) -> &Engine<St> {
        &self.engine
    }
}

impl<St> Clone for Cache<St> {
    fn clone(&self) -> Self {
        Cache {
            engine: self.engine.clone(),
        }
    }
}

impl<St: Store> fmt::Debug for Cache<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("engine", &self.engine)
            .finish()
    }
}

impl<S, B, St> Transform<S, ServiceRequest> for Cache<St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    St: Store,
{
    type Response = ServiceResponse<EitherBody<CacheBody<B, St>, BoxBody>>;
    type Error = Error;
    type Transform = CacheMiddleware<S, St>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CacheMiddleware {
            service: Rc::new(service),
            engine: self.engine.clone(),
        }))
    }
}

/// The service [`Cache`] wraps around the inner one.
pub struct CacheMiddleware<S, St> {
    service: Rc<S>,
    engine: Engine<St>,
}

impl<S, St: Store> fmt::Debug for CacheMiddleware<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheMiddleware")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

type Reply<B, St> = Result<ServiceResponse<EitherBody<CacheBody<B, St>, BoxBody>>, Error>;

impl<S, B, St> Service<ServiceRequest> for CacheMiddleware<S, St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    St: Store,
{
    type Response = ServiceResponse<EitherBody<CacheBody<B, St>, BoxBody>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Reply<B, St>>>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let engine = self.engine.clone();
        Box::pin(async move {
            let method = method(req.method());
            let uri = http::Uri::try_from(req.uri().to_string()).unwrap_or_default();
            let mut headers = to_http(req.headers());
            let lookup = engine
                .lookup(RequestHead::new(&method, &uri, &headers))
                .await;
            let forward = match lookup {
                Lookup::Hit { response, refresh } => {
                    // No background refresh under actix: a second dispatch would need a
                    // second `HttpRequest`, which actix cannot build outside its server.
                    // The stale entry is served; once its stale window ends, a request
                    // goes to the handler as usual.
                    drop(refresh);
                    return Ok(served(req, response));
                }
                Lookup::Forward(forward) => forward,
            };
            // Revalidation replaces the client's conditionals with the entry's validators.
            forward.prepare(&mut headers);
            sync_conditionals(&headers, req.headers_mut());
            // actix handlers' errors arrive as (5xx) responses, where `stale-if-error`
            // applies; a service that fails outright has no request left to answer with.
            let response = service.call(req).await?;
            let mut head = to_http(response.headers());
            let outcome = forward.response(status(response.status()), &mut head).await;
            Ok(match outcome {
                Outcome::Pass => {
                    let mut response = response;
                    replace_headers(response.headers_mut(), &head);
                    response.map_body(|_, body| EitherBody::left(CacheBody::new(body, None)))
                }
                Outcome::Record(recorder) => {
                    let mut response = response;
                    replace_headers(response.headers_mut(), &head);
                    response
                        .map_body(|_, body| EitherBody::left(CacheBody::new(body, Some(recorder))))
                }
                Outcome::Replace(replacement) => {
                    let (http_req, _) = response.into_parts();
                    served(
                        ServiceRequest::from_parts(http_req, Payload::None),
                        replacement,
                    )
                }
            })
        })
    }
}

/// A response from the cache.
fn served<B, St: Store>(
    req: ServiceRequest,
    s: Served,
) -> ServiceResponse<EitherBody<CacheBody<B, St>, BoxBody>> {
    let mut response = HttpResponse::new(actix_status(s.status));
    let map = response.headers_mut();
    for (name, value) in &s.headers {
        if let Some((name, value)) = crate::view::header(name, value) {
            map.append(name, value);
        }
    }
    let response = response.set_body(BoxBody::new(s.body));
    req.into_response(response)
        .map_body(|_, body| EitherBody::right(body))
}

/// actix-web's headers as `http` 1.x's.
fn to_http(headers: &ActixHeaders) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Makes actix-web's headers equal to `head` (the engine may add, change or remove some).
fn replace_headers(target: &mut ActixHeaders, head: &HeaderMap) {
    target.clear();
    for (name, value) in head {
        if let Some((name, value)) = crate::view::header(name, value) {
            target.append(name, value);
        }
    }
}

/// Copies the conditional request headers `prepare` may have rewritten.
fn sync_conditionals(from: &HeaderMap, to: &mut ActixHeaders) {
    for name in [
        http::header::IF_NONE_MATCH,
        http::header::IF_MODIFIED_SINCE,
        http::header::IF_MATCH,
        http::header::IF_UNMODIFIED_SINCE,
    ] {
        let Ok(actix_name) = ActixName::from_bytes(name.as_str().as_bytes()) else {
            continue;
        };
        to.remove(&actix_name);
        for value in from.get_all(&name) {
            if let Ok(value) = ActixValue::from_bytes(value.as_bytes()) {
                to.append(actix_name.clone(), value);
            }
        }
    }
}

type Finishing = Pin<Box<dyn Future<Output = ()>>>;

pin_project! {
    /// The inner service's body on its way to the client, copied into the cache's
    /// recorder when the response is cacheable. The entry is stored before the body's end
    /// is reported, so the next request finds it.
    pub struct CacheBody<B, St: Store> {
        #[pin]
        inner: B,
        recorder: Option<Box<Recorder<St>>>,
        finishing: Option<Finishing>,
        held: Option<Bytes>,
        ended: bool,
    }
}

impl<B, St: Store> CacheBody<B, St> {
    fn new(inner: B, recorder: Option<Box<Recorder<St>>>) -> Self {
        CacheBody {
            inner,
            recorder,
            finishing: None,
            held: None,
            ended: false,
        }
    }
}

impl<B, St: Store> fmt::Debug for CacheBody<B, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBody")
            .field("recording", &self.recorder.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: MessageBody, St: Store> MessageBody for CacheBody<B, St> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let mut this = self.project();
        loop {
            if let Some(finishing) = this.finishing.as_mut() {
                if finishing.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                *this.finishing = None;
                if let Some(chunk) = this.held.take() {
                    return Poll::Ready(Some(Ok(chunk)));
                }
                if *this.ended {
                    return Poll::Ready(None);
                }
            }
            if *this.ended {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let Some(recorder) = this.recorder.as_mut() else {
                        return Poll::Ready(Some(Ok(chunk)));
                    };
                    recorder.push(&chunk);
                    if !recorder.is_recording() {
                        *this.recorder = None;
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    if recorder.is_complete() {
                        // All `Content-Length` bytes are in: store before handing out the
                        // last chunk (actix may stop polling after it).
                        if let Some(recorder) = this.recorder.take() {
                            *this.finishing = Some(Box::pin((*recorder).finish()));
                            *this.held = Some(chunk);
                            continue;
                        }
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(Some(Err(err))) => {
                    if let Some(mut recorder) = this.recorder.take() {
                        recorder.abandon();
                    }
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => {
                    *this.ended = true;
                    if let Some(recorder) = this.recorder.take() {
                        *this.finishing = Some(Box::pin((*recorder).finish()));
                        continue;
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}
