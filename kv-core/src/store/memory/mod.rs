//! The embedded in-memory store: a Redis-like sharded map with TTLs, active expiry and a
//! memory bound.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), kv_core::KvError> {
//! use std::time::Duration;
//! use kv_core::{MemoryStore, Store, Ttl};
//!
//! let store = MemoryStore::new();
//! assert_eq!(store.incr_by("hits:alice", 1, Some(Duration::from_secs(60))).await?, 1);
//! assert_eq!(store.incr_by("hits:alice", 1, Some(Duration::from_secs(60))).await?, 2);
//! assert_eq!(store.get("hits:alice").await?.as_deref(), Some(&b"2"[..]));
//! assert!(matches!(store.ttl("hits:alice").await?, Ttl::Expires(_)));
//! # Ok(())
//! # }
//! ```
//!
//! # Semantics
//! Every row of the [`Store`](crate::Store) contract, as Redis behaves. A key whose deadline has been
//! reached is invisible at once (a TTL of `d` keeps a key exactly `d`), and is reclaimed
//! without being read by *active expiry*: a background thread wakes every
//! [`expiry_interval`](MemoryStoreBuilder::expiry_interval) (100 ms by default, Redis'
//! `hz 10`), scans the shards that hold keys with a TTL from a cursor in batches, removes
//! the expired ones, goes on in a shard while at least 10% of a batch had expired, and
//! stops after a quarter of the interval (Redis' 25% CPU bound). The thread holds only a
//! weak reference and ends when the last handle is dropped.
//!
//! # Memory bound and eviction
//! The store holds at most [`max_bytes`](MemoryStoreBuilder::max_bytes) accounted bytes
//! (key + value + a fixed per-entry overhead of 96 bytes; allocator slack is not counted)
//! and optionally at most [`max_entries`](MemoryStoreBuilder::max_entries) entries. Both
//! bounds are split evenly over the shards, so the store never exceeds them (it may evict
//! slightly before a bound is reached when keys are unevenly spread). A full store keeps
//! accepting writes: it evicts first, never errors. The policy, in Redis' spirit, is
//! *sampled LRU, keys with a TTL first*: a full shard first reclaims the expired keys met
//! by a short scan (32 entries) from its expiry cursor; then it samples 5 entries of the shard (up to 16 while the
//! sample holds no key with a TTL but the shard does); an expired one goes first; else the
//! least recently used key that carries a TTL; a persistent key only when the sample holds
//! no key with a TTL. Recency has the resolution of the expiry interval (100 ms by
//! default), like Redis' LRU clock. *Eviction classes*
//! ([`protect_prefix`](MemoryStoreBuilder::protect_prefix)) come before all that: a key of
//! a protected prefix is evicted only when its shard holds no unprotected key.
//!
//! # Limits
//! Keys up to [`max_key_len`](MemoryStoreBuilder::max_key_len) bytes (16 KiB by default)
//! and values up to [`max_value_len`](MemoryStoreBuilder::max_value_len) (1 MiB by
//! default); larger input is [`KvError::InvalidInput`] on every method (as on
//! `RedisStore`) and stores nothing. A hash (see [`Store::hset`](crate::Store::hset)) is one entry: its field
//! names obey `max_key_len`, and the whole hash (names + values + 32 bytes per field)
//! obeys `max_value_len`.
//!
//! Without active expiry ([`without_active_expiry`](MemoryStoreBuilder::without_active_expiry))
//! the LRU clock does not move either, so eviction picks among the sampled keys by TTL
//! only.
//! A reader's decoded form of a string value
//! ([`LocalStore::get_decoded`](crate::LocalStore::get_decoded): the response cache keeps
//! its parsed entries so) counts in the bound with the size the reader gives, is kept only
//! while the shard has room for it (never a reason to evict), and goes with the value.
//!
//! The `Bytes` you store are kept as they are (no copy): a slice of a larger buffer keeps
//! that buffer alive, while the accounting counts the slice.

mod builder;
mod classes;
mod faces;
mod hash;
mod shard;
mod throttle;

pub use builder::MemoryStoreBuilder;

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;

use super::Ttl;
use super::input::{check_len, opt_ttl_millis, ttl_millis};
use super::local::{Decoded, Decoder};
use crate::clock::{Clock, ClockHandle};
use crate::janitor::Janitor;
use crate::{KvError, Result};
use shard::{Entry, Shard, ShardLimits, Value};

/// Entries examined per lock hold by active expiry.
const EXPIRY_BATCH: usize = 256;

/// The embedded in-memory store. `Clone` gives another handle to the same data.
///
/// See the [module docs](crate::store::memory) for the semantics, the bound and the eviction
/// policy.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

/// A [`MemoryStore`]'s figures: see [`MemoryStore::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Entries held, expired ones not yet reclaimed included.
    pub keys: usize,
    /// Accounted bytes held.
    pub bytes: usize,
    /// Live entries removed to stay within the memory bound.
    pub evictions: u64,
    /// Expired entries reclaimed (by active expiry, eviction scans and `purge_expired`).
    pub expirations: u64,
}

fn stats_of(inner: &Inner) -> MemoryStats {
    let mut stats = MemoryStats::default();
    for shard in &*inner.shards {
        let s = shard.0.read();
        stats.keys += s.map.len();
        stats.bytes += s.used;
        stats.evictions += s.evicted;
        stats.expirations += s.expired;
    }
    stats
}

struct Inner {
    shards: Box<[Padded]>,
    shard_mask: u64,
    hasher: foldhash::fast::RandomState,
    clock: ClockHandle,
    limits: ShardLimits,
    max_key_len: usize,
    max_value_len: usize,
    /// Coarse LRU clock, advanced by the expiry thread at every tick.
    lru_tick: AtomicU32,
    /// The shard the next expiry run starts from, so that no shard starves.
    expiry_start: AtomicUsize,
    /// Wakes the expiry thread when the store is dropped.
    janitor: Janitor,
    /// The gauges and counters the expiry thread samples (feature `metrics`).
    #[cfg(feature = "metrics")]
    metrics: crate::observe::MemoryMetrics,
    config: MemoryStoreBuilder,
}

/// A shard on its own cache lines, so that two threads on two shards do not share a line.
#[repr(align(128))]
struct Padded(RwLock<Shard>);

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store with the default bounds: 256 MiB, 32 shards, keys up to 16 KiB, values up
    /// to 1 MiB, active expiry every 100 ms, the system clock.
    pub fn new() -> Self {
        Self::builder().build_unchecked()
    }

    /// A store with the default bounds that reads time from `clock`
    /// (for example a [`ManualClock`](crate::clock::ManualClock) in tests).
    pub fn with_clock(clock: impl Clock) -> Self {
        Self::builder().clock(clock).build_unchecked()
    }

    /// A builder for a store with other bounds.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    /// Entries held right now, including expired ones not yet reclaimed.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.0.read().map.len()).sum()
    }

    /// Whether the store holds no entry at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Accounted bytes held right now (see the module docs for what is counted).
    pub fn used_bytes(&self) -> usize {
        self.inner.shards.iter().map(|s| s.0.read().used).sum()
    }

    /// What the store holds and has reclaimed so far (one read lock per shard). With the
    /// `metrics` feature the expiry thread reports the same figures at every tick as
    /// `kv_memory_store_keys`, `kv_memory_store_bytes`, `kv_memory_store_evictions_total`
    /// and `kv_memory_store_expirations_total`.
    pub fn stats(&self) -> MemoryStats {
        stats_of(&self.inner)
    }

    /// Removes every expired entry now, scanning the whole store; returns how many.
    /// Active expiry does this incrementally in the background; this is for callers that
    /// want it done at a point of their choosing (tests driven by a manual clock, say).
    pub fn purge_expired(&self) -> usize {
        let now = self.inner.clock.now_millis();
        let mut removed = 0;
        for shard in self.inner.shards.iter() {
            let mut shard = shard.0.write();
            if shard.volatile > 0 {
                shard.cursor = 0;
                let len = shard.map.len();
                removed += shard.expire_scan(len, now).1;
            }
            shard.maybe_shrink();
        }
        removed
    }

    #[inline]
    fn shard(&self, key: &str) -> &RwLock<Shard> {
        let hash = self.inner.hasher.hash_one(key);
        // Bits 32.. pick the shard: the map inside uses the low bits for its buckets and
        // the top 7 for its tags, so the choice does not thin out either.
        let index = ((hash >> 32) & self.inner.shard_mask) as usize;
        &self.inner.shards[index].0
    }

    #[inline]
    fn tick(&self) -> u32 {
        self.inner.lru_tick.load(Ordering::Relaxed)
    }

    fn check_key(&self, key: &str) -> Result<()> {
        check_len("key", key.len(), self.inner.max_key_len)
    }

    fn check_value(&self, value: &Bytes) -> Result<()> {
        check_len("value", value.len(), self.inner.max_value_len)
    }

    fn deadline(&self, now: u64, ttl_ms: Option<u64>) -> u64 {
        ttl_ms.map_or(0, |ms| now.saturating_add(ms))
    }

    fn get_sync(&self, key: &str) -> Result<Option<Bytes>> {
        self.check_key(key)?;
        let shard = self.shard(key).read();
        let Some(entry) = shard.map.get(key) else {
            return Ok(None);
        };
        if entry.expires_at != 0 && entry.is_expired(self.inner.clock.now_millis()) {
            return Ok(None);
        }
        let value = entry.value.to_bytes()?;
        entry.touch(self.tick());
        Ok(Some(value))
    }

    /// `get`, with the reader's decoded form kept beside the value (see
    /// [`LocalStore::get_decoded`](crate::LocalStore::get_decoded)): the first read
    /// decodes outside the lock and attaches the form under the write lock, if the key
    /// still holds the same bytes; the next ones return it under the read lock.
    fn get_decoded_sync(&self, key: &str, decode: Decoder<'_>) -> Result<Option<Decoded>> {
        self.check_key(key)?;
        let lock = self.shard(key);
        let bytes = {
            let shard = lock.read();
            let Some(entry) = shard.map.get(key) else {
                return Ok(None);
            };
            if entry.expires_at != 0 && entry.is_expired(self.inner.clock.now_millis()) {
                return Ok(None);
            }
            entry.touch(self.tick());
            if let Value::Decoded(d) = &entry.value {
                return Ok(Some(Arc::clone(&d.decoded)));
            }
            entry.value.to_bytes()?
        };
        let Some((decoded, cost)) = decode(&bytes) else {
            return Ok(None);
        };
        let limits = self.inner.limits;
        lock.write()
            .attach(key, &bytes, Arc::clone(&decoded), cost, &limits);
        Ok(Some(decoded))
    }

    fn set_sync(&self, key: &str, value: Bytes, ttl: Option<Duration>, nx: bool) -> Result<bool> {
        self.check_key(key)?;
        self.check_value(&value)?;
        let ttl_ms = opt_ttl_millis(ttl)?;
        let tick = self.tick();
        let mut shard = self.shard(key).write();
        let now = self.inner.clock.now_millis();
        let expires_at = self.deadline(now, ttl_ms);
        let limits = self.inner.limits;
        match shard.map.get_full(key) {
            Some((index, _, entry)) => {
                if nx && !entry.is_expired(now) {
                    return Ok(false);
                }
                shard.replace(
                    index,
                    key,
                    Value::Bytes(value),
                    expires_at,
                    &limits,
                    now,
                    tick,
                );
            }
            None => shard.insert_new(
                key,
                Entry::new(Value::Bytes(value), expires_at, tick),
                &limits,
                now,
                tick,
            ),
        }
        Ok(true)
    }

    fn del_sync(&self, key: &str) -> bool {
        let mut shard = self.shard(key).write();
        let now = self.inner.clock.now_millis();
        shard.remove(key).is_some_and(|e| !e.is_expired(now))
    }

    fn expire_sync(&self, key: &str, ttl: Duration) -> Result<bool> {
        if ttl.is_zero() {
            // PEXPIRE with 0 deletes the key.
            return Ok(self.del_sync(key));
        }
        let ttl_ms = ttl_millis(ttl)?;
        let mut shard = self.shard(key).write();
        let now = self.inner.clock.now_millis();
        let Some((index, _, entry)) = shard.map.get_full(key) else {
            return Ok(false);
        };
        if entry.is_expired(now) {
            shard.remove_index(index);
            return Ok(false);
        }
        shard.set_deadline(index, now.saturating_add(ttl_ms));
        Ok(true)
    }

    fn ttl_sync(&self, key: &str) -> Ttl {
        let shard = self.shard(key).read();
        let Some(entry) = shard.map.get(key) else {
            return Ttl::Missing;
        };
        if entry.expires_at == 0 {
            return Ttl::Persistent;
        }
        let now = self.inner.clock.now_millis();
        if entry.is_expired(now) {
            Ttl::Missing
        } else {
            Ttl::Expires(Duration::from_millis(entry.expires_at - now))
        }
    }

    fn incr_by_sync(&self, key: &str, delta: i64, ttl_if_new: Option<Duration>) -> Result<i64> {
        self.check_key(key)?;
        let ttl_ms = opt_ttl_millis(ttl_if_new)?;
        let tick = self.tick();
        let limits = self.inner.limits;
        let mut shard = self.shard(key).write();
        let now = self.inner.clock.now_millis();
        if let Some((index, _, entry)) = shard.map.get_full_mut(key) {
            if !entry.is_expired(now) {
                let current = entry.value.to_int()?;
                let next = current.checked_add(delta).ok_or(KvError::Overflow)?;
                entry.touch(tick);
                if let Value::Int(i) = &mut entry.value {
                    *i = next;
                } else {
                    let expires_at = entry.expires_at;
                    shard.replace(index, key, Value::Int(next), expires_at, &limits, now, tick);
                }
                return Ok(next);
            }
            let expires_at = self.deadline(now, ttl_ms);
            shard.replace(
                index,
                key,
                Value::Int(delta),
                expires_at,
                &limits,
                now,
                tick,
            );
            return Ok(delta);
        }
        let expires_at = self.deadline(now, ttl_ms);
        shard.insert_new(
            key,
            Entry::new(Value::Int(delta), expires_at, tick),
            &limits,
            now,
            tick,
        );
        Ok(delta)
    }
}

#[cfg(test)]
mod tests;
