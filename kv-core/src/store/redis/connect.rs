//! Opening (and re-opening) the single-node connection: from a URL or a ready client, or
//! through Redis Sentinel; and which failures call for a new connection.

#[cfg(feature = "redis-sentinel")]
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, RedisError, ServerErrorKind};

use super::bounded;
use crate::Result;

/// Where a single-node connection comes from.
#[derive(Clone)]
pub(super) enum Source {
    /// A fixed server.
    Client(Box<::redis::Client>),
    /// The current primary of a Sentinel-monitored master, asked again on every (re)open.
    #[cfg(feature = "redis-sentinel")]
    Sentinel(Arc<tokio::sync::Mutex<::redis::sentinel::SentinelClient>>),
}

impl Source {
    async fn client(&self) -> ::redis::RedisResult<::redis::Client> {
        match self {
            Source::Client(client) => Ok((**client).clone()),
            #[cfg(feature = "redis-sentinel")]
            Source::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
        }
    }

    /// Whether the server behind this source can change without an error saying so.
    pub(super) fn follows_a_primary(&self) -> bool {
        match self {
            Source::Client(_) => false,
            #[cfg(feature = "redis-sentinel")]
            Source::Sentinel(_) => true,
        }
    }
}

/// How to open a new single-node connection, initially and whenever the current one is
/// beyond the `redis` crate's own reconnect (see [`Trouble`]).
pub(super) struct Rebuild {
    pub(super) source: Source,
    pub(super) config: ConnectionManagerConfig,
    /// The bound on one opening, Sentinel lookup included.
    pub(super) limit: Duration,
    /// The address the connection in use was opened to (`host:port`).
    pub(super) current: parking_lot::Mutex<String>,
}

impl Rebuild {
    pub(super) async fn open(&self) -> Result<ConnectionManager> {
        let source = self.source.clone();
        let config = self.config.clone();
        let (manager, addr) = bounded(self.limit, async move {
            let client = source.client().await?;
            let addr = client.get_connection_info().addr().to_string();
            Ok((
                ConnectionManager::new_with_config(client, config).await?,
                addr,
            ))
        })
        .await?;
        *self.current.lock() = addr;
        Ok(manager)
    }

    /// Whether the sentinels name another primary than the one in use (`false` when
    /// they cannot be asked: the calls' own failures handle that).
    #[cfg(feature = "redis-sentinel")]
    pub(super) async fn primary_moved(&self) -> bool {
        let source = self.source.clone();
        let now = bounded(self.limit, async move { source.client().await }).await;
        match now {
            Ok(client) => *self.current.lock() != client.get_connection_info().addr().to_string(),
            Err(_) => false,
        }
    }
}

/// What a failed call says about the connection it used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trouble {
    /// Nothing: the call worked, or failed for its own reasons (`WRONGTYPE`, `NOPERM`, …).
    None,
    /// Our command timeout fired: a silent connection after some of these in a row.
    Timeout,
    /// A broken socket. The connection manager reconnects by itself, to the same address;
    /// behind Sentinel the primary may have moved, so the address is asked again.
    Io,
    /// A failure the connection manager never retries: the reconnect was refused (`AUTH`
    /// rejected after a password rotation, `LOADING` while the restarted server reads its
    /// data), or the server is a replica now (`READONLY` after a failover). Only a new
    /// connection gets out of it.
    Stuck,
    /// The sentinels name another primary: a failover happened while the old primary
    /// still answers (it takes writes until Sentinel demotes it, which can take long).
    #[cfg(feature = "redis-sentinel")]
    Moved,
}

impl Trouble {
    pub(super) fn of(err: &RedisError) -> Trouble {
        match err.kind() {
            ErrorKind::Io => Trouble::Io,
            ErrorKind::AuthenticationFailed
            | ErrorKind::Server(
                ServerErrorKind::BusyLoading
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::MasterDown,
            ) => Trouble::Stuck,
            _ if matches!(err.code(), Some("NOAUTH" | "WRONGPASS")) => Trouble::Stuck,
            _ => Trouble::None,
        }
    }
}

/// A `redis+sentinel://` URL: `redis+sentinel://[user:password@]host:port[,host:port…]/master[/db]`
/// (`rediss+sentinel://` for TLS to the primary). The credentials and database are the
/// primary's; the sentinels are reached without them.
#[cfg(feature = "redis-sentinel")]
pub(super) struct SentinelUrl {
    pub(super) sentinels: Vec<(String, u16)>,
    pub(super) master: String,
    pub(super) tls: bool,
    /// The primary's handshake settings (user, password, db), parsed by the `redis`
    /// crate from an equivalent `redis://` URL so percent-escapes mean the same.
    pub(super) node: ::redis::RedisConnectionInfo,
}

#[cfg(feature = "redis-sentinel")]
impl SentinelUrl {
    pub(super) fn parse(url: &str) -> std::result::Result<SentinelUrl, String> {
        use ::redis::IntoConnectionInfo;
        let (tls, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("rediss+sentinel://") {
            (true, rest)
        } else {
            return Err(
                "a Sentinel URL starts with redis+sentinel:// or rediss+sentinel://".into(),
            );
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let mut sentinels = Vec::new();
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let (name, port) = host
                .rsplit_once(':')
                .ok_or_else(|| format!("sentinel address {host:?} has no port"))?;
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("sentinel address {host:?} has an invalid port"))?;
            let name = name.trim_start_matches('[').trim_end_matches(']');
            if name.is_empty() {
                return Err(format!("sentinel address {host:?} has no host"));
            }
            sentinels.push((name.to_owned(), port));
        }
        if sentinels.is_empty() {
            return Err("a Sentinel URL names at least one sentinel".into());
        }
        let mut segments = path.split('/');
        let master = segments.next().unwrap_or_default();
        if master.is_empty() {
            return Err("a Sentinel URL names the master after the sentinels (…/mymaster)".into());
        }
        let db = segments.next().filter(|d| !d.is_empty()).unwrap_or("0");
        // Let the `redis` crate read the credentials and db the way it reads them in a
        // plain URL (percent-decoding included).
        let (first, port) = &sentinels[0];
        let equivalent = match userinfo {
            Some(userinfo) => format!("redis://{userinfo}@{first}:{port}/{db}"),
            None => format!("redis://{first}:{port}/{db}"),
        };
        let node = equivalent
            .as_str()
            .into_connection_info()
            .map_err(|_| "invalid credentials or database in the Sentinel URL".to_owned())?
            .redis_settings()
            .clone();
        Ok(SentinelUrl {
            sentinels,
            master: master.to_owned(),
            tls,
            node,
        })
    }
}

#[cfg(all(test, feature = "redis-sentinel"))]
mod tests {
    use super::SentinelUrl;

    #[test]
    fn sentinel_urls_parse_and_bad_ones_are_refused() {
        let url =
            SentinelUrl::parse("redis+sentinel://app:p%40ss@10.0.0.1:26379,[::1]:26380/mymaster/3")
                .expect("valid");
        assert_eq!(
            url.sentinels,
            [("10.0.0.1".to_owned(), 26379), ("::1".to_owned(), 26380)]
        );
        assert_eq!(url.master, "mymaster");
        assert!(!url.tls);
        assert_eq!(url.node.username(), Some("app"));
        assert_eq!(url.node.password(), Some("p@ss"));
        assert_eq!(url.node.db(), 3);
        assert!(
            SentinelUrl::parse("rediss+sentinel://h:1/m")
                .expect("tls")
                .tls
        );
        for bad in [
            "redis://h:1/m",
            "redis+sentinel:///m",
            "redis+sentinel://h/m",
            "redis+sentinel://h:99999/m",
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://:1/m",
        ] {
            assert!(SentinelUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
