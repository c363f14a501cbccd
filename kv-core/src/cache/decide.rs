//! What a request gets: a bypass, a hit, a `304`, a stale entry, or a miss to forward.

use std::sync::Arc;

use http::Method;

use super::entry::{Entry, Marker};
use super::flight::Joined;
use super::forward::{Forward, Invalidate, Kind};
use super::read::Found;
use super::stats::bump;
use super::{Cache, CacheRequest, Lookup, RequestHead, directives, key};
use crate::Store;

/// Request methods that are safe (RFC 9110 section 9.2.1): they never invalidate.
pub(super) fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl<St: Store> Cache<St> {
    pub(super) async fn lookup_wait(&self, req: RequestHead<'_>) -> Lookup<St> {
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

    /// The lookup without waiting, when the answer is at hand; `None` (nothing counted)
    /// when the store must be awaited.
    pub(super) fn lookup_now(&self, req: RequestHead<'_>) -> Option<Lookup<St>> {
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
                // Across replicas the lock is the store's: `lookup` takes it. In process, a
                // fill already in flight is joined there too (`lead` declines it).
                if self.inner.config.lock_across_replicas {
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

    /// The checks that need no store: bypasses, and the primary key.
    pub(super) fn begin(&self, req: RequestHead<'_>) -> Begin<St> {
        let config = &self.inner.config;
        let now = self.now();
        let method = req.method;
        if !is_safe(method) {
            bump(&self.inner.counters.bypasses);
            let f = self.forward(Kind::Bypass, now, Some(req), None);
            return Begin::Done(Lookup::Forward(Box::new(f)));
        }
        let cacheable_method = *method == Method::GET || *method == Method::HEAD;
        // A Host (or authority) that is not `host[:port]` never reaches a key.
        let host = req.host().filter(|_| cacheable_method);
        let view = host.map(|host| CacheRequest { head: req, host });
        let bypassed = match (&view, &config.bypass) {
            (None, _) => true,
            (Some(view), Some(p)) => (p.0)(view),
            (Some(_), None) => false,
        };
        if bypassed {
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
        let host = host.unwrap_or("");
        let custom = match (&config.keys.custom, &view) {
            (Some(f), Some(view)) => (f.0)(view),
            _ => None,
        };
        Begin::Find(Ctx {
            primary: self.primary_with(host, req.path, req.query, custom.as_deref()),
            is_head: *method == Method::HEAD,
            request_cc,
            now,
            coalesce: config.coalesce,
        })
    }

    /// What a found (or missing) entry means for the request.
    pub(super) fn decide(
        &self,
        ctx: Ctx,
        (found, marker): Found,
        req: RequestHead<'_>,
    ) -> Decided<St> {
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
            key::recycle(ctx.primary);
            return Decided::Done(Lookup::Hit {
                response: self.serve_asked(entry, req.headers, req.marks.asks, ctx.is_head, now),
                refresh: None,
            });
        }
        if !forced && entry.may_serve_stale() && entry.staleness(now) < entry.swr {
            bump(&self.inner.counters.stale);
            let response = self.serve_asked(
                Arc::clone(&entry),
                req.headers,
                req.marks.asks,
                ctx.is_head,
                now,
            );
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
    pub(super) async fn miss(
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
                Joined::Answer(response) => {
                    bump(&self.inner.counters.coalesced);
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

    pub(super) fn plain_miss(
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

    pub(super) fn forward(
        &self,
        kind: Kind,
        now: u64,
        req: Option<RequestHead<'_>>,
        primary: Option<String>,
    ) -> Forward<St> {
        let invalidate = match (kind, req) {
            (Kind::Bypass, Some(r)) => r.host().map(|host| {
                let custom = self
                    .inner
                    .config
                    .keys
                    .custom
                    .as_ref()
                    .and_then(|f| (f.0)(&CacheRequest { head: r, host }));
                Invalidate {
                    host: host.to_owned(),
                    path: r.path.to_owned(),
                    query: r.query.map(str::to_owned),
                    custom,
                }
            }),
            _ => None,
        };
        let (request_headers, asked) = match (kind, req) {
            (Kind::Miss, Some(r)) => (
                Some(super::head::Lines::of(r.headers)),
                super::Asked::of(r.headers),
            ),
            _ => (None, super::Asked::default()),
        };
        Forward {
            cache: self.clone(),
            kind,
            request_time: now,
            primary,
            request_headers,
            asked,
            invalidate,
            stale: None,
            marker: None,
            flight: None,
            lock: None,
            is_head: false,
            background: false,
            body_len: None,
        }
    }
}

/// The outcome of the store-free checks (transient: not boxed, to spare an allocation).
#[allow(clippy::large_enum_variant)]
pub(super) enum Begin<St: Store> {
    Done(Lookup<St>),
    Find(Ctx),
}

/// The outcome of a found (or missing) entry.
#[allow(clippy::large_enum_variant)]
pub(super) enum Decided<St: Store> {
    Done(Lookup<St>),
    Miss(Ctx, Option<Arc<Marker>>, Option<Arc<Entry>>),
}

/// A request on its way through `lookup`.
pub(super) struct Ctx {
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
