//! Test support (feature `test-util`): the store conformance suite and fixtures.
//!
//! The suite checks every row of the [`Store`] contract with Redis semantics. Every
//! backend of this crate runs it, and so can yours:
//!
//! ```
//! # #[cfg(feature = "memory")]
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! use kv_core::{clock::ManualClock, testing::{self, ManualFixture}, MemoryStore};
//!
//! let clock = ManualClock::new();
//! let store = MemoryStore::with_clock(clock.clone());
//! testing::run_all(&ManualFixture::new(store, clock)).await;
//! # }
//! # #[cfg(not(feature = "memory"))] fn main() {}
//! ```
//!
//! A failed check panics with the name of its case and what differed, as a test should.
//! Each run writes under a fresh random key prefix, so it can share a server with other
//! data and with concurrent runs.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: a failed check panics, as a test should.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::clock::ManualClock;
use crate::{KvError, MAX_TTL, Store, Ttl};

/// Parses a `RateLimit` or `RateLimit-Policy` header value as a Structured Field list:
/// `[(name, [(param, integer)])]`. Panics when the value is not a list of string items
/// with integer parameters, as a test should.
pub fn parse_rate_limit_header(value: &str) -> Vec<(String, Vec<(String, i64)>)> {
    let list: sfv::List = sfv::Parser::new(value)
        .parse()
        .expect("a Structured Field list");
    list.into_iter()
        .map(|entry| match entry {
            sfv::ListEntry::Item(item) => {
                let name = item
                    .bare_item
                    .as_string()
                    .expect("a string item")
                    .as_str()
                    .to_owned();
                let params = item
                    .params
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            i64::from(v.as_integer().expect("an integer parameter")),
                        )
                    })
                    .collect();
                (name, params)
            }
            sfv::ListEntry::InnerList(_) => panic!("unexpected inner list in {value:?}"),
        })
        .collect()
}

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
        self.set + self.set_nx + self.del + self.expire + self.incr_by + self.hset + self.hdel
    }
}

/// A store that forwards every call to another one and counts them, per method: for
/// tests that prove how many store calls some code makes (a lazy session, a cache hit).
/// It is also a "custom" store as far as [`AnyStore`](crate::AnyStore) is concerned.
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
}

/// A backend under test, and how to let time pass for it.
pub trait Fixture: Send + Sync {
    /// The store type.
    type Store: Store + Clone;
    /// The store under test.
    fn store(&self) -> &Self::Store;
    /// Lets `by` pass for the store: advance a manual clock, or sleep for a real server.
    fn advance(&self, by: Duration) -> impl Future<Output = ()> + Send;
    /// The TTL the suite uses for keys it lets expire. It must be long enough that a few
    /// calls finish before it runs out (a real server needs some hundreds of ms).
    fn short_ttl(&self) -> Duration {
        Duration::from_millis(500)
    }
}

/// A fixture whose time is a [`ManualClock`]: expiry is checked without waiting.
#[derive(Debug, Clone)]
pub struct ManualFixture<S> {
    store: S,
    clock: ManualClock,
}

impl<S> ManualFixture<S> {
    /// `store` must read its time from `clock`.
    pub fn new(store: S, clock: ManualClock) -> Self {
        ManualFixture { store, clock }
    }
}

impl<S: Store + Clone> Fixture for ManualFixture<S> {
    type Store = S;
    fn store(&self) -> &S {
        &self.store
    }
    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
    fn short_ttl(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// A fixture on real time (a Redis server, say): `advance` sleeps.
#[derive(Debug, Clone)]
pub struct RealTimeFixture<S> {
    store: S,
}

impl<S> RealTimeFixture<S> {
    /// Wraps a store that keeps real time.
    pub fn new(store: S) -> Self {
        RealTimeFixture { store }
    }
}

impl<S: Store + Clone> Fixture for RealTimeFixture<S> {
    type Store = S;
    fn store(&self) -> &S {
        &self.store
    }
    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
}

/// Keys of one case: `<run prefix>:<case>:<name>`.
struct Keys {
    prefix: String,
}

impl Keys {
    fn k(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }
}

fn unique_prefix() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    format!("kvct:{:x}.{nanos:x}.{run}", std::process::id())
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// The names of the suite's cases, in the order [`run_all`] runs them.
        pub const CASES: &[&str] = &[$(stringify!($name)),*];

        /// Runs every case of the suite against `fixture`; panics on the first failure,
        /// naming the case.
        pub async fn run_all<F: Fixture>(fixture: &F) {
            let run = unique_prefix();
            $(
                let keys = Keys { prefix: format!("{run}:{}", stringify!($name)) };
                tracing::info!(case = stringify!($name), "kv conformance");
                eprintln!("kv conformance: {}", stringify!($name));
                $name(fixture, &keys).await;
            )*
        }
    };
}

cases!(
    get_missing_is_none,
    set_then_get_round_trips_any_bytes,
    keys_are_independent,
    set_overwrites_value_and_ttl,
    set_refuses_zero_and_too_long_ttl_and_keeps_the_old_value,
    set_with_ttl_expires,
    set_nx_stores_only_without_a_live_key,
    del_reports_live_keys_only,
    expire_sets_ttl_on_live_keys_only,
    expire_zero_deletes,
    ttl_reports_missing_persistent_expires,
    incr_by_creates_counts_and_renders_decimal,
    incr_by_sets_ttl_only_on_creation,
    incr_by_on_expired_key_starts_over,
    incr_by_increments_text_set_by_set,
    incr_by_refuses_non_integers_and_keeps_them,
    incr_by_overflow_keeps_the_value,
    incr_by_refuses_zero_ttl_and_creates_nothing,
    incr_by_is_atomic_under_concurrency,
    set_nx_has_one_winner_under_concurrency,
    hset_then_hget_all_round_trips,
    hset_with_ttl_sets_it_and_without_keeps_it,
    hash_expires_with_its_ttl,
    hdel_removes_fields_and_an_empty_hash,
    hash_and_string_commands_refuse_the_other_kind,
    hash_calls_refuse_bad_input_and_change_nothing,
    hset_of_different_fields_under_concurrency_loses_none,
);

fn is_invalid_input<T: std::fmt::Debug>(r: &Result<T, KvError>) -> bool {
    matches!(r, Err(KvError::InvalidInput(_)))
}

async fn get_missing_is_none<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    assert_eq!(s.get(&k.k("nope")).await.ok(), Some(None));
    assert_eq!(s.ttl(&k.k("nope")).await.ok(), Some(Ttl::Missing));
}

async fn set_then_get_round_trips_any_bytes<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let values: Vec<Bytes> = vec![
        Bytes::from_static(b"hello"),
        Bytes::new(),
        Bytes::from_static(&[0, 255, 10, 13, 0, 128]),
        Bytes::from(vec![7u8; 100_000]),
        Bytes::from_static("κλειδί ✓".as_bytes()),
    ];
    for (i, v) in values.iter().enumerate() {
        let key = k.k(&format!("v{i}"));
        s.set(&key, v.clone(), None).await.expect("set");
        assert_eq!(
            s.get(&key).await.expect("get").as_ref(),
            Some(v),
            "value {i}"
        );
    }
    for name in [
        "with space",
        "with:colons:{tag}",
        "new\nline",
        "ünïcödé",
        "",
    ] {
        let key = k.k(name);
        s.set(&key, Bytes::from(name.to_owned()), None)
            .await
            .expect("set");
        assert_eq!(
            s.get(&key).await.expect("get"),
            Some(Bytes::from(name.to_owned())),
            "{name:?}"
        );
    }
}

async fn keys_are_independent<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    s.set(&k.k("a"), "1".into(), None).await.expect("set a");
    s.set(&k.k("b"), "2".into(), None).await.expect("set b");
    assert!(s.del(&k.k("a")).await.expect("del"));
    assert_eq!(
        s.get(&k.k("b")).await.expect("get").as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(s.get(&k.k("a")).await.expect("get"), None);
}

async fn set_overwrites_value_and_ttl<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    s.set(&key, "one".into(), Some(Duration::from_secs(100)))
        .await
        .expect("set");
    assert!(matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(_)));
    // SET without a TTL makes the key persistent again (no KEEPTTL).
    s.set(&key, "two".into(), None).await.expect("set");
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
    assert_eq!(
        s.get(&key).await.expect("get").as_deref(),
        Some(&b"two"[..])
    );
    s.set(&key, "three".into(), Some(Duration::from_secs(50)))
        .await
        .expect("set");
    match s.ttl(&key).await.expect("ttl") {
        Ttl::Expires(left) => assert!(
            left <= Duration::from_secs(50) && left > Duration::from_secs(40),
            "{left:?}"
        ),
        other => panic!("expected Expires, got {other:?}"),
    }
    assert_eq!(
        s.get(&key).await.expect("get").as_deref(),
        Some(&b"three"[..])
    );
}

async fn set_refuses_zero_and_too_long_ttl_and_keeps_the_old_value<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    s.set(&key, "kept".into(), None).await.expect("set");
    assert!(is_invalid_input(
        &s.set(&key, "new".into(), Some(Duration::ZERO)).await
    ));
    assert!(is_invalid_input(
        &s.set(&key, "new".into(), Some(MAX_TTL + Duration::from_secs(1)))
            .await
    ));
    assert!(is_invalid_input(
        &s.set_nx(&k.k("fresh"), "new".into(), Some(Duration::ZERO))
            .await
    ));
    assert_eq!(
        s.get(&key).await.expect("get").as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
    assert_eq!(s.get(&k.k("fresh")).await.expect("get"), None);
}

async fn set_with_ttl_expires<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    let ttl = f.short_ttl();
    s.set(&key, "v".into(), Some(ttl)).await.expect("set");
    assert_eq!(s.get(&key).await.expect("get").as_deref(), Some(&b"v"[..]));
    match s.ttl(&key).await.expect("ttl") {
        Ttl::Expires(left) => assert!(left <= ttl && left > Duration::ZERO, "{left:?}"),
        other => panic!("expected Expires, got {other:?}"),
    }
    f.advance(ttl + ttl / 5).await;
    assert_eq!(
        s.get(&key).await.expect("get"),
        None,
        "expired key still visible"
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Missing);
    assert!(
        !s.del(&key).await.expect("del"),
        "DEL of an expired key counts it"
    );
}

async fn set_nx_stores_only_without_a_live_key<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    let ttl = f.short_ttl();
    assert!(
        s.set_nx(&key, "first".into(), Some(ttl))
            .await
            .expect("set_nx")
    );
    assert!(!s.set_nx(&key, "second".into(), None).await.expect("set_nx"));
    assert_eq!(
        s.get(&key).await.expect("get").as_deref(),
        Some(&b"first"[..])
    );
    assert!(
        matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(_)),
        "losing SET NX changed the TTL"
    );
    f.advance(ttl + ttl / 5).await;
    assert!(
        s.set_nx(&key, "third".into(), None)
            .await
            .expect("set_nx over expired")
    );
    assert_eq!(
        s.get(&key).await.expect("get").as_deref(),
        Some(&b"third"[..])
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
}

async fn del_reports_live_keys_only<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    assert!(!s.del(&key).await.expect("del missing"));
    s.set(&key, "v".into(), None).await.expect("set");
    assert!(s.del(&key).await.expect("del"));
    assert!(!s.del(&key).await.expect("del again"));
    assert_eq!(s.get(&key).await.expect("get"), None);
}

async fn expire_sets_ttl_on_live_keys_only<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    let ttl = f.short_ttl();
    assert!(!s.expire(&key, ttl).await.expect("expire missing"));
    assert_eq!(
        s.get(&key).await.expect("get"),
        None,
        "EXPIRE created a key"
    );
    s.set(&key, "v".into(), None).await.expect("set");
    assert!(is_invalid_input(
        &s.expire(&key, MAX_TTL + Duration::from_secs(1)).await
    ));
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
    assert!(s.expire(&key, ttl).await.expect("expire"));
    match s.ttl(&key).await.expect("ttl") {
        Ttl::Expires(left) => assert!(left <= ttl && left > Duration::ZERO, "{left:?}"),
        other => panic!("expected Expires, got {other:?}"),
    }
    assert_eq!(s.get(&key).await.expect("get").as_deref(), Some(&b"v"[..]));
    f.advance(ttl + ttl / 5).await;
    assert_eq!(s.get(&key).await.expect("get"), None);
    assert!(!s.expire(&key, ttl).await.expect("expire expired"));
}

async fn expire_zero_deletes<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    s.set(&key, "v".into(), None).await.expect("set");
    assert!(s.expire(&key, Duration::ZERO).await.expect("expire 0"));
    assert_eq!(s.get(&key).await.expect("get"), None);
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Missing);
    assert!(
        !s.expire(&key, Duration::ZERO)
            .await
            .expect("expire 0 missing")
    );
}

async fn ttl_reports_missing_persistent_expires<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    assert_eq!(s.ttl(&k.k("missing")).await.expect("ttl"), Ttl::Missing);
    s.set(&k.k("persistent"), "v".into(), None)
        .await
        .expect("set");
    assert_eq!(
        s.ttl(&k.k("persistent")).await.expect("ttl"),
        Ttl::Persistent
    );
    s.set(&k.k("volatile"), "v".into(), Some(Duration::from_secs(30)))
        .await
        .expect("set");
    match s.ttl(&k.k("volatile")).await.expect("ttl") {
        Ttl::Expires(left) => assert!(
            left <= Duration::from_secs(30) && left > Duration::from_secs(20),
            "{left:?}"
        ),
        other => panic!("expected Expires, got {other:?}"),
    }
    // Millisecond precision: a TTL under one millisecond still leaves a live key.
    s.set(
        &k.k("tiny"),
        "v".into(),
        Some(Duration::from_secs(5) + Duration::from_micros(1)),
    )
    .await
    .expect("set");
    assert!(matches!(
        s.ttl(&k.k("tiny")).await.expect("ttl"),
        Ttl::Expires(_)
    ));
}

async fn incr_by_creates_counts_and_renders_decimal<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("n");
    assert_eq!(s.incr_by(&key, 5, None).await.expect("incr"), 5);
    assert_eq!(s.incr_by(&key, 1, None).await.expect("incr"), 6);
    assert_eq!(s.incr_by(&key, -10, None).await.expect("incr"), -4);
    assert_eq!(s.incr_by(&key, 0, None).await.expect("incr"), -4);
    assert_eq!(s.get(&key).await.expect("get").as_deref(), Some(&b"-4"[..]));
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
    assert_eq!(s.incr_by(&k.k("neg"), -3, None).await.expect("incr"), -3);
}

async fn incr_by_sets_ttl_only_on_creation<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("n");
    let ttl = f.short_ttl();
    assert_eq!(s.incr_by(&key, 1, Some(ttl)).await.expect("incr"), 1);
    let first = match s.ttl(&key).await.expect("ttl") {
        Ttl::Expires(left) => left,
        other => panic!("counter created without its TTL: {other:?}"),
    };
    assert!(first <= ttl);
    f.advance(ttl / 2).await;
    // An existing key keeps its TTL: a longer ttl_if_new does not extend it.
    assert_eq!(s.incr_by(&key, 1, Some(ttl * 10)).await.expect("incr"), 2);
    match s.ttl(&key).await.expect("ttl") {
        Ttl::Expires(left) => assert!(left < first, "TTL was reset: {left:?} >= {first:?}"),
        other => panic!("expected Expires, got {other:?}"),
    }
    // ... and a persistent key stays persistent.
    s.set(&k.k("p"), "1".into(), None).await.expect("set");
    assert_eq!(s.incr_by(&k.k("p"), 1, Some(ttl)).await.expect("incr"), 2);
    assert_eq!(s.ttl(&k.k("p")).await.expect("ttl"), Ttl::Persistent);
}

async fn incr_by_on_expired_key_starts_over<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("n");
    let ttl = f.short_ttl();
    assert_eq!(s.incr_by(&key, 7, Some(ttl)).await.expect("incr"), 7);
    f.advance(ttl + ttl / 5).await;
    assert_eq!(s.incr_by(&key, 1, Some(ttl)).await.expect("incr"), 1);
    assert!(matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(_)));
}

async fn incr_by_increments_text_set_by_set<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("n");
    s.set(&key, "10".into(), Some(Duration::from_secs(60)))
        .await
        .expect("set");
    assert_eq!(s.incr_by(&key, 5, None).await.expect("incr"), 15);
    assert_eq!(s.get(&key).await.expect("get").as_deref(), Some(&b"15"[..]));
    assert!(
        matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(_)),
        "INCR dropped the TTL"
    );
    for (text, value) in [
        ("0", 0i64),
        ("-7", -7),
        ("9223372036854775806", i64::MAX - 1),
    ] {
        let key = k.k(&format!("t{text}"));
        s.set(&key, Bytes::from(text.to_owned()), None)
            .await
            .expect("set");
        assert_eq!(
            s.incr_by(&key, 1, None).await.expect("incr"),
            value + 1,
            "{text}"
        );
    }
}

async fn incr_by_refuses_non_integers_and_keeps_them<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let bad: [&[u8]; 12] = [
        b"abc",
        b"1.5",
        b" 1",
        b"1 ",
        b"+1",
        b"01",
        b"-0",
        b"",
        b"1e3",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"\xff\x00",
    ];
    for (i, text) in bad.iter().enumerate() {
        let key = k.k(&format!("b{i}"));
        let value = Bytes::copy_from_slice(text);
        s.set(&key, value.clone(), Some(Duration::from_secs(60)))
            .await
            .expect("set");
        let r = s.incr_by(&key, 1, None).await;
        assert!(
            matches!(r, Err(KvError::NotInteger)),
            "{:?}: {r:?}",
            String::from_utf8_lossy(text)
        );
        assert_eq!(
            s.get(&key).await.expect("get"),
            Some(value),
            "value changed by a failed INCR"
        );
        assert!(
            matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(_)),
            "TTL changed by a failed INCR"
        );
    }
}

async fn incr_by_overflow_keeps_the_value<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("max");
    assert_eq!(
        s.incr_by(&key, i64::MAX, None).await.expect("incr"),
        i64::MAX
    );
    assert!(matches!(
        s.incr_by(&key, 1, None).await,
        Err(KvError::Overflow)
    ));
    assert_eq!(
        s.get(&key).await.expect("get"),
        Some(Bytes::from(i64::MAX.to_string()))
    );
    let key = k.k("min");
    s.set(&key, Bytes::from(i64::MIN.to_string()), None)
        .await
        .expect("set");
    assert!(matches!(
        s.incr_by(&key, -1, None).await,
        Err(KvError::Overflow)
    ));
    assert_eq!(s.incr_by(&key, 0, None).await.expect("incr"), i64::MIN);
    assert_eq!(
        s.get(&key).await.expect("get"),
        Some(Bytes::from(i64::MIN.to_string()))
    );
}

async fn incr_by_refuses_zero_ttl_and_creates_nothing<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("n");
    assert!(is_invalid_input(
        &s.incr_by(&key, 1, Some(Duration::ZERO)).await
    ));
    assert_eq!(s.get(&key).await.expect("get"), None);
}

async fn incr_by_is_atomic_under_concurrency<F: Fixture>(f: &F, k: &Keys) {
    const TASKS: i64 = 16;
    const EACH: i64 = 200;
    let key = k.k("n");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let store = f.store().clone();
        let key = key.clone();
        set.spawn(async move {
            let mut seen = Vec::with_capacity(EACH as usize);
            for _ in 0..EACH {
                seen.push(
                    store
                        .incr_by(&key, 1, Some(Duration::from_secs(60)))
                        .await
                        .expect("incr"),
                );
            }
            seen
        });
    }
    let mut all = Vec::new();
    while let Some(done) = set.join_next().await {
        all.extend(done.expect("task"));
    }
    all.sort_unstable();
    // Every increment saw a distinct value: 1..=TASKS*EACH, none lost, none repeated.
    assert_eq!(all, (1..=TASKS * EACH).collect::<Vec<_>>());
    assert_eq!(
        f.store().get(&key).await.expect("get"),
        Some(Bytes::from((TASKS * EACH).to_string()))
    );
}

async fn set_nx_has_one_winner_under_concurrency<F: Fixture>(f: &F, k: &Keys) {
    let key = k.k("lock");
    let mut set = tokio::task::JoinSet::new();
    for i in 0..32u32 {
        let store = f.store().clone();
        let key = key.clone();
        set.spawn(async move {
            store
                .set_nx(
                    &key,
                    Bytes::from(i.to_string()),
                    Some(Duration::from_secs(60)),
                )
                .await
                .expect("set_nx")
        });
    }
    let mut winners = 0;
    while let Some(won) = set.join_next().await {
        winners += usize::from(won.expect("task"));
    }
    assert_eq!(winners, 1);
}

fn sorted(mut fields: Vec<(String, Bytes)>) -> Vec<(String, Bytes)> {
    fields.sort();
    fields
}

fn field(name: &str, value: &'static [u8]) -> (String, Bytes) {
    (name.to_owned(), Bytes::from_static(value))
}

async fn hset_then_hget_all_round_trips<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("h");
    assert_eq!(s.hget_all(&key).await.expect("hget_all"), vec![]);
    s.hset(&key, vec![field("a", b"1"), field("b", b"\x00\xff")], None)
        .await
        .expect("hset");
    // Fields not named keep their values; a field named twice takes the last value.
    s.hset(
        &key,
        vec![field("c", b""), field("a", b"x"), field("a", b"2")],
        None,
    )
    .await
    .expect("hset");
    assert_eq!(
        sorted(s.hget_all(&key).await.expect("hget_all")),
        vec![field("a", b"2"), field("b", b"\x00\xff"), field("c", b"")]
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
    assert!(s.del(&key).await.expect("del"));
    assert_eq!(s.hget_all(&key).await.expect("hget_all"), vec![]);
}

async fn hset_with_ttl_sets_it_and_without_keeps_it<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("h");
    s.hset(&key, vec![field("a", b"1")], Some(Duration::from_secs(100)))
        .await
        .expect("hset");
    let Ttl::Expires(left) = s.ttl(&key).await.expect("ttl") else {
        panic!("hset with a ttl must set it");
    };
    assert!(left > Duration::from_secs(90) && left <= Duration::from_secs(100));
    s.hset(&key, vec![field("b", b"2")], None)
        .await
        .expect("hset");
    let Ttl::Expires(kept) = s.ttl(&key).await.expect("ttl") else {
        panic!("hset without a ttl must keep it");
    };
    assert!(kept > Duration::from_secs(90) && kept <= left);
    s.hset(
        &key,
        vec![field("c", b"3")],
        Some(Duration::from_secs(1000)),
    )
    .await
    .expect("hset");
    let Ttl::Expires(longer) = s.ttl(&key).await.expect("ttl") else {
        panic!("ttl");
    };
    assert!(longer > Duration::from_secs(990));
    assert_eq!(s.hget_all(&key).await.expect("hget_all").len(), 3);
    // `expire` works on a hash as on any key.
    assert!(
        s.expire(&key, Duration::from_secs(50))
            .await
            .expect("expire")
    );
    assert!(
        matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(d) if d <= Duration::from_secs(50))
    );
}

async fn hash_expires_with_its_ttl<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("h");
    let ttl = f.short_ttl();
    s.hset(&key, vec![field("a", b"1")], Some(ttl))
        .await
        .expect("hset");
    assert_eq!(s.hget_all(&key).await.expect("hget_all").len(), 1);
    f.advance(ttl + Duration::from_millis(50)).await;
    assert_eq!(s.hget_all(&key).await.expect("hget_all"), vec![]);
    assert_eq!(s.hdel(&key, vec!["a".into()]).await.expect("hdel"), 0);
    // A write after expiry starts a new hash: the old fields are gone, no TTL unless given.
    s.hset(&key, vec![field("b", b"2")], None)
        .await
        .expect("hset");
    assert_eq!(
        s.hget_all(&key).await.expect("hget_all"),
        vec![field("b", b"2")]
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
}

async fn hdel_removes_fields_and_an_empty_hash<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("h");
    assert_eq!(s.hdel(&key, vec!["a".into()]).await.expect("hdel"), 0);
    s.hset(
        &key,
        vec![field("a", b"1"), field("b", b"2"), field("c", b"3")],
        Some(Duration::from_secs(100)),
    )
    .await
    .expect("hset");
    assert_eq!(
        s.hdel(&key, vec!["a".into(), "zz".into()])
            .await
            .expect("hdel"),
        1
    );
    assert_eq!(
        sorted(s.hget_all(&key).await.expect("hget_all")),
        vec![field("b", b"2"), field("c", b"3")]
    );
    // The TTL survives a partial removal.
    assert!(matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(_)));
    assert_eq!(
        s.hdel(&key, vec!["b".into(), "c".into()])
            .await
            .expect("hdel"),
        2
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Missing);
    assert!(!s.del(&key).await.expect("del"));
}

async fn hash_and_string_commands_refuse_the_other_kind<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let (text, hash) = (k.k("text"), k.k("hash"));
    s.set(
        &text,
        Bytes::from_static(b"7"),
        Some(Duration::from_secs(100)),
    )
    .await
    .expect("set");
    s.hset(&hash, vec![field("a", b"1")], None)
        .await
        .expect("hset");
    let wrong = |r: &Result<_, KvError>| matches!(r, Err(KvError::WrongType));
    assert!(wrong(&s.hget_all(&text).await.map(drop)));
    assert!(wrong(
        &s.hset(&text, vec![field("a", b"1")], Some(Duration::from_secs(5)))
            .await
    ));
    assert!(wrong(&s.hdel(&text, vec!["a".into()]).await.map(drop)));
    assert!(wrong(&s.get(&hash).await.map(drop)));
    assert!(wrong(&s.incr_by(&hash, 1, None).await.map(drop)));
    // Nothing changed: not the string, not its TTL, not the hash.
    assert_eq!(s.get(&text).await.expect("get").as_deref(), Some(&b"7"[..]));
    assert!(
        matches!(s.ttl(&text).await.expect("ttl"), Ttl::Expires(d) if d > Duration::from_secs(90))
    );
    assert_eq!(
        s.hget_all(&hash).await.expect("hget_all"),
        vec![field("a", b"1")]
    );
    // `set` replaces a hash (as Redis' SET does), and `set_nx` sees it as a live key.
    assert!(
        !s.set_nx(&hash, Bytes::from_static(b"v"), None)
            .await
            .expect("set_nx")
    );
    s.set(&hash, Bytes::from_static(b"v"), None)
        .await
        .expect("set");
    assert_eq!(s.get(&hash).await.expect("get").as_deref(), Some(&b"v"[..]));
}

async fn hash_calls_refuse_bad_input_and_change_nothing<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("h");
    s.hset(&key, vec![field("a", b"1")], None)
        .await
        .expect("hset");
    assert!(is_invalid_input(&s.hset(&key, vec![], None).await));
    assert!(is_invalid_input(&s.hdel(&key, vec![]).await));
    assert!(is_invalid_input(
        &s.hset(&key, vec![field("a", b"2")], Some(Duration::ZERO))
            .await
    ));
    let too_many: Vec<(String, Bytes)> = (0..=crate::MAX_HASH_FIELDS)
        .map(|i| (format!("f{i}"), Bytes::new()))
        .collect();
    assert!(is_invalid_input(&s.hset(&key, too_many, None).await));
    assert_eq!(
        s.hget_all(&key).await.expect("hget_all"),
        vec![field("a", b"1")]
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
}

async fn hset_of_different_fields_under_concurrency_loses_none<F: Fixture>(f: &F, k: &Keys) {
    const TASKS: usize = 16;
    const EACH: usize = 25;
    let key = k.k("h");
    let mut set = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let store = f.store().clone();
        let key = key.clone();
        set.spawn(async move {
            for i in 0..EACH {
                store
                    .hset(
                        &key,
                        vec![(format!("t{t}.{i}"), Bytes::from(format!("{t}:{i}")))],
                        Some(Duration::from_secs(60)),
                    )
                    .await
                    .expect("hset");
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.expect("task");
    }
    let fields = f.store().hget_all(&key).await.expect("hget_all");
    assert_eq!(fields.len(), TASKS * EACH);
    for (name, value) in fields {
        let (t, i) = name[1..].split_once('.').expect("field name");
        assert_eq!(value, Bytes::from(format!("{t}:{i}")));
    }
}
