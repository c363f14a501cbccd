//! Test doubles: a store that is down, and a store that counts the calls made to it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::store::{Throttle, ThrottleReply};
use crate::{KvError, LocalStore, Store, Ttl};

/// A store that is down: every call fails with [`KvError::Unavailable`] and is counted.
/// For testing what your code (or a kv middleware's fail-open / fail-closed setting) does
/// when the store fails.
#[derive(Debug, Clone, Default)]
pub struct UnavailableStore {
    calls: std::sync::Arc<AtomicU64>,
}

impl UnavailableStore {
    /// A new store that is down.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many calls were made to it (all clones together).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn fail<T>(&self) -> crate::Result<T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(KvError::unavailable(std::io::Error::other(
            "store is down (UnavailableStore)",
        )))
    }
}

impl Store for UnavailableStore {
    async fn get(&self, _: &str) -> crate::Result<Option<Bytes>> {
        self.fail()
    }
    async fn set(&self, _: &str, _: Bytes, _: Option<Duration>) -> crate::Result<()> {
        self.fail()
    }
    async fn set_nx(&self, _: &str, _: Bytes, _: Option<Duration>) -> crate::Result<bool> {
        self.fail()
    }
    async fn del(&self, _: &str) -> crate::Result<bool> {
        self.fail()
    }
    async fn expire(&self, _: &str, _: Duration) -> crate::Result<bool> {
        self.fail()
    }
    async fn ttl(&self, _: &str) -> crate::Result<Ttl> {
        self.fail()
    }
    async fn incr_by(&self, _: &str, _: i64, _: Option<Duration>) -> crate::Result<i64> {
        self.fail()
    }
    async fn hget_all(&self, _: &str) -> crate::Result<Vec<(String, Bytes)>> {
        self.fail()
    }
    async fn hset(
        &self,
        _: &str,
        _: Vec<(String, Bytes)>,
        _: Option<Duration>,
    ) -> crate::Result<()> {
        self.fail()
    }
    async fn hdel(&self, _: &str, _: Vec<String>) -> crate::Result<usize> {
        self.fail()
    }
    async fn throttle(&self, _: &str, _: Throttle) -> crate::Result<ThrottleReply> {
        self.fail()
    }
}

/// Calls made to a [`CountingStore`], per method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Calls {
    /// `get` calls.
    pub get: u64,
    /// `set` calls.
    pub set: u64,
    /// `set_nx` calls.
    pub set_nx: u64,
    /// `del` calls.
    pub del: u64,
    /// `expire` calls.
    pub expire: u64,
    /// `ttl` calls.
    pub ttl: u64,
    /// `incr_by` calls.
    pub incr_by: u64,
    /// `hget_all` calls.
    pub hget_all: u64,
    /// `hset` calls.
    pub hset: u64,
    /// `hdel` calls.
    pub hdel: u64,
    /// `throttle` calls.
    pub throttle: u64,
}

impl Calls {
    /// Every call together.
    pub fn total(&self) -> u64 {
        self.reads() + self.writes()
    }

    /// Calls that only read: `get`, `ttl`, `hget_all`.
    pub fn reads(&self) -> u64 {
        self.get + self.ttl + self.hget_all
    }

    /// Calls that may change the store.
    pub fn writes(&self) -> u64 {
        self.set
            + self.set_nx
            + self.del
            + self.expire
            + self.incr_by
            + self.hset
            + self.hdel
            + self.throttle
    }
}

/// A store that forwards every call to another one and counts them, per method: for
/// tests that prove how many store calls some code makes (a lazy session, a cache hit).
/// It is also a "custom" store as far as [`AnyStore`](crate::AnyStore) is concerned, and
/// it keeps the [`LocalStore`] face of what it wraps (calls through it are counted too).
#[derive(Debug, Clone, Default)]
pub struct CountingStore<S> {
    inner: S,
    calls: std::sync::Arc<parking_lot::Mutex<Calls>>,
}

impl<S: Store> CountingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        CountingStore {
            inner,
            calls: Default::default(),
        }
    }

    /// The calls made so far (all clones together).
    pub fn calls(&self) -> Calls {
        *self.calls.lock()
    }

    /// Forgets the calls counted so far.
    pub fn reset(&self) {
        *self.calls.lock() = Calls::default();
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn count(&self, f: impl FnOnce(&mut Calls)) {
        f(&mut self.calls.lock());
    }

    fn inner_local(&self) -> crate::Result<&dyn LocalStore> {
        self.inner.local().ok_or_else(|| {
            KvError::backend(std::io::Error::other("the wrapped store has no local face"))
        })
    }
}

impl<S: Store> Store for CountingStore<S> {
    async fn get(&self, key: &str) -> crate::Result<Option<Bytes>> {
        self.count(|c| c.get += 1);
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> crate::Result<()> {
        self.count(|c| c.set += 1);
        self.inner.set(key, value, ttl).await
    }
    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> crate::Result<bool> {
        self.count(|c| c.set_nx += 1);
        self.inner.set_nx(key, value, ttl).await
    }
    async fn del(&self, key: &str) -> crate::Result<bool> {
        self.count(|c| c.del += 1);
        self.inner.del(key).await
    }
    async fn expire(&self, key: &str, ttl: Duration) -> crate::Result<bool> {
        self.count(|c| c.expire += 1);
        self.inner.expire(key, ttl).await
    }
    async fn ttl(&self, key: &str) -> crate::Result<Ttl> {
        self.count(|c| c.ttl += 1);
        self.inner.ttl(key).await
    }
    async fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> crate::Result<i64> {
        self.count(|c| c.incr_by += 1);
        self.inner.incr_by(key, delta, ttl).await
    }
    async fn hget_all(&self, key: &str) -> crate::Result<Vec<(String, Bytes)>> {
        self.count(|c| c.hget_all += 1);
        self.inner.hget_all(key).await
    }
    async fn hset(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> crate::Result<()> {
        self.count(|c| c.hset += 1);
        self.inner.hset(key, fields, ttl).await
    }
    async fn hdel(&self, key: &str, fields: Vec<String>) -> crate::Result<usize> {
        self.count(|c| c.hdel += 1);
        self.inner.hdel(key, fields).await
    }
    async fn throttle(&self, key: &str, request: Throttle) -> crate::Result<ThrottleReply> {
        self.count(|c| c.throttle += 1);
        self.inner.throttle(key, request).await
    }
    /// The inner store's in-process face, counted the same way.
    fn local(&self) -> Option<&dyn LocalStore> {
        self.inner.local().map(|_| self as &dyn LocalStore)
    }
}

/// Counts, then forwards to the inner store's [`LocalStore`] face (only handed out by
/// [`Store::local`] when the inner store has one).
impl<S: Store> LocalStore for CountingStore<S> {
    fn get(&self, key: &str) -> crate::Result<Option<Bytes>> {
        self.count(|c| c.get += 1);
        self.inner_local()?.get(key)
    }
    /// Counted as the `get` it stands for.
    fn get_decoded(
        &self,
        key: &str,
        decode: crate::store::Decoder<'_>,
    ) -> crate::Result<Option<crate::store::Decoded>> {
        self.count(|c| c.get += 1);
        self.inner_local()?.get_decoded(key, decode)
    }
    fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> crate::Result<()> {
        self.count(|c| c.set += 1);
        self.inner_local()?.set(key, value, ttl)
    }
    fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> crate::Result<bool> {
        self.count(|c| c.set_nx += 1);
        self.inner_local()?.set_nx(key, value, ttl)
    }
    fn del(&self, key: &str) -> crate::Result<bool> {
        self.count(|c| c.del += 1);
        self.inner_local()?.del(key)
    }
    fn expire(&self, key: &str, ttl: Duration) -> crate::Result<bool> {
        self.count(|c| c.expire += 1);
        self.inner_local()?.expire(key, ttl)
    }
    fn ttl(&self, key: &str) -> crate::Result<Ttl> {
        self.count(|c| c.ttl += 1);
        self.inner_local()?.ttl(key)
    }
    fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> crate::Result<i64> {
        self.count(|c| c.incr_by += 1);
        self.inner_local()?.incr_by(key, delta, ttl)
    }
    fn hget_all(&self, key: &str) -> crate::Result<Vec<(String, Bytes)>> {
        self.count(|c| c.hget_all += 1);
        self.inner_local()?.hget_all(key)
    }
    fn hset(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> crate::Result<()> {
        self.count(|c| c.hset += 1);
        self.inner_local()?.hset(key, fields, ttl)
    }
    fn hdel(&self, key: &str, fields: Vec<String>) -> crate::Result<usize> {
        self.count(|c| c.hdel += 1);
        self.inner_local()?.hdel(key, fields)
    }
    fn throttle(&self, key: &str, request: Throttle) -> crate::Result<ThrottleReply> {
        self.count(|c| c.throttle += 1);
        self.inner_local()?.throttle(key, request)
    }
    /// Counted as the two reads it stands for: `hget_all` and `ttl`.
    fn hget_all_with_ttl(
        &self,
        key: &str,
        visit: &mut dyn FnMut(&str, &Bytes),
    ) -> crate::Result<Ttl> {
        self.count(|c| {
            c.hget_all += 1;
            c.ttl += 1;
        });
        self.inner_local()?.hget_all_with_ttl(key, visit)
    }
}

/// A store that forwards every call to another one but hides its [`LocalStore`] face, so
/// that the engines take the path they take on a remote store (every call a future,
/// coalescing locks across replicas) while the data lives in process: for testing that
/// path without a server, e.g. several "replicas" sharing one `MemoryStore`.
#[derive(Debug, Clone, Default)]
pub struct RemoteLike<S>(pub S);

impl<S: Store> Store for RemoteLike<S> {
    async fn get(&self, key: &str) -> crate::Result<Option<Bytes>> {
        self.0.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> crate::Result<()> {
        self.0.set(key, value, ttl).await
    }
    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> crate::Result<bool> {
        self.0.set_nx(key, value, ttl).await
    }
    async fn del(&self, key: &str) -> crate::Result<bool> {
        self.0.del(key).await
    }
    async fn expire(&self, key: &str, ttl: Duration) -> crate::Result<bool> {
        self.0.expire(key, ttl).await
    }
    async fn ttl(&self, key: &str) -> crate::Result<Ttl> {
        self.0.ttl(key).await
    }
    async fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> crate::Result<i64> {
        self.0.incr_by(key, delta, ttl).await
    }
    async fn hget_all(&self, key: &str) -> crate::Result<Vec<(String, Bytes)>> {
        self.0.hget_all(key).await
    }
    async fn hset(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> crate::Result<()> {
        self.0.hset(key, fields, ttl).await
    }
    async fn hdel(&self, key: &str, fields: Vec<String>) -> crate::Result<usize> {
        self.0.hdel(key, fields).await
    }
    async fn throttle(&self, key: &str, request: Throttle) -> crate::Result<ThrottleReply> {
        self.0.throttle(key, request).await
    }
}
