use std::fmt;

use kv_core::Store;
use kv_core::cache::Cache;
use tower_layer::Layer;

use super::CacheService;

/// Caches the responses of a service with a kv-core [`Cache`]: see the
/// [module docs](crate::cache).
pub struct CacheLayer<St> {
    cache: Cache<St>,
}

impl<St: Store> CacheLayer<St> {
    /// A layer over `cache` (built with [`Cache::builder`]).
    pub fn new(cache: Cache<St>) -> Self {
        CacheLayer { cache }
    }

    /// The engine: counters ([`Cache::stats`]) and purging ([`Cache::purge`]).
    pub fn cache(&self) -> &Cache<St> {
        &self.cache
    }
}

impl<St> Clone for CacheLayer<St> {
    fn clone(&self) -> Self {
        CacheLayer {
            cache: self.cache.clone(),
        }
    }
}

impl<St: Store> fmt::Debug for CacheLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("cache", &self.cache)
            .finish()
    }
}

impl<S, St: Store> Layer<S> for CacheLayer<St> {
    type Service = CacheService<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService::new(inner, self.cache.clone())
    }
}

/// Kept beside the layer, so that the service does not depend on it.
impl<S, St: Store> CacheService<S, St> {
    /// A [`CacheLayer`] over `cache`.
    pub fn layer(cache: Cache<St>) -> CacheLayer<St> {
        CacheLayer::new(cache)
    }
}
