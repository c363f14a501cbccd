use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The boxed work of one request: the lookup, the inner call, the hand-over.
pub(crate) type Work<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The response future of [`CacheService`](super::CacheService).
pub struct ResponseFuture<T, E> {
    work: Work<T, E>,
}

impl<T, E> ResponseFuture<T, E> {
    pub(crate) fn new(work: Work<T, E>) -> Self {
        ResponseFuture { work }
    }
}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.work.as_mut().poll(cx)
    }
}

impl<T, E> fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
