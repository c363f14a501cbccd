use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use kv_core::cache::BodyRecorder;
use pin_project_lite::pin_project;

use crate::body::KvBody;

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
        recorder: BodyRecorder,
        // Boxed: this body is moved with every response through the layer, and a frame
        // (data or trailers) is 104 bytes; one is held only while the last chunk waits
        // for the store.
        held: Option<Box<Frame<Bytes>>>,
        ended: bool,
    }
}

impl<B> RecordingBody<B> {
    /// `inner`, copied by `recorder` as it is read.
    pub(crate) fn new(inner: B, recorder: BodyRecorder) -> Self {
        RecordingBody {
            inner,
            recorder,
            held: None,
            ended: false,
        }
    }
}

impl<B> fmt::Debug for RecordingBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingBody")
            .field("recorder", &self.recorder)
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
            recorder,
            held,
            ended,
        } = self.project();
        // kv-core's state machine decides; this only polls the inner body and the store.
        loop {
            ready!(recorder.poll_store(cx));
            // While draining (a range sent, the whole response still being recorded), the
            // chunk to send waits for the inner body's end.
            if held.is_some() && !recorder.draining() {
                return Poll::Ready(held.take().map(|frame| Ok(*frame)));
            }
            if *ended {
                return Poll::Ready(held.take().map(|frame| Ok(*frame)));
            }
            match ready!(inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let data = match frame.into_data() {
                        Ok(data) => data,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    };
                    // A server that knows the length from the size hint (axum handlers'
                    // bodies) stops polling once that many bytes went out, so the inner
                    // body's own end counts as the end.
                    let ended_now = inner.as_ref().get_ref().is_end_stream();
                    let hold = recorder.chunk(&data, ended_now, cx);
                    if let Some(out) = recorder.emit(data) {
                        if hold || recorder.draining() {
                            *held = Some(Box::new(Frame::data(out)));
                            continue;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Some(Err(err)) => {
                    recorder.error();
                    return Poll::Ready(Some(Err(err)));
                }
                None => {
                    *ended = true;
                    recorder.end();
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // While recording, the end must be polled so that the entry is stored.
        !self.recorder.is_active()
            && self.held.is_none()
            && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match self.recorder.size() {
            Some(n) => SizeHint::with_exact(n),
            None => self.inner.size_hint(),
        }
    }
}
