//! The store contract: the Redis commands every backend speaks the same way.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::Result;

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
        }
    };
}

forward_store!(Arc);
forward_store!(Box);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe twin of [`Store`], implemented for every `Store`.
trait ErasedStore: fmt::Debug + Send + Sync + 'static {
    fn owned_get(self: Arc<Self>, key: String) -> BoxFuture<'static, Result<Option<Bytes>>>;
    fn owned_set(
        self: Arc<Self>,
        key: String,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'static, Result<()>>;
    fn owned_set_nx(
        self: Arc<Self>,
        key: String,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'static, Result<bool>>;
    fn owned_del(self: Arc<Self>, key: String) -> BoxFuture<'static, Result<bool>>;
    fn owned_expire(
        self: Arc<Self>,
        key: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool>>;
    fn owned_ttl(self: Arc<Self>, key: String) -> BoxFuture<'static, Result<Ttl>>;
    fn owned_incr_by(
        self: Arc<Self>,
        key: String,
        delta: i64,
        ttl_if_new: Option<Duration>,
    ) -> BoxFuture<'static, Result<i64>>;
    fn owned_hget_all(
        self: Arc<Self>,
        key: String,
    ) -> BoxFuture<'static, Result<Vec<(String, Bytes)>>>;
    fn owned_hset(
        self: Arc<Self>,
        key: String,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'static, Result<()>>;
    fn owned_hdel(
        self: Arc<Self>,
        key: String,
        fields: Vec<String>,
    ) -> BoxFuture<'static, Result<usize>>;
}

impl<S: Store> ErasedStore for S {
    fn owned_get(self: Arc<Self>, key: String) -> BoxFuture<'static, Result<Option<Bytes>>> {
        Box::pin(async move { Store::get(&*self, &key).await })
    }
    fn owned_set(
        self: Arc<Self>,
        key: String,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move { Store::set(&*self, &key, value, ttl).await })
    }
    fn owned_set_nx(
        self: Arc<Self>,
        key: String,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'static, Result<bool>> {
        Box::pin(async move { Store::set_nx(&*self, &key, value, ttl).await })
    }
    fn owned_del(self: Arc<Self>, key: String) -> BoxFuture<'static, Result<bool>> {
        Box::pin(async move { Store::del(&*self, &key).await })
    }
    fn owned_expire(
        self: Arc<Self>,
        key: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool>> {
        Box::pin(async move { Store::expire(&*self, &key, ttl).await })
    }
    fn owned_ttl(self: Arc<Self>, key: String) -> BoxFuture<'static, Result<Ttl>> {
        Box::pin(async move { Store::ttl(&*self, &key).await })
    }
    fn owned_incr_by(
        self: Arc<Self>,
        key: String,
        delta: i64,
        ttl_if_new: Option<Duration>,
    ) -> BoxFuture<'static, Result<i64>> {
        Box::pin(async move { Store::incr_by(&*self, &key, delta, ttl_if_new).await })
    }
    fn owned_hget_all(
        self: Arc<Self>,
        key: String,
    ) -> BoxFuture<'static, Result<Vec<(String, Bytes)>>> {
        Box::pin(async move { Store::hget_all(&*self, &key).await })
    }
    fn owned_hset(
        self: Arc<Self>,
        key: String,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move { Store::hset(&*self, &key, fields, ttl).await })
    }
    fn owned_hdel(
        self: Arc<Self>,
        key: String,
        fields: Vec<String>,
    ) -> BoxFuture<'static, Result<usize>> {
        Box::pin(async move { Store::hdel(&*self, &key, fields).await })
    }
}

/// A store chosen at run time: the non-generic form every middleware accepts.
///
/// `AnyStore` is a cheap `Clone` handle that implements [`Store`]. The backends of this
/// crate ([`MemoryStore`](crate::MemoryStore), and `RedisStore` with the `redis` feature)
/// are held directly and dispatched with a `match`, so choosing the backend at run time
/// costs no allocation per call; any other `Store` is held behind an `Arc<dyn ..>` and
/// pays one boxed future per call.
///
/// ```
/// # #[cfg(feature = "memory")]
/// # fn main() -> Result<(), kv_core::KvError> {
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use kv_core::{AnyStore, MemoryStore, Store};
///
/// // e.g. decided from configuration
/// let store: AnyStore = AnyStore::new(MemoryStore::new());
/// store.set("greeting", "hello".into(), None).await?;
/// assert_eq!(store.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
/// # Ok(())
/// # })
/// # }
/// # #[cfg(not(feature = "memory"))] fn main() {}
/// ```
#[derive(Clone)]
pub struct AnyStore(Repr);

#[derive(Clone)]
enum Repr {
    #[cfg(feature = "memory")]
    Memory(crate::MemoryStore),
    #[cfg(feature = "redis")]
    Redis(crate::RedisStore),
    Dyn(Arc<dyn ErasedStore>),
}

impl AnyStore {
    /// Wraps any store. Stores of this crate are recognised and held without boxing.
    pub fn new<S: Store>(store: S) -> Self {
        let mut slot = Some(store);
        #[cfg(feature = "memory")]
        if let Some(m) = (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<crate::MemoryStore>>()
            .and_then(Option::take)
        {
            return AnyStore(Repr::Memory(m));
        }
        #[cfg(feature = "redis")]
        if let Some(r) = (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<crate::RedisStore>>()
            .and_then(Option::take)
        {
            return AnyStore(Repr::Redis(r));
        }
        if let Some(any) = (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<AnyStore>>()
            .and_then(Option::take)
        {
            return any;
        }
        // `slot` is only emptied by a successful downcast, which returned above.
        let store = slot.map(|s| Arc::new(s) as Arc<dyn ErasedStore>);
        AnyStore(Repr::Dyn(store.unwrap_or_else(|| unreachable!())))
    }

    /// Opens the store a URL names, so that the backend is a configuration choice
    /// (e.g. `REDIS_URL`):
    ///
    /// | URL | store |
    /// |---|---|
    /// | `memory://` (or `memory:`) | a new [`MemoryStore`](crate::MemoryStore) with the default bounds |
    /// | `redis://…`, `rediss://…`, `redis+unix://…`, `unix://…` | `RedisStore::connect(url)` (feature `redis`) |
    /// | several `redis://…` URLs separated by commas | a Redis Cluster with those seed nodes (feature `redis-cluster`) |
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kv_core::Result<()> {
    /// use kv_core::AnyStore;
    ///
    /// let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "memory://".to_owned());
    /// # let url = "memory://";
    /// let store = AnyStore::connect(&url).await?;
    /// assert_eq!(store.backend_name(), "memory");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`KvError::InvalidInput`](crate::KvError::InvalidInput) for an unknown scheme or a
    /// backend whose feature is off; the backend's own connection errors otherwise.
    pub async fn connect(url: &str) -> Result<Self> {
        let url = url.trim();
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            #[cfg(feature = "memory")]
            "memory" => Ok(AnyStore::from(crate::MemoryStore::new())),
            #[cfg(feature = "redis-cluster")]
            "redis" | "rediss" if url.contains(',') => {
                let nodes = url.split(',').map(str::trim).filter(|n| !n.is_empty());
                let store = crate::RedisStore::cluster_builder(nodes).build().await?;
                Ok(AnyStore::from(store))
            }
            #[cfg(feature = "redis")]
            "redis" | "rediss" | "redis+unix" | "unix" => {
                Ok(AnyStore::from(crate::RedisStore::connect(url).await?))
            }
            _ => Err(crate::KvError::invalid_input(format!(
                "unsupported store URL scheme {scheme:?}: use memory:// (feature `memory`), \
                 redis:// (feature `redis`) or a comma-separated list of redis:// seed nodes \
                 (feature `redis-cluster`)"
            ))),
        }
    }

    /// The memory store behind this handle, if that is the backend.
    #[cfg(feature = "memory")]
    pub(crate) fn as_memory(&self) -> Option<&crate::MemoryStore> {
        match &self.0 {
            Repr::Memory(m) => Some(m),
            _ => None,
        }
    }

    /// The name of the backend behind this handle, for logs and health pages
    /// (`"memory"`, `"redis"` or `"custom"`).
    pub fn backend_name(&self) -> &'static str {
        match &self.0 {
            #[cfg(feature = "memory")]
            Repr::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            Repr::Redis(_) => "redis",
            Repr::Dyn(_) => "custom",
        }
    }
}

impl fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            #[cfg(feature = "memory")]
            Repr::Memory(s) => f.debug_tuple("AnyStore").field(s).finish(),
            #[cfg(feature = "redis")]
            Repr::Redis(s) => f.debug_tuple("AnyStore").field(s).finish(),
            Repr::Dyn(s) => f.debug_tuple("AnyStore").field(s).finish(),
        }
    }
}

#[cfg(feature = "memory")]
impl From<crate::MemoryStore> for AnyStore {
    fn from(store: crate::MemoryStore) -> Self {
        AnyStore(Repr::Memory(store))
    }
}

#[cfg(feature = "redis")]
impl From<crate::RedisStore> for AnyStore {
    fn from(store: crate::RedisStore) -> Self {
        AnyStore(Repr::Redis(store))
    }
}

/// A future of `AnyStore`: ready at once for the memory store (no allocation, and small,
/// so that the Redis backend's larger futures do not make every call pay to move them);
/// for the other backends, one boxed future that owns its key (an allocation next to a
/// network round trip).
type AnyFuture<T> =
    futures_util::future::Either<std::future::Ready<Result<T>>, BoxFuture<'static, Result<T>>>;

macro_rules! any_dispatch {
    ($self:ident, $m:ident => $now:expr, |$s:ident, $key:ident| $redis:expr, $owned:ident($($arg:expr),*)) => {
        match &$self.0 {
            #[cfg(feature = "memory")]
            Repr::Memory($m) => futures_util::future::Either::Left(std::future::ready($now)),
            #[cfg(feature = "redis")]
            Repr::Redis(r) => {
                let ($s, $key) = (r.clone(), $key.to_owned());
                futures_util::future::Either::Right(Box::pin(async move { $redis.await }))
            }
            Repr::Dyn(d) => futures_util::future::Either::Right(Arc::clone(d).$owned($key.to_owned() $(, $arg)*)),
        }
    };
}

impl Store for AnyStore {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        let fut: AnyFuture<Option<Bytes>> =
            any_dispatch!(self, m => m.get_now(key), |s, key| s.get(&key), owned_get());
        fut
    }
    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send {
        let fut: AnyFuture<()> = any_dispatch!(
            self,
            m => m.set_now(key, value, ttl),
            |s, key| s.set(&key, value, ttl),
            owned_set(value, ttl)
        );
        fut
    }
    fn set_nx(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> + Send {
        let fut: AnyFuture<bool> = any_dispatch!(
            self,
            m => m.set_nx_now(key, value, ttl),
            |s, key| s.set_nx(&key, value, ttl),
            owned_set_nx(value, ttl)
        );
        fut
    }
    fn del(&self, key: &str) -> impl Future<Output = Result<bool>> + Send {
        let fut: AnyFuture<bool> =
            any_dispatch!(self, m => m.del_now(key), |s, key| s.del(&key), owned_del());
        fut
    }
    fn expire(&self, key: &str, ttl: Duration) -> impl Future<Output = Result<bool>> + Send {
        let fut: AnyFuture<bool> = any_dispatch!(self, m => m.expire_now(key, ttl), |s, key| s.expire(&key, ttl), owned_expire(ttl));
        fut
    }
    fn ttl(&self, key: &str) -> impl Future<Output = Result<Ttl>> + Send {
        let fut: AnyFuture<Ttl> =
            any_dispatch!(self, m => m.ttl_now(key), |s, key| s.ttl(&key), owned_ttl());
        fut
    }
    fn incr_by(
        &self,
        key: &str,
        delta: i64,
        ttl_if_new: Option<Duration>,
    ) -> impl Future<Output = Result<i64>> + Send {
        let fut: AnyFuture<i64> = any_dispatch!(
            self,
            m => m.incr_by_now(key, delta, ttl_if_new),
            |s, key| s.incr_by(&key, delta, ttl_if_new),
            owned_incr_by(delta, ttl_if_new)
        );
        fut
    }
    fn hget_all(&self, key: &str) -> impl Future<Output = Result<Vec<(String, Bytes)>>> + Send {
        let fut: AnyFuture<Vec<(String, Bytes)>> = any_dispatch!(
            self,
            m => m.hget_all_now(key),
            |s, key| s.hget_all(&key),
            owned_hget_all()
        );
        fut
    }
    fn hset(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send {
        let fut: AnyFuture<()> = any_dispatch!(
            self,
            m => m.hset_now(key, fields, ttl),
            |s, key| s.hset(&key, fields, ttl),
            owned_hset(fields, ttl)
        );
        fut
    }
    fn hdel(&self, key: &str, fields: Vec<String>) -> impl Future<Output = Result<usize>> + Send {
        let fut: AnyFuture<usize> = any_dispatch!(
            self,
            m => m.hdel_now(key, fields),
            |s, key| s.hdel(&key, fields),
            owned_hdel(fields)
        );
        fut
    }
}
