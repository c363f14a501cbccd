//! The one place where kv-tower builds its own responses.

use bytes::Bytes;
use http::Response;
use kv_core::Answer;

/// A middleware's own answer — a rate-limit rejection, a cached hit or `304`, the session
/// `500` — as kv-core decided it: the inner service is not called for it.
///
/// `B` is whatever body the layer answers in: the cache layer's `KvBody<B>`, or the inner
/// service's own body type (`B: From<Bytes>`), as the rate limit and session layers answer —
/// their allowed responses then pass through with no wrapper, so axum does not box a body
/// of ours per response (see [`crate::body`]).
pub(crate) fn answer<B: From<Bytes>>(answer: Answer) -> Response<B> {
    let mut response = Response::new(B::from(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    response
}
