use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use kv_core::Store;
use kv_core::cache::Recorder;
use pin_project_lite::pin_project;

use crate::body::KvBody;

type Finishing = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A type-erased [`Recorder`], so that the body type does not name the store.
pub(crate) trait Sink: Send {
    fn push(&mut self, chunk: &[u8]);
    fn abandon(&mut self);
    fn is_recording(&self) -> bool;
    fn is_complete(&self) -> bool;
    /// Finishes without waiting when it can (`true`: nothing left to do).
    fn finish_now(&mut self) -> bool;
    fn finish(self: Box<Self>) -> Finishing;
}

impl<St: Store> Sink for Recorder<St> {
    fn push(&mut self, chunk: &[u8]) {
        Recorder::push(self, chunk);
    }
    fn abandon(&mut self) {
        Recorder::abandon(self);
    }
    fn is_recording(&self) -> bool {
        Recorder::is_recording(self)
    }
    fn is_complete(&self) -> bool {
        Recorder::is_complete(self)
    }
    fn finish_now(&mut self) -> bool {
        Recorder::finish_now(self)
    }
    fn finish(self: Box<Self>) -> Finishing {
        Box::pin(Recorder::finish(*self))
    }
}

/// The response body of [`CacheService`](super::CacheService): a stored body (a hit, a
/// `304`, a stale entry) answered by the cache, or the inner service's body streaming
/// through it.
pub type CacheBody<B> = KvBody<RecordingBody<B>>;

pin_project! {
    /// The inner service's body on its way through [`CacheService`](super::CacheService):
    /// passed to the client as it arrives, and copied into the store when the response is
    /// being stored. Size hints and end-of-stream are the inner body's.
    #[project = RecordingBodyProj]
    pub struct RecordingBody<B> {
        #[pin]
        inner: B,
        sink: Option<Box<dyn Sink>>,
        finishing: Option<Finishing>,
        held: Option<Frame<Bytes>>,
        ended: bool,
    }
}

impl<B> RecordingBody<B> {
    /// `inner`, copied into `sink` (when there is one) as it is read.
    pub(crate) fn new(inner: B, sink: Option<Box<dyn Sink>>) -> Self {
        RecordingBody {
            inner,
            sink,
            finishing: None,
            held: None,
            ended: false,
        }
    }
}

impl<B> fmt::Debug for RecordingBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingBody")
            .field("recording", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> Body for RecordingBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let RecordingBodyProj {
            mut inner,
            sink,
            finishing,
            held,
            ended,
        } = self.project();
        loop {
            if let Some(f) = finishing.as_mut() {
                ready!(f.as_mut().poll(cx));
                *finishing = None;
                if let Some(frame) = held.take() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if *ended {
                    return Poll::Ready(None);
                }
            }
            if *ended {
                return Poll::Ready(None);
            }
            match ready!(inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let (Some(s), Some(data)) = (sink.as_mut(), frame.data_ref()) {
                        s.push(data);
                        // Complete when the announced bytes are all here, or when the
                        // inner body says it has ended: a server that knows the length
                        // from the size hint (axum handlers' bodies) stops polling once
                        // that many bytes went out, so the end is never polled.
                        let complete = s.is_complete() || inner.as_ref().get_ref().is_end_stream();
                        if !s.is_recording() || (complete && s.finish_now()) {
                            *sink = None;
                        } else if complete && let Some(s) = sink.take() {
                            // Every announced byte is here, and a server may not poll
                            // the body again: store now, without holding the last chunk
                            // when a runtime can finish the write.
                            let mut finish = s.finish();
                            if finish.as_mut().poll(cx).is_pending() {
                                match tokio::runtime::Handle::try_current() {
                                    Ok(rt) => drop(rt.spawn(finish)),
                                    Err(_) => {
                                        *finishing = Some(finish);
                                        *held = Some(frame);
                                        continue;
                                    }
                                }
                            }
                        }
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Some(Err(err)) => {
                    if let Some(mut s) = sink.take() {
                        s.abandon();
                    }
                    return Poll::Ready(Some(Err(err)));
                }
                None => {
                    *ended = true;
                    // The body is complete: store it before ending the stream (the
                    // client already has every byte).
                    if let Some(mut s) = sink.take()
                        && !s.finish_now()
                    {
                        *finishing = Some(s.finish());
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // While recording, the end must be polled so that the entry is stored.
        self.sink.is_none()
            && self.finishing.is_none()
            && self.held.is_none()
            && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
