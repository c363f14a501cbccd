//! `Session::recycle`: one request's allocation serves the next session of its thread,
//! and nothing of the first request reaches the second.

use super::*;

/// The `Set-Cookie` that ends `session` (the in-process store answers at once).
fn issued(session: &Session) -> Option<HeaderValue> {
    match session.end(StatusCode::OK) {
        Step::Ready(Ok(set)) => set,
        Step::Ready(Err(err)) => panic!("end failed: {err}"),
        Step::Pending(_) => panic!("an in-process store answers at once"),
    }
}

/// Alice's session (`user = alice`), and a request's handle on it with her data loaded.
async fn alice_loaded(f: &Fixture) -> (HeaderMap, Session) {
    let alice = f.new_session("user", "alice").await;
    let session = f.sessions.start(&with_headers(&alice));
    assert_eq!(
        session.get::<String>("user").await.expect("get").as_deref(),
        Some("alice")
    );
    (alice, session)
}

#[tokio::test]
async fn the_next_client_on_the_thread_inherits_nothing_from_a_recycled_session() {
    let f = fixture();
    // Alice's request: her cookie, her data loaded and changed, then recycled.
    let (alice, first) = alice_loaded(&f).await;
    first.insert("seen", 1).await.expect("insert");
    let alice_cookie = issued(&first);
    let used = first.allocation();
    first.recycle();

    // The attacker's request on the same thread, without a cookie: the same allocation
    // (the point of recycling), none of Alice's cookie, data or id.
    let second = f.sessions.start(&with_headers(&HeaderMap::new()));
    assert_eq!(second.allocation(), used, "the allocation is reused");
    assert!(!second.is_touched());
    assert_eq!(second.get::<String>("user").await.expect("get"), None);
    assert_eq!(second.get::<u32>("seen").await.expect("get"), None);
    second.insert("user", "mallory").await.expect("insert");
    let mallory = issued(&second).expect("a new session sets its cookie");
    let alice_id = cookie_value(&cookie_header_as_set(&alice));
    assert_ne!(cookie_value(&mallory), alice_id);
    assert_ne!(
        alice_cookie.map(|set| cookie_value(&set)),
        Some(cookie_value(&mallory))
    );
    second.recycle();

    // Alice's session is as she left it; Mallory's write went to his own session.
    assert_eq!(f.read(&alice, "user").await.as_deref(), Some("alice"));
    assert_eq!(
        f.read(&cookie_from(&mallory), "user").await.as_deref(),
        Some("mallory")
    );
}

#[tokio::test]
async fn a_session_recycled_before_its_end_leaves_no_state_behind() {
    let f = fixture();
    let alice = f.new_session("user", "alice").await;
    // Loaded and changed, but never ended (an adapter that gave up): recycled anyway.
    let first = f.sessions.start(&with_headers(&alice));
    first.insert("cart", "3 items").await.expect("insert");
    let used = first.allocation();
    first.recycle();

    let second = f.sessions.start(&with_headers(&HeaderMap::new()));
    assert_eq!(second.allocation(), used);
    assert_eq!(second.get::<String>("cart").await.expect("get"), None);
    assert_eq!(second.get::<String>("user").await.expect("get"), None);
    // Nothing to write for an untouched-then-read anonymous session: no cookie.
    assert_eq!(issued(&second), None);
    // The unsaved change was never written.
    assert_eq!(f.read(&alice, "cart").await, None);
}

#[tokio::test]
async fn a_handle_still_shared_is_not_recycled() {
    let f = fixture();
    let (_alice, first) = alice_loaded(&f).await;
    // A clone kept by the handler (a spawned task, say) outlives the request.
    let kept = first.clone();
    let used = first.allocation();
    first.recycle();

    let second = f.sessions.start(&with_headers(&HeaderMap::new()));
    assert_ne!(
        second.allocation(),
        used,
        "a shared allocation is never handed out"
    );
    assert_eq!(second.get::<String>("user").await.expect("get"), None);
    // The kept clone still sees its own session.
    assert_eq!(
        kept.get::<String>("user").await.expect("get").as_deref(),
        Some("alice")
    );
    assert!(kept.is_touched());
}

#[test]
fn concurrent_clients_each_see_only_their_own_session() {
    const CLIENTS: usize = 64;
    const ROUNDS: usize = 20;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let f = std::sync::Arc::new(fixture());
        let mut cookies = Vec::new();
        for client in 0..CLIENTS {
            cookies.push(f.new_session("client", &client.to_string()).await);
        }
        let mut tasks = Vec::new();
        for (client, cookie) in cookies.into_iter().enumerate() {
            let f = std::sync::Arc::clone(&f);
            tasks.push(tokio::spawn(async move {
                for round in 0..ROUNDS {
                    // Every other request is anonymous: recycled allocations go back and
                    // forth between clients with and without a cookie.
                    let anonymous = f.sessions.start(&with_headers(&HeaderMap::new()));
                    assert_eq!(anonymous.get::<String>("client").await.expect("get"), None);
                    anonymous.recycle();
                    tokio::task::yield_now().await;
                    let s = f.sessions.start(&with_headers(&cookie));
                    let seen = s.get::<String>("client").await.expect("get");
                    assert_eq!(seen, Some(client.to_string()), "round {round}");
                    s.insert("round", round).await.expect("insert");
                    assert!(matches!(s.end(StatusCode::OK), Step::Ready(Ok(_))));
                    s.recycle();
                    tokio::task::yield_now().await;
                }
            }));
        }
        for task in tasks {
            task.await.expect("no client saw another's session");
        }
    });
}

/// The recycled allocation is per thread, not per manager: a session of one manager
/// (its store, its key) parked by `recycle` serves another manager's next request, which
/// must see only that manager's store, even when the client replays the first one's cookie.
#[tokio::test]
async fn an_allocation_recycled_from_another_manager_carries_none_of_it() {
    let first = fixture();
    let second = fixture();
    let (alice, session) = alice_loaded(&first).await;
    session.insert("cart", "3 items").await.expect("insert");
    let used = session.allocation();
    session.recycle();

    // Alice's cookie replayed to the other manager: the same allocation, none of her session.
    let replayed = second.sessions.start(&with_headers(&alice));
    assert_eq!(replayed.allocation(), used);
    assert_eq!(replayed.get::<String>("user").await.expect("get"), None);
    assert_eq!(replayed.get::<String>("cart").await.expect("get"), None);
    assert_eq!(
        second.record_count(),
        0,
        "nothing read into the other store"
    );
    replayed.insert("user", "mallory").await.expect("insert");
    let set = issued(&replayed).expect("a session of its own");
    assert_ne!(
        cookie_value(&set),
        cookie_value(&cookie_header_as_set(&alice))
    );
    replayed.recycle();
    assert_eq!(second.record_count(), 1);
    // The first manager's store kept Alice's session as it was before (the change was
    // never ended).
    assert_eq!(first.read(&alice, "user").await.as_deref(), Some("alice"));
    assert_eq!(first.read(&alice, "cart").await, None);
}
