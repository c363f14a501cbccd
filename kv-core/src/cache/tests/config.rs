//! Bodies, keys, request `Cache-Control`, headers, the builder, the near cache, corrupt entries, targeted fields.

use super::*;

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
            let Lookup::Forward(f) = cache.lookup(&request_of(&Method::GET, &uri, &empty)).await
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
        .lookup(&request_of(&Method::GET, &uri, &empty))
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

#[tokio::test]
async fn builder_validates() {
    let store = MemoryStore::new();
    let err = Cache::builder(store.clone())
        .lock_timeout(Duration::ZERO)
        .build()
        .map(drop)
        .expect_err("a zero lock timeout is refused");
    assert_eq!(
        err.component(),
        "cache",
        "a configuration error, not a store error"
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

#[tokio::test]
async fn a_kept_decoded_entry_never_outlives_its_stored_bytes() {
    let h = harness();
    let origin = ok(&[("cache-control", "max-age=60")], b"first");
    h.get("/kept", &[], &origin).await;
    let stored = h.store.used_bytes();
    let hit = h.get("/kept", &[], &origin).await;
    assert!(hit.served_by_cache());
    // The first hit left its decoded entry beside the bytes, accounted in the store.
    assert!(
        h.store.used_bytes() > stored,
        "the decoded form is accounted"
    );
    assert!(h.get("/kept", &[], &origin).await.served_by_cache());
    // Whatever overwrites the key (a refill by another writer, corrupt bytes) is what
    // the next request reads: the decoded form went with the bytes it was made from.
    let key = h.cache.primary("example.com", "/kept", None);
    h.store
        .set(&key, Bytes::from_static(b"garbage"), None)
        .await
        .expect("set");
    // The form's accounting went with it (seven bytes of garbage hold less than the entry).
    assert!(h.store.used_bytes() < stored);
    let second = ok(&[("cache-control", "max-age=60")], b"second");
    let miss = h.get("/kept", &[], &second).await;
    assert!(!miss.served_by_cache());
    let hit = h.get("/kept", &[], &second).await;
    assert!(hit.served_by_cache());
    assert_eq!(&hit.body[..], b"second");
}
