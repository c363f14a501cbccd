//! The Redis backend (feature `redis`; Redis Cluster with `redis-cluster`).
//!
//! ```no_run
//! # async fn demo() -> kv_core::Result<()> {
//! use std::time::Duration;
//! use kv_core::{RedisStore, Store};
//!
//! let store = RedisStore::builder("redis://127.0.0.1:6379")
//!     .key_prefix("myapp:")
//!     .command_timeout(Duration::from_millis(250))
//!     .build()
//!     .await?;
//! store.set("greeting", "hello".into(), Some(Duration::from_secs(60))).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Why the `redis` crate
//! Built on the [`redis`](https://docs.rs/redis) crate's tokio `ConnectionManager` (one
//! multiplexed, auto-reconnecting connection shared by every clone of the store) and its
//! async cluster connection: the most used Rust client, with both single-node and cluster
//! support behind one `ConnectionLike` trait, script caching by SHA, and no extra runtime
//! (`fred` would bring its own connection pool and a larger dependency tree for the same
//! commands).
//!
//! # Semantics
//! Every contract method is **one round trip**: `GET`, `SET [NX] [PX]`, `DEL`, `PEXPIRE`,
//! `PTTL`, `INCRBY`, `HGETALL`, `HSET`, `HDEL`. `incr_by` and `hset` with a TTL run one Lua
//! script each; `incr_by`'s (`EXISTS`, `INCRBY`, and
//! `PEXPIRE` when the key was created), called by SHA and loaded again on `NOSCRIPT`, so
//! no client ever sees the counter without its TTL. Values are plain Redis strings:
//! `redis-cli GET <prefix><key>` reads them, counters are decimal text, TTLs show in
//! `PTTL`.
//!
//! # Failures
//! Every call is bounded by the [command timeout](RedisStoreBuilder::command_timeout)
//! (500 ms by default). While Redis is down, calls return
//! [`KvError::Unavailable`] within it (no hang, no panic); the connection reconnects in the
//! background and calls succeed again once Redis is back, without rebuilding the store.
//!
//! # Limits
//! Keys up to [`max_key_len`](RedisStoreBuilder::max_key_len) bytes (16 KiB by default)
//! and values up to [`max_value_len`](RedisStoreBuilder::max_value_len) (512 MiB, Redis'
//! own limit, by default); larger input is [`KvError::InvalidInput`] and is never sent.
//! For hashes, field names obey the key limit and each field value the value limit.
//!
//! # TLS, credentials, Sentinel
//! `rediss://` with the `redis-tls` feature (a private CA and a client certificate through
//! [`RedisStoreBuilder::ca_certificate_pem`] and
//! [`client_certificate_pem`](RedisStoreBuilder::client_certificate_pem), or a ready client
//! through [`RedisStore::builder_from_client`]); a password or ACL user in the URL
//! (`redis://user:password@host`), never shown by `Debug` or in logs; Sentinel with
//! `redis-sentinel` (`redis+sentinel://host:port,…/master` or
//! [`RedisStore::sentinel_builder`]). A reconnect the `redis` crate gives up on (refused
//! `AUTH`, `LOADING`, `READONLY` after a failover) is retried by opening a new connection.
//! The repository's `docs/redis.md` shows each setup and what a failover costs, measured.
//!
//! # Redis Cluster
//! With the `redis-cluster` feature, [`RedisStore::cluster_builder`] takes the seed node
//! URLs. Every command and script of this store touches exactly one key, so nothing ever
//! spans two slots; an engine that needs several keys in one script names them with a
//! shared hash tag (`{user:42}:a`, `{user:42}:b`). A key prefix containing a hash tag
//! (`{app}:`) would pin *every* key to one slot: don't, on a cluster.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};
use bytes::Bytes;

use super::input::{check_field_count, check_fields, check_len, opt_ttl_millis, ttl_millis};
use super::{Store, Ttl};
use crate::{KvError, Result};

mod builder;
mod connect;

pub use builder::RedisStoreBuilder;
use connect::{Rebuild, Trouble};

/// The [`redis`](https://docs.rs/redis) crate this store is built on, re-exported so that
/// a [`Client`](driver::Client) you build for
/// [`RedisStore::builder_from_client`] is of the same version.
pub use ::redis as driver;

/// `INCRBY` + `PEXPIRE` on creation, atomically. Returns the value as a bulk string,
/// because a Lua number is a double and would round counters beyond 2^53.
const INCR_WITH_TTL: &str = r"
local created = redis.call('EXISTS', KEYS[1]) == 0
redis.call('INCRBY', KEYS[1], ARGV[1])
if created then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('GET', KEYS[1])
";

static INCR_SCRIPT: LazyLock<::redis::Script> =
    LazyLock::new(|| ::redis::Script::new(INCR_WITH_TTL));

/// `HSET` + `PEXPIRE`, atomically: a script rather than `MULTI`, because in a transaction
/// a failing `HSET` (`WRONGTYPE`) would not stop the `PEXPIRE` after it.
const HSET_WITH_TTL: &str = r"
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

static HSET_SCRIPT: LazyLock<::redis::Script> =
    LazyLock::new(|| ::redis::Script::new(HSET_WITH_TTL));

/// `throttle` (GCRA, redis-cell's `CL.THROTTLE`): `store/throttle.rs`'s `step`, line by
/// line, in µs. ARGV: interval, tau, extra weight, the caller's time or `''` for `TIME`.
/// Returns `{allowed, remaining, retry µs (-1: never), reset µs}`. Lua numbers are
/// doubles: every value is below 2^53 (`params` bounds them).
const GCRA_THROTTLE: &str = r"
local t, tau, extra = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local slack = 1000 -- ms, with the caller's time (throttle::CALLER_TIME_SLACK_MS)
if not now then
  slack = 0
  if redis.replicate_commands then redis.replicate_commands() end
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  tat = tonumber(stored)
  if not tat or not string.match(stored, '^-?%d+$') then
    return redis.error_reply('ERR value is not an integer or out of range')
  end
end
local reset = math.max(tat - now, 0)
if extra > tau then return {0, 0, -1, reset} end
local earliest = tat + extra - tau
if now < earliest then return {0, 0, earliest - now, reset} end
local nxt = math.max(tat, now) + t + extra
if ARGV[5] ~= '1' then
  redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.max(math.ceil((nxt - now) / 1000), 1) + slack)
end
return {1, math.floor(math.min(now + tau + t - nxt, tau + t) / t), 0, nxt - now}
";

static GCRA_SCRIPT: LazyLock<::redis::Script> =
    LazyLock::new(|| ::redis::Script::new(GCRA_THROTTLE));

/// A store on Redis or Valkey (one server, or a cluster with `redis-cluster`).
///
/// `Clone` is cheap and shares the connection. See the [module docs](crate::store::redis) for
/// the semantics, failure behaviour and limits.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

struct Shared {
    /// The connection in use; replaced when it is beyond the `redis` crate's own
    /// reconnect (see [`Trouble`]).
    conn: parking_lot::RwLock<Conn>,
    config: Config,
    /// How to open a new single-node connection (`None` on a cluster, whose connection
    /// reconnects per node by itself).
    rebuild: Option<Rebuild>,
    /// Calls in a row that timed out.
    timeouts: AtomicU32,
    /// A replacement connection is being opened.
    rebuilding: AtomicBool,
    /// The origin of `next_rebuild_ms`.
    born: Instant,
    /// No new connection is opened before this many milliseconds after `born`: while a
    /// server refuses every connection, one attempt per [`REBUILD_INTERVAL`], not one per
    /// call.
    next_rebuild_ms: AtomicU64,
    /// Per-operation durations, errors and reconnects (feature `metrics`).
    #[cfg(feature = "metrics")]
    metrics: crate::observe::StoreMetrics,
}

/// A store call's names: the contract method (the `operation` label of the metrics) and
/// the Redis command sent (`db.operation.name` in its span; `EVALSHA` for the scripts).
type Op = (&'static str, &'static str);

/// A connection that stops answering without being closed (a blackholed address after a
/// failover, a frozen proxy) is not replaced by the `redis` crate: a timeout is not a
/// disconnect to it. After this many timeouts in a row the store opens a new connection
/// in the background and swaps it in.
const TIMEOUTS_BEFORE_REBUILD: u32 = 3;

/// The least time between two attempts to open a replacement connection.
const REBUILD_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(::redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

#[derive(Debug)]
struct Config {
    prefix: String,
    command_timeout: Duration,
    max_key_len: usize,
    max_value_len: usize,
    cluster: bool,
}

impl RedisStore {
    /// Connects to one Redis server with the default settings: any URL
    /// [`builder`](RedisStore::builder) takes.
    ///
    /// # Errors
    /// [`KvError::InvalidInput`] for a malformed URL, [`KvError::Unavailable`] when the
    /// server cannot be reached within the connect timeout.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).build().await
    }

    /// The key prefix this store writes under.
    pub fn key_prefix(&self) -> &str {
        &self.config().prefix
    }

    fn key(&self, key: &str) -> Result<String> {
        check_len("key", key.len(), self.config().max_key_len)?;
        let mut full = String::with_capacity(self.config().prefix.len() + key.len());
        full.push_str(&self.config().prefix);
        full.push_str(key);
        Ok(full)
    }

    fn check_value(&self, value: &Bytes) -> Result<()> {
        check_len("value", value.len(), self.config().max_value_len)
    }

    fn config(&self) -> &Config {
        &self.shared.config
    }

    fn conn(&self) -> Conn {
        self.shared.conn.read().clone()
    }

    /// Runs one command under the command timeout; `op` names it for metrics and spans.
    async fn query<T: ::redis::FromRedisValue>(&self, op: Op, cmd: &Cmd) -> Result<T> {
        let mut conn = self.conn();
        self.run(op, cmd.query_async(&mut conn)).await
    }

    /// Runs a Redis future under the command timeout, and replaces the connection when
    /// the failure says it is beyond the `redis` crate's own reconnect.
    async fn run<T>(
        &self,
        (method, command): Op,
        fut: impl Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T> {
        use tracing::Instrument as _;
        #[cfg(not(feature = "metrics"))]
        let _ = method;
        let timeout = self.config().command_timeout;
        let span = tracing::debug_span!(
            "kv.store",
            db.system.name = "redis",
            db.operation.name = command,
        );
        #[cfg(feature = "metrics")]
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, fut).instrument(span).await;
        #[cfg(feature = "metrics")]
        self.shared
            .metrics
            .call(method, started.elapsed().as_secs_f64());
        let (result, trouble) = match outcome {
            Ok(Ok(v)) => (Ok(v), Trouble::None),
            Ok(Err(e)) => {
                let trouble = Trouble::of(&e);
                (Err(map_error(e)), trouble)
            }
            Err(_) => (Err(timed_out(timeout)), Trouble::Timeout),
        };
        #[cfg(feature = "metrics")]
        if let Err(err) = &result {
            self.shared.metrics.error(crate::observe::error_kind(err));
        }
        let shared = &*self.shared;
        match trouble {
            Trouble::None if result.is_ok() => {
                if shared.timeouts.load(Ordering::Relaxed) != 0 {
                    shared.timeouts.store(0, Ordering::Relaxed);
                }
            }
            Trouble::None => {}
            Trouble::Timeout => {
                let n = shared.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= TIMEOUTS_BEFORE_REBUILD {
                    self.rebuild_in_background(trouble);
                }
            }
            Trouble::Io => {
                if shared
                    .rebuild
                    .as_ref()
                    .is_some_and(|r| r.source.follows_a_primary())
                {
                    self.rebuild_in_background(trouble);
                }
            }
            #[cfg(feature = "redis-sentinel")]
            Trouble::Moved => self.rebuild_in_background(trouble),
            Trouble::Stuck => self.rebuild_in_background(trouble),
        }
        result
    }

    fn rebuild_in_background(&self, trouble: Trouble) {
        if self.shared.rebuild.is_none() {
            return;
        }
        let now_ms = u64::try_from(self.shared.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        if now_ms < self.shared.next_rebuild_ms.load(Ordering::Relaxed) {
            return;
        }
        if self.shared.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let interval = u64::try_from(REBUILD_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        self.shared
            .next_rebuild_ms
            .store(now_ms.saturating_add(interval), Ordering::Relaxed);
        tracing::warn!(
            db.system.name = "redis",
            cause = ?trouble,
            "kv RedisStore: the connection is not usable; opening a new one"
        );
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            let Some(rebuild) = &shared.rebuild else {
                return;
            };
            match rebuild.open().await {
                Ok(manager) => {
                    #[cfg(feature = "metrics")]
                    shared.metrics.reconnect(true);
                    *shared.conn.write() = Conn::Single(manager);
                    shared.timeouts.store(0, Ordering::Relaxed);
                    tracing::info!(
                        db.system.name = "redis",
                        "kv RedisStore: new connection in use"
                    );
                }
                Err(err) => {
                    #[cfg(feature = "metrics")]
                    shared.metrics.reconnect(false);
                    tracing::warn!(
                        db.system.name = "redis",
                        error = %err,
                        "kv RedisStore: could not open a new connection"
                    );
                }
            }
            shared.rebuilding.store(false, Ordering::Release);
        });
    }

    async fn set_impl(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        nx: bool,
    ) -> Result<bool> {
        let key = self.key(key)?;
        self.check_value(&value)?;
        let ttl_ms = opt_ttl_millis(ttl)?;
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(&key).arg(value.as_ref());
        if nx {
            cmd.arg("NX");
        }
        if let Some(ms) = ttl_ms {
            cmd.arg("PX").arg(ms);
        }
        let stored: Option<()> = self
            .query(
                if nx {
                    ("set_nx", "SET")
                } else {
                    ("set", "SET")
                },
                &cmd,
            )
            .await?;
        Ok(stored.is_some())
    }
}

impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let key = self.key(key)?;
        self.query(("get", "GET"), ::redis::cmd("GET").arg(&key))
            .await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.set_impl(key, value, ttl, false).await.map(drop)
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.set_impl(key, value, ttl, true).await
    }

    async fn del(&self, key: &str) -> Result<bool> {
        let key = self.key(key)?;
        let removed: i64 = self
            .query(("del", "DEL"), ::redis::cmd("DEL").arg(&key))
            .await?;
        Ok(removed > 0)
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let key = self.key(key)?;
        // PEXPIRE with 0 deletes the key, as the contract says.
        let ms = if ttl.is_zero() { 0 } else { ttl_millis(ttl)? };
        self.query(
            ("expire", "PEXPIRE"),
            ::redis::cmd("PEXPIRE").arg(&key).arg(ms),
        )
        .await
    }

    async fn ttl(&self, key: &str) -> Result<Ttl> {
        let key = self.key(key)?;
        let pttl: i64 = self
            .query(("ttl", "PTTL"), ::redis::cmd("PTTL").arg(&key))
            .await?;
        Ok(Ttl::from_pttl(pttl))
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl_if_new: Option<Duration>) -> Result<i64> {
        let key = self.key(key)?;
        match opt_ttl_millis(ttl_if_new)? {
            None => {
                self.query(
                    ("incr_by", "INCRBY"),
                    ::redis::cmd("INCRBY").arg(&key).arg(delta),
                )
                .await
            }
            Some(ms) => {
                let mut conn = self.conn();
                let mut invocation = INCR_SCRIPT.prepare_invoke();
                invocation.key(&key).arg(delta).arg(ms);
                let text: Bytes = self
                    .run(("incr_by", "EVALSHA"), invocation.invoke_async(&mut conn))
                    .await?;
                super::input::parse_redis_int(&text).ok_or_else(|| {
                    KvError::Backend(Arc::new(std::io::Error::other(
                        "INCRBY script returned a non-integer",
                    )))
                })
            }
        }
    }

    async fn hget_all(&self, key: &str) -> Result<Vec<(String, Bytes)>> {
        let key = self.key(key)?;
        self.query(("hget_all", "HGETALL"), ::redis::cmd("HGETALL").arg(&key))
            .await
    }

    async fn hset(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let key = self.key(key)?;
        check_fields(
            &fields,
            self.config().max_key_len,
            self.config().max_value_len,
        )?;
        match opt_ttl_millis(ttl)? {
            None => {
                let mut cmd = ::redis::cmd("HSET");
                cmd.arg(&key);
                for (name, value) in &fields {
                    cmd.arg(name).arg(value.as_ref());
                }
                let _added: i64 = self.query(("hset", "HSET"), &cmd).await?;
                Ok(())
            }
            Some(ms) => {
                let mut conn = self.conn();
                let mut invocation = HSET_SCRIPT.prepare_invoke();
                invocation.key(&key).arg(ms);
                for (name, value) in &fields {
                    invocation.arg(name).arg(value.as_ref());
                }
                let _ok: i64 = self
                    .run(("hset", "EVALSHA"), invocation.invoke_async(&mut conn))
                    .await?;
                Ok(())
            }
        }
    }

    async fn hdel(&self, key: &str, fields: Vec<String>) -> Result<usize> {
        let key = self.key(key)?;
        check_field_count(fields.len())?;
        for name in &fields {
            check_len("field name", name.len(), self.config().max_key_len)?;
        }
        let mut cmd = ::redis::cmd("HDEL");
        cmd.arg(&key);
        for name in &fields {
            cmd.arg(name);
        }
        self.query(("hdel", "HDEL"), &cmd).await
    }

    async fn throttle(&self, key: &str, request: super::Throttle) -> Result<super::ThrottleReply> {
        let key = self.key(key)?;
        let p = super::throttle::params(&request)?;
        let mut invocation = GCRA_SCRIPT.prepare_invoke();
        invocation.key(&key).arg(p.t).arg(p.tau).arg(p.extra);
        match p.now {
            Some(now) => invocation.arg(now),
            None => invocation.arg(""),
        };
        invocation.arg(if p.peek { "1" } else { "0" });
        let mut conn = self.conn();
        let reply: (i64, i64, i64, i64) = self
            .run(("throttle", "EVALSHA"), invocation.invoke_async(&mut conn))
            .await?;
        let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(super::ThrottleReply {
            allowed: reply.0 == 1,
            remaining: u64::try_from(reply.1).unwrap_or(0),
            retry_after: if reply.2 < 0 {
                Duration::MAX
            } else {
                micros(reply.2)
            },
            reset_after: micros(reply.3),
        })
    }
}

/// Behind Sentinel: asks the sentinels every `interval` whether the primary moved, and
/// moves the store when it did. Ends when the last handle of the store is dropped.
#[cfg(feature = "redis-sentinel")]
fn watch_primary(shared: std::sync::Weak<Shared>, interval: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let moved = match &shared.rebuild {
                Some(rebuild) => rebuild.primary_moved().await,
                None => return,
            };
            if moved {
                RedisStore { shared }.rebuild_in_background(Trouble::Moved);
            }
        }
    });
}

/// Runs a Redis future under `timeout`, mapping every failure to a [`KvError`].
async fn bounded<T>(
    timeout: Duration,
    fut: impl Future<Output = ::redis::RedisResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(map_error(e)),
        Err(_) => Err(timed_out(timeout)),
    }
}

/// Our command timeout, as a retryable error.
fn timed_out(timeout: Duration) -> KvError {
    tracing::debug!(?timeout, "kv RedisStore: command timed out");
    KvError::unavailable(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("redis command timed out after {timeout:?}"),
    ))
}

/// Maps a Redis error to the contract's error kinds.
fn map_error(e: RedisError) -> KvError {
    let detail = e.detail().unwrap_or_default();
    match e.kind() {
        ErrorKind::Io
        | ErrorKind::ClusterConnectionNotFound
        | ErrorKind::Server(
            ServerErrorKind::ClusterDown
            | ServerErrorKind::TryAgain
            | ServerErrorKind::MasterDown
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::ReadOnly,
        ) => KvError::Unavailable(Arc::new(e)),
        ErrorKind::Server(ServerErrorKind::ResponseError)
            // `contains`: inside a script, Redis 6 prefixes the message, Redis 7 suffixes it.
            if detail.contains("value is not an integer or out of range") =>
        {
            KvError::NotInteger
        }
        ErrorKind::Server(ServerErrorKind::ResponseError)
            if detail.contains("increment or decrement would overflow") =>
        {
            KvError::Overflow
        }
        // `contains`: inside a script the code can be folded into the message.
        _ if e.code() == Some("WRONGTYPE") || detail.contains("WRONGTYPE") => KvError::WrongType,
        ErrorKind::InvalidClientConfig => KvError::InvalidInput(e.to_string()),
        _ => KvError::Backend(Arc::new(e)),
    }
}

impl fmt::Debug for RedisStore {
    /// Shows the settings, never the URL (it may hold a password).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.config().prefix)
            .field("command_timeout", &self.config().command_timeout)
            .field("cluster", &self.config().cluster)
            .finish_non_exhaustive()
    }
}
