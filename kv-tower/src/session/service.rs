use std::task::{Context, Poll};

use http::{Request, Response};
use kv_core::session::SessionManager;
use tower_service::Service;

use crate::request::View;

use super::ResponseFuture;

/// The service of [`SessionLayer`](super::SessionLayer).
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    manager: SessionManager,
}

impl<S> SessionService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, manager: SessionManager) -> Self {
        SessionService { inner, manager }
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

impl<S, ReqB, ResB> Service<Request<ReqB>> for SessionService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<bytes::Bytes>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        // Cross-origin protection: refused before the handler runs (no store call).
        if let Some(refusal) = self.manager.check_cross_origin(&View::new(&req)) {
            return ResponseFuture::refused(refusal);
        }
        // No store call and no cookie check here: the session loads on first use.
        let session = self.manager.start(&View::new(&req));
        req.extensions_mut().insert(session.clone());
        ResponseFuture::new(self.inner.call(req), session)
    }
}
