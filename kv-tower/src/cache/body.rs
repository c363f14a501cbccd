use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use kv_core::Store;
use kv_core::cache::Recorder;
use pin_project_lite::pin_project;

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

pin_project! {
    /// The response body of [`CacheService`](super::CacheService): a stored body, or the
    /// inner service's body streaming through (and being copied when cacheable).
    pub struct CacheBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Stored { data: Option<Bytes> },
        Inner {
            #[pin]
            inner: B,
            sink: Option<Box<dyn Sink>>,
            finishing: Option<Finishing>,
            held: Option<Frame<Bytes>>,
            ended: bool,
        },
    }
}

impl<B> CacheBody<B> {
    pub(crate) fn stored(data: Bytes) -> Self {
        CacheBody {
            kind: Kind::Stored {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    pub(crate) fn inner(inner: B, sink: Option<Box<dyn Sink>>) -> Self {
        CacheBody {
            kind: Kind::Inner {
                inner,
                sink,
                finishing: None,
                held: None,
                ended: false,
            },
        }
    }
}

impl<B> fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Stored { data } => f
                .debug_struct("CacheBody::Stored")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Inner { sink, .. } => f
                .debug_struct("CacheBody::Inner")
                .field("recording", &sink.is_some())
                .finish_non_exhaustive(),
        }
    }
}

impl<B> Body for CacheBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Stored { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Inner {
                mut inner,
                sink,
                finishing,
                held,
                ended,
            } => loop {
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
                            let complete =
                                s.is_complete() || inner.as_ref().get_ref().is_end_stream();
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
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Stored { data } => data.is_none(),
            // While recording, the end must be polled so that the entry is stored.
            Kind::Inner {
                inner,
                sink,
                finishing,
                held,
                ended,
            } => {
                sink.is_none()
                    && finishing.is_none()
                    && held.is_none()
                    && (*ended || inner.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Stored { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Inner { inner, .. } => inner.size_hint(),
        }
    }
}
