//! The fast path is part of the contract: a store written outside kv-core that gives a
//! `LocalStore` face gets every engine's in-process answer, exactly as `MemoryStore` does;
//! the same data behind a store without that face takes the waiting path.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use kv_core::cache::{Cache, Lookup, Outcome};
use kv_core::rate_limit::{KeySource, Policy, RateLimiter};
use kv_core::session::SessionManager;
use kv_core::testing::RemoteLike;
use kv_core::{MemoryStore, Result, Step, Store, Ttl};

/// A store of "ours": in-process data (here delegated to a `MemoryStore`), both faces.
#[derive(Debug, Clone, Default)]
struct Mine(MemoryStore);

impl Store for Mine {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.0.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.0.set(key, value, ttl).await
    }
    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.0.set_nx(key, value, ttl).await
    }
    async fn del(&self, key: &str) -> Result<bool> {
        self.0.del(key).await
    }
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.0.expire(key, ttl).await
    }
    async fn ttl(&self, key: &str) -> Result<Ttl> {
        self.0.ttl(key).await
    }
    async fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        self.0.incr_by(key, delta, ttl).await
    }
    async fn hget_all(&self, key: &str) -> Result<Vec<(String, Bytes)>> {
        self.0.hget_all(key).await
    }
    async fn hset(&self, key: &str, f: Vec<(String, Bytes)>, ttl: Option<Duration>) -> Result<()> {
        self.0.hset(key, f, ttl).await
    }
    async fn hdel(&self, key: &str, fields: Vec<String>) -> Result<usize> {
        self.0.hdel(key, fields).await
    }
    // Named by path: with both traits imported, `self.0.get(..)` would be ambiguous.
    fn local(&self) -> Option<&dyn kv_core::LocalStore> {
        self.0.local()
    }
}

fn request() -> Request<()> {
    Request::get("http://example.com/page")
        .body(())
        .expect("request")
}

async fn engines_answer_in_process<S: Store + Clone>(store: S) -> [bool; 3] {
    let limiter = RateLimiter::builder(store.clone())
        .policy(Policy::fixed_window("w", 10, Duration::from_secs(60)).key(KeySource::global()))
        .build()
        .expect("limiter");
    let rate = matches!(limiter.check(&request()), Step::Ready(v) if v.is_allowed());

    let cache = Cache::builder(store.clone()).build().expect("cache");
    let Lookup::Forward(forward) = cache.lookup(&request()).await else {
        panic!("a miss first")
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("cache-control", "max-age=60".parse().expect("value"));
    let Outcome::Record(mut recorder) = forward.response(StatusCode::OK, &mut headers).await else {
        panic!("storable")
    };
    recorder.push(b"body");
    recorder.finish().await;
    let hit = matches!(cache.lookup(&request()), Step::Ready(Lookup::Hit { .. }));

    let sessions = SessionManager::builder(store).build().expect("sessions");
    let session = sessions.start(&request());
    let loaded = matches!(session.load(), Step::Ready(Ok(())));
    session.insert("k", 1).await.expect("insert");
    let saved = matches!(session.end(StatusCode::OK), Step::Ready(Ok(Some(_))));
    [rate, hit, loaded && saved]
}

#[tokio::test]
async fn a_store_of_yours_with_a_local_face_gets_every_engines_fast_path() {
    assert_eq!(engines_answer_in_process(Mine::default()).await, [true; 3]);
    assert_eq!(
        engines_answer_in_process(MemoryStore::new()).await,
        [true; 3]
    );
}

#[tokio::test]
async fn the_same_data_without_the_face_waits_for_the_store() {
    let [rate, hit, saved] = engines_answer_in_process(RemoteLike(MemoryStore::new())).await;
    assert!(!rate && !hit && !saved, "{rate} {hit} {saved}");
}
