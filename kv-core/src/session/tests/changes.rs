//! Cycling, flushing, clearing, concurrent writers, races with a logout, failures.

use super::*;

#[tokio::test]
async fn cycle_id_moves_the_data_to_a_new_id_and_deletes_the_old() {
    let f = fixture();
    let old = f.new_session("a", "1").await;
    let s = f.sessions.start(&with_headers(&old));
    s.cycle_id().await.expect("cycle");
    s.insert("b", "2").await.expect("insert");
    let set = s
        .end(StatusCode::OK)
        .await
        .expect("finish")
        .expect("cookie");
    let new = cookie_from(&set);
    assert_ne!(new, old);
    assert_eq!(f.read(&new, "a").await.as_deref(), Some("1"));
    assert_eq!(f.read(&new, "b").await.as_deref(), Some("2"));
    assert_eq!(f.read(&old, "a").await, None);
    assert_eq!(f.record_count(), 1);
}

#[tokio::test]
async fn flush_deletes_the_record_and_expires_the_cookie() {
    let f = fixture();
    let cookie = f.new_session("a", "1").await;
    let s = f.sessions.start(&with_headers(&cookie));
    s.flush().await.expect("flush");
    assert_eq!(s.get::<String>("a").await.expect("get"), None);
    let removal = s
        .end(StatusCode::OK)
        .await
        .expect("finish")
        .expect("removal");
    let text = removal.to_str().expect("ascii");
    assert!(text.starts_with("__Host-session=;"), "{text}");
    assert!(text.contains("Max-Age=0") && text.contains("Path=/") && text.contains("Secure"));
    assert_eq!(f.record_count(), 0);
    assert_eq!(f.read(&cookie, "a").await, None);
}

#[tokio::test]
async fn keys_inserted_after_flush_start_a_new_session() {
    let f = fixture();
    let cookie = f.new_session("user", "alice").await;
    let s = f.sessions.start(&with_headers(&cookie));
    s.flush().await.expect("flush");
    s.insert("flash", "bye").await.expect("insert");
    let set = s
        .end(StatusCode::OK)
        .await
        .expect("finish")
        .expect("cookie");
    let new = cookie_from(&set);
    assert_ne!(new, cookie);
    assert_eq!(f.read(&new, "user").await, None);
    assert_eq!(f.read(&new, "flash").await.as_deref(), Some("bye"));
    assert_eq!(f.read(&cookie, "user").await, None);
}

#[tokio::test]
async fn clear_removes_every_key_and_keeps_the_session() {
    let f = fixture();
    let cookie = f.new_session("a", "1").await;
    let s = f.sessions.start(&with_headers(&cookie));
    s.insert("b", "2").await.expect("insert");
    s.clear().await.expect("clear");
    s.insert("c", "3").await.expect("insert");
    assert_eq!(s.end(StatusCode::OK).await.expect("finish"), None);
    let s = f.sessions.start(&with_headers(&cookie));
    assert_eq!(s.keys().await.expect("keys"), vec!["c".to_owned()]);
}

#[tokio::test]
async fn concurrent_writers_of_different_keys_lose_nothing() {
    let f = fixture();
    let cookie = f.new_session("a", "0").await;
    // Both requests load before either saves: the classic lost-update interleaving.
    let first = f.sessions.start(&with_headers(&cookie));
    let second = f.sessions.start(&with_headers(&cookie));
    first.load().await.expect("load");
    second.load().await.expect("load");
    first.insert("x", "from first").await.expect("insert");
    second.insert("y", "from second").await.expect("insert");
    second.remove("a").await.expect("remove");
    first.end(StatusCode::OK).await.expect("finish");
    second.end(StatusCode::OK).await.expect("finish");
    assert_eq!(f.read(&cookie, "x").await.as_deref(), Some("from first"));
    assert_eq!(f.read(&cookie, "y").await.as_deref(), Some("from second"));
    assert_eq!(f.read(&cookie, "a").await, None);
}

#[tokio::test]
async fn a_write_racing_with_logout_does_not_revive_the_session() {
    let f = fixture();
    let cookie = f.new_session("user", "alice").await;
    let writer = f.sessions.start(&with_headers(&cookie));
    writer.insert("cart", "[1]").await.expect("insert");
    let logout = f.sessions.start(&with_headers(&cookie));
    logout.flush().await.expect("flush");
    logout.end(StatusCode::OK).await.expect("finish");
    writer.end(StatusCode::OK).await.expect("finish");
    // The leftover field is not a session.
    assert_eq!(f.read(&cookie, "cart").await, None);
    assert_eq!(f.read(&cookie, "user").await, None);
}

#[tokio::test]
async fn a_cycle_racing_with_logout_or_end_user_sessions_does_not_revive_the_session() {
    for end_by_password_change in [false, true] {
        let f = fixture();
        let s = f.sessions.start(&with_headers(&HeaderMap::new()));
        s.login("alice").await.expect("login");
        let cookie = cookie_from(&s.end(StatusCode::OK).await.expect("f").expect("cookie"));
        // A slow request (a stolen cookie, say) loads the session and cycles its id…
        let cycler = f.sessions.start(&with_headers(&cookie));
        cycler.cycle_id().await.expect("cycle");
        // …while the session is ended elsewhere.
        if end_by_password_change {
            assert_eq!(f.sessions.end_user_sessions("alice").await.expect("end"), 1);
        } else {
            let other = f.sessions.start(&with_headers(&cookie));
            other.flush().await.expect("flush");
            other.end(StatusCode::OK).await.expect("finish");
        }
        let answer = cycler.end(StatusCode::OK).await.expect("finish");
        let removal = answer.expect("the dead cookie is dropped");
        assert!(removal.to_str().expect("ascii").contains("Max-Age=0"));
        // Nothing revived: no record at all (the index entry went with the session).
        assert_eq!(
            f.record_count(),
            0,
            "password change: {end_by_password_change}"
        );
    }
}

#[tokio::test]
async fn a_5xx_answer_saves_nothing() {
    let f = fixture();
    let cookie = f.new_session("a", "1").await;
    f.store.reset();
    let s = f.sessions.start(&with_headers(&cookie));
    s.insert("a", "half-done").await.expect("insert");
    s.cycle_id().await.expect("cycle");
    assert_eq!(
        s.end(StatusCode::INTERNAL_SERVER_ERROR)
            .await
            .expect("finish"),
        None
    );
    assert_eq!(f.store.calls().writes(), 0);
    assert_eq!(f.read(&cookie, "a").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn a_store_failure_fails_the_request() {
    let store = UnavailableStore::new();
    let sessions = SessionManager::builder(store.clone())
        .build()
        .expect("config");
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::from_static("__Host-session=AAAAAAAAAAAAAAAAAAAAAA"),
    );
    let s = sessions.start(&with_headers(&headers));
    assert!(matches!(
        s.get::<String>("a").await,
        Err(SessionError::Store(_))
    ));
    assert!(matches!(
        s.end(StatusCode::OK).await,
        Err(SessionError::Store(_))
    ));
    // A new session fails at the write.
    let s = sessions.start(&with_headers(&HeaderMap::new()));
    s.insert("a", 1).await.expect("insert needs no read");
    assert!(matches!(
        s.end(StatusCode::OK).await,
        Err(SessionError::Store(_))
    ));
}
