//! Issue 13's defects at the engine: Host poisoning, HEAD lengths, ranges (hits, misses,
//! coalesced), `stale-if-error` statuses; and key control (bypass predicate, custom key).

use std::task::{Context, Waker};

use super::*;

/// A lookup for `path` (origin-form) with these request headers (`Host` among them).
async fn lookup(
    h: &Harness,
    method: Method,
    path: &str,
    req: &[(&str, &str)],
) -> Lookup<MemoryStore> {
    let uri: Uri = path.parse().expect("uri");
    h.cache
        .lookup(&request_of(&method, &uri, &headers(req)))
        .await
}

/// Sends a forwarded request's origin answer through the cache as an adapter does
/// (body length known, range window applied): what the client got.
async fn through(
    f: Box<Forward<MemoryStore>>,
    origin: &Answer,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut f = f;
    f.set_body_len(Some(origin.body.len() as u64));
    let mut resp = HeaderMap::new();
    for (n, v) in &origin.headers {
        resp.append(*n, HeaderValue::from_str(v).expect("value"));
    }
    match f.response(origin.status, &mut resp).await {
        Outcome::Pass => (origin.status, resp, origin.body.to_vec()),
        Outcome::Replace(a) => (a.status, a.headers, a.body.to_vec()),
        Outcome::Record(rec) => {
            let status = rec.status().unwrap_or(origin.status);
            let mut body = BodyRecorder::new(Some(rec), LastChunk::AfterStore);
            let mut sent = Vec::new();
            for chunk in origin.body.chunks(2) {
                let _ = body.chunk(chunk, false, &mut Context::from_waker(Waker::noop()));
                if let Some(out) = body.emit(Bytes::copy_from_slice(chunk)) {
                    sent.extend_from_slice(&out);
                }
                std::future::poll_fn(|cx| body.poll_store(cx)).await;
            }
            body.end();
            std::future::poll_fn(|cx| body.poll_store(cx)).await;
            if let Some(n) = body.size() {
                assert_eq!(n, sent.len() as u64, "size says what is sent");
            }
            (status, resp, sent)
        }
    }
}

#[tokio::test]
async fn a_host_that_smuggles_a_path_cannot_poison_another_url() {
    let h = harness();
    let b = ok(&[("cache-control", "max-age=60")], b"route B");
    // The attacker's request: Host carries `/slow?v=X`; it is not a host, so it bypasses.
    let Lookup::Forward(f) = lookup(
        &h,
        Method::GET,
        "/slow",
        &[("host", "127.0.0.1:9/slow?v=X")],
    )
    .await
    else {
        panic!("forwarded")
    };
    assert!(f.is_bypass());
    let (_, got, _) = through(f, &b).await;
    assert_eq!(got["x-cache"], "BYPASS");
    // The victim's URL is a miss, not B's response.
    let Lookup::Forward(f) = lookup(
        &h,
        Method::GET,
        "/slow?v=X/slow",
        &[("host", "127.0.0.1:9")],
    )
    .await
    else {
        panic!("the victim's URL was poisoned")
    };
    assert!(!f.is_bypass());
    // Other invalid or ambiguous hosts bypass too.
    for bad in [
        vec![("host", "not a host/<>\"'")],
        vec![("host", "a"), ("host", "b")],
        vec![("host", "")],
    ] {
        let Lookup::Forward(f) = lookup(&h, Method::GET, "/x", &bad).await else {
            panic!("forwarded")
        };
        assert!(f.is_bypass(), "{bad:?}");
    }
    // A valid host is cached, per host.
    let Lookup::Forward(f) = lookup(&h, Method::GET, "/x", &[("host", "Example.com:80")]).await
    else {
        panic!("miss")
    };
    through(f, &b).await;
    assert!(matches!(
        lookup(&h, Method::GET, "/x", &[("host", "example.COM:80")]).await,
        Lookup::Hit { .. }
    ));
    assert!(matches!(
        lookup(&h, Method::GET, "/x", &[("host", "other:80")]).await,
        Lookup::Forward(_)
    ));
}

#[tokio::test]
async fn head_from_the_entry_says_the_get_length() {
    let h = harness();
    let body: &'static [u8] = b"fifty-two bytes of body, more or less, exactly here!";
    assert_eq!(body.len(), 52);
    h.get("/h", &[], &ok(&[("cache-control", "max-age=60")], body))
        .await;
    let got = h.request(Method::HEAD, "/h", &[], &ok(&[], b"")).await;
    assert!(got.served_by_cache());
    assert_eq!(got.header("content-length"), Some("52"));
    assert!(got.body.is_empty());
    // A stored Content-Length is kept as it is.
    h.get(
        "/h2",
        &[],
        &ok(
            &[("cache-control", "max-age=60"), ("content-length", "3")],
            b"abc",
        ),
    )
    .await;
    let got = h.request(Method::HEAD, "/h2", &[], &ok(&[], b"")).await;
    assert_eq!(got.headers.get_all("content-length").iter().count(), 1);
    assert_eq!(got.header("content-length"), Some("3"));
}

#[tokio::test]
async fn ranges_from_a_complete_entry() {
    let h = harness();
    let origin = ok(
        &[("cache-control", "max-age=60"), ("etag", "\"e1\"")],
        b"0123456789",
    );
    h.get("/r", &[], &origin).await;
    let got = h.get("/r", &[("range", "bytes=2-4")], &origin).await;
    assert!(got.served_by_cache());
    assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(got.header("content-range"), Some("bytes 2-4/10"));
    assert_eq!(got.header("content-length"), Some("3"));
    assert_eq!(got.body, Bytes::from_static(b"234"));
    let got = h.get("/r", &[("range", "bytes=-2")], &origin).await;
    assert_eq!(got.body, Bytes::from_static(b"89"));
    let got = h.get("/r", &[("range", "bytes=10-")], &origin).await;
    assert_eq!(got.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(got.header("content-range"), Some("bytes */10"));
    assert!(got.body.is_empty());
    // If-Range: a matching strong tag gets the range, another tag the whole entry.
    let got = h
        .get(
            "/r",
            &[("range", "bytes=0-0"), ("if-range", "\"e1\"")],
            &origin,
        )
        .await;
    assert_eq!(
        (got.status, &got.body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"0"[..])
    );
    let got = h
        .get(
            "/r",
            &[("range", "bytes=0-0"), ("if-range", "\"old\"")],
            &origin,
        )
        .await;
    assert_eq!(
        (got.status, &got.body[..]),
        (StatusCode::OK, &b"0123456789"[..])
    );
    // Several ranges: the whole entry.
    let got = h.get("/r", &[("range", "bytes=0-0,2-3")], &origin).await;
    assert_eq!((got.status, got.body.len()), (StatusCode::OK, 10));
    assert!(got.served_by_cache());
}

#[tokio::test]
async fn a_range_miss_fetches_the_whole_response_stores_it_and_sends_the_range() {
    let h = harness();
    let origin = ok(&[("cache-control", "max-age=60")], b"0123456789");
    let Lookup::Forward(f) = lookup(
        &h,
        Method::GET,
        "http://example.com/m",
        &[("range", "bytes=3-5")],
    )
    .await
    else {
        panic!("miss")
    };
    let mut sent = headers(&[("range", "bytes=3-5"), ("if-range", "\"x\"")]);
    f.prepare(&mut sent);
    assert!(
        sent.get("range").is_none() && sent.get("if-range").is_none(),
        "the whole response is fetched"
    );
    let (status, resp, body) = through(f, &origin).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp["content-range"], "bytes 3-5/10");
    // An `If-Range` alone is taken off too, and a request with neither keeps its lines.
    for (asked, left) in [
        (vec![("if-range", "\"x\""), ("accept", "*/*")], 1),
        (vec![("accept", "*/*"), ("x-range", "bytes=0-1")], 2),
    ] {
        let Lookup::Forward(g) = lookup(&h, Method::GET, "http://example.com/n", &asked).await
        else {
            panic!("miss")
        };
        let mut sent = headers(&asked);
        g.prepare(&mut sent);
        assert!(sent.get("if-range").is_none(), "{asked:?}");
        assert_eq!(sent.len(), left, "{asked:?}");
    }
    assert_eq!(resp["content-length"], "3");
    assert_eq!(body, b"345");
    // The whole response was stored.
    let got = h.get("/m", &[], &origin).await;
    assert!(got.served_by_cache());
    assert_eq!(got.body, Bytes::from_static(b"0123456789"));
    // An unsatisfiable range on a miss: 416, and still stored.
    let Lookup::Forward(f) = lookup(
        &h,
        Method::GET,
        "http://example.com/m2",
        &[("range", "bytes=50-")],
    )
    .await
    else {
        panic!("miss")
    };
    let (status, resp, body) = through(f, &origin).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp["content-range"], "bytes */10");
    assert!(body.is_empty());
    assert!(h.get("/m2", &[], &origin).await.served_by_cache());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_range_misses_forward_once() {
    let h = harness();
    let forwarded = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let cache = h.cache.clone();
        let forwarded = forwarded.clone();
        tasks.push(tokio::spawn(async move {
            let uri = Uri::from_static("http://example.com/slow");
            let req = headers(&[("range", "bytes=0-4")]);
            match cache.lookup(&request_of(&Method::GET, &uri, &req)).await {
                Lookup::Hit { response, .. } => (response.status, response.body.to_vec()),
                Lookup::Forward(f) => {
                    forwarded.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let (s, _, b) =
                        through(f, &ok(&[("cache-control", "max-age=60")], b"hello world")).await;
                    (s, b)
                }
            }
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.expect("task"),
            (StatusCode::PARTIAL_CONTENT, b"hello".to_vec())
        );
    }
    assert_eq!(forwarded.load(Ordering::SeqCst), 1);
    assert_eq!(h.cache.stats().hits, 19);
}

#[tokio::test]
async fn stale_if_error_only_for_500_502_503_504() {
    for (code, stale) in [
        (500, true),
        (502, true),
        (503, true),
        (504, true),
        (501, false),
        (505, false),
        (507, false),
        (599, false),
    ] {
        let h = harness();
        let origin = ok(
            &[("cache-control", "max-age=10, stale-if-error=60")],
            b"good",
        );
        h.get("/sie", &[], &origin).await;
        h.advance(20);
        let got = h.get("/sie", &[], &answer(code, &[], b"down")).await;
        if stale {
            assert_eq!(
                (got.status, &got.body[..]),
                (StatusCode::OK, &b"good"[..]),
                "{code}"
            );
        } else {
            assert_eq!(got.status.as_u16(), code, "{code} passes through");
        }
    }
}

#[tokio::test]
async fn a_bypass_predicate_and_a_custom_key() {
    let h = harness_with(|b| {
        b.bypass(|r| r.path().starts_with("/admin"))
            .custom_key(|r| {
                r.headers()
                    .get("x-tenant")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
    });
    let origin = ok(&[("cache-control", "max-age=60")], b"x");
    h.get("/admin/a", &[], &origin).await;
    let got = h.get("/admin/a", &[], &origin).await;
    assert_eq!(got.header("x-cache"), Some("BYPASS"));
    assert!(!got.served_by_cache());
    h.get(
        "/t",
        &[("x-tenant", "a")],
        &ok(&[("cache-control", "max-age=60")], b"tenant a"),
    )
    .await;
    let got = h.get("/t", &[("x-tenant", "a")], &origin).await;
    assert_eq!(got.body, Bytes::from_static(b"tenant a"));
    assert!(
        !h.get("/t", &[("x-tenant", "b")], &origin)
            .await
            .served_by_cache()
    );
    assert!(!h.get("/t", &[], &origin).await.served_by_cache());
    // purge_custom reaches the tenant's entry.
    let uri = Uri::from_static("http://example.com/t");
    assert!(h.cache.purge_custom(&uri, "a").await.expect("purge"));
    assert!(
        !h.get("/t", &[("x-tenant", "a")], &origin)
            .await
            .served_by_cache()
    );
}

#[tokio::test]
async fn ignored_query_params_share_an_entry_and_accept_encoding_orders_too() {
    let h = harness_with(|b| {
        b.ignore_query_params(["utm_*", "fbclid"])
            .normalize_accept_encoding(["br", "gzip"])
    });
    let origin = ok(&[("cache-control", "max-age=60")], b"x");
    h.get("/q?id=1&utm_source=mail", &[], &origin).await;
    assert!(h.get("/q?id=1", &[], &origin).await.served_by_cache());
    assert!(
        h.get("/q?fbclid=z&id=1&utm_medium=m", &[], &origin)
            .await
            .served_by_cache()
    );
    assert!(!h.get("/q?id=2", &[], &origin).await.served_by_cache());
    let varying = ok(
        &[("cache-control", "max-age=60"), ("vary", "accept-encoding")],
        b"br body",
    );
    h.get("/e", &[("accept-encoding", "gzip, br")], &varying)
        .await;
    assert!(
        h.get("/e", &[("accept-encoding", "br, gzip")], &varying)
            .await
            .served_by_cache()
    );
    assert!(
        h.get("/e", &[("accept-encoding", "br")], &varying)
            .await
            .served_by_cache()
    );
    assert!(
        !h.get("/e", &[("accept-encoding", "gzip")], &varying)
            .await
            .served_by_cache()
    );
}

#[tokio::test]
async fn purge_tag_retires_every_entry_carrying_the_tag_and_only_those() {
    let h = harness_with(|b| b.tag_header(Some(HeaderName::from_static("surrogate-key"))));
    let tagged = |tags: &str, body: &'static [u8]| Answer {
        status: StatusCode::OK,
        headers: vec![
            ("cache-control", "max-age=60".into()),
            ("surrogate-key", tags.into()),
        ],
        body,
    };
    let first = h.get("/a", &[], &tagged("product-1 all", b"a")).await;
    assert!(
        first.header("surrogate-key").is_none(),
        "the tag header stays here"
    );
    h.get("/b", &[], &tagged("product-2, all", b"b")).await;
    h.get("/c", &[], &ok(&[("cache-control", "max-age=60")], b"c"))
        .await;
    let hit = h.get("/a", &[], &ok(&[], b"")).await;
    assert!(hit.served_by_cache());
    assert!(hit.header("surrogate-key").is_none());

    assert_eq!(h.cache.purge_tag("product-1").await.expect("purge"), 1);
    assert!(
        !h.get("/a", &[], &tagged("product-1 all", b"a2"))
            .await
            .served_by_cache()
    );
    assert!(h.get("/b", &[], &ok(&[], b"")).await.served_by_cache());
    // The refill after the purge carries the new generation.
    assert_eq!(
        h.get("/a", &[], &ok(&[], b"")).await.body,
        Bytes::from_static(b"a2")
    );

    h.cache.purge_tag("all").await.expect("purge");
    assert!(!h.get("/a", &[], &ok(&[], b"")).await.served_by_cache());
    assert!(!h.get("/b", &[], &ok(&[], b"")).await.served_by_cache());
    assert!(
        h.get("/c", &[], &ok(&[], b"")).await.served_by_cache(),
        "untagged"
    );

    // More tags than the bound: not stored (a tag left out could not purge it).
    let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    h.get(
        "/m",
        &[],
        &Answer {
            status: StatusCode::OK,
            headers: vec![
                ("cache-control", "max-age=60".into()),
                ("surrogate-key", many.join(" ")),
            ],
            body: b"m",
        },
    )
    .await;
    assert!(!h.get("/m", &[], &ok(&[], b"")).await.served_by_cache());
}

#[tokio::test]
async fn the_tag_header_can_be_kept() {
    let h = harness_with(|b| {
        b.keep_tag_header(true)
            .tag_header(Some(HeaderName::from_static("cache-tag")))
    });
    let origin = Answer {
        status: StatusCode::OK,
        headers: vec![
            ("cache-control", "max-age=60".into()),
            ("cache-tag", "x".into()),
        ],
        body: b"k",
    };
    assert_eq!(
        h.get("/k", &[], &origin).await.header("cache-tag"),
        Some("x")
    );
    assert_eq!(
        h.get("/k", &[], &origin).await.header("cache-tag"),
        Some("x")
    );
    h.cache.purge_tag("x").await.expect("purge");
    assert!(!h.get("/k", &[], &origin).await.served_by_cache());
}

#[tokio::test]
async fn with_require_host_an_http_1_1_request_naming_no_host_bypasses() {
    let b = ok(&[("cache-control", "max-age=60")], b"page");
    let strict = harness_with(|b| b.require_host(true));
    // HTTP/1.1 (the `http` default) without Host and without an absolute-form target:
    // malformed by RFC 9112 section 3.2, never cached.
    let Lookup::Forward(f) = lookup(&strict, Method::GET, "/p", &[]).await else {
        panic!("forwarded")
    };
    assert!(f.is_bypass());
    // The same request naming its host is cached, and so is HTTP/1.0 (no Host there).
    let Lookup::Forward(f) = lookup(&strict, Method::GET, "/p", &[("host", "h")]).await else {
        panic!("forwarded")
    };
    assert!(!f.is_bypass());
    let mut old = request_of(&Method::GET, &"/p".parse().expect("uri"), &HeaderMap::new());
    *old.version_mut() = http::Version::HTTP_10;
    let Lookup::Forward(f) = strict.cache.lookup(&old).await else {
        panic!("forwarded")
    };
    assert!(!f.is_bypass(), "HTTP/1.0 has no Host to require");
    let _ = through(f, &b).await;
    // By default a host-less request is keyed under the empty host (in-process tests make
    // them), which no request naming a host shares.
    let lenient = harness();
    let Lookup::Forward(f) = lookup(&lenient, Method::GET, "/p", &[]).await else {
        panic!("forwarded")
    };
    assert!(!f.is_bypass());
    let _ = through(f, &b).await;
    assert!(matches!(
        lookup(&lenient, Method::GET, "/p", &[]).await,
        Lookup::Hit { .. }
    ));
    assert!(
        matches!(
            lookup(&lenient, Method::GET, "/p", &[("host", "h")]).await,
            Lookup::Forward(_)
        ),
        "a request naming a host never gets the host-less entry"
    );
}
