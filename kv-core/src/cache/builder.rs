//! [`CacheBuilder`]: the cache configuration, validated in `build()`.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use parking_lot::Mutex;

use super::config::{KeyFn, Predicate, QueryParam};
#[cfg(feature = "near-cache")]
use super::near;
use super::stats::Counters;
use super::{Cache, CacheRequest, Config, Inner};
use crate::clock::{Clock, ClockHandle};
use crate::{ConfigError, Store};

/// Builds a [`Cache`]; see each method for its default.
#[must_use]
pub struct CacheBuilder<St> {
    pub(super) store: St,
    pub(super) clock: ClockHandle,
    pub(super) config: Config,
    #[cfg(feature = "near-cache")]
    pub(super) near: Option<(u64, Duration)>,
}

impl<St: fmt::Debug> fmt::Debug for CacheBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<St: Store> CacheBuilder<St> {
    /// Store keys start with this (default `kv:cache:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = prefix.into();
        self
    }

    /// Freshness for cacheable-by-default responses without explicit freshness
    /// (default `None`: such responses are not cached).
    pub fn default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.config.default_ttl = ttl;
        self
    }

    /// Heuristic freshness (RFC 9111 section 4.2.2): 10% of the time since
    /// `Last-Modified`, at most `max`, for cacheable-by-default responses without explicit
    /// freshness (default off). It takes precedence over the default TTL.
    pub fn heuristic_freshness(mut self, max: Option<Duration>) -> Self {
        self.config.heuristic_freshness = max.is_some();
        if let Some(max) = max {
            self.config.heuristic_max = max;
        }
        self
    }

    /// The largest body recorded (default 960 KiB, which fits `MemoryStore`'s default
    /// 1 MiB value limit with room for the headers). Larger bodies stream through uncached.
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.config.max_body = max;
        self
    }

    /// Sort the query's `&`-separated pairs in the key, so that `?b=2&a=1` and `?a=1&b=2`
    /// share an entry (default off: the query is kept as sent).
    pub fn sort_query(mut self, sort: bool) -> Self {
        self.config.keys.sort_query = sort;
        self
    }

    /// Leave these query parameters out of the key (default none): exact names
    /// (`fbclid`, `gclid`), or prefixes ending in `*` (`utm_*`). The request still goes to
    /// the inner service as sent; only the key ignores them, so `/a?utm_source=x&id=1`
    /// and `/a?id=1` share an entry. Only for parameters the response does not depend on.
    pub fn ignore_query_params<I, S>(mut self, params: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.config.keys.ignored_query = params
            .into_iter()
            .map(|p| QueryParam::parse(p.as_ref()))
            .collect();
        self
    }

    /// Normalise a request's `Accept-Encoding` (when a response varies on it) to the one
    /// of `encodings` (the content codings the origin produces, in its order of
    /// preference) that the request accepts, else `identity`: `gzip, br` and
    /// `br, gzip` then share one entry, as do all browsers that accept the same coding.
    /// Without it (the default) the accepted codings are only lowercased, sorted and
    /// deduplicated (`q=0` ones dropped).
    pub fn normalize_accept_encoding<I, S>(mut self, encodings: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.config.keys.encodings = Some(
            encodings
                .into_iter()
                .map(|e| e.as_ref().trim().to_ascii_lowercase())
                .collect(),
        );
        self
    }

    /// A part of the key computed from the request (default none), e.g. a tenant read
    /// from a header the response depends on without naming it in `Vary`. `None` adds no
    /// part. Entries with a part are purged by [`Cache::purge_custom`].
    pub fn custom_key(
        mut self,
        f: impl Fn(&CacheRequest<'_>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.config.keys.custom = Some(KeyFn(Arc::new(f)));
        self
    }

    /// Requests for which `f` is `true` bypass the cache (default none): forwarded as
    /// they are, nothing read or stored (`X-Cache: BYPASS`). Unsafe methods still
    /// invalidate their URL.
    pub fn bypass(mut self, f: impl Fn(&CacheRequest<'_>) -> bool + Send + Sync + 'static) -> Self {
        self.config.bypass = Some(Predicate(Arc::new(f)));
        self
    }

    /// The response header that names an entry's tags for [`Cache::purge_tag`] (e.g.
    /// `Surrogate-Key` or `Cache-Tag`; space- or comma-separated), default none. The header
    /// is removed before the response goes to the client unless
    /// [`keep_tag_header`](Self::keep_tag_header). A hit on a tagged entry reads each tag's
    /// generation from the store (one read per tag), so that a purge is seen at once
    /// everywhere. A response with more than 64 tags, or a tag over 256 bytes, is not
    /// stored.
    pub fn tag_header(mut self, name: Option<HeaderName>) -> Self {
        self.config.tag_header = name;
        self
    }

    /// Send the tag header on to the client (default off).
    pub fn keep_tag_header(mut self, keep: bool) -> Self {
        self.config.keep_tags = keep;
        self
    }

    /// Bypass an HTTP/1.1 request that names no host (no `Host`, no absolute-form
    /// authority): RFC 9112 section 3.2 makes such a request malformed. Default off, so
    /// that in-process tests (`oneshot` with `Request::get("/")`, actix's `TestRequest`)
    /// are cached as a server's requests are; a host-less request is keyed under the
    /// empty host, which no request from a real client (they all send `Host`) shares, so
    /// it cannot reach another URL's entry either way. `cache-proxy` turns it on.
    pub fn require_host(mut self, require: bool) -> Self {
        self.config.require_host = require;
        self
    }

    /// Honour the request's `Cache-Control` / `Pragma` (default off; see the module docs).
    pub fn honor_request_cache_control(mut self, honor: bool) -> Self {
        self.config.honor_request_cc = honor;
        self
    }

    /// Store responses to requests with `Authorization` even without `public`,
    /// `s-maxage` or `must-revalidate` (default off). Only for services whose responses do
    /// not depend on who asks.
    pub fn cache_authorized(mut self, allow: bool) -> Self {
        self.config.cache_authorized = allow;
        self
    }

    /// The response header naming the outcome, `HIT`, `MISS` or `BYPASS` (default
    /// `x-cache`; `None` adds none).
    pub fn status_header(mut self, name: Option<HeaderName>) -> Self {
        self.config.status_header = name;
        self
    }

    /// Coalesce concurrent misses for one key into one forwarded request (default on).
    pub fn coalesce(mut self, on: bool) -> Self {
        self.config.coalesce = on;
        self
    }

    /// How long a coalesced request waits for the fill before forwarding on its own
    /// (default 5 s); also the TTL of the cross-replica lock.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.config.lock_timeout = timeout;
        self
    }

    /// Take a `set_nx` lock in the store so that replicas sharing it coalesce too (default
    /// on; never done on a store with a [`LocalStore`](crate::LocalStore) face, whose data
    /// no other process shares).
    pub fn lock_across_replicas(mut self, on: bool) -> Self {
        self.config.lock_across_replicas = on;
        self
    }

    /// How long a stale entry with a validator is kept for revalidation (default 60 s).
    pub fn revalidation_window(mut self, window: Duration) -> Self {
        self.config.revalidation_window = window;
        self
    }

    /// The longest time an entry stays in the store (default 7 days), whatever its
    /// freshness.
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.config.max_ttl = ttl;
        self
    }

    /// Serve a stale entry, up to `window` past its freshness, when the inner service
    /// fails without any response (a connection refused or closed, a timeout): RFC 9111
    /// section 4.2.4 lets a cache disconnected from its origin do so. Never for entries
    /// marked `must-revalidate`, `proxy-revalidate`, `s-maxage` or `no-cache`, and never
    /// for an error *response* (that is `stale-if-error`'s). Entries are kept in the store
    /// that much longer. Default zero (off).
    pub fn stale_on_disconnect(mut self, window: Duration) -> Self {
        self.config.stale_on_disconnect = window;
        self
    }

    /// Obey a targeted cache-control field (RFC 9213), e.g. `CDN-Cache-Control` for a cache
    /// that acts as a CDN: when a response carries it, its directives replace those of
    /// `Cache-Control` for this cache (default none).
    pub fn targeted_cache_control(mut self, name: Option<HeaderName>) -> Self {
        self.config.targeted = name;
        self
    }

    /// Reads time from `clock` instead of the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = ClockHandle::new(clock);
        self
    }

    /// A bounded in-process near cache of up to `capacity` entries, each kept at most `ttl`
    /// and never past its freshness (default none). See the module docs for what other
    /// replicas see after a purge.
    #[cfg(feature = "near-cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "near-cache")))]
    pub fn near_cache(mut self, capacity: u64, ttl: Duration) -> Self {
        self.near = Some((capacity, ttl));
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    /// [`ConfigError`] for a zero lock timeout or max TTL, a max TTL above
    /// [`MAX_TTL`](crate::MAX_TTL), or a zero-capacity or zero-TTL near cache.
    pub fn build(self) -> std::result::Result<Cache<St>, ConfigError> {
        let c = &self.config;
        if c.lock_timeout.is_zero() {
            return Err(ConfigError::new(
                "cache",
                "cache lock_timeout must be positive",
            ));
        }
        if c.max_ttl.is_zero() || c.max_ttl > crate::MAX_TTL {
            return Err(ConfigError::new(
                "cache",
                "cache max_ttl must be positive and at most kv_core::MAX_TTL",
            ));
        }
        if c.default_ttl.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "cache",
                "cache default_ttl must be positive",
            ));
        }
        let mut config = self.config;
        // A store that answers in process is not shared with other processes.
        if self.store.local().is_some() {
            config.lock_across_replicas = false;
        }
        #[cfg(feature = "near-cache")]
        let near = match self.near {
            Some((capacity, ttl)) => {
                if capacity == 0 || ttl.is_zero() {
                    return Err(ConfigError::new(
                        "cache",
                        "near cache capacity and ttl must be positive",
                    ));
                }
                Some(near::Near::new(capacity, ttl))
            }
            None => None,
        };
        Ok(Cache {
            inner: Arc::new(Inner {
                store: self.store,
                clock: self.clock,
                config,
                counters: Counters::default(),
                flights: Mutex::new(HashSet::default()),
                #[cfg(feature = "near-cache")]
                near,
            }),
        })
    }
}
