//! [`AnyStore`]: a store chosen at run time, and the object-safe form behind it.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{LocalStore, Store, Throttle, ThrottleReply, Ttl};
use crate::Result;

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
    fn owned_throttle(
        self: Arc<Self>,
        key: String,
        request: Throttle,
    ) -> BoxFuture<'static, Result<ThrottleReply>>;
    fn erased_local(&self) -> Option<&dyn LocalStore>;
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
    fn owned_throttle(
        self: Arc<Self>,
        key: String,
        request: Throttle,
    ) -> BoxFuture<'static, Result<ThrottleReply>> {
        Box::pin(async move { Store::throttle(&*self, &key, request).await })
    }
    fn erased_local(&self) -> Option<&dyn LocalStore> {
        Store::local(self)
    }
}

/// A store chosen at run time: the non-generic form every middleware accepts.
///
/// `AnyStore` is a cheap `Clone` handle that implements [`Store`]. The backends of this
/// crate ([`MemoryStore`](crate::MemoryStore), and `RedisStore` with the `redis` feature)
/// are held directly and dispatched with a `match`; any other `Store` is held behind an
/// `Arc<dyn ..>`. A store with a [`LocalStore`] face (the memory store, or one of yours)
/// answers at once through it, with no allocation per call; a remote store pays one boxed
/// future per call (next to a network round trip).
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
    /// | `redis+sentinel://host:port[,host:port…]/master` | the master's primary through Sentinel (feature `redis-sentinel`) |
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
            "redis" | "rediss" | "redis+unix" | "unix" | "redis+sentinel" | "rediss+sentinel" => {
                Ok(AnyStore::from(crate::RedisStore::connect(url).await?))
            }
            _ => Err(crate::KvError::invalid_input(format!(
                "unsupported store URL scheme {scheme:?}: use memory:// (feature `memory`), \
                 redis:// (feature `redis`) or a comma-separated list of redis:// seed nodes \
                 (feature `redis-cluster`)"
            ))),
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
            Repr::Memory(memory) => {
                let $m: &dyn LocalStore = memory;
                futures_util::future::Either::Left(std::future::ready($now))
            }
            #[cfg(feature = "redis")]
            Repr::Redis(r) => {
                let ($s, $key) = (r.clone(), $key.to_owned());
                futures_util::future::Either::Right(Box::pin(async move { $redis.await }))
            }
            // A store of the user's that answers in process needs no boxed future either.
            Repr::Dyn(d) => match d.erased_local() {
                Some($m) => futures_util::future::Either::Left(std::future::ready($now)),
                None => futures_util::future::Either::Right(Arc::clone(d).$owned($key.to_owned() $(, $arg)*)),
            },
        }
    };
}

impl Store for AnyStore {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        let fut: AnyFuture<Option<Bytes>> =
            any_dispatch!(self, m => m.get(key), |s, key| s.get(&key), owned_get());
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
            m => m.set(key, value, ttl),
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
            m => m.set_nx(key, value, ttl),
            |s, key| s.set_nx(&key, value, ttl),
            owned_set_nx(value, ttl)
        );
        fut
    }
    fn del(&self, key: &str) -> impl Future<Output = Result<bool>> + Send {
        let fut: AnyFuture<bool> =
            any_dispatch!(self, m => m.del(key), |s, key| s.del(&key), owned_del());
        fut
    }
    fn expire(&self, key: &str, ttl: Duration) -> impl Future<Output = Result<bool>> + Send {
        let fut: AnyFuture<bool> = any_dispatch!(self, m => m.expire(key, ttl), |s, key| s.expire(&key, ttl), owned_expire(ttl));
        fut
    }
    fn ttl(&self, key: &str) -> impl Future<Output = Result<Ttl>> + Send {
        let fut: AnyFuture<Ttl> =
            any_dispatch!(self, m => m.ttl(key), |s, key| s.ttl(&key), owned_ttl());
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
            m => m.incr_by(key, delta, ttl_if_new),
            |s, key| s.incr_by(&key, delta, ttl_if_new),
            owned_incr_by(delta, ttl_if_new)
        );
        fut
    }
    fn hget_all(&self, key: &str) -> impl Future<Output = Result<Vec<(String, Bytes)>>> + Send {
        let fut: AnyFuture<Vec<(String, Bytes)>> = any_dispatch!(
            self,
            m => m.hget_all(key),
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
            m => m.hset(key, fields, ttl),
            |s, key| s.hset(&key, fields, ttl),
            owned_hset(fields, ttl)
        );
        fut
    }
    fn hdel(&self, key: &str, fields: Vec<String>) -> impl Future<Output = Result<usize>> + Send {
        let fut: AnyFuture<usize> = any_dispatch!(
            self,
            m => m.hdel(key, fields),
            |s, key| s.hdel(&key, fields),
            owned_hdel(fields)
        );
        fut
    }
    fn throttle(
        &self,
        key: &str,
        request: Throttle,
    ) -> impl Future<Output = Result<ThrottleReply>> + Send {
        let fut: AnyFuture<ThrottleReply> = any_dispatch!(
            self,
            m => m.throttle(key, request),
            |s, key| s.throttle(&key, request),
            owned_throttle(request)
        );
        fut
    }
    fn local(&self) -> Option<&dyn LocalStore> {
        match &self.0 {
            #[cfg(feature = "memory")]
            Repr::Memory(m) => Some(m),
            #[cfg(feature = "redis")]
            Repr::Redis(_) => None,
            Repr::Dyn(d) => d.erased_local(),
        }
    }
}
