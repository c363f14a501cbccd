//! A response recorded in place (no `Vary`, no tags, an in-process store): its head is
//! encoded straight from the response's headers, and nothing it stores, serves or hands
//! to waiters differs from an entry with a header map of its own.

use super::*;
use crate::cache::entry::{self, Entry, HitMemo, Stored};
use crate::cache::policy::{self, Storable};
use bytes::BytesMut;

/// A response with everything the stored form must leave out or keep: hop-by-hop
/// headers, a name `Connection` lists, `Age`, the status header, a repeated header, a
/// large value.
fn hostile_head(status_header: &HeaderName) -> HeaderMap {
    let big = "v".repeat(60 * 1024);
    let mut h = headers(&[
        ("cache-control", "max-age=60"),
        ("connection", "x-secret, Keep-Alive"),
        ("x-secret", "drop me"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("age", "10"),
        ("x-multi", "a"),
        ("x-multi", "b"),
        ("etag", "\"v1\""),
        ("x-big", &big),
    ]);
    h.insert(status_header.clone(), HeaderValue::from_static("MISS"));
    for i in 0..100 {
        h.append(
            HeaderName::from_bytes(format!("x-h{i}").as_bytes()).expect("name"),
            HeaderValue::from_str(&i.to_string()).expect("value"),
        );
    }
    h
}

fn entry_of(headers: HeaderMap) -> Entry {
    Entry {
        response_time: 1_000,
        initial_age: 2,
        fresh: 60_000,
        swr: 3,
        sie: 4,
        flags: 0,
        status: StatusCode::OK,
        vary: Vec::new(),
        headers,
        tags: Vec::new(),
        body: Bytes::new(),
        hits: HitMemo::default(),
    }
}

#[test]
fn the_in_place_head_is_byte_for_byte_the_general_one() {
    let status_header = HeaderName::from_static("x-cache");
    let response = hostile_head(&status_header);
    let stored = policy::storable_headers(&response, Some(&status_header));
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "transfer-encoding",
        "age",
        "x-cache",
    ] {
        assert!(!stored.contains_key(gone), "{gone} is not stored");
    }
    assert_eq!(stored.get_all("x-multi").iter().count(), 2);

    let mut general = BytesMut::new();
    entry_of(stored.clone()).encode_head(&mut general);
    let mut in_place = BytesMut::new();
    let storable = Storable::of(&policy::Head::of(&response), Some(&status_header));
    entry_of(HeaderMap::new()).encode_head_with(&response, |n| storable.keeps(n), &mut in_place);
    assert_eq!(in_place, general);

    // And it reads back as the stored headers, in their order.
    let Some(Stored::Entry(decoded)) = entry::decode(in_place.freeze()) else {
        panic!("decodes")
    };
    let pairs = |h: &HeaderMap| {
        h.iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(pairs(&decoded.headers), pairs(&stored));
    assert!(entry::headers_len(&response) >= entry::headers_len(&stored));
}

#[tokio::test]
async fn a_hit_on_an_entry_recorded_in_place_serves_only_what_is_stored() {
    let h = harness_with(|b| b.status_header(Some(HeaderName::from_static("x-cache"))));
    let origin = Answer {
        status: StatusCode::OK,
        headers: vec![
            ("cache-control", "max-age=60".into()),
            ("connection", "x-secret".into()),
            ("x-secret", "drop me".into()),
            ("keep-alive", "timeout=5".into()),
            ("age", "10".into()),
            ("x-multi", "a".into()),
            ("x-multi", "b".into()),
        ],
        body: b"payload",
    };
    let miss = h.get("/p", &[], &origin).await;
    assert!(!miss.served_by_cache());
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    h.advance(3);
    let hit = h.get("/p", &[], &origin).await;
    assert!(hit.served_by_cache());
    assert_eq!(hit.body, Bytes::from_static(b"payload"));
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    for gone in ["connection", "x-secret", "keep-alive"] {
        assert_eq!(
            hit.header(gone),
            None,
            "{gone} is not served from the cache"
        );
    }
    let multi: Vec<_> = hit.headers.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["a", "b"]);
    // `Age` is the cache's own: the origin's 10 plus the 3 seconds stored.
    assert_eq!(hit.header("age"), Some("13"));
}

/// Waiters of a fill recorded in place get the whole entry (headers included), decoded
/// from what was stored, not the leader's header-less record of it.
#[tokio::test]
async fn waiters_of_an_in_place_fill_get_its_headers() {
    let h = harness();
    let uri = Uri::from_static("http://example.com/joined");
    let empty = HeaderMap::new();
    let Lookup::Forward(leader) = h
        .cache
        .lookup(&request_of(&Method::GET, &uri, &empty))
        .await
    else {
        panic!("a miss")
    };
    let waiters = spawn_waiters(&h.cache, &uri, 3);
    // One thread: each waiter runs until it waits on the flight.
    tokio::task::yield_now().await;
    let mut head = headers(&[
        ("cache-control", "max-age=60"),
        ("x-origin", "yes"),
        ("connection", "close"),
    ]);
    let Outcome::Record(mut rec) = leader.response(StatusCode::OK, &mut head).await else {
        panic!("storable")
    };
    rec.push(b"shared");
    rec.finish().await;
    for waiter in waiters {
        let (headers, body) = waiter.await.expect("task").expect("served from the fill");
        assert_eq!(body, Bytes::from_static(b"shared"));
        assert_eq!(
            headers.get("x-origin").map(HeaderValue::as_bytes),
            Some(&b"yes"[..])
        );
        assert!(!headers.contains_key("connection"));
    }
    let stats = h.cache.stats();
    assert_eq!((stats.coalesced, stats.misses), (3, 1), "{stats:?}");
}

/// A fill the store refuses (the entry is over the store's value bound): its waiters are
/// not handed an entry that was never stored (they read it back from the store, and it
/// is not there); each goes to the origin itself, and nothing is left in the store.
#[tokio::test]
async fn waiters_of_a_fill_the_store_refused_go_to_the_origin() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .max_value_len(64)
        .clock(clock.clone())
        .build()
        .expect("store");
    let cache = Cache::builder(store.clone())
        .clock(clock)
        .build()
        .expect("cache");
    let uri = Uri::from_static("http://example.com/refused");
    let empty = HeaderMap::new();
    let Lookup::Forward(leader) = cache.lookup(&request_of(&Method::GET, &uri, &empty)).await
    else {
        panic!("a miss")
    };
    let waiters = spawn_waiters(&cache, &uri, 3);
    tokio::task::yield_now().await;
    let mut head = headers(&[("cache-control", "max-age=60")]);
    let Outcome::Record(mut rec) = leader.response(StatusCode::OK, &mut head).await else {
        panic!("storable")
    };
    rec.push(&[b'x'; 200]);
    rec.finish().await;
    for waiter in waiters {
        let served = waiter.await.expect("task");
        assert!(served.is_none(), "a waiter was served a refused fill");
    }
    assert_eq!(store.len(), 0);
    let stats = cache.stats();
    assert_eq!((stats.stored, stats.store_errors), (0, 1), "{stats:?}");
}

/// `n` concurrent requests for `uri` that join a fill in flight: each gives the hit's
/// headers and body it was served, or `None` when it was sent to the origin.
fn spawn_waiters(
    cache: &Cache<MemoryStore>,
    uri: &Uri,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Option<(HeaderMap, Bytes)>>> {
    (0..n)
        .map(|_| {
            let (cache, uri) = (cache.clone(), uri.clone());
            tokio::spawn(async move {
                let empty = HeaderMap::new();
                match cache.lookup(&request_of(&Method::GET, &uri, &empty)).await {
                    Lookup::Hit { response, .. } => Some((response.headers, response.body)),
                    Lookup::Forward(_) => None,
                }
            })
        })
        .collect()
}
