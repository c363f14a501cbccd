//! Freshness, storability, `Vary`, `Age` and `HEAD`.

use super::*;

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
        // The obsolete Set-Cookie2 (RFC 2965) is a cookie too.
        vec![("cache-control", "max-age=60"), ("set-cookie2", "sid=1")],
        // Found in any position among many names (one pass reads them all).
        vec![
            ("content-type", "text/plain"),
            ("x-a", "1"),
            ("cache-control", "max-age=60"),
            ("x-b", "2"),
            ("set-cookie", "sid=1"),
        ],
        vec![
            ("cache-control", "max-age=60"),
            ("vary", "x"),
            ("vary", "*"),
        ],
        // Pragma alone is not a Cache-Control: no freshness, nothing stored.
        vec![("pragma", "no-cache")],
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
    // Credentials among many other lines, in any case, are still seen (a miss finds
    // them in one pass over the request's names).
    let h = harness();
    let crowd = [
        ("accept", "*/*"),
        ("user-agent", "x"),
        ("cookie", "a=b"),
        ("x-one", "1"),
        ("AUTHORIZATION", "Bearer alice"),
        ("x-two", "2"),
    ];
    h.get("/me", &crowd, &origin).await;
    assert_eq!(h.store.len(), 0);
    assert!(!h.get("/me", &[], &origin).await.served_by_cache());
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
    // The hit's headers hold one `Age`, the cache's: the upstream line is replaced, on the
    // first hit (which builds the entry's hit headers) and on the next (which rewrites
    // the kept copy in place).
    assert_eq!(hit.headers.get_all("age").iter().count(), 1);
    h.advance(5);
    let again = h.get("/age", &[], &origin).await;
    let ages: Vec<_> = again.headers.get_all("age").iter().collect();
    assert_eq!(ages, ["45"]);
    assert_eq!(again.header("cache-control"), Some("max-age=100"));
    h.advance(55);
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

/// An origin that sends `Age` twice (a proxy chain appending): the entry's hit headers still
/// carry the cache's one `Age`, computed from the first upstream value, on every hit.
#[tokio::test]
async fn a_repeated_upstream_age_leaves_one_age_on_hits() {
    let h = harness();
    let origin = ok(
        &[
            ("age", "20"),
            ("cache-control", "max-age=100"),
            ("age", "7"),
        ],
        b"x",
    );
    h.get("/ages", &[], &origin).await;
    for step in [0, 3] {
        h.advance(step);
        let hit = h.get("/ages", &[], &origin).await;
        assert!(hit.served_by_cache());
        let ages: Vec<_> = hit.headers.get_all("age").iter().collect();
        assert_eq!(ages.len(), 1, "{ages:?}");
    }
}

/// The names the policy reads are found in one pass (`policy::Head`): each is seen exactly
/// when the map has it, whatever else the head holds, and a name it never reads sets
/// nothing.
#[test]
fn the_one_pass_over_a_head_sees_exactly_the_names_present() {
    use crate::cache::policy::{Head, name};
    // Each name with its bit, as the policy's look-ups pair them (`name::Name`); the
    // header of each must be the name the pass maps to its bit.
    let named = [
        &name::CACHE_CONTROL,
        &name::PRAGMA,
        &name::SET_COOKIE,
        &name::VARY,
        &name::DATE,
        &name::EXPIRES,
        &name::LAST_MODIFIED,
        &name::AGE,
        &name::ETAG,
        &name::CONNECTION,
        &name::CONTENT_LENGTH,
    ];
    let mut reads: Vec<(&str, u32)> = named
        .iter()
        .map(|n| {
            let hop = if n.header == http::header::CONNECTION {
                name::HOP_BY_HOP
            } else {
                0
            };
            (n.header.as_str(), n.bit | hop)
        })
        .collect();
    reads.push(("set-cookie2", name::SET_COOKIE.bit));
    for hop in crate::cache::policy::HOP_BY_HOP {
        if hop != "connection" {
            reads.push((hop, name::HOP_BY_HOP));
        }
    }
    // Every bit is a different one.
    let bits: Vec<u32> = named
        .iter()
        .map(|n| n.bit)
        .chain([name::HOP_BY_HOP])
        .collect();
    assert!(bits.iter().all(|b| b.count_ones() == 1));
    assert_eq!(
        bits.iter().fold(0, |a, b| a | b).count_ones() as usize,
        bits.len()
    );

    let all = reads.iter().fold(0, |acc, (_, bit)| acc | bit);
    let noise = [
        ("content-type", "text/plain"),
        ("x-cache-control", "no-store"),
        ("etags", "x"),
    ];
    for (n, bit) in reads.iter().copied() {
        for before in [false, true] {
            let mut list: Vec<(&str, &str)> = Vec::new();
            if before {
                list.extend(noise);
            }
            list.push((n, "v"));
            list.push((n, "w"));
            let map = headers(&list);
            let head = Head::of(&map);
            assert!(head.has(bit), "{n}");
            // Nothing else: every other bit is clear.
            for other in 0..12 {
                let b = 1u32 << other;
                if b & bit == 0 {
                    assert!(!head.has(b), "{n} set bit {b}");
                }
            }
        }
    }
    let map = headers(&noise);
    assert!(
        !Head::of(&map).has(all),
        "a name the policy never reads sets nothing"
    );
    assert!(!Head::of(&HeaderMap::new()).has(all));
}

/// A validator found by the one pass keeps a `no-cache` response (stored, revalidated
/// before use); without one it is not stored.
#[tokio::test]
async fn no_cache_is_stored_only_with_a_validator() {
    for (hs, stored) in [
        (
            vec![
                ("cache-control", "no-cache, max-age=60"),
                ("etag", "\"v1\""),
            ],
            true,
        ),
        (
            vec![
                ("cache-control", "no-cache, max-age=60"),
                ("last-modified", "Thu, 01 Jan 1970 00:00:01 GMT"),
            ],
            true,
        ),
        (
            vec![
                ("cache-control", "no-cache, max-age=60"),
                ("x-etag", "\"v1\""),
            ],
            false,
        ),
    ] {
        let h = harness();
        h.get("/nc", &[], &ok(&hs, b"x")).await;
        assert_eq!(!h.store.is_empty(), stored, "{hs:?}");
    }
}
