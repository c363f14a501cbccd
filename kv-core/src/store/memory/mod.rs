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
//! Every row of the [`Store`] contract, as Redis behaves. A key whose deadline has been
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
//! default), like Redis' LRU clock.
//!
//! # Limits
//! Keys up to [`max_key_len`](MemoryStoreBuilder::max_key_len) bytes (16 KiB by default)
//! and values up to [`max_value_len`](MemoryStoreBuilder::max_value_len) (1 MiB by
//! default); larger input is [`KvError::InvalidInput`] on every method (as on
//! `RedisStore`) and stores nothing. A hash (see [`Store::hset`]) is one entry: its field
//! names obey `max_key_len`, and the whole hash (names + values + 32 bytes per field)
//! obeys `max_value_len`.
//!
//! Without active expiry ([`without_active_expiry`](MemoryStoreBuilder::without_active_expiry))
//! the LRU clock does not move either, so eviction picks among the sampled keys by TTL
//! only.
//! The `Bytes` you store are kept as they are (no copy): a slice of a larger buffer keeps
//! that buffer alive, while the accounting counts the slice.

mod shard;

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::RwLock;

use super::input::{check_field_count, check_fields};
use super::input::{check_len, opt_ttl_millis, parse_redis_int, ttl_millis};
use super::{LocalStore, Store, Ttl};
use crate::clock::{Clock, ClockHandle};
use crate::janitor::Janitor;
use crate::{ConfigError, KvError, Result};
use compact_str::CompactString;
use shard::{Entry, Fields, Shard, ShardLimits, Value, cost, fields_len};

/// Entries examined per lock hold by active expiry.
const EXPIRY_BATCH: usize = 256;

/// The embedded in-memory store. `Clone` gives another handle to the same data.
///
/// See the [module docs](crate::memory) for the semantics, the bound and the eviction
/// policy.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
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
                let current = match &entry.value {
                    Value::Int(i) => *i,
                    Value::Bytes(b) => parse_redis_int(b).ok_or(KvError::NotInteger)?,
                    Value::Hash(_) => return Err(KvError::WrongType),
                };
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

/// The accounted size of `hash` (now `old_len`) once `fields` are set in it.
fn merged_len(hash: &Fields, fields: &[(String, Bytes)], old_len: usize) -> usize {
    let mut len = old_len;
    for (i, (name, value)) in fields.iter().enumerate() {
        // A name set earlier in this same call counts as present.
        let earlier = fields[..i].iter().rev().find(|(n, _)| n == name);
        let present = match earlier {
            Some((_, v)) => Some(v.len()),
            None => hash
                .iter()
                .find(|(n, _)| n == name.as_str())
                .map(|(_, v)| v.len()),
        };
        len = match present {
            Some(old) => len - old + value.len(),
            None => len + name.len() + value.len() + shard::FIELD_OVERHEAD,
        };
    }
    len
}

/// Hash fields.
impl MemoryStore {
    fn hget_all_sync(&self, key: &str) -> Result<Vec<(String, Bytes)>> {
        self.check_key(key)?;
        let shard = self.shard(key).read();
        let Some(entry) = shard.map.get(key) else {
            return Ok(Vec::new());
        };
        if entry.is_expired(self.inner.clock.now_millis()) {
            return Ok(Vec::new());
        }
        let Value::Hash(fields) = &entry.value else {
            return Err(KvError::WrongType);
        };
        entry.touch(self.tick());
        Ok(fields
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect())
    }

    fn hset_sync(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        self.check_key(key)?;
        check_fields(&fields, self.inner.max_key_len, self.inner.max_value_len)?;
        let ttl_ms = opt_ttl_millis(ttl)?;
        let tick = self.tick();
        let limits = self.inner.limits;
        let mut shard = self.shard(key).write();
        let now = self.inner.clock.now_millis();
        let live = shard
            .map
            .get_full(key)
            .filter(|(_, _, e)| !e.is_expired(now));
        let (index, old_deadline, old_len) = match live {
            Some((index, _, entry)) => match &entry.value {
                Value::Hash(old) => (Some(index), entry.expires_at, fields_len(old)),
                _ => return Err(KvError::WrongType),
            },
            None => (None, 0, 0),
        };
        let expires_at = match ttl_ms {
            Some(ms) => now.saturating_add(ms),
            None => old_deadline,
        };
        // The common case (a session save): update the live hash in place.
        if let Some(index) = index {
            let used = shard.used;
            if let Some((_, entry)) = shard.map.get_index_mut(index)
                && let Value::Hash(hash) = &mut entry.value
            {
                let new_len = merged_len(hash, &fields, old_len);
                check_len("hash", new_len, self.inner.max_value_len)?;
                if new_len <= old_len || used + (new_len - old_len) <= limits.max_bytes {
                    for (name, value) in fields {
                        match hash.iter_mut().find(|(n, _)| *n == name) {
                            Some(slot) => slot.1 = value,
                            None => hash.push((CompactString::from(name), value)),
                        }
                    }
                    entry.touch(tick);
                    shard.used = used + new_len - old_len;
                    shard.set_deadline(index, expires_at);
                    return Ok(());
                }
            }
        }
        // A new hash, or one that needs room made: build it and insert (evicting).
        let mut merged: Fields = match index.and_then(|i| shard.map.get_index(i)) {
            Some((
                _,
                Entry {
                    value: Value::Hash(old),
                    ..
                },
            )) => (**old).clone(),
            _ => Vec::with_capacity(fields.len()),
        };
        for (name, value) in fields {
            match merged.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => merged.push((CompactString::from(name), value)),
            }
        }
        // A hash is one entry: as a whole it obeys the value limit (and so always fits
        // in a shard).
        check_len("hash", fields_len(&merged), self.inner.max_value_len)?;
        let value = Value::Hash(Box::new(merged));
        match shard.map.get_index_of(key) {
            Some(index) => shard.replace(index, key, value, expires_at, &limits, now, tick),
            None => shard.insert_new(key, Entry::new(value, expires_at, tick), &limits, now, tick),
        }
        Ok(())
    }

    fn hdel_sync(&self, key: &str, fields: Vec<String>) -> Result<usize> {
        self.check_key(key)?;
        check_field_count(fields.len())?;
        let tick = self.tick();
        let limits = self.inner.limits;
        let mut shard = self.shard(key).write();
        let now = self.inner.clock.now_millis();
        let Some((index, _, entry)) = shard.map.get_full(key) else {
            return Ok(0);
        };
        if entry.is_expired(now) {
            return Ok(0);
        }
        let Value::Hash(old) = &entry.value else {
            return Err(KvError::WrongType);
        };
        let mut kept: Fields = (**old).clone();
        let before = kept.len();
        kept.retain(|(name, _)| !fields.iter().any(|f| f == name.as_str()));
        let removed = before - kept.len();
        if kept.is_empty() {
            shard.remove_index(index);
        } else if removed > 0 {
            let expires_at = entry.expires_at;
            shard.replace(
                index,
                key,
                Value::Hash(Box::new(kept)),
                expires_at,
                &limits,
                now,
                tick,
            );
        }
        Ok(removed)
    }
}

/// The memory store answers in process: this is the face the engines call.
impl LocalStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.get_sync(key)
    }
    fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.set_sync(key, value, ttl, false).map(drop)
    }
    fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.set_sync(key, value, ttl, true)
    }
    fn del(&self, key: &str) -> Result<bool> {
        self.check_key(key)?;
        Ok(self.del_sync(key))
    }
    fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.check_key(key)?;
        self.expire_sync(key, ttl)
    }
    fn ttl(&self, key: &str) -> Result<Ttl> {
        self.check_key(key)?;
        Ok(self.ttl_sync(key))
    }
    fn incr_by(&self, key: &str, delta: i64, ttl_if_new: Option<Duration>) -> Result<i64> {
        self.incr_by_sync(key, delta, ttl_if_new)
    }
    fn hget_all(&self, key: &str) -> Result<Vec<(String, Bytes)>> {
        self.hget_all_sync(key)
    }
    fn hset(&self, key: &str, fields: Vec<(String, Bytes)>, ttl: Option<Duration>) -> Result<()> {
        self.hset_sync(key, fields, ttl)
    }
    fn hdel(&self, key: &str, fields: Vec<String>) -> Result<usize> {
        self.hdel_sync(key, fields)
    }
    /// Both reads under one shard lock, the fields lent without copies.
    fn hget_all_with_ttl(&self, key: &str, visit: &mut dyn FnMut(&str, &Bytes)) -> Result<Ttl> {
        self.check_key(key)?;
        let shard = self.shard(key).read();
        let now = self.inner.clock.now_millis();
        let Some(entry) = shard.map.get(key).filter(|e| !e.is_expired(now)) else {
            return Ok(Ttl::Missing);
        };
        let Value::Hash(fields) = &entry.value else {
            return Err(KvError::WrongType);
        };
        entry.touch(self.tick());
        for (name, value) in fields.iter() {
            visit(name.as_str(), value);
        }
        Ok(match entry.expires_at {
            0 => Ttl::Persistent,
            at => Ttl::Expires(Duration::from_millis(at - now)),
        })
    }
}

/// Every call is answered before its future is first polled.
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        LocalStore::get(self, key)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        LocalStore::set(self, key, value, ttl)
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        LocalStore::set_nx(self, key, value, ttl)
    }

    async fn del(&self, key: &str) -> Result<bool> {
        LocalStore::del(self, key)
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        LocalStore::expire(self, key, ttl)
    }

    async fn ttl(&self, key: &str) -> Result<Ttl> {
        LocalStore::ttl(self, key)
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl_if_new: Option<Duration>) -> Result<i64> {
        LocalStore::incr_by(self, key, delta, ttl_if_new)
    }

    async fn hget_all(&self, key: &str) -> Result<Vec<(String, Bytes)>> {
        LocalStore::hget_all(self, key)
    }

    async fn hset(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        LocalStore::hset(self, key, fields, ttl)
    }

    async fn hdel(&self, key: &str, fields: Vec<String>) -> Result<usize> {
        LocalStore::hdel(self, key, fields)
    }

    fn local(&self) -> Option<&dyn LocalStore> {
        Some(self)
    }
}

impl fmt::Debug for MemoryStore {
    /// Shows the configuration and the size, never keys or values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("used_bytes", &self.used_bytes())
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Builds a [`MemoryStore`] with other bounds than the defaults.
///
/// ```
/// use kv_core::MemoryStore;
///
/// let store = MemoryStore::builder()
///     .max_bytes(64 << 20)
///     .max_entries(100_000)
///     .build()
///     .expect("valid bounds");
/// # drop(store);
/// ```
#[derive(Clone)]
#[must_use]
pub struct MemoryStoreBuilder {
    max_bytes: usize,
    max_entries: Option<usize>,
    max_key_len: usize,
    max_value_len: usize,
    shards: usize,
    expiry_interval: Option<Duration>,
    clock: ClockHandle,
}

impl Default for MemoryStoreBuilder {
    fn default() -> Self {
        MemoryStoreBuilder {
            max_bytes: 256 << 20,
            max_entries: None,
            max_key_len: 16 << 10,
            max_value_len: 1 << 20,
            shards: 32,
            expiry_interval: Some(Duration::from_millis(100)),
            clock: ClockHandle::System,
        }
    }
}

impl fmt::Debug for MemoryStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStoreConfig")
            .field("max_bytes", &self.max_bytes)
            .field("max_entries", &self.max_entries)
            .field("max_key_len", &self.max_key_len)
            .field("max_value_len", &self.max_value_len)
            .field("shards", &self.shards)
            .field("expiry_interval", &self.expiry_interval)
            .field("clock", &self.clock)
            .finish()
    }
}

impl MemoryStoreBuilder {
    /// The memory bound in accounted bytes (default 256 MiB).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// An optional bound on the number of entries (default: none).
    pub fn max_entries(mut self, entries: usize) -> Self {
        self.max_entries = Some(entries);
        self
    }

    /// The longest key accepted, in bytes (default 16 KiB).
    pub fn max_key_len(mut self, bytes: usize) -> Self {
        self.max_key_len = bytes;
        self
    }

    /// The longest value accepted, in bytes (default 1 MiB).
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }

    /// The number of shards, a power of two from 1 to 1024 (default 32). Fewer shards
    /// mean more lock contention; more shards mean a smaller bound per shard.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// How often active expiry runs (default 100 ms). Each run works at most a quarter of
    /// this interval.
    pub fn expiry_interval(mut self, interval: Duration) -> Self {
        self.expiry_interval = Some(interval);
        self
    }

    /// Turns active expiry off: expired keys stay invisible but are only reclaimed when
    /// written over, by eviction, or by [`MemoryStore::purge_expired`].
    pub fn without_active_expiry(mut self) -> Self {
        self.expiry_interval = None;
        self
    }

    /// The clock TTLs are measured with (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = ClockHandle::new(clock);
        self
    }

    /// Builds the store.
    ///
    /// # Errors
    /// [`ConfigError`] when a bound is zero, the shard count is not a power of
    /// two in 1..=1024, the expiry interval is zero, or the largest accepted entry (key +
    /// value + overhead) would not fit in one shard's share of `max_bytes`.
    pub fn build(self) -> std::result::Result<MemoryStore, ConfigError> {
        if !self.shards.is_power_of_two() || self.shards > 1024 {
            return Err(ConfigError::new(
                "memory store",
                "shards must be a power of two from 1 to 1024",
            ));
        }
        if self.max_bytes == 0 || self.max_entries == Some(0) {
            return Err(ConfigError::new(
                "memory store",
                "max_bytes and max_entries must be positive",
            ));
        }
        if self.expiry_interval.is_some_and(|i| i.is_zero()) {
            return Err(ConfigError::new(
                "memory store",
                "expiry_interval must be positive",
            ));
        }
        let mut shards = self.shards;
        if let Some(max_entries) = self.max_entries {
            // Fewer shards than entries, so that each shard holds at least one.
            while shards > max_entries {
                shards /= 2;
            }
        }
        let limits = ShardLimits {
            max_bytes: self.max_bytes / shards,
            max_entries: self.max_entries.map_or(usize::MAX, |e| e / shards),
        };
        let largest = cost(self.max_key_len, self.max_value_len);
        if largest > limits.max_bytes {
            return Err(ConfigError::new(
                "memory store",
                format!(
                    "the largest entry ({largest} accounted bytes: max_key_len + max_value_len + \
                 overhead) does not fit in one shard's share of max_bytes ({} bytes); raise \
                 max_bytes, or lower max_value_len or shards",
                    limits.max_bytes
                ),
            ));
        }
        Ok(self.build_with(shards, limits))
    }

    /// `build` for the default configuration, which is known to be valid.
    fn build_unchecked(self) -> MemoryStore {
        let shards = self.shards;
        let limits = ShardLimits {
            max_bytes: self.max_bytes / shards,
            max_entries: usize::MAX,
        };
        self.build_with(shards, limits)
    }

    fn build_with(mut self, shards: usize, limits: ShardLimits) -> MemoryStore {
        self.shards = shards;
        let hasher = foldhash::fast::RandomState::default();
        let shard_vec: Vec<Padded> = (0..shards)
            .map(|i| Padded(RwLock::new(Shard::new(hasher.clone(), hasher.hash_one(i)))))
            .collect();
        let inner = Arc::new(Inner {
            shards: shard_vec.into_boxed_slice(),
            shard_mask: (shards - 1) as u64,
            hasher,
            clock: self.clock.clone(),
            limits,
            max_key_len: self.max_key_len,
            max_value_len: self.max_value_len,
            lru_tick: AtomicU32::new(0),
            expiry_start: AtomicUsize::new(0),
            janitor: Janitor::default(),
            config: self,
        });
        if let Some(interval) = inner.config.expiry_interval {
            Janitor::start(
                &inner,
                |i| &i.janitor,
                "kv-memory-expiry",
                interval,
                expiry_tick,
            );
        }
        MemoryStore { inner }
    }
}

/// One tick of the expiry thread: advance the LRU clock, then expire for at most a
/// quarter of the interval.
fn expiry_tick(inner: &Inner) {
    inner.lru_tick.fetch_add(1, Ordering::Relaxed);
    let budget = inner
        .config
        .expiry_interval
        .unwrap_or(Duration::from_millis(100))
        / 4;
    expiry_cycle(inner, budget);
}

/// One active-expiry run: at most `budget` of wall time.
fn expiry_cycle(inner: &Inner, budget: Duration) -> usize {
    let started = Instant::now();
    let now = inner.clock.now_millis();
    let mut removed = 0;
    let count = inner.shards.len();
    let start = inner.expiry_start.load(Ordering::Relaxed);
    for offset in 0..count {
        let index = (start + offset) % count;
        let shard = &inner.shards[index];
        loop {
            let mut guard = shard.0.write();
            if guard.volatile == 0 {
                guard.maybe_shrink();
                break;
            }
            let (examined, gone) = guard.expire_scan(EXPIRY_BATCH, now);
            removed += gone;
            let keep_going = gone * 10 >= examined && examined > 0;
            if !keep_going {
                guard.maybe_shrink();
            }
            drop(guard);
            if started.elapsed() >= budget {
                inner.expiry_start.store(index, Ordering::Relaxed);
                return removed;
            }
            if !keep_going {
                break;
            }
        }
    }
    inner
        .expiry_start
        .store((start + 1) % count, Ordering::Relaxed);
    removed
}

#[cfg(test)]
mod tests;
