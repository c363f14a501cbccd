use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use kv_core::session::{Finish, Session, SessionError};
use pin_project_lite::pin_project;

use crate::body::KvBody;
use crate::response::answer;

type Finishing = Pin<Box<dyn Future<Output = Result<Option<HeaderValue>, SessionError>> + Send>>;

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
        // Only for a save that waits on the store: boxed; every other path is not.
        Finishing { finishing: Finishing, response: Option<Response<ResB>> },
    }
}

impl<F, ResB> ResponseFuture<F, ResB> {
    pub(crate) fn new(fut: F, session: Session) -> Self {
        ResponseFuture {
            state: State::Calling {
                fut,
                session: Some(session),
            },
        }
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, ResB>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<KvBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { fut, session } => {
                    let response = ready!(fut.poll(cx))?;
                    let Some(session) = session.take().filter(Session::is_touched) else {
                        return Poll::Ready(Ok(response.map(KvBody::new)));
                    };
                    match session.end(response.status()) {
                        Finish::Done(outcome) => return Poll::Ready(Ok(apply(outcome, response))),
                        Finish::Save(save) => {
                            let finishing: Finishing = Box::pin(save.run());
                            this.state.set(State::Finishing {
                                finishing,
                                response: Some(response),
                            });
                        }
                    }
                }
                StateProj::Finishing {
                    finishing,
                    response,
                } => {
                    let outcome = ready!(finishing.as_mut().poll(cx));
                    let Some(response) = response.take() else {
                        return Poll::Pending;
                    };
                    return Poll::Ready(Ok(apply(outcome, response)));
                }
            }
        }
    }
}

/// The response once the session is finished: with its `Set-Cookie`, or a 500.
fn apply<B>(
    outcome: Result<Option<HeaderValue>, SessionError>,
    response: Response<B>,
) -> Response<KvBody<B>> {
    match outcome {
        Ok(None) => response.map(KvBody::new),
        Ok(Some(cookie)) => {
            let mut response = response.map(KvBody::new);
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        // Logged by the engine, without the session id.
        Err(_) => failure(),
    }
}

/// The answer when the session store failed: an opaque 500.
fn failure<B>() -> Response<KvBody<B>> {
    let mut headers = HeaderMap::with_capacity(1);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        headers,
        Bytes::from_static(b"Internal Server Error"),
    )
}
