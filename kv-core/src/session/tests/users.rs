//! Logins and the per-user index.

use super::*;

#[tokio::test]
async fn login_cycles_the_id_and_end_user_sessions_ends_every_session_of_that_user() {
    let f = fixture();
    let mut alice = Vec::new();
    for _ in 0..3 {
        let anon = f.new_session("theme", "dark").await;
        let s = f.sessions.start(&with_headers(&anon));
        s.login("alice").await.expect("login");
        assert_eq!(s.user().await.expect("user").as_deref(), Some("alice"));
        let set = s
            .end(StatusCode::OK)
            .await
            .expect("finish")
            .expect("cookie");
        let logged_in = cookie_from(&set);
        assert_ne!(logged_in, anon, "login must issue a new id");
        assert_eq!(f.read(&anon, "theme").await, None);
        alice.push(logged_in);
    }
    let bob = {
        let s = f.sessions.start(&with_headers(&HeaderMap::new()));
        s.login("bob").await.expect("login");
        cookie_from(
            &s.end(StatusCode::OK)
                .await
                .expect("finish")
                .expect("cookie"),
        )
    };
    // A plain read of a logged-in session does not touch the index.
    f.store.reset();
    assert_eq!(f.read(&alice[0], "theme").await.as_deref(), Some("dark"));
    assert_eq!(f.store.calls().total(), 2);

    // From alice's first session: end the others.
    let s = f.sessions.start(&with_headers(&alice[0]));
    assert_eq!(s.end_other_sessions().await.expect("end"), 2);
    s.end(StatusCode::OK).await.expect("finish");
    assert_eq!(f.read(&alice[0], "theme").await.as_deref(), Some("dark"));
    assert_eq!(f.read(&alice[1], "theme").await, None);
    assert_eq!(f.read(&alice[2], "theme").await, None);
    // Then all of them.
    assert_eq!(f.sessions.end_user_sessions("alice").await.expect("end"), 1);
    assert_eq!(f.read(&alice[0], "theme").await, None);
    let s = f.sessions.start(&with_headers(&bob));
    assert_eq!(s.user().await.expect("user").as_deref(), Some("bob"));
    assert_eq!(
        f.sessions.end_user_sessions("nobody").await.expect("end"),
        0
    );
}

#[tokio::test]
async fn the_user_index_is_pruned_of_dead_sessions_at_login() {
    let f = fixture();
    for _ in 0..5 {
        let s = f.sessions.start(&with_headers(&HeaderMap::new()));
        s.login("carol").await.expect("login");
        s.end(StatusCode::OK).await.expect("finish");
        f.clock.advance(ABSOLUTE / 2 + Duration::from_secs(1));
    }
    let index = f
        .store
        .inner()
        .hget_all("session:user:carol")
        .await
        .expect("index");
    // Entries of sessions past their absolute deadline were dropped at the next login.
    assert!(index.len() <= 2, "{}", index.len());
}

#[tokio::test]
async fn a_user_keeps_at_most_max_user_sessions_and_the_oldest_end_first() {
    let f = fixture();
    let mut cookies = Vec::new();
    for _ in 0..MAX_USER_SESSIONS + 4 {
        let s = f.sessions.start(&with_headers(&HeaderMap::new()));
        s.login("dave").await.expect("login");
        cookies.push(cookie_from(
            &s.end(StatusCode::OK).await.expect("f").expect("c"),
        ));
        f.clock.advance(Duration::from_millis(10));
    }
    let index = f
        .store
        .inner()
        .hget_all("session:user:dave")
        .await
        .expect("index");
    assert_eq!(index.len(), MAX_USER_SESSIONS);
    // The records: MAX_USER_SESSIONS sessions and the index.
    assert_eq!(f.record_count(), MAX_USER_SESSIONS + 1);
    let who = |c: &HeaderMap| {
        let s = f.sessions.start(&with_headers(c));
        async move { s.user().await.expect("user") }
    };
    for old in &cookies[..4] {
        assert_eq!(who(old).await, None, "the oldest sessions were ended");
    }
    assert_eq!(who(&cookies[4]).await.as_deref(), Some("dave"));
    assert_eq!(
        who(cookies.last().expect("last")).await.as_deref(),
        Some("dave")
    );
}

#[tokio::test]
async fn a_user_can_list_their_sessions_and_end_one_by_its_handle() {
    let f = fixture(); // idle 10 min
    let mut devices = Vec::new();
    for _ in 0..3 {
        let s = f.sessions.start(&with_headers(&HeaderMap::new()));
        s.login("erin").await.expect("login");
        devices.push(cookie_from(
            &s.end(StatusCode::OK).await.expect("f").expect("c"),
        ));
        f.clock.advance(Duration::from_secs(60));
    }
    let list = |c: &HeaderMap| {
        let s = f.sessions.start(&with_headers(c));
        async move {
            let sessions = s.user_sessions().await.expect("list");
            s.end(StatusCode::OK).await.expect("finish");
            sessions
        }
    };
    let seen = list(&devices[0]).await;
    assert_eq!(seen.len(), 3);
    assert_eq!(seen.iter().filter(|s| s.current).count(), 1);
    assert!(seen[0].current, "oldest first: device 0 is the first login");
    assert!(seen[0].created < seen[1].created && seen[1].created < seen[2].created);
    assert!(
        seen.iter()
            .all(|s| s.expires > s.created && s.handle.len() == 12)
    );
    // The handle is not (part of) a session id.
    for device in &devices {
        let id = cookie_value(&cookie_header_as_set(device));
        assert!(seen.iter().all(|s| !id.contains(&s.handle)));
    }
    // End device 1 by its handle.
    assert!(
        f.sessions
            .end_user_session("erin", &seen[1].handle)
            .await
            .expect("end")
    );
    assert!(
        !f.sessions
            .end_user_session("erin", &seen[1].handle)
            .await
            .expect("end")
    );
    assert!(!f.sessions.end_user_session("erin", "").await.expect("end"));
    assert_eq!(f.read(&devices[1], "x").await, None);
    let s = f.sessions.start(&with_headers(&devices[1]));
    assert_eq!(s.user().await.expect("user"), None);
    // Device 2 idles out (device 0 stays active): the list shows what is alive.
    f.clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(list(&devices[0]).await.len(), 2);
    f.clock.advance(Duration::from_secs(6 * 60));
    let left = list(&devices[0]).await;
    assert_eq!(left.len(), 1, "device 2 idled out");
    assert!(left[0].current);
    assert_eq!(
        f.sessions.user_sessions("erin").await.expect("list").len(),
        1
    );
    assert!(
        f.sessions
            .user_sessions("nobody")
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn a_session_ends_its_own_users_other_session_by_handle_and_no_one_elses() {
    let f = fixture();
    let mut devices = Vec::new();
    for _ in 0..2 {
        let s = f.sessions.start(&with_headers(&HeaderMap::new()));
        s.login("erin").await.expect("login");
        devices.push(cookie_from(
            &s.end(StatusCode::OK).await.expect("end").expect("cookie"),
        ));
    }
    let mallory = {
        let s = f.sessions.start(&with_headers(&HeaderMap::new()));
        s.login("mallory").await.expect("login");
        cookie_from(&s.end(StatusCode::OK).await.expect("end").expect("cookie"))
    };
    let s = f.sessions.start(&with_headers(&devices[0]));
    let listed = s.user_sessions().await.expect("list");
    let other = listed
        .iter()
        .find(|u| !u.current)
        .expect("the other device");
    s.end(StatusCode::OK).await.expect("end");
    // Another user holding the handle cannot end erin's session with it.
    let m = f.sessions.start(&with_headers(&mallory));
    assert!(!m.end_user_session(&other.handle).await.expect("call"));
    m.end(StatusCode::OK).await.expect("end");
    // Nor can an anonymous session.
    let anon = f.sessions.start(&with_headers(&HeaderMap::new()));
    assert!(!anon.end_user_session(&other.handle).await.expect("call"));
    // erin can.
    let s = f.sessions.start(&with_headers(&devices[0]));
    assert!(s.end_user_session(&other.handle).await.expect("end"));
    assert_eq!(s.user_sessions().await.expect("list").len(), 1);
    s.end(StatusCode::OK).await.expect("end");
    let gone = f.sessions.start(&with_headers(&devices[1]));
    assert_eq!(
        gone.user().await.expect("user"),
        None,
        "the other device is logged out"
    );
}
