//! [`Answer`]: a response an engine decided itself.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

/// A complete response that an engine decided without calling the service: a `429` or
/// `503` of the rate limiter, a cached response (or `304`) of the cache, the `500` of a
/// failed session.
///
/// It is framework-neutral (`http` 1.x types): each adapter turns it into its own
/// response type in one place (`kv-tower` into an `http::Response`, `kv-actix` into an
/// `HttpResponse`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers (`Content-Type` included when there is a body).
    pub headers: HeaderMap,
    /// The body: sent as it is, or not at all (a `HEAD` request, a `304`).
    pub body: Bytes,
}

impl Answer {
    /// An answer from its parts.
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Answer {
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A `text/plain; charset=utf-8` answer.
    pub fn text(status: StatusCode, text: &'static str) -> Answer {
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Answer::new(status, headers, Bytes::from_static(text.as_bytes()))
    }
}
