//! The store contract and its backends.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | the [`Store`] trait (the Redis commands every backend speaks the same way) and [`Ttl`] |
//! | `local.rs` | [`LocalStore`], the synchronous face of an in-process store: the engines' fast path |
//! | `any.rs` | [`AnyStore`], a store chosen at run time |
//! | `throttle.rs` | [`Throttle`] / [`ThrottleReply`]: GCRA in the store (`throttle`), its arithmetic |
//! | `input.rs` | the input rules every backend applies (key, value and TTL limits, Redis' integer grammar) |
//! | `memory/` | [`MemoryStore`](crate::MemoryStore), the embedded backend (feature `memory`) |
//! | `redis.rs` | `RedisStore`, the Redis / Valkey / Redis Cluster backend (feature `redis`) |
//!
//! A new backend lives in this folder: it implements [`Store`] (and [`LocalStore`] when
//! it answers in process), is added to [`AnyStore::connect`] if it has a URL scheme, and
//! runs the conformance suite (`kv_core::testing::run_all`, feature `test-util`) in
//! `kv-core/tests/`. No engine changes.

mod any;
pub(crate) mod input;
mod local;
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod throttle;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::Result;

pub use any::AnyStore;
pub use local::{Decoded, Decoder, LocalStore};
pub(crate) use throttle::params as throttle_params_ok;
pub use throttle::{Throttle, ThrottleReply};

/// The remaining time to live of a key, as Redis' `PTTL` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ttl {
    /// The key does not exist or has expired (`PTTL` answers -2).
    Missing,
    /// The key exists and has no expiry (`PTTL` answers -1).
    Persistent,
    /// The key expires after this much time (millisecond precision).
    Expires(Duration),
}

impl Ttl {
    /// Maps a `PTTL` reply to a `Ttl`: `-2` missing, `-1` persistent, else milliseconds left.
    pub fn from_pttl(millis: i64) -> Ttl {
        match millis {
            -1 => Ttl::Persistent,
            m if m < 0 => Ttl::Missing,
            m => Ttl::Expires(Duration::from_millis(m as u64)),
        }
    }
}

/// A key-value store with Redis semantics: what every kv middleware runs on.
///
/// | method | Redis twin | contract |
/// |---|---|---|
/// | [`get`](Store::get) | `GET` | `None` when missing or expired |
/// | [`set`](Store::set) | `SET` / `SET PX` | overwrites value **and** TTL; no TTL = persistent; a zero TTL is `InvalidInput` |
/// | [`set_nx`](Store::set_nx) | `SET NX PX` | `true` if stored, `false` if a live key exists |
/// | [`del`](Store::del) | `DEL` | whether a live key was removed |
/// | [`expire`](Store::expire) | `PEXPIRE` | `false` on a missing key; a zero TTL deletes the key |
/// | [`ttl`](Store::ttl) | `PTTL` | [`Ttl::Missing`], [`Ttl::Persistent`] or [`Ttl::Expires`] |
/// | [`incr_by`](Store::incr_by) | `INCRBY` (+ `PEXPIRE` when created) | atomic; see the method |
/// | [`hget_all`](Store::hget_all) | `HGETALL` | every field of a hash; empty when missing or expired |
/// | [`hset`](Store::hset) | `HSET` (+ `PEXPIRE` when a TTL is given) | sets fields, leaves the others; atomic with the TTL |
/// | [`hdel`](Store::hdel) | `HDEL` | removes fields; a hash left empty no longer exists |
/// | [`throttle`](Store::throttle) | `CL.THROTTLE` (redis-cell), as one Lua script | one GCRA decision, atomic; the key holds the TAT with a TTL |
///
/// Hash fields exist so that two writers of *different* fields of one record (two
/// requests of one session, say) cannot overwrite each other. A string command on a hash
/// (or a hash command on a string) is [`KvError::WrongType`](crate::KvError::WrongType)
/// and changes nothing; `set` replaces a key of any kind, as Redis' `SET` does.
///
/// TTLs have millisecond precision: a sub-millisecond TTL is rounded up to 1 ms, and a TTL
/// longer than [`MAX_TTL`](crate::MAX_TTL) is `InvalidInput`. Keys are UTF-8 strings;
/// each backend documents its key and value size limits and refuses larger input with
/// [`KvError::InvalidInput`](crate::KvError::InvalidInput), storing nothing.
///
/// The methods are `async` and their futures are `Send`; implement them with `async fn`.
/// To hold a store chosen at run time without generics, use [`AnyStore`].
///
/// A store whose data lives in this process also gives its synchronous face,
/// [`LocalStore`], through [`local`](Store::local): the engines then decide without a
/// future (the fast path). The default, `None`, is right for every remote store.
///
/// A backend passes the conformance suite in `kv_core::testing` (feature `test-util`).
pub trait Store: fmt::Debug + Send + Sync + 'static {
    /// `GET key`: the value, or `None` when the key is missing or expired.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// `SET key value [PX ttl]`: stores `value`, replacing any value **and** TTL.
    /// `None` makes the key persistent (as `SET` without `KEEPTTL`).
    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// `SET key value NX [PX ttl]`: stores only when no live key exists; `true` if stored.
    fn set_nx(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// `DEL key`: whether a live key was removed.
    fn del(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;

    /// `PEXPIRE key ttl`: sets the TTL of a live key; `false` when the key is missing.
    /// A zero `ttl` deletes the key (and answers `true` when it existed).
    fn expire(&self, key: &str, ttl: Duration) -> impl Future<Output = Result<bool>> + Send;

    /// `PTTL key`.
    fn ttl(&self, key: &str) -> impl Future<Output = Result<Ttl>> + Send;

    /// `INCRBY key delta`, atomically, and `PEXPIRE key ttl_if_new` in the same step when
    /// the key was created by this call. Returns the new value.
    ///
    /// A missing key starts at 0; an existing key keeps its TTL. The value is stored as
    /// decimal text (`get` returns `b"5"`), and a value `set` to `b"10"` can be incremented.
    ///
    /// # Errors
    /// [`KvError::NotInteger`](crate::KvError::NotInteger) when the stored value is not an
    /// integer by Redis' grammar, [`KvError::Overflow`](crate::KvError::Overflow) when the
    /// result leaves `i64`; in both cases the stored value is unchanged.
    fn incr_by(
        &self,
        key: &str,
        delta: i64,
        ttl_if_new: Option<Duration>,
    ) -> impl Future<Output = Result<i64>> + Send;

    /// `HGETALL key`: every field of the hash at `key` with its value, in no particular
    /// order; empty when the key is missing or expired.
    ///
    /// # Errors
    /// [`KvError::WrongType`](crate::KvError::WrongType) when the key holds a string.
    fn hget_all(&self, key: &str) -> impl Future<Output = Result<Vec<(String, Bytes)>>> + Send;

    /// `HSET key field value [field value ...]`, and `PEXPIRE key ttl` in the same atomic
    /// step when `ttl` is given. Fields not named keep their values. A missing key is
    /// created as a hash; without `ttl` an existing hash keeps its TTL and a new one is
    /// persistent. When a field is named twice, the last value wins.
    ///
    /// # Errors
    /// [`KvError::WrongType`](crate::KvError::WrongType) when the key holds a string;
    /// [`KvError::InvalidInput`](crate::KvError::InvalidInput) for no fields, more than
    /// [`MAX_HASH_FIELDS`](crate::MAX_HASH_FIELDS), or input over the backend's limits.
    /// Nothing is changed in either case.
    fn hset(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// `HDEL key field [field ...]`: how many of the fields existed and were removed. A
    /// hash left without fields no longer exists (as in Redis). A missing key answers 0.
    ///
    /// # Errors
    /// [`KvError::WrongType`](crate::KvError::WrongType) when the key holds a string;
    /// [`KvError::InvalidInput`](crate::KvError::InvalidInput) for no fields or more than
    /// [`MAX_HASH_FIELDS`](crate::MAX_HASH_FIELDS).
    fn hdel(&self, key: &str, fields: Vec<String>) -> impl Future<Output = Result<usize>> + Send;

    /// One GCRA decision on the state at `key`, atomically (redis-cell's `CL.THROTTLE`;
    /// on Redis one Lua script called by SHA, so one round trip): admits the request and
    /// spends its cost, or denies it and changes nothing. The key holds the theoretical
    /// arrival time in microseconds since the Unix epoch as decimal text, with a TTL of
    /// the time until the budget is whole again — plus 1 s when the request gives the
    /// time ([`Throttle::at`]), so that the store's clock, which enforces the TTL, cannot
    /// drop the state early (see [`Throttle`] for whose clock).
    ///
    /// The default answers through [`local`](Store::local)'s face, and without one is a
    /// [`KvError::Backend`](crate::KvError::Backend) error ("does not implement
    /// `throttle`"): a store written before this command fails loudly rather than
    /// admitting more than the quota. Every backend of this crate implements it.
    ///
    /// # Errors
    /// [`KvError::InvalidInput`](crate::KvError::InvalidInput) for a zero burst or cost,
    /// an interval under 1 µs, or `interval × burst` beyond [`MAX_TTL`](crate::MAX_TTL);
    /// [`KvError::NotInteger`](crate::KvError::NotInteger) /
    /// [`KvError::WrongType`](crate::KvError::WrongType) when the key holds something else.
    /// Nothing is changed in any of these cases.
    fn throttle(
        &self,
        key: &str,
        request: Throttle,
    ) -> impl Future<Output = Result<ThrottleReply>> + Send {
        let reply = match self.local() {
            Some(local) => local.throttle(key, request),
            None => Err(throttle::unsupported()),
        };
        std::future::ready(reply)
    }

    /// The synchronous face of this store, when it answers in process: every engine then
    /// calls it instead of awaiting the methods above. `None` (the default) for a store
    /// that has to wait for anything (a network, a disk). A wrapper store forwards its
    /// inner store's answer (or gives its own `LocalStore` that wraps it).
    ///
    /// A store that returns `Some` promises that its `async` methods never wait either:
    /// their futures complete on their first poll (as they do when they call the local
    /// face, like `MemoryStore`'s). Engines rely on it where a sequence of calls is
    /// written once (a session save); a future that does wait there is reported as a
    /// [`KvError::Backend`](crate::KvError::Backend) error, never awaited in place.
    fn local(&self) -> Option<&dyn LocalStore> {
        None
    }
}

macro_rules! forward_store {
    ($($ty:tt)*) => {
        impl<S: Store + ?Sized> Store for $($ty)*<S> {
            fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>>> + Send {
                (**self).get(key)
            }
            fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> impl Future<Output = Result<()>> + Send {
                (**self).set(key, value, ttl)
            }
            fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> impl Future<Output = Result<bool>> + Send {
                (**self).set_nx(key, value, ttl)
            }
            fn del(&self, key: &str) -> impl Future<Output = Result<bool>> + Send {
                (**self).del(key)
            }
            fn expire(&self, key: &str, ttl: Duration) -> impl Future<Output = Result<bool>> + Send {
                (**self).expire(key, ttl)
            }
            fn ttl(&self, key: &str) -> impl Future<Output = Result<Ttl>> + Send {
                (**self).ttl(key)
            }
            fn incr_by(&self, key: &str, delta: i64, ttl_if_new: Option<Duration>) -> impl Future<Output = Result<i64>> + Send {
                (**self).incr_by(key, delta, ttl_if_new)
            }
            fn hget_all(&self, key: &str) -> impl Future<Output = Result<Vec<(String, Bytes)>>> + Send {
                (**self).hget_all(key)
            }
            fn hset(&self, key: &str, fields: Vec<(String, Bytes)>, ttl: Option<Duration>) -> impl Future<Output = Result<()>> + Send {
                (**self).hset(key, fields, ttl)
            }
            fn hdel(&self, key: &str, fields: Vec<String>) -> impl Future<Output = Result<usize>> + Send {
                (**self).hdel(key, fields)
            }
            fn throttle(&self, key: &str, request: Throttle) -> impl Future<Output = Result<ThrottleReply>> + Send {
                (**self).throttle(key, request)
            }
            fn local(&self) -> Option<&dyn LocalStore> {
                (**self).local()
            }
        }
    };
}

forward_store!(Arc);
forward_store!(Box);
