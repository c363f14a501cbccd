use std::fmt;
use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use kv_core::cache::{Cache, Forward, Lookup, Outcome};
use kv_core::{Step, Store};
use tower_service::Service;

use super::outcome::{respond, served};
use super::{CacheBody, ResponseFuture};
use crate::request::View;

/// The caching service: see the [module docs](crate::cache).
pub struct CacheService<S, St> {
    inner: S,
    cache: Cache<St>,
}

impl<S, St: Store> CacheService<S, St> {
    /// Wraps `inner`.
    pub fn new(inner: S, cache: Cache<St>) -> Self {
        CacheService { inner, cache }
    }

    /// The engine: counters and purging.
    pub fn cache(&self) -> &Cache<St> {
        &self.cache
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, St> Clone for CacheService<S, St> {
    fn clone(&self) -> Self {
        CacheService {
            inner: self.inner.clone(),
            cache: self.cache.clone(),
        }
    }
}

impl<S: fmt::Debug, St: Store> fmt::Debug for CacheService<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheService")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .finish()
    }
}

impl<S, St, ReqB, ResB> Service<Request<ReqB>> for CacheService<S, St>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: Store,
    ReqB: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Send,
{
    type Response = Response<CacheBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, St, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let lookup = match self.cache.lookup(&View::new(&req)) {
            Step::Ready(lookup) => lookup,
            Step::Pending(lookup) => {
                // The store must be awaited: keep the service that was polled ready.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                return ResponseFuture::work(Box::pin(async move {
                    match lookup.await {
                        Lookup::Hit { response, refresh } => {
                            if let Some(refresh) = refresh {
                                spawn_refresh(inner, refresh, req);
                            }
                            Ok(served(response))
                        }
                        Lookup::Forward(forward) => forward_to(inner, forward, req).await,
                    }
                }));
            }
        };
        // Decided in process (a local store, the near cache): no future, no clone.
        match lookup {
            Lookup::Hit { response, refresh } => {
                if let Some(refresh) = refresh {
                    spawn_refresh(self.inner.clone(), refresh, req);
                }
                ResponseFuture::ready(served(response))
            }
            Lookup::Forward(forward) => {
                // Call the service that was polled ready, unboxed.
                let (mut parts, body) = req.into_parts();
                forward.prepare(&mut parts.headers);
                let fut = self.inner.call(Request::from_parts(parts, body));
                ResponseFuture::calling(fut, forward)
            }
        }
    }
}

/// Calls the inner service for a forwarded request and hands its answer to the cache.
async fn forward_to<S, St, ReqB, ResB>(
    mut inner: S,
    forward: Box<Forward<St>>,
    req: Request<ReqB>,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    St: Store,
    ResB: Body<Data = Bytes> + Send + 'static,
{
    let (mut parts, body) = req.into_parts();
    forward.prepare(&mut parts.headers);
    let response = match inner.call(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(err) => {
            return match forward.error() {
                Some(stale) => Ok(served(stale)),
                None => Err(err),
            };
        }
    };
    let (mut head, body) = response.into_parts();
    let mut forward = forward;
    forward.set_body_len(body.size_hint().exact());
    let outcome = forward.response(head.status, &mut head.headers).await;
    Ok(respond(head, body, outcome))
}

/// Runs a `stale-while-revalidate` refresh in the background, when there is a tokio
/// runtime (there is under axum and hyper); otherwise the entry simply goes stale.
///
/// The refresh is the request that was answered stale, sent on as a `GET` with the cache's
/// validators added: its URI, version, headers and its own body (the body of a `GET` or
/// `HEAD` is normally empty; it is what the inner service would have received on a
/// miss), without its extensions. Reusing the request's body, rather than making an
/// empty one, is what lets the cache take any request body type (no `ReqB: Default`,
/// which hyper's `Incoming` is not): a body cannot in general be made, and a hit has no
/// other use for it.
fn spawn_refresh<S, St, ReqB, ResB>(mut inner: S, refresh: Box<Forward<St>>, req: Request<ReqB>)
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: Store,
    ReqB: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
{
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (parts, body) = req.into_parts();
    let mut request = Request::new(body);
    *request.method_mut() = http::Method::GET;
    *request.uri_mut() = parts.uri;
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers;
    refresh.prepare(request.headers_mut());
    handle.spawn(async move {
        if poll_fn(|cx| inner.poll_ready(cx)).await.is_err() {
            return;
        }
        let Ok(response) = inner.call(request).await else {
            tracing::debug!("kv cache: background refresh failed");
            return;
        };
        let (mut head, body) = response.into_parts();
        let mut refresh = refresh;
        refresh.set_body_len(body.size_hint().exact());
        let mut body = std::pin::pin!(body);
        if let Outcome::Record(mut recorder) =
            refresh.response(head.status, &mut head.headers).await
        {
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if let Some(data) = frame.data_ref() {
                            recorder.push(data);
                        }
                    }
                    Err(_) => {
                        recorder.abandon();
                        break;
                    }
                }
            }
            recorder.finish().await;
        }
    });
}
