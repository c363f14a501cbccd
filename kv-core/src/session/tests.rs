//! Engine tests without any web framework: a counting store over `MemoryStore`, a manual
//! clock, headers built by hand.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::*;
use crate::Step;
use crate::clock::ManualClock;
use crate::testing::{CountingStore, UnavailableStore};
use crate::{MemoryStore, Store, Ttl};

const IDLE: Duration = Duration::from_secs(10 * 60);
const ABSOLUTE: Duration = Duration::from_secs(60 * 60);

struct Fixture {
    clock: ManualClock,
    store: CountingStore<MemoryStore>,
    sessions: SessionManager,
}

fn fixture() -> Fixture {
    fixture_with(|b| b)
}

fn fixture_with(f: impl FnOnce(SessionManagerBuilder) -> SessionManagerBuilder) -> Fixture {
    let clock = ManualClock::new();
    let store = CountingStore::new(MemoryStore::with_clock(clock.clone()));
    let builder = SessionManager::builder(store.clone())
        .clock(clock.clone())
        .idle_timeout(IDLE)
        .absolute_timeout(ABSOLUTE);
    let sessions = f(builder).build().expect("valid config");
    Fixture {
        clock,
        store,
        sessions,
    }
}

/// The `Cookie` header a browser sends back after `set_cookie`.
fn cookie_from(set_cookie: &HeaderValue) -> HeaderMap {
    let text = set_cookie.to_str().expect("ascii");
    let pair = text.split(';').next().expect("pair").to_owned();
    let mut headers = HeaderMap::new();
    headers.insert(header::COOKIE, HeaderValue::try_from(pair).expect("value"));
    headers
}

fn cookie_value(set_cookie: &HeaderValue) -> String {
    let text = set_cookie.to_str().expect("ascii");
    let pair = text.split(';').next().expect("pair");
    pair.split_once('=').expect("=").1.to_owned()
}

impl Fixture {
    /// A new session holding `key = value`; the browser's `Cookie` header for it.
    async fn new_session(&self, key: &str, value: &str) -> HeaderMap {
        let s = self.sessions.start(&HeaderMap::new());
        s.insert(key, value).await.expect("insert");
        let set = s
            .end(StatusCode::OK)
            .await
            .expect("finish")
            .expect("cookie");
        cookie_from(&set)
    }

    async fn read(&self, cookie: &HeaderMap, key: &str) -> Option<String> {
        let s = self.sessions.start(cookie);
        let v = s.get::<String>(key).await.expect("get");
        s.end(StatusCode::OK).await.expect("finish");
        v
    }

    fn record_count(&self) -> usize {
        self.store.inner().len()
    }
}

#[tokio::test]
async fn an_untouched_session_makes_no_store_call_and_sets_no_cookie() {
    let f = fixture();
    let cookie = f.new_session("a", "1").await;
    f.store.reset();
    for headers in [HeaderMap::new(), cookie] {
        let s = f.sessions.start(&headers);
        assert!(!s.is_touched());
        assert_eq!(s.end(StatusCode::OK).await.expect("finish"), None);
    }
    assert_eq!(f.store.calls().total(), 0);
}

#[tokio::test]
async fn a_new_session_is_written_once_with_the_default_secure_cookie() {
    let f = fixture();
    let s = f.sessions.start(&HeaderMap::new());
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
    let s = f.sessions.start(&cookie);
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
    let s = f.sessions.start(&cookie);
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
    let s = f.sessions.start(&headers);
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
    let s = f.sessions.start(&headers);
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
        let s = f.sessions.start(&headers);
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

/// The `Cookie` header's pair, shaped like a `Set-Cookie` value for `cookie_value`.
fn cookie_header_as_set(cookie: &HeaderMap) -> HeaderValue {
    cookie.get(header::COOKIE).expect("cookie").clone()
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

#[tokio::test]
async fn cycle_id_moves_the_data_to_a_new_id_and_deletes_the_old() {
    let f = fixture();
    let old = f.new_session("a", "1").await;
    let s = f.sessions.start(&old);
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
    let s = f.sessions.start(&cookie);
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
    let s = f.sessions.start(&cookie);
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
    let s = f.sessions.start(&cookie);
    s.insert("b", "2").await.expect("insert");
    s.clear().await.expect("clear");
    s.insert("c", "3").await.expect("insert");
    assert_eq!(s.end(StatusCode::OK).await.expect("finish"), None);
    let s = f.sessions.start(&cookie);
    assert_eq!(s.keys().await.expect("keys"), vec!["c".to_owned()]);
}

#[tokio::test]
async fn concurrent_writers_of_different_keys_lose_nothing() {
    let f = fixture();
    let cookie = f.new_session("a", "0").await;
    // Both requests load before either saves: the classic lost-update interleaving.
    let first = f.sessions.start(&cookie);
    let second = f.sessions.start(&cookie);
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
    let writer = f.sessions.start(&cookie);
    writer.insert("cart", "[1]").await.expect("insert");
    let logout = f.sessions.start(&cookie);
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
        let s = f.sessions.start(&HeaderMap::new());
        s.login("alice").await.expect("login");
        let cookie = cookie_from(&s.end(StatusCode::OK).await.expect("f").expect("cookie"));
        // A slow request (a stolen cookie, say) loads the session and cycles its id…
        let cycler = f.sessions.start(&cookie);
        cycler.cycle_id().await.expect("cycle");
        // …while the session is ended elsewhere.
        if end_by_password_change {
            assert_eq!(f.sessions.end_user_sessions("alice").await.expect("end"), 1);
        } else {
            let other = f.sessions.start(&cookie);
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
    let s = f.sessions.start(&cookie);
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
    let s = sessions.start(&headers);
    assert!(matches!(
        s.get::<String>("a").await,
        Err(SessionError::Store(_))
    ));
    assert!(matches!(
        s.end(StatusCode::OK).await,
        Err(SessionError::Store(_))
    ));
    // A new session fails at the write.
    let s = sessions.start(&HeaderMap::new());
    s.insert("a", 1).await.expect("insert needs no read");
    assert!(matches!(
        s.end(StatusCode::OK).await,
        Err(SessionError::Store(_))
    ));
}

#[tokio::test]
async fn login_cycles_the_id_and_end_user_sessions_ends_every_session_of_that_user() {
    let f = fixture();
    let mut alice = Vec::new();
    for _ in 0..3 {
        let anon = f.new_session("theme", "dark").await;
        let s = f.sessions.start(&anon);
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
        let s = f.sessions.start(&HeaderMap::new());
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
    let s = f.sessions.start(&alice[0]);
    assert_eq!(s.end_other_sessions().await.expect("end"), 2);
    s.end(StatusCode::OK).await.expect("finish");
    assert_eq!(f.read(&alice[0], "theme").await.as_deref(), Some("dark"));
    assert_eq!(f.read(&alice[1], "theme").await, None);
    assert_eq!(f.read(&alice[2], "theme").await, None);
    // Then all of them.
    assert_eq!(f.sessions.end_user_sessions("alice").await.expect("end"), 1);
    assert_eq!(f.read(&alice[0], "theme").await, None);
    let s = f.sessions.start(&bob);
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
        let s = f.sessions.start(&HeaderMap::new());
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
        let s = f.sessions.start(&HeaderMap::new());
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
        let s = f.sessions.start(c);
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
        let s = f.sessions.start(&HeaderMap::new());
        s.login("erin").await.expect("login");
        devices.push(cookie_from(
            &s.end(StatusCode::OK).await.expect("f").expect("c"),
        ));
        f.clock.advance(Duration::from_secs(60));
    }
    let list = |c: &HeaderMap| {
        let s = f.sessions.start(c);
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
    let s = f.sessions.start(&devices[1]);
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
async fn signed_cookies_refuse_tampering() {
    let key = Key::generate();
    let f = fixture_with(|b| b.signed(key.clone()));
    let cookie = f.new_session("a", "1").await;
    assert_eq!(f.read(&cookie, "a").await.as_deref(), Some("1"));
    let value = cookie_value(&cookie_header_as_set(&cookie));
    assert!(value.len() > 22, "tag + id");
    // Flip one character of the tag, then of the id.
    for at in [0, value.len() - 1] {
        let mut bytes = value.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).expect("ascii");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::try_from(format!("__Host-session={forged}")).expect("value"),
        );
        f.store.reset();
        assert_eq!(f.read(&headers, "a").await, None);
        assert_eq!(
            f.store.calls().total(),
            0,
            "no store call for a forged cookie"
        );
    }
    // The bare id (signature stripped) is refused too.
    let id = &value[value.len() - 22..];
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::try_from(format!("__Host-session={id}")).expect("value"),
    );
    assert_eq!(f.read(&headers, "a").await, None);
    // A cookie signed with another key is refused.
    let other = fixture_with(|b| b.signed(Key::generate()));
    assert_eq!(other.read(&cookie, "a").await, None);
}

#[tokio::test]
async fn private_cookies_hide_the_id_and_refuse_tampering() {
    let key = Key::generate();
    let f = fixture_with(|b| b.private(key.clone()));
    let cookie = f.new_session("a", "1").await;
    assert_eq!(f.read(&cookie, "a").await.as_deref(), Some("1"));
    let value = cookie_value(&cookie_header_as_set(&cookie));
    // The id is not in the cookie: no record key ends with any 22-char window of it.
    let keys_hold_value = (0..value.len().saturating_sub(22)).any(|i| {
        let window = &value[i..i + 22];
        futures_util::FutureExt::now_or_never(
            f.store.inner().hget_all(&format!("session:{window}")),
        )
        .and_then(Result::ok)
        .is_some_and(|fields| !fields.is_empty())
    });
    assert!(!keys_hold_value);
    let mut bytes = value.into_bytes();
    bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::try_from(format!(
            "__Host-session={}",
            String::from_utf8(bytes).expect("ascii")
        ))
        .expect("value"),
    );
    assert_eq!(f.read(&headers, "a").await, None);
}

#[tokio::test]
async fn cookie_attributes_follow_the_configuration() {
    let f = fixture_with(|b| {
        b.cookie_name("sid")
            .cookie_path("/app")
            .cookie_domain("example.com")
            .secure(false)
            .http_only(false)
            .same_site(SameSite::Strict)
            .browser_session_cookie()
    });
    let s = f.sessions.start(&HeaderMap::new());
    s.insert("a", 1).await.expect("insert");
    let set = s
        .end(StatusCode::OK)
        .await
        .expect("finish")
        .expect("cookie");
    let value = cookie_value(&set);
    assert_eq!(
        set.to_str().expect("ascii"),
        format!("sid={value}; SameSite=Strict; Path=/app; Domain=example.com")
    );
}

#[tokio::test]
async fn the_first_valid_cookie_of_our_name_wins() {
    let f = fixture();
    let cookie = f.new_session("a", "1").await;
    let good = cookie_value(&cookie_header_as_set(&cookie));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::try_from(format!(
            "other=x; __Host-session=garbage; __Host-session={good}"
        ))
        .expect("value"),
    );
    assert_eq!(f.read(&headers, "a").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn typed_values_round_trip_and_type_errors_are_typed() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Cart {
        items: Vec<u32>,
        note: Option<String>,
    }
    let f = fixture();
    let s = f.sessions.start(&HeaderMap::new());
    let cart = Cart {
        items: vec![1, 2],
        note: Some("gift".into()),
    };
    s.insert("cart", &cart).await.expect("insert");
    let cookie = cookie_from(&s.end(StatusCode::OK).await.expect("f").expect("cookie"));
    let s = f.sessions.start(&cookie);
    assert_eq!(s.get::<Cart>("cart").await.expect("get"), Some(cart));
    assert!(matches!(
        s.get::<u64>("cart").await,
        Err(SessionError::Deserialize { .. })
    ));
    assert!(matches!(
        s.insert("__kv.created", 1).await,
        Err(SessionError::ReservedKey(_))
    ));
    assert!(matches!(
        f.sessions.start(&cookie).data().get::<u8>("cart"),
        Err(SessionError::NotLoaded)
    ));
}

#[test]
fn invalid_configurations_are_typed_errors() {
    let build = |f: fn(SessionManagerBuilder) -> SessionManagerBuilder| {
        f(SessionManager::builder(MemoryStore::new())).build()
    };
    for bad in [
        (|b| b.secure(false)) as fn(SessionManagerBuilder) -> SessionManagerBuilder,
        |b| b.cookie_domain("example.com"),
        |b| b.cookie_path("/app"),
        |b| b.cookie_name(""),
        |b| b.cookie_name("a;b"),
        |b| b.cookie_name("sid").cookie_path("no-slash"),
        |b| b.cookie_name("sid").cookie_domain("a.com; HttpOnly"),
        |b| b.cookie_name("__Secure-sid").secure(false),
        |b| b.cookie_name("sid").secure(false).same_site(SameSite::None),
        |b| b.idle_timeout(Duration::ZERO),
        |b| b.absolute_timeout(Duration::MAX),
        |b| b.refresh_fraction(0.0),
        |b| b.refresh_fraction(f64::NAN),
    ] {
        assert!(matches!(build(bad), Err(e) if e.component() == "session manager"));
    }
    assert!(build(|b| b.cookie_name("sid").secure(false)).is_ok());
}

#[tokio::test]
async fn debug_output_shows_no_id_or_key() {
    let key = Key::generate();
    let f = fixture_with(|b| b.signed(key));
    let cookie = f.new_session("secret-key", "secret-value").await;
    let id = cookie_value(&cookie_header_as_set(&cookie));
    let s = f.sessions.start(&cookie);
    s.load().await.expect("load");
    let shown = format!("{s:?} {:?}", f.sessions);
    assert!(!shown.contains(&id) && !shown.contains("secret"), "{shown}");
    assert!(shown.contains("<key redacted>"));
    // Nor does the `Set-Cookie` value an adapter gets (it is marked sensitive).
    let fresh = f.sessions.start(&HeaderMap::new());
    fresh.insert("a", 1).await.expect("insert");
    let finish = fresh.end(StatusCode::OK);
    let shown = format!("{finish:?}");
    let set_cookie = match finish {
        Step::Ready(done) => done.expect("saved").expect("a cookie"),
        Step::Pending(save) => save.await.expect("saved").expect("a cookie"),
    };
    let value = cookie_value(&set_cookie);
    let id = &value[value.len() - 22..];
    let shown = format!("{shown} {set_cookie:?}");
    assert!(!shown.contains(id), "{shown}");
}
