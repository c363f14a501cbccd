//! [`Answer`]: a response an engine decided itself.

#[cfg(feature = "cache")]
use std::any::Any;
use std::fmt;
#[cfg(feature = "cache")]
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

#[cfg(feature = "cache")]
use crate::cache::entry::Entry;

/// A complete response that an engine decided without calling the service: a `429` or
/// `503` of the rate limiter, a cached response (or `304`) of the cache, the `500` of a
/// failed session.
///
/// It is framework-neutral (`http` 1.x types): each adapter turns it into its own
/// response type in one place (`kv-tower` into an `http::Response`, `kv-actix` into an
/// `HttpResponse`).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers (`Content-Type` included when there is a body).
    pub headers: HeaderMap,
    /// The body: sent as it is, or not at all (a `HEAD` request, a `304`).
    pub body: Bytes,
    /// The stored entry a cache hit was served from.
    served_from: ServedFrom,
}

/// The stored entry an answer was served from, if any: what
/// [`Answer::converted_headers`] keeps its conversion in.
#[derive(Clone, Default)]
pub(crate) struct ServedFrom(#[cfg(feature = "cache")] Option<Arc<Entry>>);

impl PartialEq for ServedFrom {
    /// Always equal: two answers are the same when their status, headers and body are
    /// (where one was served from is a memo of what its headers already say).
    fn eq(&self, _: &ServedFrom) -> bool {
        true
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// An answer from its parts.
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Answer {
        Answer {
            status,
            headers,
            body,
            served_from: ServedFrom::default(),
        }
    }

    #[cfg(feature = "cache")]
    /// A cache hit answered whole from `entry`, its headers a copy of the entry's hit
    /// headers (`Age` set for this hit).
    pub(crate) fn served_from(entry: Arc<Entry>, headers: HeaderMap) -> Answer {
        Answer {
            status: entry.status,
            headers,
            body: entry.body.clone(),
            served_from: ServedFrom(Some(entry)),
        }
    }

    /// `convert(headers)`, made once per stored response and kept with it, for an adapter
    /// that must turn every hit's headers into its framework's own types (kv-actix:
    /// `http` 0.2's). Every later hit on the same stored response gets the same value
    /// back instead of converting again.
    ///
    /// `convert` gets the headers every hit on the response carries, **with `Age: 0`**:
    /// the one header that differs per hit, so the caller takes `Age` from
    /// [`headers`](Answer::headers).
    ///
    /// `None` — convert `headers` yourself — unless this is a cache hit answered whole
    /// from a stored response (not a `304`, a range, or an answer the engine made) and
    /// its headers are still exactly the ones the cache put there: a header added,
    /// removed or replaced since (other than `Age`) gives `None`, so a changed answer is
    /// never sent with stale headers. `None` too when another type was kept for this
    /// response first (two adapters over one cache).
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn converted_headers<T: Any + Send + Sync>(
        &self,
        convert: impl FnOnce(&HeaderMap) -> T,
    ) -> Option<&T> {
        let entry = self.served_from.0.as_ref()?;
        let template = entry.hits.headers.get()?;
        if !same_but_age(template, &self.headers) {
            return None;
        }
        entry
            .hits
            .converted
            .get_or_init(|| Box::new(convert(template)))
            .downcast_ref::<T>()
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

/// Whether `now` holds the values of `template`, in the same order, `Age` aside. Values
/// are compared by address and length, not byte by byte: a hit's headers are clones of
/// the template's, which share its bytes, and bytes that cannot change are equal when
/// their address and length are (a value put there by anyone else lives elsewhere and
/// fails the check, at worst needlessly).
#[cfg(feature = "cache")]
fn same_but_age(template: &HeaderMap, now: &HeaderMap) -> bool {
    template.len() == now.len()
        && template.iter().zip(now).all(|((tn, tv), (n, v))| {
            tn == n
                && (n == header::AGE
                    || (tv.as_bytes().as_ptr() == v.as_bytes().as_ptr() && tv.len() == v.len()))
        })
}
