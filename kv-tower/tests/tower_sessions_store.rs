//! `TowerSessionsStore`: tower-sessions' `SessionStore` over kv's stores, on `MemoryStore`
//! (with a `ManualClock`, so expiry is tested without sleeping) and on a real
//! `redis-server`; then behind tower-sessions' own `SessionManagerLayer` on an axum app,
//! with an attacker's requests (a forged session cookie, corrupt bytes in the store).

use kv_test_support as support;

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use kv_core::clock::ManualClock;
use kv_core::{MemoryStore, RedisStore, Store, Ttl};
use kv_tower::{DEFAULT_TOWER_SESSIONS_PREFIX, TowerSessionsStore};
use time::OffsetDateTime;
use tower::ServiceExt;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::Error;
use tower_sessions::{Session, SessionManagerLayer, SessionStore};

/// A record of one value that expires `after` from `now`.
fn record(now: SystemTime, after: Duration) -> Record {
    let mut data = std::collections::HashMap::new();
    data.insert("user".to_owned(), serde_json::json!("ada"));
    Record {
        id: Id::default(),
        data,
        expiry_date: OffsetDateTime::from(now) + after,
    }
}

fn key(id: &Id) -> String {
    format!("{DEFAULT_TOWER_SESSIONS_PREFIX}{id}")
}

/// One world for the behaviour checks: the sessions store, the raw store under it, and
/// what "now" is for both.
struct World<S> {
    sessions: TowerSessionsStore<S>,
    raw: S,
    now: fn() -> SystemTime,
}

fn system_now() -> SystemTime {
    SystemTime::now()
}

async fn redis_store(test: &str) -> Option<(support::Target, RedisStore)> {
    let server = support::server(test)?;
    let store = RedisStore::connect(&server.url()).await.expect("connect");
    Some((server, store))
}

// ---- the behaviours, written once over any store ----

async fn roundtrip<S: Store + Clone>(w: &World<S>) {
    let mut rec = record((w.now)(), Duration::from_secs(600));
    let before = rec.id;
    w.sessions.create(&mut rec).await.expect("create");
    assert_eq!(rec.id, before, "a free id is kept");
    let loaded = w.sessions.load(&rec.id).await.expect("load");
    assert_eq!(loaded.as_ref(), Some(&rec));
    // The store holds it under the prefix with the time left until expiry_date as TTL.
    match w.raw.ttl(&key(&rec.id)).await.expect("ttl") {
        Ttl::Expires(left) => assert!(
            left <= Duration::from_secs(600) && left > Duration::from_secs(590),
            "store TTL {left:?} is not the time left until expiry_date"
        ),
        other => panic!("record without a TTL in the store: {other:?}"),
    }
    // save replaces the data and moves the TTL to the new expiry date.
    rec.data.insert("n".to_owned(), serde_json::json!(2));
    rec.expiry_date = OffsetDateTime::from((w.now)()) + Duration::from_secs(60);
    w.sessions.save(&rec).await.expect("save");
    assert_eq!(
        w.sessions.load(&rec.id).await.expect("load").as_ref(),
        Some(&rec)
    );
    match w.raw.ttl(&key(&rec.id)).await.expect("ttl") {
        Ttl::Expires(left) => {
            assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50))
        }
        other => panic!("record without a TTL in the store: {other:?}"),
    }
    w.sessions.delete(&rec.id).await.expect("delete");
    assert_eq!(w.sessions.load(&rec.id).await.expect("load"), None);
    assert_eq!(w.raw.get(&key(&rec.id)).await.expect("get"), None);
}

async fn create_never_overwrites<S: Store + Clone>(w: &World<S>) {
    let mut victim = record((w.now)(), Duration::from_secs(600));
    w.sessions.create(&mut victim).await.expect("create");
    // A second create that draws the same id (as a collision, or a forged record would).
    let mut intruder = record((w.now)(), Duration::from_secs(600));
    intruder.id = victim.id;
    intruder
        .data
        .insert("user".to_owned(), serde_json::json!("mallory"));
    w.sessions.create(&mut intruder).await.expect("create");
    assert_ne!(intruder.id, victim.id, "create must move to a fresh id");
    let kept = w
        .sessions
        .load(&victim.id)
        .await
        .expect("load")
        .expect("victim kept");
    assert_eq!(kept.data["user"], "ada");
    let moved = w
        .sessions
        .load(&intruder.id)
        .await
        .expect("load")
        .expect("stored");
    assert_eq!(moved.data["user"], "mallory");
}

async fn expired_records_are_not_stored<S: Store + Clone>(w: &World<S>) {
    let mut rec = record((w.now)(), Duration::ZERO);
    rec.expiry_date -= Duration::from_secs(1);
    w.sessions.create(&mut rec).await.expect("create");
    assert_eq!(
        w.raw.get(&key(&rec.id)).await.expect("get"),
        None,
        "create stored an expired record"
    );
    // A live session saved with a past expiry date ends: the stored record goes.
    let mut live = record((w.now)(), Duration::from_secs(600));
    w.sessions.create(&mut live).await.expect("create");
    live.expiry_date = OffsetDateTime::from((w.now)()) - Duration::from_secs(1);
    w.sessions.save(&live).await.expect("save");
    assert_eq!(w.raw.get(&key(&live.id)).await.expect("get"), None);
    assert_eq!(w.sessions.load(&live.id).await.expect("load"), None);
}

async fn oversize_records_are_refused<S: Store + Clone>(w: &World<S>) {
    let small = w.sessions.clone().max_record_bytes(512);
    let mut rec = record((w.now)(), Duration::from_secs(600));
    small.create(&mut rec).await.expect("a small record fits");
    let mut big = rec.clone();
    big.data
        .insert("blob".to_owned(), serde_json::json!("x".repeat(600)));
    assert!(matches!(small.save(&big).await, Err(Error::Encode(_))));
    // Nothing stored: the old record is still the one read back.
    assert_eq!(small.load(&rec.id).await.expect("load"), Some(rec.clone()));
    let mut fresh = big.clone();
    fresh.id = Id::default();
    assert!(matches!(
        small.create(&mut fresh).await,
        Err(Error::Encode(_))
    ));
    assert_eq!(w.raw.get(&key(&fresh.id)).await.expect("get"), None);
    // Stored bytes over the bound are not parsed.
    assert!(
        matches!(small.load(&big.id).await, Ok(Some(_))),
        "same id as rec, still small"
    );
    w.sessions
        .save(&big)
        .await
        .expect("the default bound takes it");
    assert!(matches!(small.load(&big.id).await, Err(Error::Decode(_))));
}

async fn corrupt_bytes_are_errors<S: Store + Clone>(w: &World<S>) {
    let id = Id::default();
    for bytes in [
        &b"not json"[..],
        b"{\"id\":1,\"data\":{},\"expiry_date\":\"yesterday\"}",
        b"{\"id\":1,\"data\":{}}",
        &[0xff, 0xfe, 0x00],
        b"",
    ] {
        w.raw
            .set(&key(&id), Bytes::copy_from_slice(bytes), None)
            .await
            .expect("set");
        assert!(
            matches!(w.sessions.load(&id).await, Err(Error::Decode(_))),
            "corrupt record {bytes:?} was not a decode error"
        );
    }
    // A valid record planted under another session's key is refused, not served.
    let mut other = record((w.now)(), Duration::from_secs(600));
    w.sessions.create(&mut other).await.expect("create");
    let planted = w
        .raw
        .get(&key(&other.id))
        .await
        .expect("get")
        .expect("stored");
    w.raw.set(&key(&id), planted, None).await.expect("set");
    assert!(matches!(w.sessions.load(&id).await, Err(Error::Decode(_))));
    // Another kind of value at the key (a hash) is a backend error.
    w.raw.del(&key(&id)).await.expect("del");
    w.raw
        .hset(
            &key(&id),
            vec![("f".to_owned(), Bytes::from_static(b"v"))],
            None,
        )
        .await
        .expect("hset");
    assert!(matches!(w.sessions.load(&id).await, Err(Error::Backend(_))));
}

async fn unknown_ids_and_prefixes<S: Store + Clone>(w: &World<S>) {
    assert_eq!(w.sessions.load(&Id::default()).await.expect("load"), None);
    assert_eq!(w.sessions.load(&Id(0)).await.expect("load"), None);
    w.sessions
        .delete(&Id::default())
        .await
        .expect("deleting nothing is fine");
    // Two prefixes on one store do not see each other's records.
    let a = w.sessions.clone().key_prefix("app-a:");
    let b = w.sessions.clone().key_prefix("app-b:");
    let mut rec = record((w.now)(), Duration::from_secs(600));
    a.create(&mut rec).await.expect("create");
    assert!(
        w.raw
            .get(&format!("app-a:{}", rec.id))
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(b.load(&rec.id).await.expect("load"), None);
    assert!(a.load(&rec.id).await.expect("load").is_some());
}

async fn all<S: Store + Clone>(w: &World<S>) {
    roundtrip(w).await;
    create_never_overwrites(w).await;
    expired_records_are_not_stored(w).await;
    oversize_records_are_refused(w).await;
    corrupt_bytes_are_errors(w).await;
    unknown_ids_and_prefixes(w).await;
}

#[tokio::test]
async fn memory_store_behaviours() {
    let store = MemoryStore::new();
    all(&World {
        sessions: TowerSessionsStore::new(store.clone()),
        raw: store,
        now: system_now,
    })
    .await;
}

#[tokio::test]
async fn redis_store_behaviours() {
    let Some((_server, store)) = redis_store("redis_store_behaviours").await else {
        return;
    };
    all(&World {
        sessions: TowerSessionsStore::new(store.clone()),
        raw: store,
        now: system_now,
    })
    .await;
}

/// The record leaves the store when its expiry date passes, by the store's TTL alone
/// (time moved by a `ManualClock` shared by the store and the sessions store).
#[tokio::test]
async fn records_expire_at_their_expiry_date() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let sessions = TowerSessionsStore::with_clock(store.clone(), clock.clone());
    let mut rec = record(kv_core::Clock::now(&clock), Duration::from_secs(600));
    sessions.create(&mut rec).await.expect("create");
    clock.advance(Duration::from_secs(599));
    assert!(sessions.load(&rec.id).await.expect("load").is_some());
    clock.advance(Duration::from_secs(2));
    assert_eq!(sessions.load(&rec.id).await.expect("load"), None);
    assert_eq!(
        store.get(&key(&rec.id)).await.expect("get"),
        None,
        "the store itself forgot it"
    );
}

/// Many concurrent creates that all draw one id: exactly one keeps it, every other moves
/// to its own fresh id, and none overwrote another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_id_never_share_it() {
    let store = MemoryStore::new();
    let sessions = TowerSessionsStore::new(store);
    let shared = Id::default();
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let sessions = sessions.clone();
            tokio::spawn(async move {
                let mut rec = record(SystemTime::now(), Duration::from_secs(600));
                rec.id = shared;
                rec.data.insert("n".to_owned(), serde_json::json!(n));
                sessions.create(&mut rec).await.expect("create");
                rec
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    let mut kept = 0;
    for task in tasks {
        let rec = task.await.expect("task");
        kept += usize::from(rec.id == shared);
        assert!(ids.insert(rec.id), "two creates ended on one id");
        let loaded = sessions.load(&rec.id).await.expect("load").expect("stored");
        assert_eq!(loaded.data["n"], rec.data["n"], "a record was overwritten");
    }
    assert_eq!(kept, 1);
}

// ---- behind tower-sessions' own middleware ----

fn app<S: Store + Clone>(sessions: TowerSessionsStore<S>) -> Router {
    Router::new()
        .route(
            "/login",
            get(|session: Session| async move {
                session.insert("user", "ada").await.expect("insert");
                "ok"
            }),
        )
        .route(
            "/whoami",
            get(|session: Session| async move {
                match session.get::<String>("user").await {
                    Ok(user) => (StatusCode::OK, user.unwrap_or_else(|| "anonymous".into())),
                    Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "session failure".into()),
                }
            }),
        )
        .layer(SessionManagerLayer::new(sessions).with_secure(false))
}

async fn call(
    app: &Router,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut req = Request::get(path);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = res.status();
    let set_cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        set_cookie,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn over_http<S: Store + Clone>(store: S) {
    let app = app(TowerSessionsStore::new(store.clone()));
    let (_, cookie, _) = call(&app, "/login", None).await;
    let cookie = cookie.expect("a session cookie");
    assert_eq!(call(&app, "/whoami", Some(&cookie)).await.2, "ada");
    // A forged cookie: a well-formed id nobody was given, and garbage.
    let forged = format!("id={}", Id::default());
    assert_eq!(call(&app, "/whoami", Some(&forged)).await.2, "anonymous");
    assert_eq!(
        call(&app, "/whoami", Some("id=..%00;")).await.2,
        "anonymous"
    );
    // Corrupt bytes under the victim's key: an error answer, never a panic, never "ada".
    let id = cookie.trim_start_matches("id=");
    store
        .set(
            &format!("{DEFAULT_TOWER_SESSIONS_PREFIX}{id}"),
            Bytes::from_static(b"{\"id\":"),
            None,
        )
        .await
        .expect("set");
    let (status, _, body) = call(&app, "/whoami", Some(&cookie)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_ne!(body, "ada");
}

#[tokio::test]
async fn behind_session_manager_layer_on_memory_store() {
    over_http(MemoryStore::new()).await;
}

#[tokio::test]
async fn behind_session_manager_layer_on_redis() {
    let Some((_server, store)) = redis_store("behind_session_manager_layer_on_redis").await else {
        return;
    };
    over_http(store).await;
}
