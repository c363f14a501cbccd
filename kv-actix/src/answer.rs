//! The one conversion of an engine's own response ([`kv_core::Answer`], `http` 1.x) into
//! an actix-web [`HttpResponse`] (`http` 0.2): the rate limiter's rejections, the cache's
//! hits, `304`s and stale answers, and the `500` of a failed session all go through
//! [`to_response`].

use actix_web::HttpResponse;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use bytes::Bytes;
use kv_core::Answer;

use crate::view::{actix_status, header, to_actix};
use actix_web::http::header::{HeaderName as ActixName, HeaderValue as ActixValue};
use http::header::AGE;

/// `answer` as actix-web's response: same status, same headers (in order, repeated names
/// kept), same body.
pub(crate) fn to_response(answer: Answer) -> HttpResponse {
    let Answer {
        status,
        ref headers,
        ref body,
        ..
    } = answer;
    // A `HEAD` answer from the cache has no body but the length the `GET` would have:
    // actix writes `Content-Length` from the body's size, so the body says that size.
    let head_len = if body.is_empty() && status != http::StatusCode::NOT_MODIFIED {
        headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&n| n > 0)
    } else {
        None
    };
    let body = match head_len {
        Some(n) => BoxBody::new(HeadBody(n)),
        None => BoxBody::new(body.clone()),
    };
    let mut response = HttpResponse::with_body(actix_status(status), body);
    let map = response.headers_mut();
    // A hit on a stored response: its headers were converted on its first hit (cloning
    // them costs a fraction of converting every name and value again); only `Age`
    // differs per hit.
    if let Some(converted) = answer.converted_headers(converted_but_age) {
        map.reserve(converted.len() + 1);
        for (name, value) in converted {
            map.append(name.clone(), value.clone());
        }
        if let Some((name, value)) = headers.get(AGE).and_then(|v| header(&AGE, v)) {
            map.append(name, value);
        }
    } else {
        *map = to_actix(headers);
    }
    response
}

/// A stored response's headers as actix-web's, but `Age` (which each hit sets).
fn converted_but_age(headers: &http::HeaderMap) -> Vec<(ActixName, ActixValue)> {
    headers
        .iter()
        .filter(|(name, _)| **name != AGE)
        .filter_map(|(name, value)| header(name, value))
        .collect()
}

/// The body of a `HEAD` answer: the size of the `GET`'s body, no bytes (actix sends no
/// body for a `HEAD` request).
struct HeadBody(u64);

impl MessageBody for HeadBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.0)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, StatusCode};
    use kv_core::Answer;

    use super::to_response;

    #[actix_web::test]
    async fn status_headers_and_body_carry_over() {
        let mut headers = HeaderMap::new();
        headers.append("content-type", HeaderValue::from_static("text/plain"));
        headers.append("x-twice", HeaderValue::from_static("1"));
        headers.append("x-twice", HeaderValue::from_static("2"));
        let answer = Answer::new(
            StatusCode::TOO_MANY_REQUESTS,
            headers,
            Bytes::from("slow down"),
        );
        let response = to_response(answer);
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(
            response.headers().get("content-type").expect("type"),
            "text/plain"
        );
        let twice: Vec<_> = response
            .headers()
            .get_all("x-twice")
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect();
        assert_eq!(twice, ["1", "2"]);
        let body = to_bytes(response.into_body()).await.expect("body");
        assert_eq!(&body[..], b"slow down");
    }
}
