use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The boxed work of one request that waits: a store round trip or the inner call.
pub(crate) type Work<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The response future of [`CacheService`](super::CacheService): ready at once for a hit
/// answered in process, else the boxed work.
pub struct ResponseFuture<T, E> {
    state: State<T, E>,
}

enum State<T, E> {
    Ready(Option<T>),
    Work(Work<T, E>),
}

impl<T, E> ResponseFuture<T, E> {
    pub(crate) fn ready(response: T) -> Self {
        ResponseFuture {
            state: State::Ready(Some(response)),
        }
    }

    pub(crate) fn new(work: Work<T, E>) -> Self {
        ResponseFuture {
            state: State::Work(work),
        }
    }
}

// No field is structurally pinned: the boxed work is pinned on the heap.
impl<T, E> Unpin for ResponseFuture<T, E> {}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Ready(response) => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Pending,
            },
            State::Work(work) => work.as_mut().poll(cx),
        }
    }
}

impl<T, E> fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
