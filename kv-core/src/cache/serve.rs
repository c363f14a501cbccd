//! Answering from a stored entry: the entry itself, or a `304`, with `Age` and the status
//! header.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{AGE, CONTENT_LENGTH};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::entry::Entry;
use super::{Asks, Cache};
use super::{policy, range};
use crate::{Answer, Store};

impl<St: Store> Cache<St> {
    /// Builds the response for a stored entry: the entry, or a `304` when the request's
    /// conditionals match; `Age` and the status header added.
    pub(super) fn serve(
        &self,
        entry: Arc<Entry>,
        request: &HeaderMap,
        is_head: bool,
        now: u64,
    ) -> Answer {
        self.serve_asked(entry, request, Asks::of(request), is_head, now)
    }

    /// [`serve`](Self::serve) with what the request asks already known (a hit's one pass
    /// over its headers).
    pub(super) fn serve_asked(
        &self,
        entry: Arc<Entry>,
        request: &HeaderMap,
        asks: Asks,
        is_head: bool,
        now: u64,
    ) -> Answer {
        let age = entry.age(now) / 1000;
        let not_modified = asks.conditional && policy::not_modified(&entry, request);
        let (status, mut headers, body) = if not_modified {
            let mut h = HeaderMap::with_capacity(8);
            for name in &policy::HEADERS_OF_304 {
                for v in entry.headers.get_all(name) {
                    h.append(name.clone(), v.clone());
                }
            }
            (StatusCode::NOT_MODIFIED, h, Bytes::new())
        } else {
            let mut headers = entry
                .hits
                .headers
                .get_or_init(|| {
                    let mut h = HeaderMap::with_capacity(entry.headers.len() + 2);
                    // `Age` first: a hit rewrites it in place (below) instead of a
                    // hashed insert.
                    h.insert(AGE, age_value(0));
                    for (name, value) in &entry.headers {
                        if name != AGE {
                            h.append(name.clone(), value.clone());
                        }
                    }
                    // The length every server would add for this complete body (axum's
                    // route, hyper, actix): present already, so that adding it does not
                    // grow the map cloned per hit (a reallocation and a copy per request).
                    // It is also the length a `HEAD` answer carries without the body
                    // (RFC 9110 section 9.3.2). (An informational status is never stored.)
                    if entry.status != StatusCode::NO_CONTENT
                        && !entry.status.is_informational()
                        && !entry.headers.contains_key(CONTENT_LENGTH)
                    {
                        h.insert(CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
                    }
                    if let Some(name) = &self.inner.config.status_header {
                        h.insert(name.clone(), HeaderValue::from_static("HIT"));
                    }
                    h
                })
                .clone();
            match headers.iter_mut().next() {
                Some((name, value)) if name == AGE => *value = age_value(age),
                _ => {
                    headers.insert(AGE, age_value(age));
                }
            }
            if is_head {
                let mut answer = Answer::served_from(entry, headers);
                answer.body = Bytes::new();
                return answer;
            }
            if asks.range {
                let selected = range::select(
                    request,
                    entry.status,
                    &entry.headers,
                    entry.body.len() as u64,
                );
                if let (Some(status), Some((start, end))) =
                    (selected.apply(&mut headers), selected.window())
                {
                    let body = entry.body.slice(to_usize(start)..to_usize(end));
                    return Answer::new(status, headers, body);
                }
            }
            return Answer::served_from(entry, headers);
        };
        headers.insert(AGE, age_value(age));
        if let Some(name) = &self.inner.config.status_header {
            headers.insert(name.clone(), HeaderValue::from_static("HIT"));
        }
        Answer::new(status, headers, body)
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

/// A window bound into the body (at most its length, which fits `usize`).
fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
