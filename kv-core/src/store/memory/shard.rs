//! One shard of the memory store: an insertion-indexed map (so that expiry can scan it
//! with a cursor and eviction can sample it in O(1)) plus its byte accounting.

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use compact_str::CompactString;
use indexmap::IndexMap;

use super::classes::Classes;

/// Accounted size of one entry beyond its key and value bytes: the map slot, the index
/// slot and the entry header. Approximate by design (allocator slack is not counted).
pub(crate) const ENTRY_OVERHEAD: usize = 96;

/// How many entries eviction samples before choosing a victim (Redis' `maxmemory-samples`).
const EVICTION_SAMPLES: usize = 5;

/// How many entries eviction samples at most while looking for a key with a TTL.
const MAX_SAMPLES: usize = 16;

/// How many entries a full shard scans for expired keys before it evicts a live one.
const EVICTION_SCAN: usize = 32;

pub(crate) type Map = IndexMap<CompactString, Entry, foldhash::fast::RandomState>;

#[derive(Debug)]
pub(crate) enum Value {
    Bytes(Bytes),
    /// A counter, kept as a number and rendered as decimal text on read (as Redis' int
    /// encoding does).
    Int(i64),
    /// A hash: few fields in practice (a session record), so a vector searched linearly.
    Hash(Box<Fields>),
    /// A string value with the decoded form a reader attached to it
    /// ([`LocalStore::get_decoded`](crate::LocalStore::get_decoded)): read as its bytes.
    Decoded(Box<DecodedString>),
}

/// A string value and a reader's decoded form of it.
#[derive(Debug)]
pub(crate) struct DecodedString {
    pub(crate) bytes: Bytes,
    pub(crate) decoded: crate::store::Decoded,
    /// The decoded form's accounted size (the reader's estimate).
    pub(crate) cost: usize,
}

/// The fields of a hash value.
pub(crate) type Fields = Vec<(CompactString, Bytes)>;

/// Accounted size of one hash field beyond its name and value bytes: its slot in the
/// fields vector (a `CompactString` and a `Bytes`, 56 bytes), the value's own allocation
/// and the vector's spare capacity. Measured (issue 19's flood of 1 M sessions): with 32
/// here, a small session record took twice its accounted size in resident memory, so a
/// store of session records grew to 2× its `max_bytes`; with 96, 1.2–1.3×, as for cache
/// entries (allocator slack is never counted).
pub(crate) const FIELD_OVERHEAD: usize = 96;

/// The accounted size of a hash's fields.
pub(crate) fn fields_len(fields: &Fields) -> usize {
    fields
        .iter()
        .map(|(name, value)| name.len() + value.len() + FIELD_OVERHEAD)
        .sum()
}

impl Value {
    pub(crate) fn len(&self) -> usize {
        match self {
            Value::Bytes(b) => b.len(),
            Value::Int(_) => 8,
            Value::Hash(fields) => fields_len(fields),
            Value::Decoded(d) => d.bytes.len().saturating_add(d.cost),
        }
    }

    /// The value as an integer command reads it: a counter, or a string holding a decimal
    /// integer (`NotInteger` otherwise); `WrongType` for a hash.
    pub(crate) fn to_int(&self) -> crate::Result<i64> {
        let bytes = match self {
            Value::Int(i) => return Ok(*i),
            Value::Bytes(b) => b,
            Value::Decoded(d) => &d.bytes,
            Value::Hash(_) => return Err(crate::KvError::WrongType),
        };
        crate::store::input::parse_redis_int(bytes).ok_or(crate::KvError::NotInteger)
    }

    /// The value as a string command reads it; `WrongType` for a hash.
    pub(crate) fn to_bytes(&self) -> crate::Result<Bytes> {
        match self {
            Value::Bytes(b) => Ok(b.clone()),
            Value::Decoded(d) => Ok(d.bytes.clone()),
            Value::Int(i) => Ok(Bytes::copy_from_slice(
                itoa::Buffer::new().format(*i).as_bytes(),
            )),
            Value::Hash(_) => Err(crate::KvError::WrongType),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    /// Deadline in Unix milliseconds; 0 = persistent.
    pub(crate) expires_at: u64,
    /// LRU tick of the last access (see `Inner::lru_tick`).
    pub(crate) accessed: AtomicU32,
}

impl Entry {
    pub(crate) fn new(value: Value, expires_at: u64, tick: u32) -> Self {
        Entry {
            value,
            expires_at,
            accessed: AtomicU32::new(tick),
        }
    }

    /// Expired once the deadline is reached: a key set with a TTL of `d` lives exactly `d`.
    #[inline]
    pub(crate) fn is_expired(&self, now: u64) -> bool {
        self.expires_at != 0 && self.expires_at <= now
    }

    #[inline]
    pub(crate) fn touch(&self, tick: u32) {
        // Write only when the tick moved, so that hot keys read by several threads do not
        // bounce a cache line on every read.
        if self.accessed.load(Ordering::Relaxed) != tick {
            self.accessed.store(tick, Ordering::Relaxed);
        }
    }
}

#[inline]
pub(crate) fn cost(key_len: usize, value_len: usize) -> usize {
    key_len
        .saturating_add(value_len)
        .saturating_add(ENTRY_OVERHEAD)
}

#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) map: Map,
    /// Accounted bytes of the entries held.
    pub(crate) used: usize,
    /// Entries that carry a TTL (expiry skips shards without any).
    pub(crate) volatile: usize,
    /// Where the active-expiry scan resumes.
    pub(crate) cursor: usize,
    rng: u64,
    /// The protected key prefixes (eviction classes) and how many entries they hold.
    classes: Classes,
    protected: usize,
    /// Where the search for an unprotected victim resumes.
    evict_cursor: usize,
    /// Live entries removed to make room, since the store was built.
    pub(crate) evicted: u64,
    /// Expired entries reclaimed by the expiry scans (active expiry, eviction, purge).
    pub(crate) expired: u64,
}

impl Shard {
    pub(crate) fn new(hasher: foldhash::fast::RandomState, seed: u64, classes: Classes) -> Self {
        Shard {
            map: IndexMap::with_hasher(hasher),
            used: 0,
            volatile: 0,
            cursor: 0,
            evicted: 0,
            expired: 0,
            rng: seed | 1,
            classes,
            protected: 0,
            evict_cursor: 0,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: sampling only, not security relevant.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Removes the entry at `index` and fixes the accounting.
    pub(crate) fn remove_index(&mut self, index: usize) -> Option<Entry> {
        let (key, entry) = self.map.swap_remove_index(index)?;
        self.used -= cost(key.len(), entry.value.len());
        if self.classes.covers(&key) {
            self.protected -= 1;
        }
        if entry.expires_at != 0 {
            self.volatile -= 1;
        }
        Some(entry)
    }

    /// Removes `key`; returns the entry if there was one (live or not).
    pub(crate) fn remove(&mut self, key: &str) -> Option<Entry> {
        let index = self.map.get_index_of(key)?;
        self.remove_index(index)
    }

    /// Inserts an entry for a key known to be absent, evicting first when the shard is full.
    pub(crate) fn insert_new(
        &mut self,
        key: &str,
        entry: Entry,
        limits: &ShardLimits,
        now: u64,
        tick: u32,
    ) {
        let need = cost(key.len(), entry.value.len());
        self.make_room(need, limits, now, tick);
        if entry.expires_at != 0 {
            self.volatile += 1;
        }
        if self.classes.covers(key) {
            self.protected += 1;
        }
        self.used += need;
        self.map.insert(CompactString::from(key), entry);
    }

    /// Replaces the value and deadline of the entry at `index` in place when the shard has
    /// room for the new size; otherwise removes it and inserts anew (evicting others).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn replace(
        &mut self,
        index: usize,
        key: &str,
        value: Value,
        expires_at: u64,
        limits: &ShardLimits,
        now: u64,
        tick: u32,
    ) {
        let Some((_, entry)) = self.map.get_index_mut(index) else {
            return;
        };
        let old_len = entry.value.len();
        let new_len = value.len();
        if new_len <= old_len || self.used + new_len - old_len <= limits.max_bytes {
            let was_volatile = entry.expires_at != 0;
            entry.value = value;
            entry.expires_at = expires_at;
            entry.accessed.store(tick, Ordering::Relaxed);
            self.used = self.used + new_len - old_len;
            match (was_volatile, expires_at != 0) {
                (false, true) => self.volatile += 1,
                (true, false) => self.volatile -= 1,
                _ => {}
            }
        } else {
            self.remove_index(index);
            self.insert_new(key, Entry::new(value, expires_at, tick), limits, now, tick);
        }
    }

    /// Keeps `decoded` (accounted as `cost` bytes) beside the string value of `key`, when
    /// the key still holds exactly `bytes` (the same allocation: a write in between
    /// replaced it, and the form must not outlive what it was made from) and the shard's
    /// byte bound has room for it (a full shard keeps no decoded forms: they are a speed-up,
    /// never a reason to evict data).
    pub(crate) fn attach(
        &mut self,
        key: &str,
        bytes: &Bytes,
        decoded: crate::store::Decoded,
        cost: usize,
        limits: &ShardLimits,
    ) {
        if self.used.saturating_add(cost) > limits.max_bytes {
            return;
        }
        let Some(entry) = self.map.get_mut(key) else {
            return;
        };
        let Value::Bytes(held) = &entry.value else {
            return;
        };
        if held.as_ptr() != bytes.as_ptr() || held.len() != bytes.len() {
            return;
        }
        let bytes = held.clone();
        entry.value = Value::Decoded(Box::new(DecodedString {
            bytes,
            decoded,
            cost,
        }));
        self.used += cost;
    }

    /// Sets the deadline of the entry at `index`, keeping the volatile count right.
    pub(crate) fn set_deadline(&mut self, index: usize, expires_at: u64) {
        if let Some((_, entry)) = self.map.get_index_mut(index) {
            match (entry.expires_at != 0, expires_at != 0) {
                (false, true) => self.volatile += 1,
                (true, false) => self.volatile -= 1,
                _ => {}
            }
            entry.expires_at = expires_at;
        }
    }

    /// Evicts until an entry of `need` accounted bytes fits within the limits.
    ///
    /// The policy (sampled LRU in Redis' spirit): first reclaim expired entries met by a
    /// short scan ([`EVICTION_SCAN`] entries) from the expiry cursor; then sample [`EVICTION_SAMPLES`] entries (up
    /// to [`MAX_SAMPLES`] while the sample holds no key with a TTL but the shard does);
    /// an expired entry goes first; then the least recently used entry *with a TTL*; only
    /// when the sample holds no key with a TTL, the least recently used persistent key.
    /// Above all that, a key of a protected prefix (an eviction class) goes only when the
    /// shard holds no unprotected key.
    fn make_room(&mut self, need: usize, limits: &ShardLimits, now: u64, tick: u32) {
        let full =
            |s: &Self| s.used + need > limits.max_bytes || s.map.len() + 1 > limits.max_entries;
        if !full(self) {
            return;
        }
        // Expired keys go before any live key: first a short scan from the expiry cursor.
        if self.volatile > 0 {
            self.expire_scan(EVICTION_SCAN, now);
        }
        while !self.map.is_empty()
            && (self.used + need > limits.max_bytes || self.map.len() + 1 > limits.max_entries)
        {
            let len = self.map.len();
            let unprotected = len > self.protected;
            // (index, unprotected, volatile, age): the greatest goes.
            let mut victim: Option<(usize, bool, bool, u32)> = None;
            let mut sampled = 0;
            // Sample EVICTION_SAMPLES entries; while none of them carries a TTL but the
            // shard holds some, or all are protected but the shard holds others, sample
            // on (up to MAX_SAMPLES).
            while sampled < MAX_SAMPLES.min(len)
                && (sampled < EVICTION_SAMPLES
                    || (self.volatile > 0 && !victim.is_some_and(|v| v.2))
                    || (unprotected && !victim.is_some_and(|v| v.1)))
            {
                sampled += 1;
                let index = (self.next_random() % len as u64) as usize;
                let Some((key, entry)) = self.map.get_index(index) else {
                    continue;
                };
                if entry.is_expired(now) {
                    victim = Some((index, true, true, u32::MAX));
                    break;
                }
                let age = tick.wrapping_sub(entry.accessed.load(Ordering::Relaxed));
                let candidate = (index, !self.classes.covers(key), entry.expires_at != 0, age);
                let better = match victim {
                    None => true,
                    Some((_, u, v, a)) => (candidate.1, candidate.2, candidate.3) > (u, v, a),
                };
                if better {
                    victim = Some(candidate);
                }
            }
            // Eviction classes: a protected key goes only when the shard holds no other.
            if unprotected && victim.is_some_and(|v| !v.1) {
                victim = self
                    .unprotected_victim()
                    .map(|index| (index, true, false, 0));
            }
            match victim {
                Some((index, _, _, age)) => {
                    self.remove_index(index);
                    if age == u32::MAX {
                        self.expired += 1;
                    } else {
                        self.evicted += 1;
                    }
                }
                None => break,
            }
        }
    }

    /// The next unprotected entry from the eviction cursor (a shard that samples only
    /// protected keys is mostly protected: the walk is short on average).
    fn unprotected_victim(&mut self) -> Option<usize> {
        let len = self.map.len();
        for step in 0..len {
            let index = (self.evict_cursor + step) % len;
            if self
                .map
                .get_index(index)
                .is_some_and(|(key, _)| !self.classes.covers(key))
            {
                self.evict_cursor = index;
                return Some(index);
            }
        }
        None
    }

    /// Scans up to `budget` entries from the cursor, removing expired ones.
    /// Returns (examined, removed).
    pub(crate) fn expire_scan(&mut self, budget: usize, now: u64) -> (usize, usize) {
        let mut examined = 0;
        let mut removed = 0;
        while examined < budget && !self.map.is_empty() {
            if self.cursor >= self.map.len() {
                self.cursor = 0;
            }
            examined += 1;
            let expired = self
                .map
                .get_index(self.cursor)
                .is_some_and(|(_, e)| e.is_expired(now));
            if expired {
                // The last entry moves into `cursor`: look at it on the next round.
                self.remove_index(self.cursor);
                removed += 1;
                self.expired += 1;
            } else {
                self.cursor += 1;
            }
        }
        (examined, removed)
    }

    /// Gives memory back after many removals.
    pub(crate) fn maybe_shrink(&mut self) {
        let (len, cap) = (self.map.len(), self.map.capacity());
        if cap > 64 && len < cap / 4 {
            self.map.shrink_to(len * 2);
        }
    }
}

/// The limits of one shard: the store's bounds divided by the shard count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardLimits {
    pub(crate) max_bytes: usize,
    pub(crate) max_entries: usize,
}
