//! Every rule of the cache policy, on a MemoryStore and a ManualClock (no sleeping).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};

use super::*;
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
            .lookup(RequestHead::new(&method, &uri, &req_headers))
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

#[tokio::test]
async fn max_age_is_fresh_until_it_is_not() {
    let h = harness();
    let origin = ok(&[("cache-control", "max-age=60")], b"hello");
    let first = h.get("/a", &[], &origin).await;
    assert!(!first.served_by_cache());
    assert_eq!(first.header("x-cache"), Some("MISS"));
    h.advance(59);
    let hit = h.get("/a", &[], &origin).await;
    assert!(hit.served_by_cache());
    assert_eq!(hit.body, Bytes::from_static(b"hello"));
    assert_eq!(hit.header("age"), Some("59"));
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    h.advance(1);
    assert!(!h.get("/a", &[], &origin).await.served_by_cache());
    let stats = h.cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.stored), (1, 2, 2));
}

#[tokio::test]
async fn s_maxage_wins_over_max_age_and_max_age_over_expires() {
    let h = harness();
    let origin = ok(&[("cache-control", "max-age=3600, s-maxage=10")], b"x");
    h.get("/s", &[], &origin).await;
    h.advance(11);
    assert!(!h.get("/s", &[], &origin).await.served_by_cache());

    let expires = httpdate::fmt_http_date(h.clock.now() + Duration::from_secs(3600));
    let origin = ok(
        &[("cache-control", "max-age=5"), ("expires", &expires)],
        b"x",
    );
    h.get("/m", &[], &origin).await;
    h.advance(6);
    assert!(!h.get("/m", &[], &origin).await.served_by_cache());
}

#[tokio::test]
async fn expires_minus_date_gives_freshness_and_an_invalid_expires_none() {
    let h = harness();
    let date = h.date();
    let expires = httpdate::fmt_http_date(h.clock.now() + Duration::from_secs(100));
    let origin = ok(&[("date", &date), ("expires", &expires)], b"x");
    h.get("/e", &[], &origin).await;
    h.advance(99);
    assert!(h.get("/e", &[], &origin).await.served_by_cache());
    h.advance(2);
    assert!(!h.get("/e", &[], &origin).await.served_by_cache());

    let origin = ok(&[("date", &date), ("expires", "0")], b"x");
    h.get("/bad", &[], &origin).await;
    assert!(!h.get("/bad", &[], &origin).await.served_by_cache());
}

#[tokio::test]
async fn without_explicit_freshness_only_the_default_ttl_or_heuristics_cache() {
    let h = harness();
    let plain = ok(&[], b"x");
    h.get("/p", &[], &plain).await;
    assert!(!h.get("/p", &[], &plain).await.served_by_cache());

    let h = harness_with(|b| b.default_ttl(Some(Duration::from_secs(30))));
    h.get("/p", &[], &plain).await;
    h.advance(29);
    assert!(h.get("/p", &[], &plain).await.served_by_cache());
    h.advance(1);
    assert!(!h.get("/p", &[], &plain).await.served_by_cache());
    // not for statuses that are not cacheable by default
    let created = answer(201, &[], b"x");
    h.get("/c", &[], &created).await;
    assert!(!h.get("/c", &[], &created).await.served_by_cache());

    let h = harness_with(|b| b.heuristic_freshness(Some(Duration::from_secs(86_400))));
    let date = h.date();
    let lm = httpdate::fmt_http_date(h.clock.now() - Duration::from_secs(1000));
    let origin = ok(&[("date", &date), ("last-modified", &lm)], b"x");
    h.get("/h", &[], &origin).await;
    h.advance(99); // 10% of 1000 s
    assert!(h.get("/h", &[], &origin).await.served_by_cache());
    h.advance(1);
    assert!(!h.get("/h", &[], &origin).await.served_by_cache());
}

#[tokio::test]
async fn other_statuses_need_explicit_freshness_and_206_304_never_cache() {
    let h = harness();
    let err = answer(500, &[("cache-control", "max-age=60")], b"boom");
    h.get("/500", &[], &err).await;
    assert!(h.get("/500", &[], &err).await.served_by_cache());
    let partial = answer(206, &[("cache-control", "max-age=60")], b"p");
    h.get("/206", &[], &partial).await;
    assert!(!h.get("/206", &[], &partial).await.served_by_cache());
}

#[tokio::test]
async fn no_store_private_set_cookie_and_vary_star_are_never_stored() {
    for hs in [
        vec![("cache-control", "max-age=60, no-store")],
        vec![("cache-control", "max-age=60, private")],
        vec![("cache-control", "max-age=60"), ("set-cookie", "sid=1")],
        vec![
            ("cache-control", "public, max-age=60"),
            ("set-cookie", "sid=1"),
        ],
        vec![("cache-control", "max-age=60"), ("vary", "accept, *")],
    ] {
        let h = harness();
        let origin = ok(&hs, b"secret");
        h.get("/x", &[], &origin).await;
        assert!(!h.get("/x", &[], &origin).await.served_by_cache(), "{hs:?}");
        assert_eq!(h.store.len(), 0, "{hs:?}");
    }
}

#[tokio::test]
async fn must_understand_overrides_no_store_for_statuses_we_implement() {
    let h = harness();
    let origin = ok(
        &[("cache-control", "max-age=60, no-store, must-understand")],
        b"x",
    );
    h.get("/ok", &[], &origin).await;
    assert!(h.get("/ok", &[], &origin).await.served_by_cache());
    let odd = answer(
        299,
        &[("cache-control", "max-age=60, no-store, must-understand")],
        b"x",
    );
    h.get("/odd", &[], &odd).await;
    assert!(!h.get("/odd", &[], &odd).await.served_by_cache());
}

#[tokio::test]
async fn authorization_requests_are_stored_only_when_the_response_allows_it() {
    let auth = [("authorization", "Bearer alice")];
    let h = harness();
    let origin = ok(&[("cache-control", "max-age=60")], b"alice's");
    h.get("/me", &auth, &origin).await;
    assert!(!h.get("/me", &[], &origin).await.served_by_cache());
    for cc in [
        "public, max-age=60",
        "s-maxage=60",
        "max-age=60, must-revalidate",
    ] {
        let h = harness();
        let origin = ok(&[("cache-control", cc)], b"shared");
        h.get("/pub", &auth, &origin).await;
        assert!(
            h.get("/pub", &auth, &origin).await.served_by_cache(),
            "{cc}"
        );
    }
    let h = harness_with(|b| b.cache_authorized(true));
    h.get("/me", &auth, &origin).await;
    assert!(h.get("/me", &auth, &origin).await.served_by_cache());
}

#[tokio::test]
async fn no_cache_is_stored_but_always_revalidated() {
    let h = harness();
    let origin = ok(
        &[
            ("cache-control", "no-cache, max-age=3600"),
            ("etag", "\"v1\""),
        ],
        b"body",
    );
    h.get("/n", &[], &origin).await;
    let second = h
        .get("/n", &[], &answer(304, &[("etag", "\"v1\"")], b""))
        .await;
    let saw = second.origin_saw.expect("revalidated");
    assert_eq!(saw["if-none-match"], "\"v1\"");
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body, Bytes::from_static(b"body"));
    // without a validator there is nothing to revalidate: not stored
    let h = harness();
    let origin = ok(&[("cache-control", "no-cache, max-age=3600")], b"body");
    h.get("/n", &[], &origin).await;
    assert_eq!(h.store.len(), 0);
}

#[tokio::test]
async fn vary_keeps_variants_apart_and_matches_them_again() {
    let h = harness();
    let fr = ok(
        &[
            ("cache-control", "max-age=60"),
            ("vary", "Accept-Language, Accept-Encoding"),
        ],
        b"bonjour",
    );
    let en = ok(
        &[
            ("cache-control", "max-age=60"),
            ("vary", "Accept-Language, Accept-Encoding"),
        ],
        b"hello",
    );
    let req_fr = [("accept-language", "fr"), ("accept-encoding", "gzip")];
    let req_en = [("accept-language", "en"), ("accept-encoding", "gzip")];
    let req_en_br = [("accept-language", "en"), ("accept-encoding", "br")];
    h.get("/v", &req_fr, &fr).await;
    let miss = h.get("/v", &req_en, &en).await;
    assert!(!miss.served_by_cache());
    let got_fr = h.get("/v", &req_fr, &en).await;
    assert!(got_fr.served_by_cache());
    assert_eq!(got_fr.body, Bytes::from_static(b"bonjour"));
    let got_en = h.get("/v", &req_en, &fr).await;
    assert!(got_en.served_by_cache());
    assert_eq!(got_en.body, Bytes::from_static(b"hello"));
    assert!(!h.get("/v", &req_en_br, &en).await.served_by_cache());
    // absent and empty are different values
    let none = h.get("/v", &[], &en).await;
    assert!(!none.served_by_cache());
    assert!(h.get("/v", &[], &en).await.served_by_cache());
    assert!(
        !h.get(
            "/v",
            &[("accept-language", ""), ("accept-encoding", "")],
            &en
        )
        .await
        .served_by_cache()
    );
}

#[tokio::test]
async fn age_counts_the_upstream_age_and_the_time_stored() {
    let h = harness();
    let origin = ok(&[("cache-control", "max-age=100"), ("age", "30")], b"x");
    h.get("/age", &[], &origin).await;
    h.advance(10);
    let hit = h.get("/age", &[], &origin).await;
    assert_eq!(hit.header("age"), Some("40"));
    h.advance(60);
    assert!(!h.get("/age", &[], &origin).await.served_by_cache());
    // apparent age from Date
    let h = harness();
    let old = httpdate::fmt_http_date(h.clock.now() - Duration::from_secs(50));
    let origin = ok(&[("cache-control", "max-age=60"), ("date", &old)], b"x");
    h.get("/date", &[], &origin).await;
    assert_eq!(h.get("/date", &[], &origin).await.header("age"), Some("50"));
    h.advance(10);
    assert!(!h.get("/date", &[], &origin).await.served_by_cache());
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry_without_a_body() {
    let h = harness();
    let origin = ok(
        &[("cache-control", "max-age=60"), ("content-length", "5")],
        b"hello",
    );
    // a HEAD miss is forwarded and not stored (it has no body)
    let head = h
        .request(
            Method::HEAD,
            "/h",
            &[],
            &ok(&[("cache-control", "max-age=60")], b""),
        )
        .await;
    assert!(!head.served_by_cache());
    assert_eq!(h.store.len(), 0);
    h.get("/h", &[], &origin).await;
    let head = h.request(Method::HEAD, "/h", &[], &origin).await;
    assert!(head.served_by_cache());
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("5"));
}

#[tokio::test]
async fn conditional_requests_get_a_304_from_a_fresh_entry() {
    let h = harness();
    let lm = httpdate::fmt_http_date(h.clock.now() - Duration::from_secs(3600));
    let origin = ok(
        &[
            ("cache-control", "max-age=60"),
            ("etag", "W/\"abc\""),
            ("last-modified", &lm),
            ("x-other", "1"),
        ],
        b"body",
    );
    h.get("/c", &[], &origin).await;
    let inm = h
        .get("/c", &[("if-none-match", "\"zzz\", \"abc\"")], &origin)
        .await;
    assert!(inm.served_by_cache());
    assert_eq!(inm.status, StatusCode::NOT_MODIFIED);
    assert!(inm.body.is_empty());
    assert_eq!(inm.header("etag"), Some("W/\"abc\""));
    assert_eq!(inm.header("x-other"), None);
    let no = h.get("/c", &[("if-none-match", "\"zzz\"")], &origin).await;
    assert_eq!(no.status, StatusCode::OK);
    let now = h.date();
    let ims = h.get("/c", &[("if-modified-since", &now)], &origin).await;
    assert_eq!(ims.status, StatusCode::NOT_MODIFIED);
    // If-None-Match takes precedence over If-Modified-Since
    let both = h
        .get(
            "/c",
            &[("if-none-match", "\"zzz\""), ("if-modified-since", &now)],
            &origin,
        )
        .await;
    assert_eq!(both.status, StatusCode::OK);
}

#[tokio::test]
async fn a_stale_entry_is_revalidated_and_a_304_freshens_it_without_a_body() {
    let h = harness();
    let origin = ok(
        &[
            ("cache-control", "max-age=10"),
            ("etag", "\"v1\""),
            ("x-version", "1"),
        ],
        b"the body",
    );
    h.get("/r", &[], &origin).await;
    h.advance(11);
    let not_modified = answer(
        304,
        &[("cache-control", "max-age=20"), ("x-version", "2")],
        b"",
    );
    let got = h.get("/r", &[], &not_modified).await;
    let saw = got.origin_saw.clone().expect("revalidated");
    assert_eq!(saw["if-none-match"], "\"v1\"");
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, Bytes::from_static(b"the body"));
    assert_eq!(got.header("x-version"), Some("2"));
    assert_eq!(h.cache.stats().revalidated, 1);
    h.advance(19);
    let hit = h.get("/r", &[], &origin).await;
    assert!(hit.served_by_cache());
    assert_eq!(hit.header("x-version"), Some("2"));
    // a 200 replaces the entry
    h.advance(2);
    let v2 = ok(
        &[("cache-control", "max-age=60"), ("etag", "\"v2\"")],
        b"new",
    );
    assert_eq!(h.get("/r", &[], &v2).await.body, Bytes::from_static(b"new"));
    assert_eq!(
        h.get("/r", &[], &origin).await.body,
        Bytes::from_static(b"new")
    );
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_once_and_hands_out_one_refresh() {
    let h = harness();
    let origin = ok(
        &[("cache-control", "max-age=10, stale-while-revalidate=30")],
        b"v1",
    );
    h.get("/swr", &[], &origin).await;
    h.advance(15);
    let uri = Uri::from_static("http://example.com/swr");
    let empty = HeaderMap::new();
    let Lookup::Hit { response, refresh } = h
        .cache
        .lookup(RequestHead::new(&Method::GET, &uri, &empty))
        .await
    else {
        panic!("stale served")
    };
    assert_eq!(response.body, Bytes::from_static(b"v1"));
    let refresh = refresh.expect("a refresh");
    assert!(refresh.is_background());
    // a second request while the refresh runs: stale again, no second refresh
    let Lookup::Hit {
        refresh: second, ..
    } = h
        .cache
        .lookup(RequestHead::new(&Method::GET, &uri, &empty))
        .await
    else {
        panic!("stale served")
    };
    assert!(second.is_none());
    let mut resp = headers(&[("cache-control", "max-age=10, stale-while-revalidate=30")]);
    let Outcome::Record(mut rec) = refresh.response(StatusCode::OK, &mut resp).await else {
        panic!("storable")
    };
    rec.push(b"v2");
    rec.finish().await;
    assert_eq!(
        h.get("/swr", &[], &origin).await.body,
        Bytes::from_static(b"v2")
    );
    assert_eq!(h.cache.stats().stale, 2);
    // past the window: forwarded
    h.advance(41);
    assert!(!h.get("/swr", &[], &origin).await.served_by_cache());
}

#[tokio::test]
async fn stale_if_error_serves_stale_on_5xx_and_on_failure_within_its_window() {
    let h = harness();
    let origin = ok(
        &[("cache-control", "max-age=10, stale-if-error=60")],
        b"good",
    );
    h.get("/sie", &[], &origin).await;
    h.advance(20);
    let got = h.get("/sie", &[], &answer(503, &[], b"down")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, Bytes::from_static(b"good"));
    // the inner service failing outright
    let uri = Uri::from_static("http://example.com/sie");
    let empty = HeaderMap::new();
    let Lookup::Forward(f) = h
        .cache
        .lookup(RequestHead::new(&Method::GET, &uri, &empty))
        .await
    else {
        panic!("stale: forwarded")
    };
    assert_eq!(
        f.error().expect("stale served").body,
        Bytes::from_static(b"good")
    );
    h.advance(60);
    let got = h.get("/sie", &[], &answer(503, &[], b"down")).await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    // must-revalidate forbids it
    let h = harness();
    let origin = ok(
        &[(
            "cache-control",
            "max-age=10, stale-if-error=60, must-revalidate",
        )],
        b"good",
    );
    h.get("/mr", &[], &origin).await;
    h.advance(20);
    assert_eq!(
        h.get("/mr", &[], &answer(503, &[], b"down")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn purge_drops_every_variant_and_unsafe_methods_invalidate_on_success() {
    let h = harness();
    let varying = ok(
        &[("cache-control", "max-age=60"), ("vary", "accept-language")],
        b"x",
    );
    h.get("/p?q=1", &[("accept-language", "fr")], &varying)
        .await;
    h.get("/p?q=1", &[("accept-language", "en")], &varying)
        .await;
    assert!(
        h.get("/p?q=1", &[("accept-language", "fr")], &varying)
            .await
            .served_by_cache()
    );
    assert!(
        h.cache
            .purge(&Uri::from_static("http://example.com/p?q=1"))
            .await
            .expect("purge")
    );
    assert!(
        !h.get("/p?q=1", &[("accept-language", "fr")], &varying)
            .await
            .served_by_cache()
    );
    assert!(
        !h.get("/p?q=1", &[("accept-language", "en")], &varying)
            .await
            .served_by_cache()
    );

    let fresh = ok(&[("cache-control", "max-age=60")], b"x");
    h.get("/u", &[], &fresh).await;
    h.get("/loc", &[], &fresh).await;
    let failed = h
        .request(Method::POST, "/u", &[], &answer(500, &[], b""))
        .await;
    assert_eq!(failed.header("x-cache"), Some("BYPASS"));
    assert!(h.get("/u", &[], &fresh).await.served_by_cache());
    let created = answer(201, &[("location", "/loc")], b"");
    h.request(Method::POST, "/u", &[], &created).await;
    assert!(!h.get("/u", &[], &fresh).await.served_by_cache());
    assert!(!h.get("/loc", &[], &fresh).await.served_by_cache());
    for m in ["PUT", "DELETE", "PATCH", "M-SEARCH"] {
        h.get("/u", &[], &fresh).await;
        let method = Method::from_bytes(m.as_bytes()).expect("method");
        h.request(method, "/u", &[], &answer(204, &[], b"")).await;
        assert!(!h.get("/u", &[], &fresh).await.served_by_cache(), "{m}");
    }
    assert!(h.cache.stats().bypasses >= 5);
}

#[tokio::test]
async fn the_store_ttl_is_freshness_plus_the_stale_window() {
    let h = harness();
    let origin = ok(
        &[("cache-control", "max-age=100, stale-while-revalidate=50")],
        b"x",
    );
    h.get("/t", &[], &origin).await;
    let key = h.cache.primary("example.com", "/t", None);
    assert_eq!(
        h.store.ttl(&key).await.expect("ttl"),
        Ttl::Expires(Duration::from_secs(150))
    );
    let origin = ok(&[("cache-control", "max-age=100"), ("age", "40")], b"x");
    h.get("/t2", &[], &origin).await;
    let key = h.cache.primary("example.com", "/t2", None);
    assert_eq!(
        h.store.ttl(&key).await.expect("ttl"),
        Ttl::Expires(Duration::from_secs(60))
    );
    // with a validator, the revalidation window is added
    let origin = ok(&[("cache-control", "max-age=100"), ("etag", "\"e\"")], b"x");
    h.get("/t3", &[], &origin).await;
    let key = h.cache.primary("example.com", "/t3", None);
    assert_eq!(
        h.store.ttl(&key).await.expect("ttl"),
        Ttl::Expires(Duration::from_secs(160))
    );
}

#[tokio::test]
async fn oversized_truncated_or_abandoned_bodies_are_not_stored() {
    let h = harness_with(|b| b.max_body_bytes(4));
    let uri = Uri::from_static("http://example.com/big");
    let empty = HeaderMap::new();
    let cc = [("cache-control", "max-age=60")];
    let record = |h: &Harness| {
        let cache = h.cache.clone();
        let uri = uri.clone();
        let empty = empty.clone();
        async move {
            let Lookup::Forward(f) = cache
                .lookup(RequestHead::new(&Method::GET, &uri, &empty))
                .await
            else {
                panic!("miss")
            };
            let mut resp = headers(&cc);
            match f.response(StatusCode::OK, &mut resp).await {
                Outcome::Record(r) => r,
                other => panic!("{other:?}"),
            }
        }
    };
    let mut rec = record(&h).await;
    rec.push(b"abc");
    rec.push(b"de");
    assert!(!rec.is_recording());
    rec.finish().await;
    assert_eq!(h.store.len(), 0);
    let mut rec = record(&h).await;
    rec.push(b"ab");
    rec.abandon();
    rec.finish().await;
    let rec = record(&h).await;
    drop(rec);
    assert_eq!(h.store.len(), 0);
    // Content-Length larger than recorded: truncated, not stored
    let h = harness();
    let origin = ok(
        &[("cache-control", "max-age=60"), ("content-length", "10")],
        b"short",
    );
    h.get("/short", &[], &origin).await;
    assert_eq!(h.store.len(), 0);
    // a Content-Length over the bound is not even recorded
    let h = harness_with(|b| b.max_body_bytes(4));
    let Lookup::Forward(f) = h
        .cache
        .lookup(RequestHead::new(&Method::GET, &uri, &empty))
        .await
    else {
        panic!("miss")
    };
    let mut resp = headers(&[("cache-control", "max-age=60"), ("content-length", "5")]);
    assert!(matches!(
        f.response(StatusCode::OK, &mut resp).await,
        Outcome::Pass
    ));
}

#[tokio::test]
async fn the_query_can_be_sorted_and_is_otherwise_part_of_the_key() {
    let h = harness();
    let origin = ok(&[("cache-control", "max-age=60")], b"x");
    h.get("/q?a=1&b=2", &[], &origin).await;
    assert!(!h.get("/q?b=2&a=1", &[], &origin).await.served_by_cache());
    assert!(!h.get("/q", &[], &origin).await.served_by_cache());
    let h = harness_with(|b| b.sort_query(true));
    h.get("/q?a=1&b=2", &[], &origin).await;
    assert!(h.get("/q?b=2&a=1", &[], &origin).await.served_by_cache());
}

#[tokio::test]
async fn request_cache_control_is_ignored_unless_honoured() {
    let origin = ok(&[("cache-control", "max-age=60")], b"x");
    let h = harness();
    h.get("/r", &[], &origin).await;
    assert!(
        h.get("/r", &[("cache-control", "no-cache")], &origin)
            .await
            .served_by_cache()
    );
    let h = harness_with(|b| b.honor_request_cache_control(true));
    h.get("/r", &[], &origin).await;
    assert!(
        !h.get("/r", &[("cache-control", "no-cache")], &origin)
            .await
            .served_by_cache()
    );
    assert!(
        !h.get("/r", &[("pragma", "no-cache")], &origin)
            .await
            .served_by_cache()
    );
    h.advance(5);
    assert!(
        !h.get("/r", &[("cache-control", "max-age=2")], &origin)
            .await
            .served_by_cache()
    );
    let bypass = h.get("/r", &[("cache-control", "no-store")], &origin).await;
    assert_eq!(bypass.header("x-cache"), Some("BYPASS"));
}

#[tokio::test]
async fn hop_by_hop_and_connection_listed_headers_are_not_stored() {
    let h = harness();
    let origin = ok(
        &[
            ("cache-control", "max-age=60"),
            ("connection", "x-a"),
            ("x-a", "1"),
            ("x-b", "2"),
            ("keep-alive", "t=5"),
        ],
        b"x",
    );
    h.get("/hh", &[], &origin).await;
    let hit = h.get("/hh", &[], &origin).await;
    assert_eq!(hit.header("x-b"), Some("2"));
    assert!(
        hit.header("x-a").is_none()
            && hit.header("keep-alive").is_none()
            && hit.header("connection").is_none()
    );
}

#[tokio::test]
async fn the_status_header_can_be_renamed_or_removed() {
    let h = harness_with(|b| b.status_header(Some(HeaderName::from_static("cache-status"))));
    let origin = ok(&[("cache-control", "max-age=60")], b"x");
    assert_eq!(
        h.get("/s", &[], &origin).await.header("cache-status"),
        Some("MISS")
    );
    assert_eq!(
        h.get("/s", &[], &origin).await.header("cache-status"),
        Some("HIT")
    );
    let h = harness_with(|b| b.status_header(None));
    assert!(h.get("/s", &[], &origin).await.header("x-cache").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_misses_forward_once() {
    let h = harness();
    let cache = h.cache.clone();
    let forwarded = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let cache = cache.clone();
        let forwarded = forwarded.clone();
        tasks.push(tokio::spawn(async move {
            let uri = Uri::from_static("http://example.com/slow");
            let empty = HeaderMap::new();
            match cache
                .lookup(RequestHead::new(&Method::GET, &uri, &empty))
                .await
            {
                Lookup::Hit { response, .. } => response.body,
                Lookup::Forward(f) => {
                    forwarded.fetch_add(1, Ordering::SeqCst);
                    // the slow origin
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let mut resp = headers(&[("cache-control", "max-age=60")]);
                    let Outcome::Record(mut rec) = f.response(StatusCode::OK, &mut resp).await
                    else {
                        panic!("storable")
                    };
                    rec.push(b"slow");
                    rec.finish().await;
                    Bytes::from_static(b"slow")
                }
            }
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), Bytes::from_static(b"slow"));
    }
    assert_eq!(forwarded.load(Ordering::SeqCst), 1);
    assert_eq!(h.cache.stats().hits, 49);
}

#[tokio::test]
async fn waiters_go_on_their_own_when_the_fill_is_not_storable() {
    let h = harness();
    let uri = Uri::from_static("http://example.com/private");
    let empty = HeaderMap::new();
    let Lookup::Forward(leader) = h
        .cache
        .lookup(RequestHead::new(&Method::GET, &uri, &empty))
        .await
    else {
        panic!("miss")
    };
    let cache = h.cache.clone();
    let waiter = tokio::spawn(async move {
        let uri = Uri::from_static("http://example.com/private");
        let empty = HeaderMap::new();
        matches!(
            cache
                .lookup(RequestHead::new(&Method::GET, &uri, &empty))
                .await,
            Lookup::Forward(_)
        )
    });
    tokio::task::yield_now().await;
    let mut resp = headers(&[("cache-control", "private, max-age=60")]);
    assert!(matches!(
        leader.response(StatusCode::OK, &mut resp).await,
        Outcome::Pass
    ));
    assert!(waiter.await.expect("task"));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gives_up_after_the_lock_timeout() {
    let h = harness_with(|b| b.lock_timeout(Duration::from_secs(2)));
    let uri = Uri::from_static("http://example.com/hang");
    let empty = HeaderMap::new();
    let _leader = h
        .cache
        .lookup(RequestHead::new(&Method::GET, &uri, &empty))
        .await;
    let start = tokio::time::Instant::now();
    let second = h
        .cache
        .lookup(RequestHead::new(&Method::GET, &uri, &empty))
        .await;
    assert!(matches!(second, Lookup::Forward(_)));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn a_range_request_bypasses() {
    let h = harness();
    let origin = ok(&[("cache-control", "max-age=60")], b"x");
    h.get("/r", &[], &origin).await;
    let ranged = h.get("/r", &[("range", "bytes=0-0")], &origin).await;
    assert!(!ranged.served_by_cache());
    assert_eq!(ranged.header("x-cache"), Some("BYPASS"));
}

#[tokio::test]
async fn builder_validates() {
    let store = MemoryStore::new();
    assert!(
        Cache::builder(store.clone())
            .lock_timeout(Duration::ZERO)
            .build()
            .is_err()
    );
    assert!(
        Cache::builder(store.clone())
            .max_ttl(Duration::ZERO)
            .build()
            .is_err()
    );
    assert!(
        Cache::builder(store.clone())
            .default_ttl(Some(Duration::ZERO))
            .build()
            .is_err()
    );
    assert!(
        Cache::builder(store.clone())
            .near_cache(0, Duration::from_secs(1))
            .build()
            .is_err()
    );
    let cache = Cache::builder(store).build().expect("defaults");
    assert!(
        !cache.inner.config.lock_across_replicas,
        "never on a MemoryStore"
    );
    assert!(format!("{cache:?}").contains("Cache"));
}

#[tokio::test]
async fn the_near_cache_answers_without_the_store_and_a_purge_clears_it() {
    let h = harness_with(|b| b.near_cache(100, Duration::from_secs(30)));
    let origin = ok(&[("cache-control", "max-age=60")], b"near");
    h.get("/n", &[], &origin).await;
    let key = h.cache.primary("example.com", "/n", None);
    // gone from the store (another replica's purge): the near copy still answers
    assert!(h.store.del(&key).await.expect("del"));
    assert!(h.get("/n", &[], &origin).await.served_by_cache());
    h.get("/n2", &[], &origin).await;
    h.cache
        .purge(&Uri::from_static("http://example.com/n2"))
        .await
        .expect("purge");
    assert!(!h.get("/n2", &[], &origin).await.served_by_cache());
    // never past the entry's freshness (by the cache's clock)
    h.get("/n3", &[], &ok(&[("cache-control", "max-age=5")], b"x"))
        .await;
    h.advance(6);
    assert!(!h.get("/n3", &[], &origin).await.served_by_cache());
}

#[tokio::test]
async fn a_corrupt_entry_is_a_miss() {
    let h = harness();
    let key = h.cache.primary("example.com", "/c", None);
    h.store
        .set(&key, Bytes::from_static(b"garbage"), None)
        .await
        .expect("set");
    let origin = ok(&[("cache-control", "max-age=60")], b"x");
    assert!(!h.get("/c", &[], &origin).await.served_by_cache());
    assert!(h.get("/c", &[], &origin).await.served_by_cache());
}

#[tokio::test]
async fn a_targeted_field_replaces_cache_control_when_configured() {
    let cdn = HeaderName::from_static("cdn-cache-control");
    let h = harness_with(|b| b.targeted_cache_control(Some(cdn.clone())));
    let origin = ok(
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ],
        b"x",
    );
    h.get("/t", &[], &origin).await;
    assert!(h.get("/t", &[], &origin).await.served_by_cache());
    let origin = ok(
        &[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "private"),
        ],
        b"x",
    );
    h.get("/p", &[], &origin).await;
    assert!(!h.get("/p", &[], &origin).await.served_by_cache());
    // without the option, the field means nothing
    let h = harness();
    let origin = ok(
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ],
        b"x",
    );
    h.get("/t", &[], &origin).await;
    assert!(!h.get("/t", &[], &origin).await.served_by_cache());
}

#[tokio::test]
async fn an_invalid_targeted_field_is_ignored() {
    let cdn = HeaderName::from_static("cdn-cache-control");
    let h = harness_with(|b| b.targeted_cache_control(Some(cdn.clone())));
    for bad in ["max-age=10000, &&&&&", "max-age=\"10000\"", "Max-Age=10000"] {
        let path = format!("/bad/{}", bad.len());
        let origin = ok(
            &[("cache-control", "no-store"), ("cdn-cache-control", bad)],
            b"x",
        );
        h.get(&path, &[], &origin).await;
        assert!(!h.get(&path, &[], &origin).await.served_by_cache(), "{bad}");
    }
}

/// A store shared by "replicas": a MemoryStore without its local face, so that the cache
/// takes the cross-replica lock as it would on Redis.
type Shared = crate::testing::RemoteLike<MemoryStore>;

fn replicas() -> (Cache<Shared>, Cache<Shared>, MemoryStore) {
    let store = MemoryStore::new();
    let make = || {
        Cache::builder(crate::testing::RemoteLike(store.clone()))
            .lock_timeout(Duration::from_secs(3))
            .build()
            .expect("valid")
    };
    (make(), make(), store)
}

#[tokio::test]
async fn replicas_sharing_a_store_coalesce_through_the_lock() {
    let (a, b, _store) = replicas();
    let uri = Uri::from_static("http://example.com/shared");
    let empty = HeaderMap::new();
    let Lookup::Forward(leader) = a.lookup(RequestHead::new(&Method::GET, &uri, &empty)).await
    else {
        panic!("miss")
    };
    let waiter = tokio::spawn(async move {
        let uri = Uri::from_static("http://example.com/shared");
        let empty = HeaderMap::new();
        match b.lookup(RequestHead::new(&Method::GET, &uri, &empty)).await {
            Lookup::Hit { response, .. } => Some(response.body),
            Lookup::Forward(_) => None,
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut resp = headers(&[("cache-control", "max-age=60")]);
    let Outcome::Record(mut rec) = leader.response(StatusCode::OK, &mut resp).await else {
        panic!("storable")
    };
    rec.push(b"filled once");
    rec.finish().await;
    assert_eq!(
        waiter.await.expect("task"),
        Some(Bytes::from_static(b"filled once"))
    );
}

#[tokio::test]
async fn a_fill_that_stores_nothing_releases_the_lock_at_once() {
    let (a, b, store) = replicas();
    let uri = Uri::from_static("http://example.com/private");
    let empty = HeaderMap::new();
    let Lookup::Forward(leader) = a.lookup(RequestHead::new(&Method::GET, &uri, &empty)).await
    else {
        panic!("miss")
    };
    let mut resp = headers(&[("cache-control", "private")]);
    assert!(matches!(
        leader.response(StatusCode::OK, &mut resp).await,
        Outcome::Pass
    ));
    let start = std::time::Instant::now();
    let second = b.lookup(RequestHead::new(&Method::GET, &uri, &empty)).await;
    assert!(matches!(second, Lookup::Forward(_)));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    drop(second);
    // and nothing is left behind
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_a_stale_entry_revalidate_once() {
    let h = harness();
    let origin = ok(
        &[("cache-control", "max-age=10"), ("etag", "\"v1\"")],
        b"body",
    );
    h.get("/stale", &[], &origin).await;
    h.advance(11);
    let forwarded = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let cache = h.cache.clone();
        let forwarded = forwarded.clone();
        tasks.push(tokio::spawn(async move {
            let uri = Uri::from_static("http://example.com/stale");
            let empty = HeaderMap::new();
            match cache
                .lookup(RequestHead::new(&Method::GET, &uri, &empty))
                .await
            {
                Lookup::Hit { response, .. } => response.body,
                Lookup::Forward(f) => {
                    forwarded.fetch_add(1, Ordering::SeqCst);
                    let mut sent = HeaderMap::new();
                    f.prepare(&mut sent);
                    assert_eq!(sent["if-none-match"], "\"v1\"");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let mut resp = headers(&[("cache-control", "max-age=10"), ("etag", "\"v1\"")]);
                    match f.response(StatusCode::NOT_MODIFIED, &mut resp).await {
                        Outcome::Replace(s) => s.body,
                        other => panic!("{other:?}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), Bytes::from_static(b"body"));
    }
    assert_eq!(forwarded.load(Ordering::SeqCst), 1);
    assert_eq!(h.cache.stats().revalidated, 1);
}
