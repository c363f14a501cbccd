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
//! # Redis Cluster
//! With the `redis-cluster` feature, [`RedisStore::cluster_builder`] takes the seed node
//! URLs. Every command and script of this store touches exactly one key, so nothing ever
//! spans two slots; an engine that needs several keys in one script names them with a
//! shared hash tag (`{user:42}:a`, `{user:42}:b`). A key prefix containing a hash tag
//! (`{app}:`) would pin *every* key to one slot: don't, on a cluster.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};
use bytes::Bytes;

use super::input::{check_field_count, check_fields, check_len, opt_ttl_millis, ttl_millis};
use super::{Store, Ttl};
use crate::{KvError, Result};

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
    /// The connection in use; replaced when it stops answering (see `Rebuild`).
    conn: parking_lot::RwLock<Conn>,
    config: Config,
    /// How to open a new single-node connection (`None` on a cluster, whose connection
    /// reconnects per node by itself).
    rebuild: Option<Rebuild>,
    /// Calls in a row that timed out.
    timeouts: AtomicU32,
    /// A replacement connection is being opened.
    rebuilding: AtomicBool,
}

/// A connection that stops answering without being closed (a blackholed address after a
/// failover, a frozen proxy) is not replaced by the `redis` crate: a timeout is not a
/// disconnect to it. After this many timeouts in a row the store opens a new connection
/// in the background and swaps it in.
const TIMEOUTS_BEFORE_REBUILD: u32 = 3;

struct Rebuild {
    client: ::redis::Client,
    config: ConnectionManagerConfig,
    limit: Duration,
}

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
    /// Connects to one Redis server with the default settings
    /// (`redis://host:port/db`, `rediss://` needs a TLS feature of the `redis` crate,
    /// `redis+unix:///path`).
    ///
    /// # Errors
    /// [`KvError::InvalidInput`] for a malformed URL, [`KvError::Unavailable`] when the
    /// server cannot be reached within the connect timeout.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).build().await
    }

    /// A builder for one Redis server at `url`.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(vec![url.into()], false)
    }

    /// A builder for a Redis Cluster, given one or more seed node URLs.
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn cluster_builder<I, S>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::new(nodes.into_iter().map(Into::into).collect(), true)
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

    /// Runs one command under the command timeout.
    async fn query<T: ::redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        let mut conn = self.conn();
        self.run(cmd.query_async(&mut conn)).await
    }

    /// Runs a Redis future under the command timeout, counting timeouts in a row.
    async fn run<T>(&self, fut: impl Future<Output = ::redis::RedisResult<T>>) -> Result<T> {
        let result = bounded(self.config().command_timeout, fut).await;
        let shared = &*self.shared;
        match &result {
            Err(KvError::Unavailable(e)) if is_timeout(e.as_ref()) => {
                let n = shared.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= TIMEOUTS_BEFORE_REBUILD {
                    self.rebuild_in_background();
                }
            }
            _ => {
                if shared.timeouts.load(Ordering::Relaxed) != 0 {
                    shared.timeouts.store(0, Ordering::Relaxed);
                }
            }
        }
        result
    }

    fn rebuild_in_background(&self) {
        let Some(rebuild) = &self.shared.rebuild else {
            return;
        };
        if self.shared.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!("kv RedisStore: the connection stopped answering; opening a new one");
        let shared = Arc::clone(&self.shared);
        let (client, config, limit) = (
            rebuild.client.clone(),
            rebuild.config.clone(),
            rebuild.limit,
        );
        tokio::spawn(async move {
            match bounded(limit, ConnectionManager::new_with_config(client, config)).await {
                Ok(manager) => {
                    *shared.conn.write() = Conn::Single(manager);
                    shared.timeouts.store(0, Ordering::Relaxed);
                    tracing::info!("kv RedisStore: new connection in use");
                }
                Err(err) => {
                    tracing::warn!(error = %err, "kv RedisStore: could not open a new connection")
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
        let stored: Option<()> = self.query(&cmd).await?;
        Ok(stored.is_some())
    }
}

impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let key = self.key(key)?;
        self.query(::redis::cmd("GET").arg(&key)).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.set_impl(key, value, ttl, false).await.map(drop)
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.set_impl(key, value, ttl, true).await
    }

    async fn del(&self, key: &str) -> Result<bool> {
        let key = self.key(key)?;
        let removed: i64 = self.query(::redis::cmd("DEL").arg(&key)).await?;
        Ok(removed > 0)
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let key = self.key(key)?;
        // PEXPIRE with 0 deletes the key, as the contract says.
        let ms = if ttl.is_zero() { 0 } else { ttl_millis(ttl)? };
        self.query(::redis::cmd("PEXPIRE").arg(&key).arg(ms)).await
    }

    async fn ttl(&self, key: &str) -> Result<Ttl> {
        let key = self.key(key)?;
        let pttl: i64 = self.query(::redis::cmd("PTTL").arg(&key)).await?;
        Ok(Ttl::from_pttl(pttl))
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl_if_new: Option<Duration>) -> Result<i64> {
        let key = self.key(key)?;
        match opt_ttl_millis(ttl_if_new)? {
            None => {
                self.query(::redis::cmd("INCRBY").arg(&key).arg(delta))
                    .await
            }
            Some(ms) => {
                let mut conn = self.conn();
                let mut invocation = INCR_SCRIPT.prepare_invoke();
                invocation.key(&key).arg(delta).arg(ms);
                let text: Bytes = self.run(invocation.invoke_async(&mut conn)).await?;
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
        self.query(::redis::cmd("HGETALL").arg(&key)).await
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
                let _added: i64 = self.query(&cmd).await?;
                Ok(())
            }
            Some(ms) => {
                let mut conn = self.conn();
                let mut invocation = HSET_SCRIPT.prepare_invoke();
                invocation.key(&key).arg(ms);
                for (name, value) in &fields {
                    invocation.arg(name).arg(value.as_ref());
                }
                let _ok: i64 = self.run(invocation.invoke_async(&mut conn)).await?;
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
        self.query(&cmd).await
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
        let reply: (i64, i64, i64, i64) = self.run(invocation.invoke_async(&mut conn)).await?;
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

/// Runs a Redis future under `timeout`, mapping every failure to a [`KvError`].
async fn bounded<T>(
    timeout: Duration,
    fut: impl Future<Output = ::redis::RedisResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(map_error(e)),
        Err(_) => {
            tracing::debug!(?timeout, "kv RedisStore: command timed out");
            Err(KvError::unavailable(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("redis command timed out after {timeout:?}"),
            )))
        }
    }
}

/// Whether an `Unavailable` cause is our command timeout.
fn is_timeout(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
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

/// Builds a [`RedisStore`].
#[must_use]
pub struct RedisStoreBuilder {
    nodes: Vec<String>,
    cluster: bool,
    prefix: String,
    command_timeout: Duration,
    connect_timeout: Duration,
    reconnect_retries: usize,
    max_key_len: usize,
    max_value_len: usize,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("nodes", &self.nodes.len())
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_retries", &self.reconnect_retries)
            .field("max_key_len", &self.max_key_len)
            .field("max_value_len", &self.max_value_len)
            .finish()
    }
}

impl RedisStoreBuilder {
    fn new(nodes: Vec<String>, cluster: bool) -> Self {
        RedisStoreBuilder {
            nodes,
            cluster,
            prefix: String::new(),
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            reconnect_retries: 1,
            max_key_len: 16 << 10,
            max_value_len: 512 << 20,
        }
    }

    /// A prefix put before every key (default: none), e.g. `"myapp:"`, so that several
    /// applications can share one Redis.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The bound on every call, reconnect waits included (default 500 ms). A call that
    /// takes longer returns [`KvError::Unavailable`].
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The bound on each connection attempt (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many times a broken connection is retried in the background before the next
    /// call starts over (default 1). Kept small so that calls fail fast while Redis is
    /// down instead of queueing behind a long backoff.
    pub fn reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// The longest key accepted, in bytes, prefix excluded (default 16 KiB).
    pub fn max_key_len(mut self, bytes: usize) -> Self {
        self.max_key_len = bytes;
        self
    }

    /// The longest value accepted, in bytes (default 512 MiB, Redis' limit).
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }

    /// Connects.
    ///
    /// # Errors
    /// [`KvError::InvalidInput`] for a malformed URL, an empty node list or a zero
    /// timeout; [`KvError::Unavailable`] when Redis cannot be reached in time.
    pub async fn build(self) -> Result<RedisStore> {
        if self.nodes.is_empty() {
            return Err(KvError::invalid_input("no Redis URL given"));
        }
        if self.command_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(KvError::invalid_input("timeouts must be positive"));
        }
        let (conn, rebuild) = if self.cluster {
            (self.connect_cluster().await?, None)
        } else {
            let (conn, rebuild) = self.connect_single().await?;
            (conn, Some(rebuild))
        };
        Ok(RedisStore {
            shared: Arc::new(Shared {
                conn: parking_lot::RwLock::new(conn),
                config: Config {
                    prefix: self.prefix,
                    command_timeout: self.command_timeout,
                    max_key_len: self.max_key_len,
                    max_value_len: self.max_value_len,
                    cluster: self.cluster,
                },
                rebuild,
                timeouts: AtomicU32::new(0),
                rebuilding: AtomicBool::new(false),
            }),
        })
    }

    /// The bound on opening a connection: every attempt's timeout plus backoff slack.
    fn connect_limit(&self, attempts: usize) -> Duration {
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        self.connect_timeout
            .saturating_mul(attempts)
            .saturating_add(Duration::from_secs(1))
    }

    async fn connect_single(&self) -> Result<(Conn, Rebuild)> {
        let client = ::redis::Client::open(self.nodes[0].as_str())
            .map_err(|e| KvError::invalid_input(format!("invalid Redis URL: {e}")))?;
        // No response timeout inside the manager: every call is already bounded by
        // `bounded()` (which also covers reconnect waits), and a second timer per command
        // costs measurable time under concurrency.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(self.connect_timeout))
            .set_number_of_retries(self.reconnect_retries)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let limit = self.connect_limit(self.reconnect_retries.saturating_add(1));
        let manager = bounded(
            limit,
            ConnectionManager::new_with_config(client.clone(), config.clone()),
        )
        .await?;
        Ok((
            Conn::Single(manager),
            Rebuild {
                client,
                config,
                limit,
            },
        ))
    }

    #[cfg(feature = "redis-cluster")]
    async fn connect_cluster(&self) -> Result<Conn> {
        let client =
            ::redis::cluster::ClusterClientBuilder::new(self.nodes.iter().map(String::as_str))
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.command_timeout)
                .overall_response_timeout(Some(self.command_timeout))
                .retries(2)
                .min_retry_wait(20)
                .max_retry_wait(200)
                .build()
                .map_err(|e| KvError::invalid_input(format!("invalid Redis Cluster URL: {e}")))?;
        let conn = bounded(self.connect_limit(2), client.get_async_connection()).await?;
        Ok(Conn::Cluster(conn))
    }

    #[cfg(not(feature = "redis-cluster"))]
    async fn connect_cluster(&self) -> Result<Conn> {
        Err(KvError::invalid_input(
            "Redis Cluster needs the `redis-cluster` feature",
        ))
    }
}
