//! [`KvBody`]: the response body of the cache layer.
//!
//! [`CacheLayer`](crate::CacheLayer) answers `Response<KvBody<B>>`, where `B` is the inner
//! service's body: either its own answer (a cached hit or `304`: a complete [`Bytes`]
//! body) or the inner body, untouched. It therefore asks nothing of the inner body type
//! but what it passes on. The rate-limit and session layers answer in `B` itself (they
//! need `B: From<Bytes>` for their own answers), and `KvBody<B>` is `From<Bytes>`, so the
//! layers stack in any order as plain tower services (`ServiceBuilder`, a hyper server),
//! not only inside an axum `Router`.
//!
//! `KvBody<B>` is an [`http_body::Body`] with `Data = Bytes` and `B`'s error whenever `B`
//! is one, so it satisfies axum's `IntoResponse` for `Response<KvBody<B>>` when `B` does
//! (`B::Error: Into<BoxError>`). Size hints and end-of-stream are forwarded as they are:
//! an exact length stays exact, an empty body (a `HEAD`, a `204`) stays known empty.
//!
//! Wrapping costs one `match` per poll and no allocation. In an axum `Router`, axum turns
//! every layer's body other than its own `Body` into one (`Body::new`, a box per response),
//! as it does for tower-http's bodies: that is axum's cost of a layer with its own body
//! type, and why the two layers that do not need one answer in `B`.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// A kv-tower middleware's response body: its own complete answer, or the inner
    /// service's body `B` streaming through. See the [module docs](crate::body).
    pub struct KvBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        // `None` once sent (or from the start, for an empty answer).
        Full { data: Option<Bytes> },
        Inner { #[pin] inner: B },
    }
}

impl<B> KvBody<B> {
    /// The inner service's body, passed through.
    pub fn new(inner: B) -> Self {
        KvBody {
            kind: Kind::Inner { inner },
        }
    }

    /// A complete body of `data` (sent as one frame; none when empty).
    pub fn full(data: Bytes) -> Self {
        KvBody {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        KvBody {
            kind: Kind::Full { data: None },
        }
    }
}

impl<B> Default for KvBody<B> {
    /// An empty body.
    fn default() -> Self {
        KvBody::empty()
    }
}

impl<B> From<Bytes> for KvBody<B> {
    /// A complete body of `data`: what a middleware needing `From<Bytes>` builds.
    fn from(data: Bytes) -> Self {
        KvBody::full(data)
    }
}

impl<B> fmt::Debug for KvBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full { data } => f
                .debug_struct("KvBody::Full")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Inner { .. } => f.debug_struct("KvBody::Inner").finish_non_exhaustive(),
        }
    }
}

impl<B> Body for KvBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Inner { inner } => inner.poll_frame(cx),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Inner { inner } => inner.is_end_stream(),
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Inner { inner } => inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{BodyExt, Empty, Full};

    use super::*;

    #[tokio::test]
    async fn a_full_body_is_one_exact_frame() {
        let body: KvBody<Empty<Bytes>> = KvBody::full(Bytes::from_static(b"hello"));
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.expect("infallible").to_bytes();
        assert_eq!(bytes, "hello");
    }

    #[tokio::test]
    async fn an_empty_body_is_known_ended() {
        for body in [
            KvBody::<Full<Bytes>>::full(Bytes::new()),
            KvBody::empty(),
            KvBody::default(),
            KvBody::from(Bytes::new()),
        ] {
            assert!(body.is_end_stream());
            assert_eq!(body.size_hint().exact(), Some(0));
            let mut body = std::pin::pin!(body);
            assert!(body.frame().await.is_none());
        }
    }

    #[tokio::test]
    async fn the_inner_body_is_forwarded() {
        let body = KvBody::new(Full::new(Bytes::from_static(b"abc")));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert!(!body.is_end_stream());
        let bytes = body.collect().await.map_err(|e: Infallible| e);
        assert_eq!(bytes.expect("infallible").to_bytes(), "abc");
        let empty = KvBody::new(Empty::<Bytes>::new());
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }
}
