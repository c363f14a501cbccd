//! Answering from a stored entry: the entry itself, or a `304`, with `Age` and the status
//! header.

use bytes::Bytes;
use http::header::AGE;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::Cache;
use super::entry::Entry;
use super::policy;
use crate::{Answer, Store};

impl<St: Store> Cache<St> {
    /// Builds the response for a stored entry: the entry, or a `304` when the request's
    /// conditionals match; `Age` and the status header added.
    pub(super) fn serve(
        &self,
        entry: &Entry,
        request: &HeaderMap,
        is_head: bool,
        now: u64,
    ) -> Answer {
        let age = entry.age(now) / 1000;
        let (status, mut headers, body) = if policy::not_modified(entry, request) {
            let mut h = HeaderMap::with_capacity(8);
            for name in &policy::HEADERS_OF_304 {
                for v in entry.headers.get_all(name) {
                    h.append(name.clone(), v.clone());
                }
            }
            (StatusCode::NOT_MODIFIED, h, Bytes::new())
        } else {
            let mut headers = entry
                .hit_headers
                .get_or_init(|| {
                    let mut h = HeaderMap::with_capacity(entry.headers.len() + 2);
                    for (name, value) in &entry.headers {
                        h.append(name.clone(), value.clone());
                    }
                    h.insert(AGE, age_value(0));
                    if let Some(name) = &self.inner.config.status_header {
                        h.insert(name.clone(), HeaderValue::from_static("HIT"));
                    }
                    h
                })
                .clone();
            headers.insert(AGE, age_value(age));
            let body = if is_head {
                Bytes::new()
            } else {
                entry.body.clone()
            };
            return Answer {
                status: entry.status,
                headers,
                body,
            };
        };
        headers.insert(AGE, age_value(age));
        if let Some(name) = &self.inner.config.status_header {
            headers.insert(name.clone(), HeaderValue::from_static("HIT"));
        }
        Answer {
            status,
            headers,
            body,
        }
    }
}

/// An `Age` header value; the first hour's are made once and shared.
pub(super) fn age_value(secs: u64) -> HeaderValue {
    static AGES: std::sync::OnceLock<Vec<HeaderValue>> = std::sync::OnceLock::new();
    const SHARED: u64 = 3600;
    if secs < SHARED {
        let ages = AGES.get_or_init(|| (0..SHARED).map(HeaderValue::from).collect());
        if let Some(v) = usize::try_from(secs).ok().and_then(|i| ages.get(i)) {
            return v.clone();
        }
    }
    HeaderValue::from(secs)
}
