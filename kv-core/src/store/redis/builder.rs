//! [`RedisStoreBuilder`]: where to connect (a URL, a ready client, a cluster, Sentinel),
//! TLS material, timeouts and limits.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use ::redis::aio::ConnectionManagerConfig;

#[cfg(feature = "redis-cluster")]
use super::bounded;
use super::connect::{Rebuild, Source};
use super::{Config, Conn, RedisStore, Shared};
use crate::{KvError, Result};

/// Where a [`RedisStoreBuilder`] connects.
enum Target {
    /// One server by URL.
    Url(String),
    /// One server through a client the caller built (TLS or auth settings of their own).
    Client(::redis::Client),
    /// A Redis Cluster by its seed node URLs.
    #[cfg(feature = "redis-cluster")]
    Cluster(Vec<String>),
    /// The primary of a Sentinel-monitored master.
    #[cfg(feature = "redis-sentinel")]
    Sentinel(super::connect::SentinelUrl),
    /// A URL that was refused when the builder was made (reported by `build`).
    Invalid(String),
}

/// TLS material given through the builder (PEM bytes).
#[cfg(feature = "redis-tls")]
#[derive(Default)]
struct TlsMaterial {
    root_ca: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

#[cfg(feature = "redis-tls")]
impl TlsMaterial {
    fn certificates(&self) -> Option<::redis::TlsCertificates> {
        if self.root_ca.is_none() && self.client.is_none() {
            return None;
        }
        Some(::redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| ::redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.root_ca.clone(),
        })
    }
}

/// Builds a [`RedisStore`].
#[must_use]
pub struct RedisStoreBuilder {
    target: Target,
    prefix: String,
    command_timeout: Duration,
    connect_timeout: Duration,
    reconnect_retries: usize,
    max_key_len: usize,
    max_value_len: usize,
    #[cfg(feature = "redis-tls")]
    tls: TlsMaterial,
    #[cfg(feature = "redis-sentinel")]
    sentinel_check_interval: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    /// Shows the settings, never a URL, a password or key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            Target::Url(_) => "url",
            Target::Client(_) => "client",
            #[cfg(feature = "redis-cluster")]
            Target::Cluster(_) => "cluster",
            #[cfg(feature = "redis-sentinel")]
            Target::Sentinel(_) => "sentinel",
            Target::Invalid(_) => "invalid",
        };
        let mut f = f.debug_struct("RedisStoreBuilder");
        f.field("target", &target)
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_retries", &self.reconnect_retries)
            .field("max_key_len", &self.max_key_len)
            .field("max_value_len", &self.max_value_len);
        #[cfg(feature = "redis-tls")]
        f.field("custom_ca", &self.tls.root_ca.is_some())
            .field("client_certificate", &self.tls.client.is_some());
        f.finish()
    }
}

impl RedisStore {
    /// A builder for one Redis server at `url`: `redis://[user:password@]host:port/db`,
    /// `rediss://…` (TLS, feature `redis-tls`), `redis+unix:///path`, or a Sentinel URL
    /// `redis+sentinel://[user:password@]host:port[,host:port…]/master[/db]` (feature
    /// `redis-sentinel`; `rediss+sentinel://` for TLS to the primary).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        let url = url.into();
        let target =
            if url.starts_with("redis+sentinel://") || url.starts_with("rediss+sentinel://") {
                sentinel_target(&url)
            } else {
                Target::Url(url)
            };
        RedisStoreBuilder::new(target)
    }

    /// A builder over a [`redis::Client`] you built yourself, for
    /// connection settings this builder does not offer. The client must be of the `redis`
    /// crate version kv uses, re-exported as [`kv_core::store::redis::driver`](super::driver).
    pub fn builder_from_client(client: ::redis::Client) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Target::Client(client))
    }

    /// A builder for the primary of the Sentinel-monitored `master`, given one or more
    /// sentinel addresses (`"host:port"`). The store asks the sentinels for the current
    /// primary when it connects and again whenever the primary stops answering as one
    /// (after a failover), without being rebuilt.
    #[cfg(feature = "redis-sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-sentinel")))]
    pub fn sentinel_builder<I, S>(master: &str, sentinels: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let hosts: Vec<String> = sentinels
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .collect();
        RedisStoreBuilder::new(sentinel_target(&format!(
            "redis+sentinel://{}/{master}",
            hosts.join(",")
        )))
    }

    /// A builder for a Redis Cluster, given one or more seed node URLs.
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn cluster_builder<I, S>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::new(Target::Cluster(nodes.into_iter().map(Into::into).collect()))
    }
}

#[cfg(feature = "redis-sentinel")]
fn sentinel_target(url: &str) -> Target {
    match super::connect::SentinelUrl::parse(url) {
        Ok(url) => Target::Sentinel(url),
        Err(why) => Target::Invalid(format!("invalid Sentinel URL: {why}")),
    }
}

#[cfg(not(feature = "redis-sentinel"))]
fn sentinel_target(_url: &str) -> Target {
    Target::Invalid("Redis Sentinel needs the `redis-sentinel` feature".into())
}

impl RedisStoreBuilder {
    fn new(target: Target) -> Self {
        RedisStoreBuilder {
            target,
            prefix: String::new(),
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            reconnect_retries: 1,
            max_key_len: 16 << 10,
            max_value_len: 512 << 20,
            #[cfg(feature = "redis-tls")]
            tls: TlsMaterial::default(),
            #[cfg(feature = "redis-sentinel")]
            sentinel_check_interval: Duration::from_secs(1),
        }
    }

    /// Behind Sentinel: how often the store asks the sentinels which server is primary
    /// (default 1 s). After a failover the old primary may go on taking writes until
    /// Sentinel demotes it, and those writes are lost when it resynchronises; the store
    /// moves to the new primary within this interval, or at once when the old one drops
    /// the connection or refuses a write.
    #[cfg(feature = "redis-sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-sentinel")))]
    pub fn sentinel_check_interval(mut self, interval: Duration) -> Self {
        self.sentinel_check_interval = interval;
        self
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

    /// The bound on each connection attempt (default 1 s), TLS handshake and `AUTH`
    /// included.
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

    /// Trust the certificate authority in `pem` (instead of the system's roots) for
    /// `rediss://` connections: for a server whose certificate a private CA signed.
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.root_ca = Some(pem.into());
        self
    }

    /// Present this client certificate chain and private key (PEM) on `rediss://`
    /// connections, for servers that check clients (`tls-auth-clients yes`).
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn client_certificate_pem(
        mut self,
        certificate_chain: impl Into<Vec<u8>>,
        private_key: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.client = Some((certificate_chain.into(), private_key.into()));
        self
    }

    /// Connects.
    ///
    /// # Errors
    /// [`KvError::InvalidInput`] for a malformed URL, an empty node list, a zero timeout,
    /// unreadable TLS material or a feature that is off; [`KvError::Unavailable`] when
    /// Redis cannot be reached in time; [`KvError::Backend`] when the server refuses the
    /// connection (wrong password, TLS handshake refused).
    pub async fn build(self) -> Result<RedisStore> {
        #[cfg(feature = "redis-sentinel")]
        if self.sentinel_check_interval.is_zero() {
            return Err(KvError::invalid_input(
                "the Sentinel check interval must be positive",
            ));
        }
        if self.command_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(KvError::invalid_input("timeouts must be positive"));
        }
        #[cfg(feature = "redis-tls")]
        install_crypto_provider();
        #[cfg(feature = "redis-cluster")]
        let cluster = matches!(self.target, Target::Cluster(_));
        #[cfg(not(feature = "redis-cluster"))]
        let cluster = false;
        let (conn, rebuild) = match &self.target {
            Target::Invalid(why) => return Err(KvError::invalid_input(why.clone())),
            #[cfg(feature = "redis-cluster")]
            Target::Cluster(nodes) => (self.connect_cluster(nodes).await?, None),
            Target::Url(url) => {
                let client = self.client_for(url)?;
                let (conn, rebuild) = self
                    .connect_single(Source::Client(Box::new(client)))
                    .await?;
                (conn, Some(rebuild))
            }
            Target::Client(client) => {
                let (conn, rebuild) = self
                    .connect_single(Source::Client(Box::new(client.clone())))
                    .await?;
                (conn, Some(rebuild))
            }
            #[cfg(feature = "redis-sentinel")]
            Target::Sentinel(url) => {
                let sentinel = self.sentinel_client(url)?;
                let source = Source::Sentinel(Arc::new(tokio::sync::Mutex::new(sentinel)));
                let (conn, rebuild) = self.connect_single(source).await?;
                (conn, Some(rebuild))
            }
        };
        let store = RedisStore {
            shared: Arc::new(Shared {
                conn: parking_lot::RwLock::new(conn),
                config: Config {
                    prefix: self.prefix,
                    command_timeout: self.command_timeout,
                    max_key_len: self.max_key_len,
                    max_value_len: self.max_value_len,
                    cluster,
                },
                rebuild,
                timeouts: AtomicU32::new(0),
                rebuilding: AtomicBool::new(false),
                born: Instant::now(),
                next_rebuild_ms: AtomicU64::new(0),
                #[cfg(feature = "metrics")]
                metrics: crate::observe::StoreMetrics::new("redis"),
            }),
        };
        #[cfg(feature = "redis-sentinel")]
        if store
            .shared
            .rebuild
            .as_ref()
            .is_some_and(|r| r.source.follows_a_primary())
        {
            super::watch_primary(Arc::downgrade(&store.shared), self.sentinel_check_interval);
        }
        Ok(store)
    }

    /// The `redis::Client` for one URL, with the builder's TLS material.
    fn client_for(&self, url: &str) -> Result<::redis::Client> {
        #[cfg(feature = "redis-tls")]
        if let Some(certificates) = self.tls.certificates() {
            return ::redis::Client::build_with_tls(url, certificates).map_err(invalid_url);
        }
        ::redis::Client::open(url).map_err(invalid_url)
    }

    #[cfg(feature = "redis-sentinel")]
    fn sentinel_client(
        &self,
        url: &super::connect::SentinelUrl,
    ) -> Result<::redis::sentinel::SentinelClient> {
        use ::redis::sentinel::{SentinelClientBuilder, SentinelServerType};
        let sentinels = url
            .sentinels
            .iter()
            .map(|(host, port)| ::redis::ConnectionAddr::Tcp(host.clone(), *port));
        let mut builder =
            SentinelClientBuilder::new(sentinels, &url.master, SentinelServerType::Master)
                .map_err(invalid_url)?
                .set_client_to_redis_db(url.node.db());
        if let Some(user) = url.node.username() {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = url.node.password() {
            builder = builder.set_client_to_redis_password(password);
        }
        if url.tls {
            builder = builder.set_client_to_redis_tls_mode(::redis::TlsMode::Secure);
            #[cfg(feature = "redis-tls")]
            if let Some(certificates) = self.tls.certificates() {
                builder = builder.set_client_to_redis_certificates(certificates);
            }
        }
        builder.build().map_err(invalid_url)
    }

    /// The bound on opening a connection: every attempt's timeout plus backoff slack.
    fn connect_limit(&self, attempts: usize) -> Duration {
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        self.connect_timeout
            .saturating_mul(attempts)
            .saturating_add(Duration::from_secs(1))
    }

    async fn connect_single(&self, source: Source) -> Result<(Conn, Rebuild)> {
        // No response timeout inside the manager: every call is already bounded by
        // `bounded()` (which also covers reconnect waits), and a second timer per command
        // costs measurable time under concurrency.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(self.connect_timeout))
            .set_number_of_retries(self.reconnect_retries)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let rebuild = Rebuild {
            source,
            config,
            limit: self.connect_limit(self.reconnect_retries.saturating_add(1)),
            current: parking_lot::Mutex::new(String::new()),
        };
        let manager = rebuild.open().await?;
        Ok((Conn::Single(manager), rebuild))
    }

    #[cfg(feature = "redis-cluster")]
    async fn connect_cluster(&self, nodes: &[String]) -> Result<Conn> {
        if nodes.is_empty() {
            return Err(KvError::invalid_input("no Redis URL given"));
        }
        #[allow(unused_mut)]
        let mut builder =
            ::redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.command_timeout)
                .overall_response_timeout(Some(self.command_timeout))
                .retries(2)
                .min_retry_wait(20)
                .max_retry_wait(200);
        #[cfg(feature = "redis-tls")]
        if let Some(certificates) = self.tls.certificates() {
            builder = builder.certs(certificates);
        }
        let client = builder
            .build()
            .map_err(|e| KvError::invalid_input(format!("invalid Redis Cluster URL: {e}")))?;
        let conn = bounded(self.connect_limit(2), client.get_async_connection()).await?;
        Ok(Conn::Cluster(conn))
    }
}

/// A refused URL or client setting as `InvalidInput`. The `redis` crate's message names
/// the problem, never the URL's password.
fn invalid_url(e: ::redis::RedisError) -> KvError {
    KvError::invalid_input(format!("invalid Redis connection settings: {e}"))
}

/// rustls needs a process-wide crypto provider; the `redis` crate leaves the choice to
/// the application. Unless the application installed one already, use *ring*'s.
#[cfg(feature = "redis-tls")]
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: one provider is in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
