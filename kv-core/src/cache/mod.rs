//! Response caching: an RFC 9111 shared-cache policy over any [`Store`], decided once
//! here for every adapter (`kv-tower`'s `CacheLayer`, and kv-actix's `Cache`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use bytes::Bytes;
//! use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
//! use kv_core::MemoryStore;
//! use kv_core::cache::{Cache, Lookup, Outcome, RequestHead};
//!
//! let cache = Cache::builder(MemoryStore::new()).build().expect("valid configuration");
//! let (method, uri, headers) = (Method::GET, Uri::from_static("http://example.com/a"), HeaderMap::new());
//!
//! // 1. A miss: forward the request, then hand the response head to the cache.
//! let Lookup::Forward(forward) = cache.lookup(RequestHead::new(&method, &uri, &headers)).await else {
//!     panic!("the cache is empty")
//! };
//! let mut response_headers = HeaderMap::new();
//! response_headers.insert("cache-control", HeaderValue::from_static("max-age=60"));
//! let Outcome::Record(mut recorder) = forward.response(StatusCode::OK, &mut response_headers).await else {
//!     panic!("a max-age=60 response is storable")
//! };
//! assert_eq!(response_headers["x-cache"], "MISS");
//! // 2. Copy the body as it streams to the client, then store it.
//! recorder.push(b"hello");
//! recorder.finish().await;
//!
//! // 3. The next request is a hit: the inner service is not called.
//! let Lookup::Hit { response, .. } = cache.lookup(RequestHead::new(&method, &uri, &headers)).await else {
//!     panic!("stored")
//! };
//! assert_eq!(response.body, Bytes::from_static(b"hello"));
//! assert_eq!(response.headers["x-cache"], "HIT");
//! assert_eq!(response.headers["age"], "0");
//! assert_eq!(cache.stats().hits, 1);
//! # }
//! ```
//!
//! # The rules
//! - **What is cached**: responses to `GET` (a `HEAD` is answered from the `GET` entry,
//!   without its body); statuses cacheable by default (200, 203, 204, 300, 301, 308, 404,
//!   405, 410, 414, 501) and any other final status except 206 and 304 when the response
//!   carries explicit freshness.
//! - **Freshness**: `s-maxage` > `max-age` > `Expires` − `Date`; without them, heuristic
//!   freshness (10% of the time since `Last-Modified`, capped) when
//!   [enabled](CacheBuilder::heuristic_freshness), else the
//!   [default TTL](CacheBuilder::default_ttl) (none by default: a response without explicit
//!   freshness is not cached). The age follows RFC 9111 section 4.2.3 (`Age`, `Date`,
//!   request and response times), and every hit carries `Age`.
//! - **Never stored**: `no-store` (unless `must-understand` with a status we implement),
//!   `private`, `Vary: *`, any `Set-Cookie`/`Set-Cookie2`, and responses to requests with
//!   `Authorization` unless the response says `public`, `s-maxage` or `must-revalidate`
//!   (RFC 9111 section 3.5), or [`cache_authorized`](CacheBuilder::cache_authorized) is
//!   on. Hop-by-hop headers and those listed in `Connection` are not stored.
//!   Requests carrying a `Cookie` are cached like any other (RFC 9111 does): a handler
//!   whose answer depends on the cookie must say `private` or `Vary: Cookie`.
//! - **`no-cache`** responses are stored (when they carry a validator) but never served
//!   without a successful revalidation; without a validator they are not stored.
//! - **Request `Cache-Control`** (`no-cache`, `no-store`, `max-age`, `Pragma: no-cache`) is
//!   ignored by default: this is a cache in front of *your* service, and letting any client
//!   force a trip to the origin would let it defeat the cache (and coalescing) at will.
//!   [`honor_request_cache_control`](CacheBuilder::honor_request_cache_control) turns it on.
//! - **Keys**: the method class (`GET`/`HEAD`), host, path and query (optionally
//!   [sorted](CacheBuilder::sort_query)), plus the values of every request header the
//!   response names in `Vary` (stored in the entry and compared on every hit).
//! - **Conditional requests**: `If-None-Match` (weak comparison) and `If-Modified-Since` are
//!   answered `304` from a fresh entry. A stale entry with a validator is revalidated with a
//!   conditional request; a `304` freshens it (headers updated, body kept) without a new body.
//! - **Stale**: `stale-while-revalidate` serves the stale entry and refreshes it in the
//!   background; `stale-if-error` serves it when the origin answers 5xx or fails.
//!   `must-revalidate`, `proxy-revalidate`, `s-maxage` and `no-cache` forbid both.
//! - **Coalescing**: concurrent misses for one key (and concurrent revalidations of one stale
//!   entry) forward one request; the others wait (up to
//!   [`lock_timeout`](CacheBuilder::lock_timeout)) and get its entry. On a shared store a
//!   `set_nx` lock does the same across replicas (waiters poll the store).
//! - **Invalidation**: [`purge`](Cache::purge) drops a URL with all its `Vary` variants; a
//!   successful (2xx/3xx) unsafe request (`POST`, `PUT`, `PATCH`, `DELETE`, any method not
//!   known to be safe) invalidates its URL and the same-host `Location`/`Content-Location`.
//! - **Bodies** are recorded while they stream to the client, up to
//!   [`max_body_bytes`](CacheBuilder::max_body_bytes); a larger, errored or abandoned body
//!   is not stored, and a body whose length differs from `Content-Length` neither.
//!
//! # The store
//! An entry's TTL in the store is its remaining freshness plus the longest stale window
//! that may still use it (`stale-while-revalidate`, `stale-if-error`, and
//! [`revalidation_window`](CacheBuilder::revalidation_window) for entries with a
//! validator), capped by [`max_ttl`](CacheBuilder::max_ttl). A URL whose responses vary
//! gets a small marker (the `Vary` names and a nonce) under its primary key; variants are
//! stored under keys that include the nonce, so a purge (deleting the marker) retires them
//! all without enumerating keys.
//!
//! # Near cache (feature `near-cache`)
//! [`near_cache`](CacheBuilder::near_cache) keeps decoded hot entries in a bounded `moka`
//! cache in process, so a hit on a Redis-backed cache usually costs no round trip. A near
//! entry lives at most the near-cache TTL and never past its own freshness. A purge clears
//! the near cache of the replica that purges; **other replicas keep serving their near
//! copy until it expires** (at most the near-cache TTL), then see the purge.

mod builder;
mod directives;
mod entry;
mod flight;
mod forward;
mod key;
mod memo;
#[cfg(feature = "near-cache")]
mod near;
mod policy;
mod recorder;
#[cfg(test)]
mod tests;

pub use builder::CacheBuilder;
use flight::{Flight, FlightGuard, Joined};
pub use forward::Forward;
use forward::{Invalidate, Kind};
pub use recorder::Recorder;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{AGE, CONTENT_LENGTH, CONTENT_LOCATION, HOST, LOCATION, RANGE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::clock::{Clock, ClockHandle};
use crate::{KvError, Result, Store};
use entry::{Entry, Marker, Stored};
use policy::Freshness;

/// What the cache reads of a request: its method, URI and headers (`http` 1.x types).
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request URI (origin-form or absolute-form).
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

impl<'a> RequestHead<'a> {
    /// A request head from its parts.
    pub fn new(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
        RequestHead {
            method,
            uri,
            headers,
        }
    }

    /// The host: the `Host` header, else the URI's authority, else empty.
    fn host(&self) -> &'a str {
        self.headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| self.uri.authority().map(http::uri::Authority::as_str))
            .unwrap_or("")
    }
}

impl<'a, B> From<&'a http::Request<B>> for RequestHead<'a> {
    fn from(req: &'a http::Request<B>) -> Self {
        RequestHead::new(req.method(), req.uri(), req.headers())
    }
}

/// A response the cache answers with (a hit, a `304`, a revalidated or stale entry).
#[derive(Debug, Clone)]
pub struct Served {
    /// The status (the stored one, or `304 Not Modified`).
    pub status: StatusCode,
    /// The headers, with `Age` and the status header.
    pub headers: HeaderMap,
    /// The body: empty for `HEAD` and `304`.
    pub body: Bytes,
}

/// Where a request goes: answered by the cache, or forwarded to the inner service.
#[derive(Debug)]
#[must_use]
pub enum Lookup<St: Store> {
    /// Answer with `response`; the inner service is not called for it. When `refresh` is
    /// set (`stale-while-revalidate`), forward it in the background: send the same
    /// request (as `GET`, no body) to the inner service and hand the answer to it.
    Hit {
        /// The response to send.
        response: Served,
        /// A background revalidation to run, if the adapter can.
        refresh: Option<Box<Forward<St>>>,
    },
    /// Call the inner service (after [`Forward::prepare`]), then [`Forward::response`].
    Forward(Box<Forward<St>>),
}

/// What happens to the inner service's response.
#[derive(Debug)]
#[must_use]
pub enum Outcome<St: Store> {
    /// Send it on unchanged (the status header has been added).
    Pass,
    /// Send it on, copying the body into the recorder as it streams; call
    /// [`Recorder::finish`] after the last chunk (dropping the recorder stores nothing).
    Record(Box<Recorder<St>>),
    /// Drop it and answer this instead (a `304` freshened the stored entry, or
    /// `stale-if-error` serves the stale one).
    Replace(Served),
}

/// Hit, miss, bypass and stale counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Requests answered from the cache (fresh entries and `304`s from them).
    pub hits: u64,
    /// Cacheable requests forwarded because no usable entry was stored.
    pub misses: u64,
    /// Requests the cache does not handle (unsafe methods, `Range`, ...).
    pub bypasses: u64,
    /// Stale entries served (`stale-while-revalidate`, `stale-if-error`).
    pub stale: u64,
    /// Stale entries freshened by a `304` from the inner service.
    pub revalidated: u64,
    /// Entries written to the store.
    pub stored: u64,
    /// Store calls that failed (the cache then behaves as a miss).
    pub store_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    bypasses: AtomicU64,
    stale: AtomicU64,
    revalidated: AtomicU64,
    stored: AtomicU64,
    store_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The cache configuration (built by [`CacheBuilder`]).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) prefix: String,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) heuristic_freshness: bool,
    pub(crate) heuristic_max: Duration,
    pub(crate) max_body: usize,
    pub(crate) sort_query: bool,
    pub(crate) honor_request_cc: bool,
    pub(crate) cache_authorized: bool,
    pub(crate) status_header: Option<HeaderName>,
    pub(crate) coalesce: bool,
    pub(crate) lock_timeout: Duration,
    pub(crate) lock_across_replicas: bool,
    pub(crate) revalidation_window: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) targeted: Option<HeaderName>,
}

/// The response-cache engine over a store. A cheap `Clone` handle.
pub struct Cache<St> {
    inner: Arc<Inner<St>>,
}

struct Inner<St> {
    store: St,
    clock: ClockHandle,
    config: Config,
    counters: Counters,
    /// In-process fills: primary key → the leader's channel.
    flights: Mutex<HashMap<String, watch::Receiver<Flight>>>,
    #[cfg(feature = "near-cache")]
    near: Option<near::Near>,
    /// The store, when it is a `MemoryStore`: read without a future.
    #[cfg(feature = "memory")]
    memory: Option<crate::MemoryStore>,
    #[cfg_attr(not(feature = "memory"), allow(dead_code))]
    memo: memo::Memo,
}

impl<St> Clone for Cache<St> {
    fn clone(&self) -> Self {
        Cache {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for Cache<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Request methods that are safe (RFC 9110 section 9.2.1): they never invalidate.
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl<St: Store> Cache<St> {
    /// A builder over `store` with the defaults.
    pub fn builder(store: St) -> CacheBuilder<St> {
        CacheBuilder {
            store,
            clock: ClockHandle::default(),
            config: Config {
                prefix: "kv:cache:".to_owned(),
                default_ttl: None,
                heuristic_freshness: false,
                heuristic_max: Duration::from_secs(24 * 60 * 60),
                max_body: 960 << 10,
                sort_query: false,
                honor_request_cc: false,
                cache_authorized: false,
                status_header: Some(HeaderName::from_static("x-cache")),
                coalesce: true,
                lock_timeout: Duration::from_secs(5),
                lock_across_replicas: true,
                revalidation_window: Duration::from_secs(60),
                max_ttl: Duration::from_secs(7 * 24 * 60 * 60),
                targeted: None,
            },
            #[cfg(feature = "near-cache")]
            near: None,
        }
    }

    /// The store under the cache.
    pub fn store(&self) -> &St {
        &self.inner.store
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            hits: l(&c.hits),
            misses: l(&c.misses),
            bypasses: l(&c.bypasses),
            stale: l(&c.stale),
            revalidated: l(&c.revalidated),
            stored: l(&c.stored),
            store_errors: l(&c.store_errors),
        }
    }

    /// The status header's name, if one is added.
    pub fn status_header(&self) -> Option<&HeaderName> {
        self.inner.config.status_header.as_ref()
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_millis()
    }

    fn primary(&self, host: &str, path: &str, query: Option<&str>) -> String {
        let c = &self.inner.config;
        key::primary_key(&c.prefix, host, path, query, c.sort_query)
    }

    /// Drops every stored response of a URL (all its `Vary` variants), on the store and in
    /// this process's near cache. `uri` needs its authority (`http://host/path?query`) for
    /// a cache keyed by host; a path-only URI purges the entries stored without a host.
    ///
    /// # Errors
    /// The store's error.
    pub async fn purge(&self, uri: &Uri) -> Result<bool> {
        let host = uri.authority().map_or("", http::uri::Authority::as_str);
        let key = self.primary(host, uri.path(), uri.query());
        self.purge_key(&key).await
    }

    async fn purge_key(&self, key: &str) -> Result<bool> {
        #[cfg(feature = "near-cache")]
        if let Some(near) = &self.inner.near {
            near.remove(key);
        }
        self.inner.store.del(key).await
    }

    /// Reads what a key holds (near cache first), counting store errors as misses.
    async fn read(&self, key: &str, now: u64) -> Option<Stored> {
        #[cfg(feature = "near-cache")]
        if let Some(near) = &self.inner.near
            && let Some(found) = near.get(key)
        {
            match &found {
                // A copy that went stale by our clock: ask the store (another replica
                // may have freshened it).
                Stored::Entry(e) if !e.is_fresh(now) => near.remove(key),
                _ => return Some(found),
            }
        }
        let _ = now;
        match self.inner.store.get(key).await {
            Ok(Some(bytes)) => {
                let found = self.decode(key, bytes);
                if found.is_none() {
                    tracing::debug!("kv cache: undecodable entry ignored");
                }
                #[cfg(feature = "near-cache")]
                if let (Some(near), Some(found)) = (&self.inner.near, &found) {
                    near.insert(key, found, now);
                }
                found
            }
            Ok(None) => None,
            Err(err) => {
                bump(&self.inner.counters.store_errors);
                tracing::warn!(error = %err, "kv cache: store read failed; treated as a miss");
                None
            }
        }
    }

    /// Decodes what a key holds (through the memo on an in-process store).
    fn decode(&self, key: &str, bytes: Bytes) -> Option<Stored> {
        #[cfg(feature = "memory")]
        if self.inner.memory.is_some() {
            return self.inner.memo.decode(key, bytes);
        }
        let _ = key;
        entry::decode(bytes)
    }

    /// Reads a key without waiting: from the near cache, or from an in-process store.
    /// `None` when the store would have to be awaited.
    fn read_now(&self, key: &str, now: u64) -> Option<Option<Stored>> {
        let _ = key;
        #[cfg(feature = "near-cache")]
        if let Some(near) = &self.inner.near
            && let Some(found) = near.get(key)
        {
            match &found {
                Stored::Entry(e) if !e.is_fresh(now) => near.remove(key),
                _ => return Some(Some(found)),
            }
        }
        let _ = now;
        #[cfg(feature = "memory")]
        if let Some(memory) = &self.inner.memory {
            return Some(match memory.get_now(key) {
                Ok(Some(bytes)) => self.inner.memo.decode(key, bytes),
                Ok(None) => None,
                Err(err) => {
                    bump(&self.inner.counters.store_errors);
                    tracing::warn!(error = %err, "kv cache: store read failed; treated as a miss");
                    None
                }
            });
        }
        None
    }

    /// [`find`](Self::find) without waiting, when the reads can be answered at once.
    fn find_now(&self, primary: &str, headers: &HeaderMap, now: u64) -> Option<Found> {
        Some(match self.read_now(primary, now)? {
            Some(Stored::Entry(e)) => (Some(e), None),
            Some(Stored::Marker(m)) => {
                let (vkey, values) = key::variant(primary, m.nonce, &m.names, headers);
                let found = match self.read_now(&vkey, now)? {
                    Some(Stored::Entry(e)) if e.vary == values => Some(e),
                    _ => None,
                };
                (found, Some(m))
            }
            None => (None, None),
        })
    }

    /// Finds the entry for a request: the primary key's, or its variant's.
    async fn find(
        &self,
        primary: &str,
        headers: &HeaderMap,
        now: u64,
    ) -> (Option<Arc<Entry>>, Option<Arc<Marker>>) {
        match self.read(primary, now).await {
            Some(Stored::Entry(e)) => (Some(e), None),
            Some(Stored::Marker(m)) => {
                let (vkey, values) = key::variant(primary, m.nonce, &m.names, headers);
                let found = match self.read(&vkey, now).await {
                    Some(Stored::Entry(e)) if e.vary == values => Some(e),
                    _ => None,
                };
                (found, Some(m))
            }
            None => (None, None),
        }
    }

    /// Decides what to do with a request.
    pub async fn lookup(&self, req: RequestHead<'_>) -> Lookup<St> {
        let ctx = match self.begin(req) {
            Begin::Done(lookup) => return lookup,
            Begin::Find(ctx) => ctx,
        };
        let found = self.find(&ctx.primary, req.headers, ctx.now).await;
        match self.decide(ctx, found, req) {
            Decided::Done(lookup) => lookup,
            Decided::Miss(ctx, marker, stale) => self.miss(ctx, marker, stale, req).await,
        }
    }

    /// [`lookup`](Cache::lookup) without waiting, when the answer is at hand: the store
    /// answers in process (a `MemoryStore`) or the near cache holds the entry, and no fill
    /// of the same key is in flight. `None` means "call `lookup`"; nothing was counted.
    ///
    /// Adapters call this first so that a hit costs no future at all.
    pub fn try_lookup(&self, req: RequestHead<'_>) -> Option<Lookup<St>> {
        let ctx = match self.begin(req) {
            Begin::Done(lookup) => return Some(lookup),
            Begin::Find(ctx) => ctx,
        };
        let found = self.find_now(&ctx.primary, req.headers, ctx.now)?;
        // A miss that would have to wait for (or take) a lock is left to `lookup`; deciding
        // a miss counts nothing, so giving up here is free.
        match self.decide(ctx, found, req) {
            Decided::Done(lookup) => Some(lookup),
            Decided::Miss(ctx, marker, stale) => {
                if !ctx.coalesce() {
                    return Some(self.plain_miss(ctx, marker, stale, req));
                }
                if !self.can_lead_now(&ctx.primary) {
                    return None;
                }
                let flight = self.lead(&ctx.primary)?;
                bump(&self.inner.counters.misses);
                let mut f = self.forward(Kind::Miss, ctx.now, Some(req), Some(ctx.primary));
                f.marker = marker;
                f.stale = stale;
                f.flight = Some(flight);
                Some(Lookup::Forward(Box::new(f)))
            }
        }
    }

    fn can_lead_now(&self, primary: &str) -> bool {
        !self.inner.config.lock_across_replicas && !self.inner.flights.lock().contains_key(primary)
    }

    /// The checks that need no store: bypasses, and the primary key.
    fn begin(&self, req: RequestHead<'_>) -> Begin<St> {
        let config = &self.inner.config;
        let now = self.now();
        let method = req.method;
        if !is_safe(method) {
            bump(&self.inner.counters.bypasses);
            let f = self.forward(Kind::Bypass, now, Some(req), None);
            return Begin::Done(Lookup::Forward(Box::new(f)));
        }
        let cacheable_method = *method == Method::GET || *method == Method::HEAD;
        if !cacheable_method || req.headers.contains_key(RANGE) {
            bump(&self.inner.counters.bypasses);
            return Begin::Done(Lookup::Forward(Box::new(self.forward(
                Kind::Bypass,
                now,
                None,
                None,
            ))));
        }
        let request_cc = if config.honor_request_cc {
            let d = directives::Directives::parse(req.headers);
            if d.no_store {
                bump(&self.inner.counters.bypasses);
                return Begin::Done(Lookup::Forward(Box::new(self.forward(
                    Kind::Bypass,
                    now,
                    None,
                    None,
                ))));
            }
            Some(d)
        } else {
            None
        };
        Begin::Find(Ctx {
            primary: self.primary(req.host(), req.uri.path(), req.uri.query()),
            is_head: *method == Method::HEAD,
            request_cc,
            now,
            coalesce: config.coalesce,
        })
    }

    /// What a found (or missing) entry means for the request.
    fn decide(&self, ctx: Ctx, (found, marker): Found, req: RequestHead<'_>) -> Decided<St> {
        let now = ctx.now;
        let Some(entry) = found else {
            return Decided::Miss(ctx, marker, None);
        };
        let forced = ctx.request_cc.is_some_and(|d| {
            d.no_cache
                || d.pragma_no_cache
                || d.max_age
                    .is_some_and(|m| entry.age(now) > m.saturating_mul(1000))
        });
        if !forced && entry.is_fresh(now) {
            bump(&self.inner.counters.hits);
            return Decided::Done(Lookup::Hit {
                response: self.serve(&entry, req.headers, ctx.is_head, now),
                refresh: None,
            });
        }
        if !forced && entry.may_serve_stale() && entry.staleness(now) < entry.swr {
            bump(&self.inner.counters.stale);
            let response = self.serve(&entry, req.headers, ctx.is_head, now);
            // One background refresh per key at a time.
            let refresh = self.lead(&ctx.primary).map(|flight| {
                let mut f = self.forward(Kind::Miss, now, Some(req), Some(ctx.primary.clone()));
                f.stale = Some(Arc::clone(&entry));
                f.marker = marker.clone();
                f.flight = Some(flight);
                f.background = true;
                Box::new(f)
            });
            return Decided::Done(Lookup::Hit { response, refresh });
        }
        // Stale: revalidate (coalesced like a miss).
        Decided::Miss(ctx, marker, Some(entry))
    }

    /// A miss: coalesce with a fill in flight, or lead one.
    async fn miss(
        &self,
        ctx: Ctx,
        marker: Option<Arc<Marker>>,
        stale: Option<Arc<Entry>>,
        req: RequestHead<'_>,
    ) -> Lookup<St> {
        if ctx.coalesce() {
            match self
                .join_or_lead(&ctx.primary, req.headers, ctx.is_head, ctx.now)
                .await
            {
                Joined::Served(response) => {
                    bump(&self.inner.counters.hits);
                    return Lookup::Hit {
                        response,
                        refresh: None,
                    };
                }
                Joined::Lead(flight, lock) => {
                    bump(&self.inner.counters.misses);
                    let mut f = self.forward(Kind::Miss, ctx.now, Some(req), Some(ctx.primary));
                    f.marker = marker;
                    f.stale = stale;
                    f.flight = Some(flight);
                    f.lock = lock;
                    return Lookup::Forward(Box::new(f));
                }
                Joined::Alone => {}
            }
        }
        self.plain_miss(ctx, marker, stale, req)
    }

    fn plain_miss(
        &self,
        ctx: Ctx,
        marker: Option<Arc<Marker>>,
        stale: Option<Arc<Entry>>,
        req: RequestHead<'_>,
    ) -> Lookup<St> {
        bump(&self.inner.counters.misses);
        let mut f = self.forward(Kind::Miss, ctx.now, Some(req), Some(ctx.primary));
        f.marker = marker;
        f.stale = stale;
        f.is_head = ctx.is_head;
        Lookup::Forward(Box::new(f))
    }

    fn forward(
        &self,
        kind: Kind,
        now: u64,
        req: Option<RequestHead<'_>>,
        primary: Option<String>,
    ) -> Forward<St> {
        let invalidate = match (kind, req) {
            (Kind::Bypass, Some(r)) => Some(Invalidate {
                host: r.host().to_owned(),
                path: r.uri.path().to_owned(),
                query: r.uri.query().map(str::to_owned),
            }),
            _ => None,
        };
        let request_headers = match (kind, req) {
            (Kind::Miss, Some(r)) => Some(r.headers.clone()),
            _ => None,
        };
        Forward {
            cache: self.clone(),
            kind,
            request_time: now,
            primary,
            request_headers,
            invalidate,
            stale: None,
            marker: None,
            flight: None,
            lock: None,
            is_head: false,
            background: false,
        }
    }

    /// Builds the response for a stored entry: the entry, or a `304` when the request's
    /// conditionals match; `Age` and the status header added.
    fn serve(&self, entry: &Entry, request: &HeaderMap, is_head: bool, now: u64) -> Served {
        let age = entry.age(now) / 1000;
        let (status, mut headers, body) = if policy::not_modified(entry, request) {
            let mut h = HeaderMap::with_capacity(8);
            for name in &policy::HEADERS_OF_304 {
                for v in entry.headers.get_all(name) {
                    h.append(name.clone(), v.clone());
                }
            }
            (StatusCode::NOT_MODIFIED, h, Bytes::new())
        } else {
            let mut headers = entry
                .hit_headers
                .get_or_init(|| {
                    let mut h = HeaderMap::with_capacity(entry.headers.len() + 2);
                    for (name, value) in &entry.headers {
                        h.append(name.clone(), value.clone());
                    }
                    h.insert(AGE, age_value(0));
                    if let Some(name) = &self.inner.config.status_header {
                        h.insert(name.clone(), HeaderValue::from_static("HIT"));
                    }
                    h
                })
                .clone();
            headers.insert(AGE, age_value(age));
            let body = if is_head {
                Bytes::new()
            } else {
                entry.body.clone()
            };
            return Served {
                status: entry.status,
                headers,
                body,
            };
        };
        headers.insert(AGE, age_value(age));
        if let Some(name) = &self.inner.config.status_header {
            headers.insert(name.clone(), HeaderValue::from_static("HIT"));
        }
        Served {
            status,
            headers,
            body,
        }
    }

    /// Claims the fill of `primary` in this process, if nobody holds it.
    fn lead(&self, primary: &str) -> Option<FlightGuard<St>> {
        let mut flights = self.inner.flights.lock();
        if flights.contains_key(primary) {
            return None;
        }
        let (tx, rx) = watch::channel(Flight::Running);
        flights.insert(primary.to_owned(), rx);
        Some(FlightGuard {
            cache: self.clone(),
            key: primary.to_owned(),
            tx,
        })
    }

    async fn join_or_lead(
        &self,
        primary: &str,
        headers: &HeaderMap,
        is_head: bool,
        now: u64,
    ) -> Joined<St> {
        let timeout = self.inner.config.lock_timeout;
        let joined = {
            let mut flights = self.inner.flights.lock();
            match flights.get(primary) {
                Some(rx) => Ok(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(Flight::Running);
                    flights.insert(primary.to_owned(), rx);
                    Err(tx)
                }
            }
        };
        let rx = match joined {
            Ok(rx) => rx,
            Err(tx) => {
                let guard = FlightGuard {
                    cache: self.clone(),
                    key: primary.to_owned(),
                    tx,
                };
                return self.cross_replica(guard, primary, headers, is_head).await;
            }
        };
        let mut rx = rx;
        let waited =
            tokio::time::timeout(timeout, rx.wait_for(|f| matches!(f, Flight::Done(_)))).await;
        let entry = match waited {
            Ok(Ok(flight)) => match &*flight {
                Flight::Done(Some(e)) => Some(Arc::clone(e)),
                _ => None,
            },
            _ => None,
        };
        if let Some(entry) = entry {
            let values = key::vary_values(
                &entry
                    .vary
                    .iter()
                    .map(|(n, _)| n.clone())
                    .collect::<Vec<_>>(),
                headers,
            );
            let now = self.now().max(now);
            if values == entry.vary && entry.is_fresh(now) {
                return Joined::Served(self.serve(&entry, headers, is_head, now));
            }
        }
        Joined::Alone
    }

    /// The leader of an in-process fill also takes the store lock when the store is
    /// shared; if another replica holds it, waits for its entry by polling the store.
    async fn cross_replica(
        &self,
        guard: FlightGuard<St>,
        primary: &str,
        headers: &HeaderMap,
        is_head: bool,
    ) -> Joined<St> {
        let config = &self.inner.config;
        if !config.lock_across_replicas {
            return Joined::Lead(guard, None);
        }
        let lock = key::lock_key(primary);
        let ttl = config.lock_timeout;
        match self
            .inner
            .store
            .set_nx(&lock, Bytes::from_static(b"1"), Some(ttl))
            .await
        {
            Ok(true) => return Joined::Lead(guard, Some(lock)),
            Ok(false) => {}
            Err(err) => {
                bump(&self.inner.counters.store_errors);
                tracing::warn!(error = %err, "kv cache: fill lock failed; filling without it");
                return Joined::Lead(guard, None);
            }
        }
        let start = self.now();
        let deadline = tokio::time::Instant::now() + ttl;
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = self.now().max(start);
            if let (Some(entry), _) = self.find(primary, headers, now).await
                && entry.is_fresh(now)
            {
                guard.finish(Some(Arc::clone(&entry)));
                return Joined::Served(self.serve(&entry, headers, is_head, now));
            }
            let held = matches!(
                self.inner.store.ttl(&lock).await,
                Ok(crate::Ttl::Expires(_))
            );
            if !held || tokio::time::Instant::now() >= deadline {
                return Joined::Lead(guard, None);
            }
        }
    }

    /// Writes an entry (and its `Vary` marker) to the store.
    async fn write(
        &self,
        primary: &str,
        marker: Option<Arc<Marker>>,
        entry: &Arc<Entry>,
        encoded: Option<Bytes>,
        ttl: Duration,
    ) -> Result<()> {
        let store = &self.inner.store;
        let encoded = encoded.unwrap_or_else(|| entry.encode());
        let now = self.now();
        if entry.vary.is_empty() {
            store.set(primary, encoded, Some(ttl)).await?;
            #[cfg(feature = "near-cache")]
            if let Some(near) = &self.inner.near {
                near.insert(primary, &Stored::Entry(Arc::clone(entry)), now);
            }
        } else {
            let names: Vec<HeaderName> = entry.vary.iter().map(|(n, _)| n.clone()).collect();
            let max_ttl = self.inner.config.max_ttl;
            let marker = match marker.filter(|m| m.names == names) {
                Some(m) => m,
                None => {
                    let fresh = Marker {
                        nonce: nonce(),
                        names: names.clone(),
                    };
                    if store.set_nx(primary, fresh.encode(), Some(max_ttl)).await? {
                        Arc::new(fresh)
                    } else {
                        match store.get(primary).await?.and_then(entry::decode) {
                            Some(Stored::Marker(m)) if m.names == names => m,
                            _ => {
                                store.set(primary, fresh.encode(), Some(max_ttl)).await?;
                                Arc::new(fresh)
                            }
                        }
                    }
                }
            };
            // The variant key, from the request values the entry was stored for.
            let vkey = variant_key_for(primary, &marker, entry);
            store.set(&vkey, encoded, Some(ttl)).await?;
            // Keep the marker at least as long as its variants.
            store.expire(primary, max_ttl).await?;
            #[cfg(feature = "near-cache")]
            if let Some(near) = &self.inner.near {
                near.insert(primary, &Stored::Marker(Arc::clone(&marker)), now);
                near.insert(&vkey, &Stored::Entry(Arc::clone(entry)), now);
            }
        }
        let _ = now;
        bump(&self.inner.counters.stored);
        Ok(())
    }
}

/// An `Age` header value; the first hour's are made once and shared.
fn age_value(secs: u64) -> HeaderValue {
    static AGES: std::sync::OnceLock<Vec<HeaderValue>> = std::sync::OnceLock::new();
    const SHARED: u64 = 3600;
    if secs < SHARED {
        let ages = AGES.get_or_init(|| (0..SHARED).map(HeaderValue::from).collect());
        if let Some(v) = usize::try_from(secs).ok().and_then(|i| ages.get(i)) {
            return v.clone();
        }
    }
    HeaderValue::from(secs)
}

/// The variant key of an entry from the values it was stored for.
fn variant_key_for(primary: &str, marker: &Marker, entry: &Entry) -> String {
    let mut headers = HeaderMap::new();
    for (name, value) in &entry.vary {
        if let Some(v) = value {
            headers.insert(name.clone(), v.clone());
        }
    }
    key::variant(primary, marker.nonce, &marker.names, &headers).0
}

/// A fresh marker nonce: unique per process and time, without a CSPRNG.
fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// An entry found for a request, and the URL's `Vary` marker.
type Found = (Option<Arc<Entry>>, Option<Arc<Marker>>);

/// The outcome of the store-free checks (transient: not boxed, to spare an allocation).
#[allow(clippy::large_enum_variant)]
enum Begin<St: Store> {
    Done(Lookup<St>),
    Find(Ctx),
}

/// The outcome of a found (or missing) entry.
#[allow(clippy::large_enum_variant)]
enum Decided<St: Store> {
    Done(Lookup<St>),
    Miss(Ctx, Option<Arc<Marker>>, Option<Arc<Entry>>),
}

/// A request on its way through `lookup`.
struct Ctx {
    primary: String,
    is_head: bool,
    request_cc: Option<directives::Directives>,
    now: u64,
    coalesce: bool,
}

impl Ctx {
    /// Whether a miss joins or leads a fill (a `HEAD` stores nothing to share).
    fn coalesce(&self) -> bool {
        self.coalesce && !self.is_head
    }
}
