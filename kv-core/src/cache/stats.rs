//! Hit, miss, bypass and stale counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// Hit, miss, bypass and stale counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Requests answered from the cache (fresh entries and `304`s from them).
    pub hits: u64,
    /// Cacheable requests forwarded because no usable entry was stored.
    pub misses: u64,
    /// Requests the cache does not handle (unsafe methods, `Range`, ...).
    pub bypasses: u64,
    /// Stale entries served (`stale-while-revalidate`, `stale-if-error`).
    pub stale: u64,
    /// Stale entries freshened by a `304` from the inner service.
    pub revalidated: u64,
    /// Entries written to the store.
    pub stored: u64,
    /// Store calls that failed (the cache then behaves as a miss).
    pub store_errors: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) bypasses: AtomicU64,
    pub(super) stale: AtomicU64,
    pub(super) revalidated: AtomicU64,
    pub(super) stored: AtomicU64,
    pub(super) store_errors: AtomicU64,
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
