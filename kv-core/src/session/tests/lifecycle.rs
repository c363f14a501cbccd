//! Loading lazily, writing once, unknown ids, refresh and the timeouts.

use super::*;

#[tokio::test]
async fn an_untouched_session_makes_no_store_call_and_sets_no_cookie() {
    let f = fixture();
    let cookie = f.new_session("a", "1").await;
    f.store.reset();
    for headers in [HeaderMap::new(), cookie] {
        let s = f.sessions.start(&with_headers(&headers));
        assert!(!s.is_touched());
        assert_eq!(s.end(StatusCode::OK).await.expect("finish"), None);
    }
    assert_eq!(f.store.calls().total(), 0);
}

#[tokio::test]
async fn a_new_session_is_written_once_with_the_default_secure_cookie() {
    let f = fixture();
    let s = f.sessions.start(&with_headers(&HeaderMap::new()));
    s.insert("user", "alice").await.expect("insert");
    s.insert("cart", vec![1, 2]).await.expect("insert");
    // A new session has nothing to read: no store call before the end of the request.
    assert_eq!(f.store.calls().total(), 0);
    let set = s
        .end(StatusCode::OK)
        .await
        .expect("finish")
        .expect("cookie");
    let calls = f.store.calls();
    assert_eq!((calls.hset, calls.total()), (1, 1));
    let text = set.to_str().expect("ascii");
    let value = cookie_value(&set);
    assert_eq!(value.len(), 22);
    assert_eq!(
        text,
        format!("__Host-session={value}; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=3600")
    );
    // The record: JSON per key, the creation time, the idle TTL.
    let key = format!("session:{value}");
    let mut fields = f.store.inner().hget_all(&key).await.expect("hget_all");
    fields.sort();
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["__kv.created", "cart", "user"]);
    assert_eq!(&fields[1].1[..], b"[1,2]");
    assert_eq!(&fields[2].1[..], b"\"alice\"");
    assert_eq!(
        f.store.inner().ttl(&key).await.expect("ttl"),
        Ttl::Expires(IDLE)
    );
}

#[tokio::test]
async fn a_read_only_request_loads_once_and_writes_nothing() {
    let f = fixture();
    let cookie = f.new_session("a", "1").await;
    f.store.reset();
    let s = f.sessions.start(&with_headers(&cookie));
    assert_eq!(
        s.get::<String>("a").await.expect("get").as_deref(),
        Some("1")
    );
    assert_eq!(s.get::<String>("b").await.expect("get"), None);
    assert_eq!(s.keys().await.expect("keys"), vec!["a".to_owned()]);
    assert_eq!(s.end(StatusCode::OK).await.expect("finish"), None);
    let calls = f.store.calls();
    assert_eq!((calls.hget_all, calls.ttl, calls.writes()), (1, 1, 0));
}

#[tokio::test]
async fn a_change_is_one_write_and_keeps_the_id() {
    let f = fixture();
    let cookie = f.new_session("a", "1").await;
    f.store.reset();
    let s = f.sessions.start(&with_headers(&cookie));
    s.insert("b", "2").await.expect("insert");
    assert!(s.remove("a").await.expect("remove"));
    assert!(!s.remove("zz").await.expect("remove"));
    assert_eq!(s.end(StatusCode::OK).await.expect("finish"), None);
    let calls = f.store.calls();
    assert_eq!((calls.hset, calls.hdel, calls.reads()), (1, 1, 2));
    assert_eq!(f.read(&cookie, "a").await, None);
    assert_eq!(f.read(&cookie, "b").await.as_deref(), Some("2"));
}

#[tokio::test]
async fn an_unknown_id_is_never_adopted() {
    let f = fixture();
    // A well-formed id the attacker chose (fixation), and one that once existed.
    let planted = "AAAAAAAAAAAAAAAAAAAAAA";
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::try_from(format!("__Host-session={planted}")).expect("value"),
    );
    let s = f.sessions.start(&with_headers(&headers));
    s.insert("user", "victim").await.expect("insert");
    let set = s
        .end(StatusCode::OK)
        .await
        .expect("finish")
        .expect("cookie");
    assert_ne!(cookie_value(&set), planted);
    assert!(
        f.store
            .inner()
            .hget_all(&format!("session:{planted}"))
            .await
            .expect("hget_all")
            .is_empty()
    );
    // Read only with the planted id: the client is told to drop it.
    let s = f.sessions.start(&with_headers(&headers));
    assert_eq!(s.get::<String>("user").await.expect("get"), None);
    let removal = s
        .end(StatusCode::OK)
        .await
        .expect("finish")
        .expect("removal");
    assert!(removal.to_str().expect("ascii").contains("Max-Age=0"));
}

#[tokio::test]
async fn garbage_cookies_cost_no_store_call() {
    let f = fixture();
    for bad in [
        "x",
        "AAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAA*",
        "' OR 1=1 --",
        &"A".repeat(10_000),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::try_from(format!("__Host-session={bad}")).expect("value"),
        );
        let s = f.sessions.start(&with_headers(&headers));
        assert_eq!(s.get::<String>("a").await.expect("get"), None);
        s.end(StatusCode::OK).await.expect("finish");
    }
    assert_eq!(f.store.calls().total(), 0);
}

#[tokio::test]
async fn reads_count_as_activity_and_refresh_with_expire_at_most_once_per_fraction() {
    let f = fixture(); // idle 10 min, refresh after 2.5 min
    let cookie = f.new_session("a", "1").await;
    f.store.reset();
    // 1 minute later: not due, no write.
    f.clock.advance(Duration::from_secs(60));
    assert_eq!(f.read(&cookie, "a").await.as_deref(), Some("1"));
    assert_eq!(f.store.calls().writes(), 0);
    // 3 minutes after creation: due, one `expire`, no rewrite.
    f.clock.advance(Duration::from_secs(120));
    assert_eq!(f.read(&cookie, "a").await.as_deref(), Some("1"));
    let calls = f.store.calls();
    assert_eq!((calls.expire, calls.hset, calls.set), (1, 0, 0));
    // Reads every 8 minutes keep a 10-minute idle session alive for 40 minutes.
    for _ in 0..5 {
        f.clock.advance(Duration::from_secs(8 * 60));
        assert_eq!(f.read(&cookie, "a").await.as_deref(), Some("1"));
    }
    // Then 10 idle minutes end it.
    f.clock.advance(IDLE);
    assert_eq!(f.read(&cookie, "a").await, None);
}

#[tokio::test]
async fn the_absolute_timeout_ends_an_active_session() {
    let f = fixture(); // absolute 60 min
    let cookie = f.new_session("a", "1").await;
    for _ in 0..11 {
        f.clock.advance(Duration::from_secs(5 * 60));
        assert_eq!(f.read(&cookie, "a").await.as_deref(), Some("1"));
    }
    // 55 minutes in: the TTL was cut at the deadline, so the store drops it by itself.
    let Some(ttl) = ({
        let key = format!("session:{}", cookie_value(&cookie_header_as_set(&cookie)));
        match f.store.inner().ttl(&key).await.expect("ttl") {
            Ttl::Expires(d) => Some(d),
            _ => None,
        }
    }) else {
        panic!("record has a ttl");
    };
    assert!(ttl <= Duration::from_secs(5 * 60));
    f.clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(f.read(&cookie, "a").await, None);
}

#[tokio::test]
async fn the_absolute_deadline_is_checked_on_load_even_if_the_ttl_is_longer() {
    // A record whose TTL outlives its deadline (e.g. written under a longer absolute
    // timeout) is not used after the deadline, and is deleted.
    let f = fixture();
    let cookie = f.new_session("a", "1").await;
    let key = format!("session:{}", cookie_value(&cookie_header_as_set(&cookie)));
    f.store
        .inner()
        .expire(&key, Duration::from_secs(10 * 3600))
        .await
        .expect("expire");
    f.clock.advance(ABSOLUTE);
    assert_eq!(f.read(&cookie, "a").await, None);
    assert_eq!(f.store.inner().ttl(&key).await.expect("ttl"), Ttl::Missing);
}

/// A hostile or corrupt store: whatever bytes the record holds, a load is a typed answer,
/// never a panic, and a record without a readable creation time is never adopted.
#[tokio::test]
async fn corrupt_record_fields_from_the_store_are_refused_not_trusted() {
    let f = fixture();
    let cookie = f.new_session("cart", "[1]").await;
    let key = format!("session:{}", cookie_value(&cookie_header_as_set(&cookie)));
    let put = |fields: Vec<(&str, &[u8])>| {
        let fields = fields
            .into_iter()
            .map(|(n, v)| (n.to_owned(), bytes::Bytes::copy_from_slice(v)))
            .collect();
        let store = f.store.inner().clone();
        let key = key.clone();
        async move { store.hset(&key, fields, Some(IDLE)).await.expect("hset") }
    };
    // Not JSON under a user key, and a user name that is not UTF-8: the value is a typed
    // error, the session still loads.
    put(vec![("cart", b"{not json"), ("__kv.user", b"\xff\xfe")]).await;
    let s = f.sessions.start(&with_headers(&cookie));
    assert!(matches!(
        s.get::<Vec<u8>>("cart").await,
        Err(SessionError::Deserialize { .. })
    ));
    assert_eq!(
        s.user().await.expect("user"),
        None,
        "a non-UTF-8 user is no user"
    );
    s.end(StatusCode::OK).await.expect("end");
    // A creation time that is not a number: not a live record, so not adopted; a write
    // gets a new id, never this one.
    put(vec![("__kv.created", b"-1e9999"), ("cart", b"[2]")]).await;
    let s = f.sessions.start(&with_headers(&cookie));
    assert_eq!(s.get::<Vec<u8>>("cart").await.expect("get"), None);
    s.insert("cart", vec![3u8]).await.expect("insert");
    let set = s
        .end(StatusCode::OK)
        .await
        .expect("end")
        .expect("a new cookie");
    assert_ne!(
        cookie_from(&set),
        cookie,
        "the corrupt record's id is not reused"
    );
    // A key of ours holding a string instead of a hash: a store error, answered 500.
    f.store
        .inner()
        .set(&key, bytes::Bytes::from_static(b"garbage"), None)
        .await
        .expect("set");
    let s = f.sessions.start(&with_headers(&cookie));
    assert!(matches!(
        s.get::<u8>("cart").await,
        Err(SessionError::Store(_))
    ));
    assert!(s.end(StatusCode::OK).await.is_err());
}
