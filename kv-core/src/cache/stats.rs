//! Hit, miss, bypass and stale counters.

use crate::observe::Tally;

/// Hit, miss, bypass and stale counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Requests answered from the cache (fresh entries and `304`s from them), coalesced
    /// waiters included.
    pub hits: u64,
    /// Of the hits: requests that waited for another request's fill and got its response.
    pub coalesced: u64,
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

/// The cache's counters; with the `metrics` feature each is also reported (see
/// [`observe`](crate::observe) for the names).
#[derive(Debug)]
pub(super) struct Counters {
    pub(super) hits: Tally,
    /// Waiters of a coalesced fill answered with its response (also counted as hits in
    /// [`CacheStats`]; `coalesced` in the metrics).
    pub(super) coalesced: Tally,
    pub(super) misses: Tally,
    pub(super) bypasses: Tally,
    pub(super) stale: Tally,
    pub(super) revalidated: Tally,
    pub(super) stored: Tally,
    pub(super) store_errors: Tally,
}

impl Default for Counters {
    fn default() -> Self {
        const REQUESTS: &str = "kv_cache_requests_total";
        let outcome = |o: &'static str| Tally::new(REQUESTS, &[("outcome", o)]);
        Counters {
            hits: outcome("hit"),
            coalesced: outcome("coalesced"),
            misses: outcome("miss"),
            bypasses: outcome("bypass"),
            stale: outcome("stale"),
            revalidated: outcome("revalidated"),
            stored: Tally::new("kv_cache_stores_total", &[]),
            store_errors: Tally::new("kv_cache_store_errors_total", &[]),
        }
    }
}

pub(super) fn bump(c: &Tally) {
    c.bump();
}
