//! Every rule of the cache policy, on a MemoryStore and a ManualClock (no sleeping).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};

use super::*;

mod body;
mod coalescing;
mod config;
mod freshness;
mod in_place;
mod keys;
mod revalidation;
mod v2;
use crate::clock::{Clock, ManualClock};
use crate::{MemoryStore, Store, Ttl};

/// What the client got, and whether the origin was asked.
#[derive(Debug)]
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// The request the origin saw (its headers), if it was called.
    origin_saw: Option<HeaderMap>,
}

impl Got {
    fn served_by_cache(&self) -> bool {
        self.origin_saw.is_none()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An origin answer.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: &'static [u8],
}

fn ok(headers: &[(&'static str, &str)], body: &'static [u8]) -> Answer {
    answer(200, headers, body)
}

fn answer(status: u16, headers: &[(&'static str, &str)], body: &'static [u8]) -> Answer {
    Answer {
        status: StatusCode::from_u16(status).expect("status"),
        headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        body,
    }
}

struct Harness {
    cache: Cache<MemoryStore>,
    clock: ManualClock,
    store: MemoryStore,
}

fn harness() -> Harness {
    harness_with(|b| b)
}

fn harness_with(f: impl FnOnce(CacheBuilder<MemoryStore>) -> CacheBuilder<MemoryStore>) -> Harness {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let cache = f(Cache::builder(store.clone()).clock(clock.clone()))
        .build()
        .expect("valid");
    Harness {
        cache,
        clock,
        store,
    }
}

/// A request with this method, URI and headers, as an adapter hands it to the cache.
fn request_of(method: &Method, uri: &Uri, headers: &HeaderMap) -> http::Request<()> {
    let mut request = http::Request::new(());
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers.clone();
    request
}

fn headers(list: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in list {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

impl Harness {
    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    fn date(&self) -> String {
        httpdate::fmt_http_date(self.clock.now())
    }

    async fn get(&self, path: &str, req: &[(&str, &str)], origin: &Answer) -> Got {
        self.request(Method::GET, path, req, origin).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        req: &[(&str, &str)],
        origin: &Answer,
    ) -> Got {
        let uri: Uri = format!("http://example.com{path}").parse().expect("uri");
        let req_headers = headers(req);
        let lookup = self
            .cache
            .lookup(&request_of(&method, &uri, &req_headers))
            .await;
        let forward = match lookup {
            Lookup::Hit { response, .. } => {
                return Got {
                    status: response.status,
                    headers: response.headers,
                    body: response.body,
                    origin_saw: None,
                };
            }
            Lookup::Forward(f) => f,
        };
        let mut sent = req_headers.clone();
        forward.prepare(&mut sent);
        let mut resp_headers = HeaderMap::new();
        for (n, v) in &origin.headers {
            resp_headers.append(*n, HeaderValue::from_str(v).expect("value"));
        }
        let body = Bytes::from_static(origin.body);
        match forward.response(origin.status, &mut resp_headers).await {
            Outcome::Pass => Got {
                status: origin.status,
                headers: resp_headers,
                body,
                origin_saw: Some(sent),
            },
            Outcome::Record(mut rec) => {
                for chunk in body.chunks(3) {
                    rec.push(chunk);
                }
                rec.finish().await;
                Got {
                    status: origin.status,
                    headers: resp_headers,
                    body,
                    origin_saw: Some(sent),
                }
            }
            Outcome::Replace(s) => Got {
                status: s.status,
                headers: s.headers,
                body: s.body,
                origin_saw: Some(sent),
            },
        }
    }
}

/// An adapter's conversion of a hit's headers is made once per stored response and
/// reused; a hit whose headers were changed after the lookup (or a `304`) gets none, so
/// a changed answer is never sent with the headers converted for another.
#[tokio::test]
async fn converted_headers_are_kept_per_entry_and_refused_for_changed_headers() {
    let cache = Cache::builder(MemoryStore::new()).build().expect("valid");
    let request = http::Request::get("http://example.com/a")
        .body(())
        .expect("request");
    let Lookup::Forward(forward) = cache.lookup(&request).await else {
        panic!("empty cache")
    };
    let mut head = HeaderMap::new();
    head.insert("cache-control", HeaderValue::from_static("max-age=60"));
    head.insert("etag", HeaderValue::from_static("\"v1\""));
    let Outcome::Record(mut recorder) = forward.response(StatusCode::OK, &mut head).await else {
        panic!("storable")
    };
    recorder.push(b"hello");
    recorder.finish().await;

    let hit = || async {
        match cache.lookup(&request).await {
            Lookup::Hit { response, .. } => response,
            Lookup::Forward(_) => panic!("stored"),
        }
    };
    let calls = AtomicUsize::new(0);
    let convert = |h: &HeaderMap| {
        calls.fetch_add(1, Ordering::SeqCst);
        h.len()
    };
    let first = hit().await;
    let len = *first.converted_headers(convert).expect("a whole hit");
    assert_eq!(len, first.headers.len());
    let second = hit().await;
    assert_eq!(second.converted_headers(convert), Some(&len));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "converted once per entry");
    // Another type than the one kept: none.
    assert!(second.converted_headers(|_| "other").is_none());

    // A header replaced, added or removed after the lookup: none.
    let mut replaced = hit().await;
    replaced
        .headers
        .insert("etag", HeaderValue::from_static("\"forged\""));
    assert!(replaced.converted_headers(convert).is_none());
    let mut added = hit().await;
    added
        .headers
        .append("set-cookie", HeaderValue::from_static("a=b"));
    assert!(added.converted_headers(convert).is_none());
    let mut removed = hit().await;
    removed.headers.remove("etag");
    assert!(removed.converted_headers(convert).is_none());

    // A 304 is made per request: none.
    let conditional = http::Request::get("http://example.com/a")
        .header("if-none-match", "\"v1\"")
        .body(())
        .expect("request");
    let Lookup::Hit { response, .. } = cache.lookup(&conditional).await else {
        panic!("stored")
    };
    assert_eq!(response.status, StatusCode::NOT_MODIFIED);
    assert!(response.converted_headers(convert).is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
