//! `ActixSessionStore`: actix-session's `SessionStore` over kv's stores, on `MemoryStore`
//! (with a `ManualClock` where expiry is the point) and on a real `redis-server`; then
//! behind actix-session's own `SessionMiddleware`, with an attacker's requests (a forged
//! cookie, corrupt bytes in the store).

use kv_test_support as support;

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use actix_session::config::CookieContentSecurity;
use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::time::Duration;
use actix_web::cookie::{Cookie, Key};
use actix_web::{App, HttpResponse, test, web};
use bytes::Bytes;
use kv_actix::{ActixSessionStore, DEFAULT_ACTIX_SESSION_PREFIX};
use kv_core::clock::ManualClock;
use kv_core::{MemoryStore, RedisStore, Store, Ttl};

fn state(user: &str) -> HashMap<String, String> {
    HashMap::from([("user".to_owned(), format!("\"{user}\""))])
}

fn key_of(session_key: &SessionKey) -> String {
    format!("{DEFAULT_ACTIX_SESSION_PREFIX}{}", session_key.as_ref())
}

fn session_key(s: &str) -> SessionKey {
    SessionKey::try_from(s.to_owned()).expect("a session key")
}

async fn redis_store(test: &str) -> Option<(support::Target, RedisStore)> {
    let server = support::server(test)?;
    let store = RedisStore::connect(&server.url()).await.expect("connect");
    Some((server, store))
}

async fn ttl_secs<S: Store>(raw: &S, key: &str) -> u64 {
    match raw.ttl(key).await.expect("ttl") {
        Ttl::Expires(left) => left.as_secs_f64().round() as u64,
        other => panic!("a session state without a TTL in the store: {other:?}"),
    }
}

// ---- the behaviours, written once over any store ----

async fn save_load_delete<S: Store + Clone>(sessions: &ActixSessionStore<S>, raw: &S) {
    let a = sessions
        .save(state("ada"), &Duration::minutes(10))
        .await
        .expect("save");
    let b = sessions
        .save(state("bob"), &Duration::minutes(10))
        .await
        .expect("save");
    assert_ne!(a, b);
    for k in [&a, &b] {
        assert_eq!(k.as_ref().len(), 64, "keys as long as actix-session's own");
        assert!(k.as_ref().bytes().all(|c| c.is_ascii_alphanumeric()));
    }
    assert_eq!(sessions.load(&a).await.expect("load"), Some(state("ada")));
    assert_eq!(sessions.load(&b).await.expect("load"), Some(state("bob")));
    assert_eq!(
        ttl_secs(raw, &key_of(&a)).await,
        600,
        "the ttl argument is the store TTL"
    );
    sessions.delete(&a).await.expect("delete");
    assert_eq!(sessions.load(&a).await.expect("load"), None);
    assert_eq!(raw.get(&key_of(&a)).await.expect("get"), None);
    assert_eq!(sessions.load(&b).await.expect("load"), Some(state("bob")));
}

async fn update_and_update_ttl<S: Store + Clone>(sessions: &ActixSessionStore<S>, raw: &S) {
    let k = sessions
        .save(state("ada"), &Duration::minutes(10))
        .await
        .expect("save");
    let kept = sessions
        .update(
            session_key(k.as_ref()),
            state("ada-2"),
            &Duration::minutes(30),
        )
        .await
        .expect("update");
    assert_eq!(kept, k, "an update of a live state keeps its key");
    assert_eq!(sessions.load(&k).await.expect("load"), Some(state("ada-2")));
    assert_eq!(ttl_secs(raw, &key_of(&k)).await, 1800);

    sessions
        .update_ttl(&k, &Duration::minutes(5))
        .await
        .expect("update_ttl");
    assert_eq!(ttl_secs(raw, &key_of(&k)).await, 300);
    assert_eq!(
        sessions.load(&k).await.expect("load"),
        Some(state("ada-2")),
        "update_ttl keeps the state"
    );
    // A TTL of zero or less ends the session, as `EXPIRE key 0` does.
    sessions
        .update_ttl(&k, &Duration::ZERO)
        .await
        .expect("update_ttl");
    assert_eq!(sessions.load(&k).await.expect("load"), None);
    // update_ttl of a missing key is no error and creates nothing.
    sessions
        .update_ttl(&k, &Duration::minutes(5))
        .await
        .expect("update_ttl");
    assert_eq!(raw.get(&key_of(&k)).await.expect("get"), None);
}

/// As actix-session's Redis store: a state that is gone is saved under a new key, and the
/// old key is not revived.
async fn update_of_a_missing_key<S: Store + Clone>(sessions: &ActixSessionStore<S>, raw: &S) {
    let k = sessions
        .save(state("ada"), &Duration::minutes(10))
        .await
        .expect("save");
    sessions.delete(&k).await.expect("delete");
    let old = k.as_ref().to_owned();
    let fresh = sessions
        .update(k, state("ada"), &Duration::minutes(10))
        .await
        .expect("update");
    assert_ne!(fresh.as_ref(), old);
    assert_eq!(
        raw.get(&key_of(&session_key(&old))).await.expect("get"),
        None,
        "old key revived"
    );
    assert_eq!(
        sessions.load(&fresh).await.expect("load"),
        Some(state("ada"))
    );
    // A key this store never issued, too.
    let forged = session_key(&"A".repeat(64));
    let fresh = sessions
        .update(forged, state("x"), &Duration::minutes(10))
        .await
        .expect("update");
    assert_ne!(fresh.as_ref(), "A".repeat(64));
    assert_eq!(
        raw.get(&format!("{DEFAULT_ACTIX_SESSION_PREFIX}{}", "A".repeat(64)))
            .await
            .expect("get"),
        None
    );
}

async fn bounds_and_bad_ttls<S: Store + Clone>(sessions: &ActixSessionStore<S>, raw: &S) {
    let small = sessions.clone().max_state_bytes(256);
    let k = small
        .save(state("ada"), &Duration::minutes(10))
        .await
        .expect("a small state fits");
    let big = HashMap::from([("blob".to_owned(), "x".repeat(300))]);
    assert!(matches!(
        small.save(big.clone(), &Duration::minutes(10)).await,
        Err(SaveError::Serialization(_))
    ));
    assert!(matches!(
        small
            .update(session_key(k.as_ref()), big.clone(), &Duration::minutes(10))
            .await,
        Err(UpdateError::Serialization(_))
    ));
    assert_eq!(
        small.load(&k).await.expect("load"),
        Some(state("ada")),
        "a refused update stored nothing"
    );
    // Stored bytes over the bound are not parsed.
    sessions
        .update(session_key(k.as_ref()), big, &Duration::minutes(10))
        .await
        .expect("the default bound takes it");
    assert!(matches!(
        small.load(&k).await,
        Err(LoadError::Deserialization(_))
    ));
    // Zero and negative TTLs are refused, as Redis refuses `EX 0`.
    for ttl in [Duration::ZERO, Duration::seconds(-5)] {
        assert!(matches!(
            sessions.save(state("z"), &ttl).await,
            Err(SaveError::Other(_))
        ));
        assert!(matches!(
            sessions
                .update(session_key(k.as_ref()), state("z"), &ttl)
                .await,
            Err(UpdateError::Other(_))
        ));
    }
    assert_ne!(raw.get(&key_of(&k)).await.expect("get"), None);
}

async fn corrupt_and_forged<S: Store + Clone>(sessions: &ActixSessionStore<S>, raw: &S) {
    let k = sessions
        .save(state("ada"), &Duration::minutes(10))
        .await
        .expect("save");
    for bytes in [
        &b"not json"[..],
        b"{\"user\":1}",
        b"[\"a\"]",
        &[0xff, 0x00],
        b"",
    ] {
        raw.set(&key_of(&k), Bytes::copy_from_slice(bytes), None)
            .await
            .expect("set");
        assert!(
            matches!(sessions.load(&k).await, Err(LoadError::Deserialization(_))),
            "corrupt state {bytes:?} was not a deserialization error"
        );
    }
    // Another kind of value at the key (a hash) is a store error.
    raw.del(&key_of(&k)).await.expect("del");
    raw.hset(
        &key_of(&k),
        vec![("f".to_owned(), Bytes::from_static(b"v"))],
        None,
    )
    .await
    .expect("hset");
    assert!(matches!(sessions.load(&k).await, Err(LoadError::Other(_))));
    // Forged keys: unknown, or not of our shape (never looked up, never an error).
    assert_eq!(
        sessions
            .load(&session_key(&"Z".repeat(64)))
            .await
            .expect("load"),
        None
    );
    for forged in [
        "",
        "short",
        "../../etc",
        &"a".repeat(4000),
        &format!("{}:", "a".repeat(63)),
    ] {
        assert_eq!(
            sessions.load(&session_key(forged)).await.expect("load"),
            None
        );
        sessions.delete(&session_key(forged)).await.expect("delete");
        sessions
            .update_ttl(&session_key(forged), &Duration::minutes(1))
            .await
            .expect("update_ttl");
    }
    // Two prefixes on one store do not see each other's states.
    let a = sessions.clone().key_prefix("app-a:");
    let b = sessions.clone().key_prefix("app-b:");
    let k = a
        .save(state("ada"), &Duration::minutes(10))
        .await
        .expect("save");
    assert!(
        raw.get(&format!("app-a:{}", k.as_ref()))
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(b.load(&k).await.expect("load"), None);
}

async fn all<S: Store + Clone>(raw: S) {
    let sessions = ActixSessionStore::new(raw.clone());
    save_load_delete(&sessions, &raw).await;
    update_and_update_ttl(&sessions, &raw).await;
    update_of_a_missing_key(&sessions, &raw).await;
    bounds_and_bad_ttls(&sessions, &raw).await;
    corrupt_and_forged(&sessions, &raw).await;
}

#[actix_web::test]
async fn memory_store_behaviours() {
    all(MemoryStore::new()).await;
}

#[actix_web::test]
async fn redis_store_behaviours() {
    let Some((_server, store)) = redis_store("redis_store_behaviours").await else {
        return;
    };
    all(store).await;
}

/// The state leaves the store when its TTL passes (time moved by a `ManualClock`).
#[actix_web::test]
async fn states_expire_after_their_ttl() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let sessions = ActixSessionStore::new(store.clone());
    let k = sessions
        .save(state("ada"), &Duration::minutes(10))
        .await
        .expect("save");
    clock.advance(StdDuration::from_secs(599));
    assert!(sessions.load(&k).await.expect("load").is_some());
    clock.advance(StdDuration::from_secs(2));
    assert_eq!(sessions.load(&k).await.expect("load"), None);
    // ... and an update then starts over under a new key.
    let fresh = sessions
        .update(
            session_key(k.as_ref()),
            state("ada"),
            &Duration::minutes(10),
        )
        .await
        .expect("update");
    assert_ne!(fresh, k);
}

// ---- behind actix-session's own middleware ----

async fn over_http<S: Store + Clone>(raw: S) {
    let key = Key::generate();
    let app = test::init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(ActixSessionStore::new(raw.clone()), key.clone())
                    .cookie_secure(false)
                    .cookie_content_security(CookieContentSecurity::Signed)
                    .build(),
            )
            .route(
                "/login",
                web::get().to(|s: Session| async move {
                    s.insert("user", "ada").expect("insert");
                    HttpResponse::Ok().body("ok")
                }),
            )
            .route(
                "/whoami",
                web::get().to(|s: Session| async move {
                    let user = s.get::<String>("user").ok().flatten();
                    HttpResponse::Ok().body(user.unwrap_or_else(|| "anonymous".into()))
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/login").to_request()).await;
    let cookie = res
        .response()
        .cookies()
        .next()
        .expect("a session cookie")
        .into_owned();
    let whoami = |cookie: Cookie<'static>| {
        test::TestRequest::get()
            .uri("/whoami")
            .cookie(cookie)
            .to_request()
    };
    assert_eq!(
        test::call_and_read_body(&app, whoami(cookie.clone())).await,
        "ada"
    );

    // A forged cookie: an unsigned value, and one signed with another key.
    let forged = Cookie::new(cookie.name().to_owned(), "A".repeat(64));
    assert_eq!(
        test::call_and_read_body(&app, whoami(forged)).await,
        "anonymous"
    );
    let mut jar = actix_web::cookie::CookieJar::new();
    jar.signed_mut(&Key::generate())
        .add(Cookie::new(cookie.name().to_owned(), "A".repeat(64)));
    let other_key = jar.get(cookie.name()).expect("signed").clone();
    assert_eq!(
        test::call_and_read_body(&app, whoami(other_key)).await,
        "anonymous"
    );

    // Corrupt bytes under the victim's key: actix-session starts an empty state; no panic,
    // no "ada". (A signed cookie's value is the 44-character MAC, then the session key.)
    let session_key = &cookie.value()[44..];
    raw.set(
        &format!("{DEFAULT_ACTIX_SESSION_PREFIX}{session_key}"),
        Bytes::from_static(b"{\"user\":"),
        None,
    )
    .await
    .expect("set");
    let res = test::call_service(&app, whoami(cookie.clone())).await;
    assert!(res.status().is_success());
    assert_eq!(test::read_body(res).await, "anonymous");
}

#[actix_web::test]
async fn behind_session_middleware_on_memory_store() {
    over_http(MemoryStore::new()).await;
}

#[actix_web::test]
async fn behind_session_middleware_on_redis() {
    let Some((_server, store)) = redis_store("behind_session_middleware_on_redis").await else {
        return;
    };
    over_http(store).await;
}
