//! The one place where kv-tower builds its own responses.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};

use crate::body::KvBody;

/// A middleware's own answer — a rate-limit rejection, a cached hit or `304`, the session
/// `500` — with `status`, `headers` and the complete `body`; the inner service is not
/// called for it.
pub(crate) fn answer<B>(
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
) -> Response<KvBody<B>> {
    let mut response = Response::new(KvBody::full(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
