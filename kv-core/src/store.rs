//! The store contract: six Redis commands every backend speaks the same way.

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
        }
    };
}

forward_store!(Arc);
forward_store!(Box);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe twin of [`Store`], implemented for every `Store`.
trait ErasedStore: fmt::Debug + Send + Sync + 'static {
    fn erased_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>>;
    fn erased_set<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>>;
    fn erased_set_nx<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool>>;
    fn erased_del<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn erased_expire<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>>;
    fn erased_ttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Ttl>>;
    fn erased_incr_by<'a>(
        &'a self,
        key: &'a str,
        delta: i64,
        ttl_if_new: Option<Duration>,
    ) -> BoxFuture<'a, Result<i64>>;
}

impl<S: Store> ErasedStore for S {
    fn erased_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        Box::pin(Store::get(self, key))
    }
    fn erased_set<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::set(self, key, value, ttl))
    }
    fn erased_set_nx<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Store::set_nx(self, key, value, ttl))
    }
    fn erased_del<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Store::del(self, key))
    }
    fn erased_expire<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Store::expire(self, key, ttl))
    }
    fn erased_ttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Ttl>> {
        Box::pin(Store::ttl(self, key))
    }
    fn erased_incr_by<'a>(
        &'a self,
        key: &'a str,
        delta: i64,
        ttl_if_new: Option<Duration>,
    ) -> BoxFuture<'a, Result<i64>> {
        Box::pin(Store::incr_by(self, key, delta, ttl_if_new))
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

/// Gives `&dyn ErasedStore` the method names of `Store`, for `dispatch!`.
struct Erased<'a>(&'a dyn ErasedStore);

impl<'a> Erased<'a> {
    fn get(&self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        self.0.erased_get(key)
    }
    fn set(&self, key: &'a str, value: Bytes, ttl: Option<Duration>) -> BoxFuture<'a, Result<()>> {
        self.0.erased_set(key, value, ttl)
    }
    fn set_nx(
        &self,
        key: &'a str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool>> {
        self.0.erased_set_nx(key, value, ttl)
    }
    fn del(&self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        self.0.erased_del(key)
    }
    fn expire(&self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>> {
        self.0.erased_expire(key, ttl)
    }
    fn ttl(&self, key: &'a str) -> BoxFuture<'a, Result<Ttl>> {
        self.0.erased_ttl(key)
    }
    fn incr_by(
        &self,
        key: &'a str,
        delta: i64,
        ttl_if_new: Option<Duration>,
    ) -> BoxFuture<'a, Result<i64>> {
        self.0.erased_incr_by(key, delta, ttl_if_new)
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match &$self.0 {
            #[cfg(feature = "memory")]
            Repr::Memory($s) => $call,
            #[cfg(feature = "redis")]
            Repr::Redis($s) => $call,
            Repr::Dyn($s) => {
                let $s = Erased(&**$s);
                $call
            }
        }
    };
}

impl Store for AnyStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        dispatch!(self, s => s.get(key).await)
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        dispatch!(self, s => s.set(key, value, ttl).await)
    }
    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        dispatch!(self, s => s.set_nx(key, value, ttl).await)
    }
    async fn del(&self, key: &str) -> Result<bool> {
        dispatch!(self, s => s.del(key).await)
    }
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        dispatch!(self, s => s.expire(key, ttl).await)
    }
    async fn ttl(&self, key: &str) -> Result<Ttl> {
        dispatch!(self, s => s.ttl(key).await)
    }
    async fn incr_by(&self, key: &str, delta: i64, ttl_if_new: Option<Duration>) -> Result<i64> {
        dispatch!(self, s => s.incr_by(key, delta, ttl_if_new).await)
    }
}
