//! [`Forward`]: a request the inner service answers, and the hand-over of its response.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};

use super::entry::{self, Entry, Marker};
use super::flight::FlightGuard;
use super::policy::{self, Freshness};
use super::recorder::Recorder;
use super::stats::bump;
use super::{Cache, Config, Outcome, key, range, tags};
use crate::{Answer, Step, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Miss,
    Bypass,
}

#[derive(Debug)]
pub(super) struct Invalidate {
    pub(super) host: String,
    pub(super) path: String,
    pub(super) query: Option<String>,
    pub(super) custom: Option<String>,
}

/// A request the inner service must answer, and what to do with its answer.
pub struct Forward<St: Store> {
    pub(super) cache: Cache<St>,
    pub(super) kind: Kind,
    pub(super) request_time: u64,
    pub(super) primary: Option<String>,
    pub(super) request_headers: Option<super::head::Lines>,
    /// What the request carried that a miss's response is judged by.
    pub(super) asked: super::Asked,
    pub(super) invalidate: Option<Invalidate>,
    pub(super) stale: Option<Arc<Entry>>,
    pub(super) marker: Option<Arc<Marker>>,
    pub(super) flight: Option<FlightGuard<St>>,
    pub(super) lock: Option<String>,
    pub(super) is_head: bool,
    pub(super) background: bool,
    /// The response body's length as the adapter knows it (its exact size hint).
    pub(super) body_len: Option<u64>,
}

impl<St: Store> fmt::Debug for Forward<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("kind", &self.kind)
            .field("revalidating", &self.stale.is_some())
            .finish_non_exhaustive()
    }
}

/// The part of a [`Forward::response`] that waits for the store: an invalidation, or a
/// `304` freshening a stale entry.
#[must_use = "a hand-over does nothing unless it is awaited"]
pub struct Handover<St: Store>(Pin<Box<dyn Future<Output = Outcome<St>> + Send>>);

impl<St: Store> fmt::Debug for Handover<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handover").finish_non_exhaustive()
    }
}

impl<St: Store> Future for Handover<St> {
    type Output = Outcome<St>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl<St: Store> Forward<St> {
    /// Whether the cache stays out of this request (the response is only labelled, and
    /// invalidates on success when the method is unsafe).
    pub fn is_bypass(&self) -> bool {
        self.kind == Kind::Bypass
    }

    /// Adjusts the forwarded request's headers: when revalidating a stale entry, its
    /// validators become `If-None-Match` / `If-Modified-Since` (replacing the client's; the
    /// client's conditionals are then answered from the freshened entry).
    ///
    /// A `Range` is removed from a request the cache may store the answer to: the whole
    /// response is fetched once, stored, and the range answered from it. `headers` are
    /// the request's that [`Cache::lookup`](super::Cache::lookup) saw (whether it had a
    /// `Range` or `If-Range` was noted then, not looked up again here).
    pub fn prepare(&self, headers: &mut HeaderMap) {
        if self.primary.is_some() && !self.is_head && self.asked.ranged {
            headers.remove(http::header::RANGE);
            headers.remove(http::header::IF_RANGE);
        }
        let Some(stale) = &self.stale else { return };
        let etag = stale.headers.get(http::header::ETAG);
        let lm = stale.headers.get(http::header::LAST_MODIFIED);
        if etag.is_none() && lm.is_none() {
            return;
        }
        headers.remove(http::header::IF_NONE_MATCH);
        headers.remove(http::header::IF_MODIFIED_SINCE);
        headers.remove(http::header::IF_MATCH);
        headers.remove(http::header::IF_UNMODIFIED_SINCE);
        if let Some(etag) = etag {
            headers.insert(http::header::IF_NONE_MATCH, etag.clone());
        }
        if let Some(lm) = lm {
            headers.insert(http::header::IF_MODIFIED_SINCE, lm.clone());
        }
    }

    /// Tells the cache the response body's length, when the adapter knows it although
    /// `Content-Length` does not say it (a framework's exact size hint). Call it before
    /// [`response`](Forward::response).
    pub fn set_body_len(&mut self, len: Option<u64>) {
        self.body_len = len;
    }

    fn label(&self, headers: &mut HeaderMap, value: &'static str) {
        if let Some(name) = &self.cache.inner.config.status_header {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
    }

    /// Hands the inner service's response head to the cache; see [`Outcome`].
    ///
    /// [`Step::Ready`] for everything but an invalidation (a successful unsafe request)
    /// and a `304` freshening a stale entry; those give the [`Handover`] to await (it owns
    /// what it needs of `headers`, which are final when this returns).
    pub fn response(
        self: Box<Self>,
        status: StatusCode,
        headers: &mut HeaderMap,
    ) -> Step<Outcome<St>, Handover<St>> {
        let cache = self.cache.clone();
        let config = &cache.inner.config;
        // The tags the response names; the header goes no further unless configured.
        let tags = match &config.tag_header {
            Some(name) => {
                let tags = tags::parse(headers, name);
                if !config.keep_tags {
                    headers.remove(name);
                }
                tags
            }
            None => Ok(Vec::new()),
        };
        if self.kind == Kind::Bypass {
            let mut this = self;
            this.label(headers, "BYPASS");
            return match this.invalidate.take() {
                Some(inv) if status.is_success() || status.is_redirection() => {
                    let targets = [LOCATION, CONTENT_LOCATION].map(|name| {
                        headers
                            .get(&name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    });
                    Step::Pending(Handover(Box::pin(async move {
                        this.invalidate_urls(&inv, &targets).await;
                        Outcome::Pass
                    })))
                }
                _ => Step::Ready(Outcome::Pass),
            };
        }
        // A 304 answers the validators we sent, so it selects the stale entry (RFC 9111
        // section 4.3.3), even when it carries a changed ETag.
        if let Some(stale) = self.stale.clone()
            && status == StatusCode::NOT_MODIFIED
        {
            let mut this = self;
            let update = headers.clone();
            return Step::Pending(Handover(Box::pin(async move {
                let now = this.cache.now();
                let primary = this.primary.take().unwrap_or_default();
                let request_headers = this
                    .request_headers
                    .take()
                    .map(|lines| lines.to_map())
                    .unwrap_or_default();
                this.freshen(&primary, &stale, &update, &request_headers, now)
                    .await
            })));
        }
        Step::Ready(self.decide_response(&cache, config, status, headers, tags))
    }

    fn decide_response(
        mut self: Box<Self>,
        cache: &Cache<St>,
        config: &Config,
        status: StatusCode,
        headers: &mut HeaderMap,
        tags: std::result::Result<Vec<String>, ()>,
    ) -> Outcome<St> {
        let now = cache.now();
        let Some(primary) = self.primary.take() else {
            self.label(headers, "MISS");
            return Outcome::Pass;
        };
        let request_headers = self.request_headers.take().unwrap_or_default();

        if let Some(stale) = self.stale.clone()
            && policy::is_error_for_stale(status)
            && stale.may_serve_stale()
            && stale.staleness(now) < stale.sie
        {
            bump(&cache.inner.counters.stale);
            return Outcome::Replace(cache.serve(
                stale,
                &request_headers.to_map(),
                self.is_head,
                now,
            ));
        }
        if self.is_head {
            self.label(headers, "MISS");
            return Outcome::Pass;
        }
        let had_auth = self.asked.authorization;
        let head = policy::Head::of(headers);
        let has_validator = head.has(policy::name::ETAG.bit | policy::name::LAST_MODIFIED.bit);
        let evaluated = policy::evaluate(config, had_auth, self.request_time, now, status, &head);
        let freshness = match evaluated {
            Ok(f) => f,
            Err(reason) => {
                tracing::trace!(?reason, "kv cache: response not stored");
                self.label(headers, "MISS");
                return Outcome::Pass;
            }
        };
        let Some(ttl) = freshness.store_ttl(config, has_validator) else {
            self.label(headers, "MISS");
            return Outcome::Pass;
        };
        let Ok(tags) = tags else {
            tracing::debug!("kv cache: too many or too long tags; not stored");
            self.label(headers, "MISS");
            return Outcome::Pass;
        };
        // Generations are read when the entry is stored (0 until then).
        let tags: Vec<(String, u64)> = tags.into_iter().map(|t| (t, 0)).collect();
        if headers.len() > entry::MAX_STORED_HEADERS {
            // It could not be read back (see `entry::decode`): pass it on unstored.
            self.label(headers, "MISS");
            return Outcome::Pass;
        }
        if freshness.flags & entry::FLAG_NO_CACHE != 0 && !has_validator {
            self.label(headers, "MISS");
            return Outcome::Pass;
        }
        let names = policy::vary_names(&head).unwrap_or_default();
        let vary = key::vary_values(&names, &request_headers, &config.keys);
        let expected_len = head
            .get(&policy::name::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .or(self.body_len);
        if expected_len.is_some_and(|n| n > config.max_body as u64) {
            self.label(headers, "MISS");
            return Outcome::Pass;
        }
        let capacity = expected_len.map_or(0, |n| n as usize);
        let mut entry = Entry {
            response_time: now,
            initial_age: freshness.initial_age,
            fresh: freshness.fresh,
            swr: freshness.swr,
            sie: freshness.sie,
            flags: freshness.flags,
            status,
            vary,
            headers: HeaderMap::new(),
            tags,
            body: Bytes::new(),
            hits: super::entry::HitMemo::default(),
        };
        // One buffer: the encoded head, then the body as it streams (stored as is). The
        // head is written before the response's headers are labelled or ranged: what is
        // stored is the response as the service sent it.
        let storable = policy::Storable::of(&head, config.status_header.as_ref());
        let in_place = entry.vary.is_empty()
            && entry.tags.is_empty()
            && self.lock.is_none()
            && cache.stores_at_once();
        let mut buf;
        if in_place {
            // Stored at once: no header map of its own (building and dropping one was
            // ~1 500 instructions of a miss); waiters get the entry decoded.
            buf =
                BytesMut::with_capacity(entry.head_len() + entry::headers_len(headers) + capacity);
            entry.encode_head_with(headers, |name| storable.keeps(name), &mut buf);
        } else {
            entry.headers = storable.filter(headers);
            buf = BytesMut::with_capacity(entry.head_len() + capacity);
            entry.encode_head(&mut buf);
        }
        self.label(headers, "MISS");
        // A range request: the whole response is recorded, the range sent (when its
        // length is known before the body).
        let (status_sent, window) = match expected_len {
            Some(len) if self.asked.range => {
                let selected = range::select(&request_headers.to_map(), status, headers, len);
                (selected.apply(headers), selected.window())
            }
            _ => (None, None),
        };
        Outcome::Record(Box::new(Recorder {
            cache: cache.clone(),
            primary,
            marker: self.marker.take(),
            head: buf.len(),
            entry: Some(entry),
            in_place,
            ttl,
            body: buf,
            expected_len,
            flight: self.flight.take(),
            lock: self.lock.take(),
            status_sent,
            window,
        }))
    }

    /// Freshens a stale entry with a `304` and answers from it.
    async fn freshen(
        &mut self,
        primary: &str,
        stale: &Entry,
        update: &HeaderMap,
        request_headers: &HeaderMap,
        now: u64,
    ) -> Outcome<St> {
        let cache = self.cache.clone();
        let config = &cache.inner.config;
        let merged = policy::merge_304(&stale.headers, update, config.status_header.as_ref());
        let had_auth = self.asked.authorization;
        let mut entry = Entry {
            response_time: now,
            initial_age: 0,
            fresh: 0,
            swr: 0,
            sie: 0,
            flags: 0,
            status: stale.status,
            vary: stale.vary.clone(),
            headers: merged,
            tags: stale.tags.clone(),
            body: stale.body.clone(),
            hits: super::entry::HitMemo::default(),
        };
        // The freshened entry is judged as the response it now is.
        let head = policy::Head::of(&entry.headers);
        let evaluated = policy::evaluate(
            config,
            had_auth && !config.cache_authorized,
            self.request_time,
            now,
            stale.status,
            &head,
        );
        let evaluated = match evaluated {
            Ok(f) => Some(f),
            // Authorization only forbids storing the request's own response; this entry
            // was stored before.
            Err(policy::NotStored::Authorization) => {
                policy::evaluate(config, false, self.request_time, now, stale.status, &head).ok()
            }
            Err(_) => None,
        };
        bump(&cache.inner.counters.revalidated);
        if let Some(f) = evaluated {
            apply(&mut entry, f);
            let entry = Arc::new(entry);
            if let Some(ttl) = f.store_ttl(config, entry.has_validator())
                && let Err(err) = cache
                    .write(primary, self.marker.take(), &entry, None, ttl)
                    .await
            {
                bump(&cache.inner.counters.store_errors);
                tracing::warn!(error = %err, "kv cache: store write failed");
            }
            if let Some(flight) = self.flight.take() {
                flight.finish(Some(Arc::clone(&entry)));
            }
            self.release_lock().await;
            return Outcome::Replace(cache.serve(entry, request_headers, self.is_head, now));
        }
        // No longer storable (e.g. the 304 said no-store): drop the entry, answer once.
        let _ = cache.purge_key(primary).await;
        self.release_lock().await;
        Outcome::Replace(cache.serve(Arc::new(entry), request_headers, self.is_head, now))
    }

    /// The inner service failed (no response at all): the stale entry, if
    /// `stale-if-error` or [`stale_on_disconnect`](super::CacheBuilder::stale_on_disconnect)
    /// allows it.
    pub fn error(self) -> Option<Answer> {
        let stale = self.stale.as_ref()?;
        let now = self.cache.now();
        let window = stale
            .sie
            .max(policy::millis(self.cache.inner.config.stale_on_disconnect));
        if stale.may_serve_stale() && stale.staleness(now) < window {
            bump(&self.cache.inner.counters.stale);
            let headers = self
                .request_headers
                .as_ref()
                .map(super::head::Lines::to_map)
                .unwrap_or_default();
            return Some(
                self.cache
                    .serve(Arc::clone(stale), &headers, self.is_head, now),
            );
        }
        None
    }

    /// Whether this forward is a background (`stale-while-revalidate`) refresh.
    pub fn is_background(&self) -> bool {
        self.background
    }

    async fn release_lock(&mut self) {
        if let Some(lock) = self.lock.take() {
            let _ = self.cache.inner.store.del(&lock).await;
        }
    }

    /// Purges the request's URL and the same-host `Location` / `Content-Location` targets.
    async fn invalidate_urls(&self, inv: &Invalidate, targets: &[Option<String>]) {
        let cache = &self.cache;
        let custom = inv.custom.as_deref();
        let mut keys = vec![cache.primary_with(&inv.host, &inv.path, inv.query.as_deref(), custom)];
        for target in targets.iter().flatten() {
            if let Some((path, query)) = same_host_target(&inv.host, &inv.path, target) {
                keys.push(cache.primary_with(&inv.host, &path, query.as_deref(), custom));
            }
        }
        for key in keys {
            if let Err(err) = cache.purge_key(&key).await {
                bump(&cache.inner.counters.store_errors);
                tracing::warn!(error = %err, "kv cache: invalidation failed");
            }
        }
    }
}

fn apply(entry: &mut Entry, f: Freshness) {
    entry.initial_age = f.initial_age;
    entry.fresh = f.fresh;
    entry.swr = f.swr;
    entry.sie = f.sie;
    entry.flags = f.flags;
}

/// Resolves a `Location` / `Content-Location` against the request URL; `None` for
/// another host.
fn same_host_target(host: &str, base_path: &str, target: &str) -> Option<(String, Option<String>)> {
    let uri: Uri = target.parse().ok()?;
    if let Some(authority) = uri.authority() {
        if !authority.as_str().eq_ignore_ascii_case(host) {
            return None;
        }
        return Some((uri.path().to_owned(), uri.query().map(str::to_owned)));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (target, None),
    };
    if path.starts_with('/') {
        return Some((path.to_owned(), query));
    }
    let dir = base_path.rsplit_once('/').map_or("", |(d, _)| d);
    Some((format!("{dir}/{path}"), query))
}

impl<St: Store> Drop for Forward<St> {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            self.cache.release_in_background(lock);
        }
    }
}

impl<St: Store> Cache<St> {
    /// Releases a cross-replica fill lock from a synchronous context (a drop): on the
    /// current tokio runtime; without one, the lock expires after `lock_timeout`.
    pub(super) fn release_in_background(&self, lock: String) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let cache = self.clone();
            drop(rt.spawn(async move {
                let _ = cache.inner.store.del(&lock).await;
            }));
        }
    }
}
