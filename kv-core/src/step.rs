//! [`Step`]: done now, or the work still to await — the one shape of every call that can
//! finish without waiting.

use std::future::{Future, IntoFuture, Ready};
use std::pin::Pin;

use futures_util::future::Either;

/// The answer of a call that finishes at once when it can: [`Ready`](Step::Ready) with
/// the result, or [`Pending`](Step::Pending) with the future that still has to be awaited.
///
/// Every engine call that may be answered in process (a rate-limit check, a cache lookup,
/// a session load or save, storing a recorded response) returns a `Step`, so that an
/// adapter answers a request decided in process without creating (or boxing) a future.
/// A `Step` whose future yields the same type is also [`IntoFuture`]: `.await` it when
/// the difference does not matter.
///
/// ```
/// use kv_core::Step;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let now: Step<u32, std::future::Ready<u32>> = Step::Ready(7);
/// assert_eq!(now.await, 7);
/// let later = Step::<u32, _>::Pending(async { 8 });
/// assert!(later.is_pending());
/// assert_eq!(later.await, 8);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a pending step does nothing unless it is awaited"]
pub enum Step<T, F> {
    /// Finished: here is the result.
    Ready(T),
    /// Not finished: await this.
    Pending(F),
}

/// The pending work of an engine call that waits for a remote store: boxed, so that a
/// [`Step`] answered in process stays small (it is moved on every request), and owned
/// (`Send + 'static`), so that an adapter can keep it in its own response future.
pub type StepFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<T, F> Step<T, F> {
    /// `true` for [`Step::Pending`].
    pub fn is_pending(&self) -> bool {
        matches!(self, Step::Pending(_))
    }

    /// Maps the pending work, leaving a ready result as it is.
    pub fn map_pending<G>(self, f: impl FnOnce(F) -> G) -> Step<T, G> {
        match self {
            Step::Ready(value) => Step::Ready(value),
            Step::Pending(work) => Step::Pending(f(work)),
        }
    }
}

impl<T, F: Future<Output = T>> IntoFuture for Step<T, F> {
    type Output = T;
    type IntoFuture = Either<Ready<T>, F>;

    fn into_future(self) -> Self::IntoFuture {
        match self {
            Step::Ready(value) => Either::Left(std::future::ready(value)),
            Step::Pending(work) => Either::Right(work),
        }
    }
}
