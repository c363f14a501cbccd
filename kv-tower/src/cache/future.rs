use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::Response;
use http_body::Body;
use kv_core::cache::Forward;
use kv_core::{Step, Store};
use pin_project_lite::pin_project;

use super::CacheBody;
use super::outcome::{respond, served};

/// Boxed work: a lookup that waits for the store, or a hand-over that does.
pub(crate) type Work<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

pin_project! {
    /// The response future of [`CacheService`](super::CacheService): ready at once for a
    /// hit answered in process; the inner service's future, unboxed, for a miss decided in
    /// process; boxed work when the store must be awaited.
    pub struct ResponseFuture<F, St: Store, B, E> {
        #[pin]
        state: State<F, St, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, St: Store, B, E> {
        Ready { response: Option<Response<CacheBody<B>>> },
        Calling { #[pin] fut: F, forward: Option<Box<Forward<St>>> },
        Work { work: Work<Response<CacheBody<B>>, E> },
    }
}

impl<F, St: Store, B, E> ResponseFuture<F, St, B, E> {
    pub(crate) fn ready(response: Response<CacheBody<B>>) -> Self {
        ResponseFuture {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    pub(crate) fn calling(fut: F, forward: Box<Forward<St>>) -> Self {
        ResponseFuture {
            state: State::Calling {
                fut,
                forward: Some(forward),
            },
        }
    }

    pub(crate) fn work(work: Work<Response<CacheBody<B>>, E>) -> Self {
        ResponseFuture {
            state: State::Work { work },
        }
    }
}

impl<F, St, B, E> Future for ResponseFuture<F, St, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    St: Store,
    B: Body<Data = Bytes> + Send + 'static,
    E: Send + 'static,
{
    type Output = Result<Response<CacheBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Ready { response } => {
                    return match response.take() {
                        Some(r) => Poll::Ready(Ok(r)),
                        None => Poll::Pending,
                    };
                }
                StateProj::Work { work } => return work.as_mut().poll(cx),
                StateProj::Calling { fut, forward } => {
                    let result = ready!(fut.poll(cx));
                    let Some(forward) = forward.take() else {
                        return Poll::Pending;
                    };
                    match hand_over(forward, result) {
                        Ok(Ok(response)) => return Poll::Ready(Ok(response)),
                        Ok(Err(err)) => return Poll::Ready(Err(err)),
                        Err(work) => State::Work { work },
                    }
                }
            };
            state.set(next);
        }
    }
}

/// Hands the inner service's answer to the cache without waiting when it can; otherwise
/// the boxed work that awaits the store (invalidation, freshening).
#[allow(clippy::type_complexity)]
fn hand_over<St, B, E>(
    mut forward: Box<Forward<St>>,
    result: Result<Response<B>, E>,
) -> Result<Result<Response<CacheBody<B>>, E>, Work<Response<CacheBody<B>>, E>>
where
    St: Store,
    B: Body<Data = Bytes> + Send + 'static,
    E: Send + 'static,
{
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            return Ok(match forward.error() {
                Some(stale) => Ok(served(stale)),
                None => Err(err),
            });
        }
    };
    let (mut head, body) = response.into_parts();
    forward.set_body_len(body.size_hint().exact());
    match forward.response(head.status, &mut head.headers) {
        Step::Ready(outcome) => Ok(Ok(respond(head, body, outcome))),
        Step::Pending(handover) => Err(Box::pin(
            async move { Ok(respond(head, body, handover.await)) },
        )),
    }
}

impl<F, St: Store, B, E> fmt::Debug for ResponseFuture<F, St, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
