//! Coalescing, in process and across replicas sharing a store.

use super::*;

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
            match cache.lookup(&request_of(&Method::GET, &uri, &empty)).await {
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

/// A GET of `uri` that misses and leads its fill.
async fn leading_miss(h: &Harness, uri: &Uri) -> Box<Forward<MemoryStore>> {
    let empty = HeaderMap::new();
    match h.cache.lookup(&request_of(&Method::GET, uri, &empty)).await {
        Lookup::Forward(leader) => leader,
        Lookup::Hit { .. } => panic!("a miss"),
    }
}

/// A miss of `uri` that leads its fill, and a task whose look-up of the same URL joins it
/// (already waiting when this returns); the task tells whether it ended up forwarding.
async fn leader_and_waiter(
    h: &Harness,
    uri: &'static str,
) -> (Box<Forward<MemoryStore>>, tokio::task::JoinHandle<bool>) {
    let uri = Uri::from_static(uri);
    let leader = leading_miss(h, &uri).await;
    let cache = h.cache.clone();
    let waiter = tokio::spawn(async move {
        let empty = HeaderMap::new();
        matches!(
            cache.lookup(&request_of(&Method::GET, &uri, &empty)).await,
            Lookup::Forward(_)
        )
    });
    tokio::task::yield_now().await;
    (leader, waiter)
}

#[tokio::test]
async fn waiters_go_on_their_own_when_the_fill_is_not_storable() {
    let h = harness();
    let (leader, waiter) = leader_and_waiter(&h, "http://example.com/private").await;
    let mut resp = headers(&[("cache-control", "private, max-age=60")]);
    assert!(matches!(
        leader.response(StatusCode::OK, &mut resp).await,
        Outcome::Pass
    ));
    assert!(waiter.await.expect("task"));
}

/// A leader dropped without answering (its client went away) releases its waiters at
/// once, well before the lock timeout; and a fill nobody joined (whose end tells no one)
/// leaves nothing behind: the next miss of the key leads a fill of its own.
#[tokio::test(start_paused = true)]
async fn an_abandoned_fill_releases_its_waiters_and_an_unjoined_one_leaves_no_flight() {
    let h = harness_with(|b| b.lock_timeout(Duration::from_secs(3600)));
    let miss = || async {
        let empty = HeaderMap::new();
        let uri = Uri::from_static("http://example.com/gone");
        match h
            .cache
            .lookup(&request_of(&Method::GET, &uri, &empty))
            .await
        {
            Lookup::Forward(f) => Some(f),
            Lookup::Hit { .. } => None,
        }
    };
    let started = tokio::time::Instant::now();
    let (leader, waiter) = leader_and_waiter(&h, "http://example.com/gone").await;
    drop(leader);
    assert!(
        waiter.await.expect("task"),
        "the waiter forwards on its own"
    );
    assert!(started.elapsed() < Duration::from_secs(1));

    // Nobody joins these: each ends (answered or dropped) and the next one leads again.
    for _ in 0..3 {
        let leader = miss().await.expect("a miss leads");
        let mut resp = headers(&[("cache-control", "no-store")]);
        assert!(matches!(
            leader.response(StatusCode::OK, &mut resp).await,
            Outcome::Pass
        ));
        drop(miss().await.expect("a miss leads"));
    }
    assert_eq!(h.cache.inner.flights.lock().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gives_up_after_the_lock_timeout() {
    let h = harness_with(|b| b.lock_timeout(Duration::from_secs(2)));
    let uri = Uri::from_static("http://example.com/hang");
    let empty = HeaderMap::new();
    let _leader = h
        .cache
        .lookup(&request_of(&Method::GET, &uri, &empty))
        .await;
    let start = tokio::time::Instant::now();
    let second = h
        .cache
        .lookup(&request_of(&Method::GET, &uri, &empty))
        .await;
    assert!(matches!(second, Lookup::Forward(_)));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn a_range_request_is_answered_from_the_entry() {
    // It bypassed the cache before issue 13 (defect 3).
    let h = harness();
    let origin = ok(&[("cache-control", "max-age=60")], b"xyz");
    h.get("/r", &[], &origin).await;
    let ranged = h.get("/r", &[("range", "bytes=0-0")], &origin).await;
    assert!(ranged.served_by_cache());
    assert_eq!(ranged.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.body, Bytes::from_static(b"x"));
    assert_eq!(ranged.header("x-cache"), Some("HIT"));
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
    let Lookup::Forward(leader) = a.lookup(&request_of(&Method::GET, &uri, &empty)).await else {
        panic!("miss")
    };
    let waiter = tokio::spawn(async move {
        let uri = Uri::from_static("http://example.com/shared");
        let empty = HeaderMap::new();
        match b.lookup(&request_of(&Method::GET, &uri, &empty)).await {
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
    let Lookup::Forward(leader) = a.lookup(&request_of(&Method::GET, &uri, &empty)).await else {
        panic!("miss")
    };
    let mut resp = headers(&[("cache-control", "private")]);
    assert!(matches!(
        leader.response(StatusCode::OK, &mut resp).await,
        Outcome::Pass
    ));
    let start = std::time::Instant::now();
    let second = b.lookup(&request_of(&Method::GET, &uri, &empty)).await;
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
            match cache.lookup(&request_of(&Method::GET, &uri, &empty)).await {
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

/// Waiters that join while their leader finishes, on two threads and over many rounds,
/// are all woken: none misses the leader's wake-up and sleeps out the (here hour-long)
/// lock timeout. A waiter gets the stored entry, or, when the fill ended between its
/// store read and its look for a flight (a window of a few instructions), forwards on its
/// own: a second fill, never a wrong answer. Most of them must have joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_joining_as_the_leader_finishes_are_never_lost() {
    let h = harness_with(|b| b.lock_timeout(Duration::from_secs(3600)));
    let mut served = 0;
    for round in 0..300u32 {
        let uri: Uri = format!("http://example.com/race/{round}")
            .parse()
            .expect("uri");
        let leader = leading_miss(&h, &uri).await;
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let cache = h.cache.clone();
                let uri = uri.clone();
                tokio::spawn(async move {
                    let empty = HeaderMap::new();
                    match cache.lookup(&request_of(&Method::GET, &uri, &empty)).await {
                        Lookup::Hit { response, .. } => Some(response.body),
                        Lookup::Forward(_) => None,
                    }
                })
            })
            .collect();
        // Finish at a different point of the waiters' joining each round.
        for _ in 0..round % 4 {
            tokio::task::yield_now().await;
        }
        let mut resp = headers(&[("cache-control", "max-age=60")]);
        let Outcome::Record(mut rec) = leader.response(StatusCode::OK, &mut resp).await else {
            panic!("storable")
        };
        rec.push(b"won");
        rec.finish().await;
        for w in waiters {
            let got = tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("a waiter was not woken")
                .expect("task");
            if let Some(body) = got {
                assert_eq!(body, Bytes::from_static(b"won"), "round {round}");
                served += 1;
            }
        }
    }
    assert!(
        served > 300 * 3 / 2,
        "{served} of 900 waiters got the leader's entry"
    );
}

/// A flood of distinct URLs missing at once (an attacker's key flood) leads one fill each,
/// and whether the fills are answered or abandoned, none stays in the in-flight set: it
/// holds only fills in progress, so the flood cannot grow it past the misses under way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_misses_leaves_no_flight_behind() {
    let h = harness();
    let mut leaders = Vec::new();
    for i in 0..2_000u32 {
        let uri: Uri = format!("http://example.com/flood/{i}")
            .parse()
            .expect("uri");
        leaders.push(leading_miss(&h, &uri).await);
    }
    assert_eq!(h.cache.inner.flights.lock().len(), 2_000);
    let mut answered = 0;
    for (i, leader) in leaders.into_iter().enumerate() {
        if i % 2 == 0 {
            drop(leader);
            continue;
        }
        let mut resp = headers(&[("cache-control", "max-age=60")]);
        let Outcome::Record(mut rec) = leader.response(StatusCode::OK, &mut resp).await else {
            panic!("storable")
        };
        rec.push(b"x");
        rec.finish().await;
        answered += 1;
    }
    assert_eq!(answered, 1_000);
    assert_eq!(h.cache.inner.flights.lock().len(), 0);
    // The abandoned ones lead again; the answered ones are hits.
    let uri = Uri::from_static("http://example.com/flood/0");
    drop(leading_miss(&h, &uri).await);
    let empty = HeaderMap::new();
    let uri = Uri::from_static("http://example.com/flood/1");
    assert!(matches!(
        h.cache
            .lookup(&request_of(&Method::GET, &uri, &empty))
            .await,
        Lookup::Hit { .. }
    ));
}
