//! [`MemoryStoreBuilder`]: the bounds, validated once, and the active-expiry thread.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::classes::Classes;
use super::shard::{Shard, ShardLimits, cost};
use super::{EXPIRY_BATCH, Inner, MemoryStore, Padded};
use crate::ConfigError;
use crate::clock::{Clock, ClockHandle};
use crate::janitor::Janitor;

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
    protected: Vec<String>,
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
            protected: Vec::new(),
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
            .field("protected_prefixes", &self.protected)
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

    /// An eviction class: keys starting with `prefix` are evicted only when their shard
    /// holds no other key (then by the usual policy among themselves). For logged-in
    /// sessions, so that floods of anonymous sessions, cache entries or counters in the
    /// same bounded store cannot push them out:
    /// `SessionManager::protected_prefixes_for("session:")` gives the session engine's.
    /// Protected keys count against the bound like any other. Can be called repeatedly.
    pub fn protect_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.protected.push(prefix.into());
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
    pub(super) fn build_unchecked(self) -> MemoryStore {
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
        let classes = Classes::new(&self.protected);
        let shard_vec: Vec<Padded> = (0..shards)
            .map(|i| {
                let shard = Shard::new(hasher.clone(), hasher.hash_one(i), classes.clone());
                Padded(RwLock::new(shard))
            })
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
            #[cfg(feature = "metrics")]
            metrics: crate::observe::MemoryMetrics::new(),
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
pub(super) fn expiry_tick(inner: &Inner) {
    inner.lru_tick.fetch_add(1, Ordering::Relaxed);
    let budget = inner
        .config
        .expiry_interval
        .unwrap_or(Duration::from_millis(100))
        / 4;
    expiry_cycle(inner, budget);
    #[cfg(feature = "metrics")]
    inner.metrics.sample(super::stats_of(inner));
}

/// One active-expiry run: at most `budget` of wall time.
pub(super) fn expiry_cycle(inner: &Inner, budget: Duration) -> usize {
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
