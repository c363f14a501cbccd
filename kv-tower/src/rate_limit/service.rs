use std::fmt;
use std::task::{Context, Poll};

use http::{Request, Response};
use kv_core::Step;
use kv_core::Store;
use kv_core::rate_limit::{Decision, Headers, RateLimiter, Verdict};
use tower_service::Service;

use super::ResponseFuture;
use super::future::After;
use crate::request::View;

/// The rate-limiting service: see the [module docs](crate::rate_limit).
pub struct RateLimit<S, St> {
    inner: S,
    limiter: RateLimiter<St>,
}

impl<S, St: Store> RateLimit<S, St> {
    /// Wraps `inner`.
    pub fn new(inner: S, limiter: RateLimiter<St>) -> Self {
        RateLimit { inner, limiter }
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

impl<S: Clone, St> Clone for RateLimit<S, St> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

impl<S: fmt::Debug, St: Store> fmt::Debug for RateLimit<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S, St, ReqB, ResB> Service<Request<ReqB>> for RateLimit<S, St>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    St: Store,
    ReqB: Send + 'static,
    ResB: From<bytes::Bytes>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S, ReqB, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The common case writes its headers here and moves no verdict.
        let mut headers = Headers::new();
        let decide = match self.limiter.admit_into(&View::new(&req), &mut headers) {
            None => return ResponseFuture::calling(self.inner.call(req), headers, None),
            Some(Step::Ready(verdict)) => {
                return answer(&mut self.inner, &self.limiter, verdict, req);
            }
            Some(Step::Pending(decide)) => decide,
        };
        // The store must be asked: keep the service that was polled ready for later.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        ResponseFuture::deciding(Box::pin(async move {
            let (verdict, mut req) = (decide.await, req);
            let (verdict, after) = match verdict {
                Verdict::Allow { headers, decision } => {
                    let after = prepare(&limiter, &mut req, decision);
                    let verdict = Verdict::Allow {
                        headers,
                        decision: None,
                    };
                    (verdict, after)
                }
                rejected => (rejected, None),
            };
            (verdict, ready, req, after)
        }))
    }
}

/// Calls the service for an allowed verdict, or answers for it.
fn answer<S, St: Store, ReqB, ResB>(
    inner: &mut S,
    limiter: &RateLimiter<St>,
    verdict: Verdict,
    mut req: Request<ReqB>,
) -> ResponseFuture<S::Future, S, ReqB, ResB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<bytes::Bytes>,
{
    match verdict {
        Verdict::Allow { headers, decision } => {
            let after = prepare(limiter, &mut req, decision);
            ResponseFuture::calling(inner.call(req), headers, after)
        }
        Verdict::Reject { answer, .. } => ResponseFuture::answered(answer),
    }
}

/// Before the call: the decision where the handler can read it (`Extension<Decision>`),
/// if asked, and the charge after the response, if a policy counts by outcome.
fn prepare<St: Store, B>(
    limiter: &RateLimiter<St>,
    req: &mut Request<B>,
    decision: Option<Decision>,
) -> Option<After> {
    let decision = decision?;
    let after = limiter.charge_after(&decision);
    if limiter.decision_in_extensions() {
        req.extensions_mut().insert(decision);
    }
    after
}
