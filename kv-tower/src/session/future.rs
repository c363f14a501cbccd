use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderName, HeaderValue, Response};
use kv_core::Step;
use kv_core::session::{Save, Session, SessionError};
use pin_project_lite::pin_project;

use crate::response::answer;

pin_project! {
    /// The response future of [`SessionService`](super::SessionService).
    pub struct ResponseFuture<F, ResB> {
        #[pin]
        state: State<F, ResB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, ResB> {
        Calling { #[pin] fut: F, session: Option<Session> },
        // Refused by the cross-origin check; the inner service was not called.
        Refused { response: Option<Response<ResB>> },
        // Only for a save that waits on the store (boxed by the engine).
        Finishing { #[pin] save: Save, response: Option<Response<ResB>>, header: HeaderName },
    }
}

impl<F, ResB: From<bytes::Bytes>> ResponseFuture<F, ResB> {
    pub(crate) fn new(fut: F, session: Session) -> Self {
        ResponseFuture {
            state: State::Calling {
                fut,
                session: Some(session),
            },
        }
    }

    /// The `403` of the cross-origin check.
    pub(crate) fn refused(refusal: kv_core::Answer) -> Self {
        ResponseFuture {
            state: State::Refused {
                response: Some(answer(refusal)),
            },
        }
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, ResB>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: From<bytes::Bytes>,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { fut, session } => {
                    let response = ready!(fut.poll(cx))?;
                    let Some(session) = session.take() else {
                        return Poll::Ready(Ok(response));
                    };
                    if !session.is_touched() {
                        // Its allocation serves the thread's next request.
                        session.recycle();
                        return Poll::Ready(Ok(response));
                    }
                    let header = session.response_header();
                    match session.end(response.status()) {
                        Step::Ready(outcome) => {
                            session.recycle();
                            return Poll::Ready(Ok(apply(outcome, response, header)));
                        }
                        Step::Pending(save) => {
                            this.state.set(State::Finishing {
                                save,
                                response: Some(response),
                                header,
                            });
                        }
                    }
                }
                StateProj::Refused { response } => {
                    return match response.take() {
                        Some(response) => Poll::Ready(Ok(response)),
                        None => Poll::Pending,
                    };
                }
                StateProj::Finishing {
                    save,
                    response,
                    header,
                } => {
                    let outcome = ready!(save.poll(cx));
                    let Some(response) = response.take() else {
                        return Poll::Pending;
                    };
                    let header = std::mem::replace(header, http::header::SET_COOKIE);
                    return Poll::Ready(Ok(apply(outcome, response, header)));
                }
            }
        }
    }
}

/// The response once the session is finished: with its `Set-Cookie` (or token header),
/// or a 500.
fn apply<B: From<bytes::Bytes>>(
    outcome: Result<Option<HeaderValue>, SessionError>,
    mut response: Response<B>,
    header: HeaderName,
) -> Response<B> {
    match outcome {
        Ok(None) => response,
        Ok(Some(cookie)) => {
            response.headers_mut().append(header, cookie);
            response
        }
        // Logged by the engine, without the session id.
        Err(err) => answer(err.answer()),
    }
}
