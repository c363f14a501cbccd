//! Metrics and tracing: what kv reports, under which names.
//!
//! # Metrics (feature `metrics`)
//! kv reports through the [`metrics`](https://docs.rs/metrics) facade, so any recorder
//! works (`metrics-exporter-prometheus` in the demos). Without the feature nothing is
//! compiled in; with it and no recorder installed, each event costs a relaxed atomic add
//! and a call into the facade's no-op recorder.
//!
//! **Install the recorder before building the middlewares and stores**: each registers its
//! handles once, when built (so that a request pays no name lookup or label allocation),
//! with the recorder installed at that moment.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `kv_cache_requests_total` | counter | `outcome` = `hit`, `miss`, `stale`, `revalidated`, `bypass`, `coalesced` | requests the response cache saw, by what it did |
//! | `kv_cache_stores_total` | counter | | entries written |
//! | `kv_cache_store_errors_total` | counter | | cache store calls that failed (the request goes on as a miss) |
//! | `kv_rate_limit_decisions_total` | counter | `policy`, `outcome` = `allowed`, `denied`, `shadow_denied`, `error` | one per policy per checked request |
//! | `kv_session_loads_total` | counter | | live session records read |
//! | `kv_session_saves_total` | counter | | requests whose session changes were written (one save may be several store calls) |
//! | `kv_session_creations_total` | counter | | new sessions written for the first time |
//! | `kv_session_ends_total` | counter | `reason` = `logout`, `cycle`, `end_all`, `expired` | sessions ended: by `flush`, by an id change (`cycle_id`, `login`), by `end_user_sessions` / `end_other_sessions` / `end_user_session`, or found past their absolute deadline |
//! | `kv_session_cross_origin_refused_total` | counter | | unsafe cross-origin requests refused with `403` |
//! | `kv_session_errors_total` | counter | | store failures while loading or saving |
//! | `kv_store_operation_duration_seconds` | histogram | `backend` = `redis`, `operation` = the store method (`get`, `set`, `set_nx`, `del`, `expire`, `ttl`, `incr_by`, `hget_all`, `hset`, `hdel`, `throttle`) | each remote store call, failures included |
//! | `kv_store_errors_total` | counter | `backend`, `kind` = `unavailable`, `timeout`, `backend`, `wrong_type`, `not_integer`, `overflow`, `invalid_input` | failed remote store calls |
//! | `kv_store_reconnects_total` | counter | `backend`, `outcome` = `ok`, `failed` | replacement connections opened by the store |
//! | `kv_memory_store_keys` | gauge | | entries held (sampled by the expiry tick, every 100 ms by default) |
//! | `kv_memory_store_bytes` | gauge | | accounted bytes held (sampled by the expiry tick) |
//! | `kv_memory_store_evictions_total` | counter | | live entries evicted to stay within the memory bound (sampled by the tick) |
//! | `kv_memory_store_expirations_total` | counter | | expired entries reclaimed (sampled by the tick) |
//!
//! No label carries a key, a session id, an IP address or a user: policy names are the
//! ones you configured, every other label value is a fixed word.
//!
//! # Tracing
//! Each middleware decision runs in a `debug` span: `kv.rate_limit` (fields `outcome` =
//! `allowed` / `denied`, and `policy`, the policy that denied), `kv.cache` (`outcome` =
//! `hit` / `miss` / `bypass`) and `kv.session` around the save at the end of a request
//! (`outcome` = `saved` / `kept` / `error`). A refused request is logged at `debug` with
//! its policy (the rate limiter's `429`, the session's cross-origin `403`); store
//! failures at `warn` / `error`.
//! Remote store calls run in a `debug` span named `kv.store` with the OpenTelemetry
//! semantic-convention fields `db.system.name = "redis"` and `db.operation.name` (the
//! command sent: `GET`, `SET`, `EVALSHA` for the scripts, …), so `tracing-opentelemetry` exports them as database client spans. kv never puts
//! a key, a value, a cookie, a session id or an IP address in a span or event field.

// Without the `metrics` feature the handles are empty and some fields go unread; the
// cache and session helpers are used only with those features.
#![cfg_attr(
    not(all(feature = "metrics", feature = "cache", feature = "session")),
    allow(dead_code)
)]

use std::sync::atomic::{AtomicU64, Ordering};

/// A counter kept twice: in an atomic (for the engines' own `stats()`), and, with the
/// `metrics` feature, in a registered metrics [`Counter`].
pub(crate) struct Tally {
    n: AtomicU64,
    counter: Counter,
}

impl Tally {
    /// A tally reported as `name` with these fixed labels.
    pub(crate) fn new(name: &'static str, labels: &[(&'static str, &'static str)]) -> Tally {
        Tally {
            n: AtomicU64::new(0),
            counter: Counter::new(name, labels),
        }
    }

    /// Adds one.
    #[inline]
    pub(crate) fn bump(&self) {
        self.n.fetch_add(1, Ordering::Relaxed);
        self.counter.inc();
    }

    /// The count so far (this instance's, not the recorder's).
    pub(crate) fn get(&self) -> u64 {
        self.n.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Tally").field(&self.get()).finish()
    }
}

/// A metrics counter registered once (feature `metrics`); nothing at all without it.
#[derive(Clone)]
pub(crate) struct Counter {
    #[cfg(feature = "metrics")]
    handle: ::metrics::Counter,
}

impl Counter {
    /// A counter reported as `name` with these fixed labels.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &'static str, labels: &[(&'static str, &'static str)]) -> Counter {
        Counter {
            #[cfg(feature = "metrics")]
            handle: {
                let labels: Vec<::metrics::Label> = labels
                    .iter()
                    .map(|(k, v)| ::metrics::Label::from_static_parts(k, v))
                    .collect();
                ::metrics::counter!(name, labels)
            },
        }
    }

    /// A counter with one label whose value is configured (a policy name): bounded by
    /// the configuration, never taken from a request.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn with_owned(
        name: &'static str,
        owned: (&'static str, &str),
        labels: &[(&'static str, &'static str)],
    ) -> Counter {
        Counter {
            #[cfg(feature = "metrics")]
            handle: {
                let mut all = vec![::metrics::Label::new(owned.0, owned.1.to_owned())];
                all.extend(
                    labels
                        .iter()
                        .map(|(k, v)| ::metrics::Label::from_static_parts(k, v)),
                );
                ::metrics::counter!(name, all)
            },
        }
    }

    /// Adds `n`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn add(&self, n: u64) {
        #[cfg(feature = "metrics")]
        self.handle.increment(n);
    }

    /// Adds one.
    #[inline]
    pub(crate) fn inc(&self) {
        self.add(1);
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counter")
    }
}

/// The session engine's counters.
#[cfg(feature = "session")]
#[derive(Debug)]
pub(crate) struct SessionMetrics {
    pub(crate) loads: Counter,
    pub(crate) saves: Counter,
    pub(crate) creations: Counter,
    pub(crate) ended_logout: Counter,
    pub(crate) ended_cycle: Counter,
    pub(crate) ended_end_all: Counter,
    pub(crate) ended_expired: Counter,
    pub(crate) errors: Counter,
    pub(crate) cross_origin_refused: Counter,
}

#[cfg(feature = "session")]
impl SessionMetrics {
    pub(crate) fn new() -> SessionMetrics {
        let ended = |reason| Counter::new("kv_session_ends_total", &[("reason", reason)]);
        SessionMetrics {
            loads: Counter::new("kv_session_loads_total", &[]),
            saves: Counter::new("kv_session_saves_total", &[]),
            creations: Counter::new("kv_session_creations_total", &[]),
            ended_logout: ended("logout"),
            ended_cycle: ended("cycle"),
            ended_end_all: ended("end_all"),
            ended_expired: ended("expired"),
            errors: Counter::new("kv_session_errors_total", &[]),
            cross_origin_refused: Counter::new("kv_session_cross_origin_refused_total", &[]),
        }
    }
}

/// The figures a `MemoryStore`'s expiry thread reports at every tick.
#[cfg(all(feature = "metrics", feature = "memory"))]
pub(crate) struct MemoryMetrics {
    keys: ::metrics::Gauge,
    bytes: ::metrics::Gauge,
    evictions: ::metrics::Counter,
    expirations: ::metrics::Counter,
}

#[cfg(all(feature = "metrics", feature = "memory"))]
impl MemoryMetrics {
    pub(crate) fn new() -> MemoryMetrics {
        MemoryMetrics {
            keys: ::metrics::gauge!("kv_memory_store_keys"),
            bytes: ::metrics::gauge!("kv_memory_store_bytes"),
            evictions: ::metrics::counter!("kv_memory_store_evictions_total"),
            expirations: ::metrics::counter!("kv_memory_store_expirations_total"),
        }
    }

    /// Reports this store's figures. Several stores in one process report under the same
    /// names: each tick sets the gauges to the ticking store's figures.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn sample(&self, stats: crate::store::memory::MemoryStats) {
        self.keys.set(stats.keys as f64);
        self.bytes.set(stats.bytes as f64);
        self.evictions.absolute(stats.evictions);
        self.expirations.absolute(stats.expirations);
    }
}

#[cfg(all(feature = "metrics", feature = "memory"))]
impl std::fmt::Debug for MemoryMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryMetrics")
    }
}

/// One rate-limit policy's decision counters.
#[derive(Debug)]
pub(crate) struct PolicyCounters {
    pub(crate) name: std::sync::Arc<str>,
    pub(crate) allowed: Counter,
    pub(crate) denied: Counter,
    pub(crate) shadow_denied: Counter,
    pub(crate) error: Counter,
}

impl PolicyCounters {
    pub(crate) fn new(name: std::sync::Arc<str>) -> PolicyCounters {
        const NAME: &str = "kv_rate_limit_decisions_total";
        let outcome = |o| Counter::with_owned(NAME, ("policy", &name), &[("outcome", o)]);
        PolicyCounters {
            allowed: outcome("allowed"),
            denied: outcome("denied"),
            shadow_denied: outcome("shadow_denied"),
            error: outcome("error"),
            name: std::sync::Arc::clone(&name),
        }
    }
}

/// The store-call metrics of one remote backend, registered once per store.
#[cfg(all(feature = "metrics", feature = "redis"))]
pub(crate) struct StoreMetrics {
    backend: &'static str,
    durations: parking_lot::RwLock<Vec<(&'static str, ::metrics::Histogram)>>,
    errors: Vec<(&'static str, ::metrics::Counter)>,
    reconnects_ok: ::metrics::Counter,
    reconnects_failed: ::metrics::Counter,
}

#[cfg(all(feature = "metrics", feature = "redis"))]
impl StoreMetrics {
    const ERROR_KINDS: [&'static str; 7] = [
        "unavailable",
        "timeout",
        "backend",
        "wrong_type",
        "not_integer",
        "overflow",
        "invalid_input",
    ];

    pub(crate) fn new(backend: &'static str) -> StoreMetrics {
        let errors = Self::ERROR_KINDS
            .iter()
            .map(|kind| {
                (
                    *kind,
                    ::metrics::counter!("kv_store_errors_total", "backend" => backend, "kind" => *kind),
                )
            })
            .collect();
        StoreMetrics {
            backend,
            durations: parking_lot::RwLock::new(Vec::new()),
            errors,
            reconnects_ok: ::metrics::counter!("kv_store_reconnects_total", "backend" => backend, "outcome" => "ok"),
            reconnects_failed: ::metrics::counter!("kv_store_reconnects_total", "backend" => backend, "outcome" => "failed"),
        }
    }

    /// Records one call of `operation` that took `seconds`.
    pub(crate) fn call(&self, operation: &'static str, seconds: f64) {
        if let Some((_, h)) = self
            .durations
            .read()
            .iter()
            .find(|(op, _)| *op == operation)
        {
            h.record(seconds);
            return;
        }
        let h = ::metrics::histogram!(
            "kv_store_operation_duration_seconds",
            "backend" => self.backend,
            "operation" => operation
        );
        h.record(seconds);
        self.durations.write().push((operation, h));
    }

    /// Records one failed call.
    pub(crate) fn error(&self, kind: &'static str) {
        if let Some((_, c)) = self.errors.iter().find(|(k, _)| *k == kind) {
            c.increment(1);
        }
    }

    /// Records a replacement connection, opened or not.
    pub(crate) fn reconnect(&self, ok: bool) {
        if ok {
            self.reconnects_ok.increment(1);
        } else {
            self.reconnects_failed.increment(1);
        }
    }
}

#[cfg(all(feature = "metrics", feature = "redis"))]
impl std::fmt::Debug for StoreMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreMetrics")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// The metrics kind of a store error.
#[cfg(all(feature = "metrics", feature = "redis"))]
pub(crate) fn error_kind(err: &crate::KvError) -> &'static str {
    use crate::KvError;
    match err {
        KvError::Unavailable(cause)
            if cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) =>
        {
            "timeout"
        }
        KvError::Unavailable(_) => "unavailable",
        KvError::WrongType => "wrong_type",
        KvError::NotInteger => "not_integer",
        KvError::Overflow => "overflow",
        KvError::InvalidInput(_) => "invalid_input",
        _ => "backend",
    }
}
