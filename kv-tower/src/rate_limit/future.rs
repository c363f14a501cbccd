use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use kv_core::rate_limit::{Headers, Verdict};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::ResponseBody;

type Decide = Pin<Box<dyn Future<Output = Verdict> + Send>>;

pin_project! {
    /// The response future of [`RateLimit`](super::RateLimit).
    pub struct ResponseFuture<F, S, ReqB, ResB> {
        #[pin]
        state: State<F, S, ReqB, ResB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, ReqB, ResB> {
        Deciding { decide: Decide, inner: Option<S>, req: Option<Request<ReqB>> },
        Calling { #[pin] fut: F, headers: Headers },
        Answered { response: Option<Response<ResponseBody<ResB>>> },
    }
}

impl<F, S, ReqB, ResB> ResponseFuture<F, S, ReqB, ResB> {
    pub(crate) fn deciding(decide: Decide, inner: S, req: Request<ReqB>) -> Self {
        ResponseFuture {
            state: State::Deciding {
                decide,
                inner: Some(inner),
                req: Some(req),
            },
        }
    }

    pub(crate) fn calling(fut: F, headers: Headers) -> Self {
        ResponseFuture {
            state: State::Calling { fut, headers },
        }
    }

    pub(crate) fn answered(verdict: Verdict) -> Self {
        ResponseFuture {
            state: State::Answered {
                response: Some(rejection(verdict)),
            },
        }
    }
}

/// The response for a verdict that does not reach the service.
fn rejection<B>(verdict: Verdict) -> Response<ResponseBody<B>> {
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
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    let map = response.headers_mut();
    for (name, value) in headers {
        map.append(name, value);
    }
    response
}

impl<F, S, ReqB, ResB, E> Future for ResponseFuture<F, S, ReqB, ResB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>, Error = E, Future = F>,
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ResponseBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Deciding { decide, inner, req } => {
                    let verdict = ready!(decide.as_mut().poll(cx));
                    let next = match (verdict, inner.take(), req.take()) {
                        (Verdict::Allow { headers, .. }, Some(mut inner), Some(req)) => {
                            State::Calling {
                                fut: inner.call(req),
                                headers,
                            }
                        }
                        (verdict, _, _) => State::Answered {
                            response: Some(rejection(verdict)),
                        },
                    };
                    this.state.set(next);
                }
                StateProj::Calling { fut, headers } => {
                    let response = ready!(fut.poll(cx))?;
                    let (mut parts, body) = response.into_parts();
                    for (name, value) in std::mem::take(headers) {
                        parts.headers.append(name, value);
                    }
                    return Poll::Ready(Ok(Response::from_parts(parts, ResponseBody::inner(body))));
                }
                StateProj::Answered { response } => {
                    return match response.take() {
                        Some(response) => Poll::Ready(Ok(response)),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}
