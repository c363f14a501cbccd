//! Response caching: an RFC 9111 shared-cache policy over any [`Store`], decided once
//! here for every adapter (`kv-tower`'s `CacheLayer`, and kv-actix's `CacheMiddleware`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use bytes::Bytes;
//! use http::{HeaderMap, HeaderValue, StatusCode};
//! use kv_core::MemoryStore;
//! use kv_core::cache::{Cache, Lookup, Outcome};
//!
//! let cache = Cache::builder(MemoryStore::new()).build().expect("valid configuration");
//! let request = http::Request::get("http://example.com/a").body(()).expect("a request");
//!
//! // 1. A miss: forward the request, then hand the response head to the cache.
//! let Lookup::Forward(forward) = cache.lookup(&request).await else {
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
//! let Lookup::Hit { response, .. } = cache.lookup(&request).await else {
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
//!   without its body but with its `Content-Length`); a single byte `Range` is answered
//!   from a complete entry (`206`, `416`, `If-Range` honoured; a range miss fetches the
//!   whole response, stores it and sends the range); statuses cacheable by default (200, 203, 204, 300, 301, 308, 404,
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
//!   [sorted](CacheBuilder::sort_query), [parameters ignored](CacheBuilder::ignore_query_params)),
//!   an optional [custom part](CacheBuilder::custom_key), each length-prefixed so that no
//!   two URLs share a key; plus the values of every request header the response names in
//!   `Vary` (normalised for `Accept-Encoding` and `Accept-Language`, stored in the entry
//!   and compared on every hit). A request whose `Host` or authority is not an RFC 3986
//!   `host[:port]` (or that repeats `Host`) bypasses the cache, as does one the
//!   [bypass predicate](CacheBuilder::bypass) picks.
//! - **Conditional requests**: `If-None-Match` (weak comparison) and `If-Modified-Since` are
//!   answered `304` from a fresh entry. A stale entry with a validator is revalidated with a
//!   conditional request; a `304` freshens it (headers updated, body kept) without a new body.
//! - **Stale**: `stale-while-revalidate` serves the stale entry and refreshes it in the
//!   background; `stale-if-error` serves it when the origin answers 500, 502, 503 or 504
//!   (RFC 5861 section 4) or fails; [`stale_on_disconnect`](CacheBuilder::stale_on_disconnect)
//!   when it fails without a response.
//!   `must-revalidate`, `proxy-revalidate`, `s-maxage` and `no-cache` forbid both.
//! - **Coalescing**: concurrent misses for one key (and concurrent revalidations of one stale
//!   entry) forward one request; the others wait (up to
//!   [`lock_timeout`](CacheBuilder::lock_timeout)) and get its entry. On a shared store a
//!   `set_nx` lock does the same across replicas (waiters poll the store).
//! - **Invalidation**: [`purge`](Cache::purge) drops a URL with all its `Vary` variants;
//!   [`purge_tag`](Cache::purge_tag) every entry whose response named the tag in the
//!   [tag header](CacheBuilder::tag_header) (one `INCR`, checked on every read of a tagged
//!   entry, so every replica and near cache sees it at once); a
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
//! copy until it expires** (at most the near-cache TTL), then see the purge. A
//! [tag purge](Cache::purge_tag) is seen at once everywhere.
//!
//! More: `docs/response-cache.md` in the repository.

//! # Where things are
//! `mod.rs` (this face: [`Cache`], [`Lookup`], [`Outcome`]), `builder.rs` and `config.rs`
//! (configuration), `decide.rs` (what a request gets: bypass, hit, 304, stale, miss),
//! `serve.rs` (answering from an entry), `read.rs` (reading entries; an in-process
//! store keeps the decoded entries beside their bytes), `near.rs` (the near cache), `flight.rs` (coalescing, in
//! process and across replicas), `forward.rs` (the hand-over of the inner service's
//! response), `recorder.rs` (recording a body), `body.rs` (the streaming state machine
//! the adapters' bodies poll), `write.rs` (storing and purging), `policy.rs` and
//! `directives.rs` (the RFC 9111 rules), `key.rs` (keys and `Vary`), `entry.rs` (the
//! stored format), `stats.rs` (counters). A new caching rule usually goes in `policy.rs`
//! (storability, freshness) or `decide.rs` (how a request is answered), with its test
//! in `tests/`.

mod body;
mod builder;
mod config;
mod decide;
pub(crate) mod directives;
pub(crate) mod entry;
mod flight;
mod forward;
mod head;
mod key;
#[cfg(feature = "near-cache")]
mod near;
pub(crate) mod policy;
mod range;
mod read;
mod recorder;
mod serve;
mod stats;
pub(crate) mod tags;
#[cfg(test)]
mod tests;
mod write;

pub use body::{BodyRecorder, LastChunk};
pub use builder::CacheBuilder;
pub(crate) use config::Config;
pub use forward::{Forward, Handover};
pub use recorder::{Recorder, Storing};
pub use stats::CacheStats;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HOST, IF_MODIFIED_SINCE, IF_NONE_MATCH, RANGE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use parking_lot::Mutex;

pub(crate) use head::Asked;

use crate::clock::ClockHandle;
use crate::request::RequestView;
use crate::{Answer, Result, Step, StepFuture, Store};
use flight::InFlight;
use stats::Counters;

/// What the cache reads of a request, borrowed from a [`RequestView`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestHead<'a> {
    pub(crate) method: &'a Method,
    pub(crate) authority: Option<&'a str>,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
    /// HTTP/1.1, where a request must name its host (RFC 9112 section 3.2).
    pub(crate) host_required: bool,
    /// What one pass over `headers` found.
    pub(crate) marks: Marks<'a>,
}

/// What one pass over a request's header lines finds, so that a hit asks the map for a
/// header only when the request carries it. A hashed look-up of an absent header costs
/// about as much as walking a typical request's few lines, and a hit made four of them
/// (`Host`, `If-None-Match`, `If-Modified-Since`, `Range`) on every request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Marks<'a> {
    /// The first `Host` line.
    host: Option<&'a HeaderValue>,
    /// More than one `Host` line.
    hosts_repeated: bool,
    /// The conditionals and `Range`.
    pub(crate) asks: Asks,
}

impl<'a> Marks<'a> {
    pub(crate) fn of(headers: &'a HeaderMap) -> Marks<'a> {
        let mut marks = Marks::default();
        for (name, value) in headers {
            if *name == HOST {
                if marks.host.is_some() {
                    marks.hosts_repeated = true;
                } else {
                    marks.host = Some(value);
                }
            } else if *name == IF_NONE_MATCH || *name == IF_MODIFIED_SINCE {
                marks.asks.conditional = true;
            } else if *name == RANGE {
                marks.asks.range = true;
            }
        }
        marks
    }
}

/// Whether a request carries the headers that change what a stored entry answers with.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Asks {
    /// `If-None-Match` or `If-Modified-Since`: maybe a `304`.
    pub(crate) conditional: bool,
    /// `Range`: maybe a `206` or a `416`.
    pub(crate) range: bool,
}

impl Asks {
    pub(crate) fn of(headers: &HeaderMap) -> Asks {
        Marks::of(headers).asks
    }
}

impl<'a> RequestHead<'a> {
    /// The host the request is for: the absolute-form authority, else the `Host` header,
    /// else empty (a request without either, as in-process tests make them). `None` when
    /// either is not an RFC 3986 `host[:port]`, or `Host` is repeated: such a request
    /// bypasses the cache (it could otherwise plant a response under another URL's key).
    pub(crate) fn host(&self) -> Option<&'a str> {
        if self.marks.hosts_repeated {
            return None;
        }
        let header = match self.marks.host {
            Some(h) => Some(h.to_str().ok().filter(|h| key::valid_authority(h))?),
            None => None,
        };
        match (self.authority, header) {
            (Some(a), _) => key::valid_authority(a).then_some(a),
            (None, Some(h)) => Some(h),
            // HTTP/1.1 without a Host is malformed: never cached.
            (None, None) if self.host_required => None,
            (None, None) => Some(""),
        }
    }
}

/// What a [custom key function](CacheBuilder::custom_key) or a
/// [bypass predicate](CacheBuilder::bypass) sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct CacheRequest<'a> {
    head: RequestHead<'a>,
    host: &'a str,
}

impl<'a> CacheRequest<'a> {
    /// The method.
    pub fn method(&self) -> &'a Method {
        self.head.method
    }
    /// The host (`host[:port]`, validated; empty when the request names none).
    pub fn host(&self) -> &'a str {
        self.host
    }
    /// The path.
    pub fn path(&self) -> &'a str {
        self.head.path
    }
    /// The query, without `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.head.query
    }
    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.head.headers
    }
}

/// A request head that owns its parts: what a lookup that waits for the store keeps.
struct OwnedHead {
    method: Method,
    authority: Option<String>,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    host_required: bool,
}

impl OwnedHead {
    fn of(req: &dyn RequestView, headers: HeaderMap, host_required: bool) -> OwnedHead {
        OwnedHead {
            method: req.method().clone(),
            authority: req.authority().map(str::to_owned),
            path: req.path().to_owned(),
            query: req.query().map(str::to_owned),
            headers,
            host_required,
        }
    }

    fn head(&self) -> RequestHead<'_> {
        RequestHead {
            method: &self.method,
            authority: self.authority.as_deref(),
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            host_required: self.host_required,
            marks: Marks::of(&self.headers),
        }
    }
}

/// Whether `req` is HTTP/1.1, which must carry a `Host` (RFC 9112 section 3.2), and the
/// cache was told to hold it to that ([`CacheBuilder::require_host`]).
fn requires_host(req: &dyn RequestView, config: &Config) -> bool {
    config.require_host && req.version() == Some(http::Version::HTTP_11)
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
        response: Answer,
        /// A background revalidation to run, if the adapter can.
        refresh: Option<Box<Forward<St>>>,
    },
    /// Call the inner service (after [`Forward::prepare`]), then [`Forward::response`].
    Forward(Box<Forward<St>>),
}

impl<St: Store> Lookup<St> {
    /// The word this lookup is logged under (the `outcome` field of the `kv.cache` span).
    fn outcome(&self) -> &'static str {
        match self {
            Lookup::Hit { .. } => "hit",
            Lookup::Forward(f) if matches!(f.kind, forward::Kind::Bypass) => "bypass",
            Lookup::Forward(_) => "miss",
        }
    }
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
    Replace(Answer),
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
    /// In-process fills, found by their primary key.
    /// Seeded per cache with foldhash's fast hasher, as `MemoryStore`'s shards are: a miss
    /// hashes its key here two to four times, which SipHash made ~700 instructions of a
    /// miss. The keys come from requests, but the map holds only the fills in flight (at
    /// most one per concurrent miss), so colliding keys cannot make it long.
    flights: Mutex<HashSet<InFlight, foldhash::fast::RandomState>>,
    #[cfg(feature = "near-cache")]
    near: Option<near::Near>,
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
                honor_request_cc: false,
                require_host: false,
                cache_authorized: false,
                status_header: Some(HeaderName::from_static("x-cache")),
                coalesce: true,
                lock_timeout: Duration::from_secs(5),
                lock_across_replicas: true,
                revalidation_window: Duration::from_secs(60),
                max_ttl: Duration::from_secs(7 * 24 * 60 * 60),
                stale_on_disconnect: Duration::ZERO,
                targeted: None,
                keys: config::KeyRules::default(),
                tag_header: None,
                keep_tags: false,
                bypass: None,
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
        CacheStats {
            hits: c.hits.get() + c.coalesced.get(),
            coalesced: c.coalesced.get(),
            misses: c.misses.get(),
            bypasses: c.bypasses.get(),
            stale: c.stale.get(),
            revalidated: c.revalidated.get(),
            stored: c.stored.get(),
            store_errors: c.store_errors.get(),
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
        self.primary_with(host, path, query, None)
    }

    fn primary_with(
        &self,
        host: &str,
        path: &str,
        query: Option<&str>,
        custom: Option<&str>,
    ) -> String {
        let c = &self.inner.config;
        let fields = key::KeyFields {
            host,
            path,
            query,
            custom,
        };
        key::primary_key(&c.prefix, fields, &c.keys)
    }

    /// Drops every stored response of a URL (all its `Vary` variants), on the store and in
    /// this process's near cache. `uri` needs its authority (`http://host/path?query`) for
    /// a cache keyed by host; a path-only URI purges the entries stored without a host.
    /// Entries stored with a [custom key](CacheBuilder::custom_key) part are not reached
    /// by a URL (use [`purge_custom`](Cache::purge_custom)).
    ///
    /// # Errors
    /// The store's error.
    pub async fn purge(&self, uri: &Uri) -> Result<bool> {
        let host = uri.authority().map_or("", http::uri::Authority::as_str);
        let key = self.primary(host, uri.path(), uri.query());
        self.purge_key(&key).await
    }

    /// [`purge`](Cache::purge) for the entries stored with the custom key part `custom`.
    ///
    /// # Errors
    /// The store's error.
    pub async fn purge_custom(&self, uri: &Uri, custom: &str) -> Result<bool> {
        let host = uri.authority().map_or("", http::uri::Authority::as_str);
        let key = self.primary_with(host, uri.path(), uri.query(), Some(custom));
        self.purge_key(&key).await
    }

    /// Decides what to do with a request.
    ///
    /// [`Step::Ready`] when the answer is at hand: a bypass, or a store with a
    /// [`LocalStore`](crate::LocalStore) face (or the near cache) holds what is needed and
    /// no fill of the same key is in flight — so a hit costs no future at all.
    /// [`Step::Pending`] otherwise, with a future that owns what it needs of the request
    /// (`Send + 'static`).
    pub fn lookup(&self, req: &dyn RequestView) -> Step<Lookup<St>, StepFuture<Lookup<St>>> {
        // No span at all unless some subscriber wants debug: the hit path stays as cheap
        // as it was (a span costs ~200 instructions even when nobody records it).
        if !tracing::level_enabled!(tracing::Level::DEBUG) {
            return self.lookup_inner(req, &tracing::Span::none());
        }
        let span = tracing::debug_span!("kv.cache", outcome = tracing::field::Empty);
        match self.lookup_inner(req, &span) {
            Step::Ready(lookup) => {
                span.record("outcome", lookup.outcome());
                Step::Ready(lookup)
            }
            Step::Pending(fut) => Step::Pending(Box::pin(tracing::Instrument::instrument(
                async move {
                    let lookup = fut.await;
                    tracing::Span::current().record("outcome", lookup.outcome());
                    lookup
                },
                span,
            ))),
        }
    }

    fn lookup_inner(
        &self,
        req: &dyn RequestView,
        span: &tracing::Span,
    ) -> Step<Lookup<St>, StepFuture<Lookup<St>>> {
        let _entered = span.enter();
        let headers = req.headers();
        let host_required = requires_host(req, &self.inner.config);
        let head = RequestHead {
            method: req.method(),
            authority: req.authority(),
            path: req.path(),
            query: req.query(),
            headers: &headers,
            host_required,
            marks: Marks::of(&headers),
        };
        if let Some(lookup) = self.lookup_now(head) {
            return Step::Ready(lookup);
        }
        let owned = OwnedHead::of(req, headers.into_owned(), host_required);
        let cache = self.clone();
        Step::Pending(Box::pin(
            async move { cache.lookup_wait(owned.head()).await },
        ))
    }
}
