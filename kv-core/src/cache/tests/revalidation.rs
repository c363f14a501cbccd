//! Conditional requests, revalidation, stale entries, purges and store TTLs.

use super::*;

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
        .lookup(&request_of(&Method::GET, &uri, &empty))
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
        .lookup(&request_of(&Method::GET, &uri, &empty))
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
        .lookup(&request_of(&Method::GET, &uri, &empty))
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
