//! Rate limiting: INCR-based fixed and sliding windows over any [`Store`], and GCRA in
//! process — decided once here, for every adapter.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kv_core::Result<()> {
//! use std::time::Duration;
//! use kv_core::MemoryStore;
//! use kv_core::rate_limit::{KeySource, Policy, RateLimiter};
//!
//! let limiter = RateLimiter::builder(MemoryStore::new())
//!     .policy(Policy::fixed_window("per-second", 2, Duration::from_secs(1)).key(KeySource::global()))
//!     .policy(Policy::sliding_window("per-hour", 1000, Duration::from_secs(3600)).key(KeySource::global()))
//!     .build()?;
//!
//! let request = http::Request::new(());
//! assert!(limiter.check(&request).await.is_allowed());
//! assert!(limiter.check(&request).await.is_allowed());
//! let third = limiter.check(&request).await;
//! assert!(!third.is_allowed()); // 429, naming "per-second"
//! # Ok(())
//! # }
//! ```
//!
//! # What is decided here
//! - **Algorithms**: [`Algorithm::FixedWindow`] (one atomic `incr_by` with the rest of the
//!   window as TTL), [`Algorithm::SlidingWindow`] (the current and the previous window's
//!   counters, weighted; one `incr_by` and one `get` sent together) and [`Algorithm::Gcra`]
//!   (in process through `governor`). The window algorithms count every request, denied
//!   ones included, so a client that keeps hammering stays limited; GCRA (as `governor`
//!   does) only spends quota on admitted requests. With several policies, a request denied
//!   by one is still counted by the others.
//! - **Several policies per route**, checked together: every store call of every policy is
//!   issued at once, so a decision costs one round trip on Redis however many policies
//!   there are. `RateLimit-Policy` and `RateLimit` list every policy; a `429` names the
//!   policy that denied it.
//! - **Keys** from the peer IP (IPv6 grouped by /64), the client IP behind *trusted*
//!   proxies only, a header, an extension, any function, or one global key — see
//!   [`KeySource`]; a request without a key gets [`MissingKey`]'s outcome.
//! - **Cost** per request, a **bypass** predicate and **shadow mode** (decide, report in
//!   the headers and in the logs, never reject).
//! - **Store failures**: [`FailureMode::Open`] (the default: allow and log at `warn`, so a
//!   limiter outage does not become a site outage) or [`FailureMode::Closed`] (`503`).
//! - **Memory**: counters always carry a TTL (the window), so the store reclaims them; the
//!   in-process GCRA state is pruned by a background thread (`retain_recent` every
//!   [`prune_interval`](RateLimiterBuilder::prune_interval)) that ends with the limiter.

mod decision;
mod gcra;
mod key;
mod policy;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use futures_util::future::try_join_all;
use http::StatusCode;
use smallvec::SmallVec;

pub use decision::{Decision, HeaderOptions, Headers, PolicyState, RejectBody, Verdict};
/// CIDR networks, for [`KeySource::client_ip`]'s trusted proxies (re-exported from `ipnet`).
pub use ipnet::IpNet;
use key::RateKey;
pub use key::{ForwardedHeader, KeySource, MissingKey};
pub use policy::{Algorithm, Policy};

use crate::clock::{Clock, ClockHandle};
use crate::input::parse_redis_int;
use crate::janitor::Janitor;
use crate::request::RequestView;
use crate::{KvError, MAX_TTL, Result, Store};
use gcra::Gcra;

/// What a decision does when the store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailureMode {
    /// Allow the request without rate-limit headers and log the failure at `warn`.
    #[default]
    Open,
    /// Answer `503 Service Unavailable` and log the failure at `error`.
    Closed,
}

type Predicate = Arc<dyn Fn(&dyn RequestView) -> bool + Send + Sync>;
type CostFn = Arc<dyn Fn(&dyn RequestView) -> u32 + Send + Sync>;

/// A set of rate-limit policies over a store. `Clone` shares it.
pub struct RateLimiter<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for RateLimiter<S> {
    fn clone(&self) -> Self {
        RateLimiter {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<S> {
    store: S,
    policies: Vec<(Policy, Option<Gcra>)>,
    prefix: String,
    failure: FailureMode,
    shadow: bool,
    bypass: Option<Predicate>,
    cost: Option<CostFn>,
    headers: HeaderOptions,
    clock: ClockHandle,
    janitor: Janitor,
    any_store_policy: bool,
    /// The `RateLimit-Policy` value: constant, so computed once.
    policy_header: http::HeaderValue,
}

/// What [`RateLimiter::prepare`] found.
#[derive(Debug)]
pub enum Prepared {
    /// The request must be counted: pass this to [`RateLimiter::decide`] (or
    /// [`RateLimiter::decide_in_process`]).
    Count(Pending),
    /// Nothing to count: bypassed, or a request without a key.
    Done(Box<Verdict>),
}

/// The keys and cost of one request, extracted synchronously; [`RateLimiter::decide`]
/// counts them.
#[derive(Debug, Clone)]
pub struct Pending {
    keys: SmallVec<[RateKey; 1]>,
    cost: u32,
}

impl<S: Store> RateLimiter<S> {
    /// A builder over `store`.
    pub fn builder(store: S) -> RateLimiterBuilder<S> {
        RateLimiterBuilder {
            store,
            policies: Vec::new(),
            prefix: "rl:".to_owned(),
            failure: FailureMode::Open,
            shadow: false,
            bypass: None,
            cost: None,
            headers: HeaderOptions::default(),
            clock: ClockHandle::System,
            prune_interval: Duration::from_secs(10),
        }
    }

    /// Checks `req` against every policy and counts it. The request is read before the
    /// future is returned; the future owns what it needs (`Send + 'static`).
    pub fn check(&self, req: &dyn RequestView) -> impl Future<Output = Verdict> + Send + 'static {
        // Decided at once when nothing needs awaiting (GCRA, the embedded store).
        let prepared = match self.prepare(req) {
            Prepared::Count(pending) => match self.decide_in_process(&pending) {
                Some(verdict) => Prepared::Done(Box::new(verdict)),
                None => Prepared::Count(pending),
            },
            done => done,
        };
        let inner = Arc::clone(&self.inner);
        async move {
            match prepared {
                Prepared::Count(pending) => inner.decide(pending).await,
                Prepared::Done(verdict) => *verdict,
            }
        }
    }

    /// The synchronous half of [`check`](RateLimiter::check): bypass, keys and cost.
    pub fn prepare(&self, req: &dyn RequestView) -> Prepared {
        let inner = &*self.inner;
        if inner.bypass.as_ref().is_some_and(|bypass| bypass(req)) {
            return Prepared::Done(Box::new(Verdict::Allow {
                headers: Headers::new(),
                decision: None,
            }));
        }
        let mut keys = SmallVec::with_capacity(inner.policies.len());
        for (policy, _) in &inner.policies {
            match policy.key.extract(req) {
                Some(key) => keys.push(key),
                None => match policy.missing_key() {
                    MissingKey::UseKey(key) => keys.push(RateKey::Text(CompactString::from(key))),
                    MissingKey::Reject(status) => {
                        tracing::debug!(policy = &*policy.name, %status, "rate limit: request has no key");
                        return Prepared::Done(Box::new(Verdict::plain(
                            status,
                            missing_key_text(status),
                        )));
                    }
                },
            }
        }
        let cost = inner.cost.as_ref().map_or(1, |cost| cost(req)).max(1);
        Prepared::Count(Pending { keys, cost })
    }

    /// The counting half of [`check`](RateLimiter::check). The future owns what it needs.
    pub fn decide(&self, pending: Pending) -> impl Future<Output = Verdict> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        async move { inner.decide(pending).await }
    }

    /// Decides at once, without a store call, when every policy is in process (GCRA);
    /// `None` when a store must be asked (then use [`decide`](RateLimiter::decide)).
    pub fn decide_in_process(&self, pending: &Pending) -> Option<Verdict> {
        let inner = &*self.inner;
        #[cfg(feature = "memory")]
        let memory = inner.memory_store();
        #[cfg(not(feature = "memory"))]
        let memory: Option<&()> = None;
        if inner.any_store_policy && memory.is_none() {
            return None;
        }
        // The clock only matters to the window algorithms (GCRA reads its own).
        let now = if inner.any_store_policy {
            inner.clock.now_millis()
        } else {
            0
        };
        let states: Result<SmallVec<[PolicyState; 1]>> = inner
            .policies
            .iter()
            .zip(&pending.keys)
            .map(|((policy, gcra), key)| match (gcra, memory) {
                (Some(gcra), _) => Ok(gcra.check(policy, key, pending.cost)),
                #[cfg(feature = "memory")]
                (None, Some(store)) => inner.count_in_memory(store, policy, key, pending.cost, now),
                _ => Err(KvError::invalid_input(
                    "a store-backed policy needs a store call",
                )),
            })
            .collect();
        Some(inner.finish(states))
    }

    /// In-process GCRA states held right now (pruned in the background).
    pub fn tracked_keys(&self) -> usize {
        self.inner
            .policies
            .iter()
            .filter_map(|(_, g)| g.as_ref())
            .map(Gcra::len)
            .sum()
    }

    /// The store the counters live in.
    pub fn store(&self) -> &S {
        &self.inner.store
    }
}

fn missing_key_text(status: StatusCode) -> &'static str {
    if status.is_server_error() {
        "Internal Server Error: rate limiting could not identify the client\n"
    } else {
        "Bad Request: rate limiting could not identify the client\n"
    }
}

impl<S: Store> Inner<S> {
    /// The embedded store behind `S`, if that is what it is: then counting needs no await.
    #[cfg(feature = "memory")]
    fn memory_store(&self) -> Option<&crate::MemoryStore> {
        let any: &dyn std::any::Any = &self.store;
        any.downcast_ref::<crate::MemoryStore>().or_else(|| {
            any.downcast_ref::<crate::AnyStore>()
                .and_then(crate::AnyStore::as_memory)
        })
    }

    async fn decide(&self, pending: Pending) -> Verdict {
        let now = self.clock.now_millis();
        let cost = pending.cost;
        if let ([(policy, gcra)], [key]) = (&self.policies[..], &pending.keys[..]) {
            // One policy: no join (and no vector of futures) needed.
            let state = self
                .count_policy(policy, gcra.as_ref(), key, cost, now)
                .await;
            return self.finish(state.map(|s| smallvec::smallvec![s]));
        }
        let counted = self
            .policies
            .iter()
            .zip(&pending.keys)
            .map(|((policy, gcra), key)| self.count_policy(policy, gcra.as_ref(), key, cost, now));
        // Every store call at once: one round trip on a multiplexed connection.
        self.finish(try_join_all(counted).await.map(SmallVec::from_vec))
    }

    /// One policy's state: GCRA in process, the window algorithms through the store.
    async fn count_policy(
        &self,
        policy: &Policy,
        gcra: Option<&Gcra>,
        key: &RateKey,
        cost: u32,
        now: u64,
    ) -> Result<PolicyState> {
        match gcra {
            Some(gcra) => Ok(gcra.check(policy, key, cost)),
            None => self.count(policy, key, cost, now).await,
        }
    }

    fn finish(&self, states: Result<SmallVec<[PolicyState; 1]>>) -> Verdict {
        let policies = match states {
            Ok(states) => states,
            Err(err) => return self.store_failed(&err),
        };
        let decision = Decision {
            policies,
            shadow: self.shadow,
        };
        if decision.allowed() {
            if decision.exceeded() {
                let policy = decision.denied_by().map_or("", |p| &*p.name);
                tracing::info!(policy, "rate limit exceeded (shadow mode: not enforced)");
            }
            let headers = if self.headers.on_allowed && (self.headers.ietf || self.headers.legacy) {
                decision.headers_with(&self.headers, Some(&self.policy_header))
            } else {
                Headers::new()
            };
            Verdict::Allow {
                headers,
                decision: Some(decision),
            }
        } else {
            decision.reject(&self.headers, Some(&self.policy_header))
        }
    }

    fn store_failed(&self, err: &KvError) -> Verdict {
        match self.failure {
            FailureMode::Open => {
                tracing::warn!(error = %err, "rate limit store failed: allowing the request (fail-open)");
                Verdict::Allow {
                    headers: Headers::new(),
                    decision: None,
                }
            }
            FailureMode::Closed => {
                tracing::error!(error = %err, "rate limit store failed: rejecting the request (fail-closed)");
                Verdict::plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n")
            }
        }
    }

    /// Counts one request against one store-backed policy.
    async fn count(
        &self,
        policy: &Policy,
        key: &RateKey,
        cost: u32,
        now: u64,
    ) -> Result<PolicyState> {
        let plan = self.plan(policy, key, cost, now);
        let (current, previous) = match &plan.previous_key {
            None => (
                self.store
                    .incr_by(&plan.current_key, plan.cost, Some(plan.ttl))
                    .await?,
                None,
            ),
            // Both at once: one round trip on a multiplexed connection.
            Some(previous_key) => {
                futures_util::future::try_join(
                    self.store
                        .incr_by(&plan.current_key, plan.cost, Some(plan.ttl)),
                    self.store.get(previous_key),
                )
                .await?
            }
        };
        Ok(plan.state(policy, current, previous.as_deref()))
    }

    /// [`count`](Inner::count) on the embedded store, without awaiting.
    #[cfg(feature = "memory")]
    fn count_in_memory(
        &self,
        store: &crate::MemoryStore,
        policy: &Policy,
        key: &RateKey,
        cost: u32,
        now: u64,
    ) -> Result<PolicyState> {
        let plan = self.plan(policy, key, cost, now);
        let current = store.incr_by_sync(&plan.current_key, plan.cost, Some(plan.ttl))?;
        let previous = match &plan.previous_key {
            Some(previous_key) => store.get_sync(previous_key)?,
            None => None,
        };
        Ok(plan.state(policy, current, previous.as_deref()))
    }

    /// The store keys and TTL of one count.
    fn plan(&self, policy: &Policy, key: &RateKey, cost: u32, now: u64) -> Plan {
        let window = u64::try_from(policy.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let index = now / window;
        let end = (index + 1) * window;
        let to_end = Duration::from_millis(end - now);
        let store_key = |index: u64| {
            let mut out = String::with_capacity(self.prefix.len() + policy.name.len() + 40);
            out.push_str(&self.prefix);
            out.push_str(&policy.name);
            out.push(':');
            key.write_to(&mut out);
            out.push(':');
            out.push_str(itoa::Buffer::new().format(index));
            out
        };
        let sliding = policy.algorithm == Algorithm::SlidingWindow;
        Plan {
            current_key: store_key(index),
            // The current counter lives two windows when sliding: it is the previous one
            // next time.
            previous_key: sliding.then(|| store_key(index.wrapping_sub(1))),
            ttl: if sliding {
                to_end + policy.window
            } else {
                to_end
            },
            cost: i64::from(cost),
            now,
            window,
            index,
            to_end,
        }
    }
}

/// One count against a store: its keys and TTL, then the state computed from the replies.
struct Plan {
    current_key: String,
    previous_key: Option<String>,
    ttl: Duration,
    cost: i64,
    now: u64,
    window: u64,
    index: u64,
    to_end: Duration,
}

impl Plan {
    fn state(&self, policy: &Policy, current: i64, previous: Option<&[u8]>) -> PolicyState {
        let limit = u64::from(policy.limit);
        if self.previous_key.is_none() {
            let count = u64::try_from(current).unwrap_or(0);
            return PolicyState {
                name: policy.name.clone(),
                limit,
                window: policy.window,
                remaining: limit.saturating_sub(count),
                reset_after: self.to_end,
                retry_after: (count > limit).then_some(if self.cost as u64 > limit {
                    PolicyState::NEVER
                } else {
                    self.to_end
                }),
            };
        }
        let current = current.max(0) as f64;
        let previous = previous.and_then(parse_redis_int).unwrap_or(0).max(0) as f64;
        let window_f = self.window as f64;
        let elapsed = (self.now - self.index * self.window) as f64;
        let estimate = previous * (window_f - elapsed) / window_f + current;
        let allowed = estimate <= limit as f64;
        let retry_after = (!allowed).then(|| {
            sliding_wait(
                limit as f64,
                self.cost as f64,
                current,
                previous,
                elapsed,
                window_f,
            )
        });
        let reset_after = if current > 0.0 {
            self.to_end + policy.window
        } else {
            self.to_end
        };
        PolicyState {
            name: policy.name.clone(),
            limit,
            window: policy.window,
            remaining: (limit as f64 - estimate).max(0.0).floor() as u64,
            reset_after,
            retry_after: retry_after.map(|ms| {
                if self.cost as u64 > limit {
                    PolicyState::NEVER
                } else {
                    Duration::from_millis(ms.ceil().max(1.0) as u64)
                }
            }),
        }
    }
}

/// Milliseconds until a request of `cost` would pass a sliding window whose current
/// window holds `current` and the previous `previous`, `elapsed` ms into the current
/// window of `window` ms (assuming no other request meanwhile).
fn sliding_wait(
    limit: f64,
    cost: f64,
    current: f64,
    previous: f64,
    elapsed: f64,
    window: f64,
) -> f64 {
    // Within this window: previous * (window - t) / window + current + cost <= limit.
    let room = limit - current - cost;
    if room >= 0.0 && previous > 0.0 {
        let t = window * (1.0 - room / previous);
        return (t - elapsed).max(0.0);
    }
    // In the next window the current count becomes the previous one.
    let to_next = window - elapsed;
    if current <= 0.0 || limit < cost {
        return to_next + window;
    }
    let t = window * (1.0 - (limit - cost) / current);
    to_next + t.clamp(0.0, window)
}

impl<S: Store> fmt::Debug for RateLimiter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.policies.iter().map(|(p, _)| &*p.name).collect();
        f.debug_struct("RateLimiter")
            .field("policies", &names)
            .field("store", &self.inner.store)
            .field("failure", &self.inner.failure)
            .field("shadow", &self.inner.shadow)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RateLimiter`].
#[must_use]
pub struct RateLimiterBuilder<S> {
    store: S,
    policies: Vec<Policy>,
    prefix: String,
    failure: FailureMode,
    shadow: bool,
    bypass: Option<Predicate>,
    cost: Option<CostFn>,
    headers: HeaderOptions,
    clock: ClockHandle,
    prune_interval: Duration,
}

impl<S: fmt::Debug> fmt::Debug for RateLimiterBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiterBuilder")
            .field("policies", &self.policies)
            .field("prefix", &self.prefix)
            .field("failure", &self.failure)
            .field("shadow", &self.shadow)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl<S: Store> RateLimiterBuilder<S> {
    /// Adds a policy; a request must pass every policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policies.push(policy);
        self
    }

    /// The store key prefix of the counters (default `"rl:"`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// What happens when the store fails (default [`FailureMode::Open`]).
    pub fn on_store_error(mut self, mode: FailureMode) -> Self {
        self.failure = mode;
        self
    }

    /// Shadow mode: decide, count and report (headers, logs), never reject.
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// Requests for which `bypass` answers `true` are not limited, nor counted.
    pub fn bypass(
        mut self,
        bypass: impl Fn(&dyn RequestView) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.bypass = Some(Arc::new(bypass));
        self
    }

    /// The weight of a request (default 1; 0 counts as 1 — use `bypass` for free requests).
    pub fn cost(mut self, cost: impl Fn(&dyn RequestView) -> u32 + Send + Sync + 'static) -> Self {
        self.cost = Some(Arc::new(cost));
        self
    }

    /// The headers written and the body of a `429`.
    pub fn header_options(mut self, options: HeaderOptions) -> Self {
        self.headers = options;
        self
    }

    /// The clock windows are measured with (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = ClockHandle::new(clock);
        self
    }

    /// How often the in-process GCRA state is pruned (default 10 s).
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.prune_interval = interval;
        self
    }

    /// Builds the limiter.
    ///
    /// # Errors
    /// [`KvError::InvalidInput`] when there is no policy, two policies share a name, a
    /// name is empty, longer than 64 bytes or not made of `A-Z a-z 0-9 - _ . : /`, a limit
    /// or burst is zero, a window is shorter than 1 ms (or than one nanosecond per request
    /// for GCRA) or longer than half of [`MAX_TTL`] (50 years), or the prune interval is zero.
    pub fn build(self) -> Result<RateLimiter<S>> {
        if self.policies.is_empty() {
            return Err(KvError::invalid_input(
                "a rate limiter needs at least one policy",
            ));
        }
        if self.prune_interval.is_zero() {
            return Err(KvError::invalid_input("prune_interval must be positive"));
        }
        for (i, p) in self.policies.iter().enumerate() {
            let name = &*p.name;
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
            if !valid_name {
                return Err(KvError::invalid_input(format!(
                    "policy name {name:?} must be 1 to 64 characters of A-Z a-z 0-9 - _ . : /"
                )));
            }
            if self.policies[..i].iter().any(|q| q.name == p.name) {
                return Err(KvError::invalid_input(format!(
                    "two policies are named {name:?}"
                )));
            }
            if p.limit == 0 || p.burst == Some(0) {
                return Err(KvError::invalid_input(format!(
                    "policy {name:?}: limit and burst must be positive"
                )));
            }
            // A sliding-window counter lives two windows: both must fit in a TTL.
            if p.window < Duration::from_millis(1) || p.window > MAX_TTL / 2 {
                return Err(KvError::invalid_input(format!(
                    "policy {name:?}: window must be 1 ms to 50 years"
                )));
            }
        }
        let mut policies = Vec::with_capacity(self.policies.len());
        for policy in self.policies {
            let gcra = match policy.algorithm {
                Algorithm::Gcra => {
                    Some(Gcra::new(&policy, self.clock.clone()).ok_or_else(|| {
                        KvError::invalid_input(format!(
                            "policy {:?}: window too short for its limit",
                            policy.name
                        ))
                    })?)
                }
                _ => None,
            };
            policies.push((policy, gcra));
        }
        let any_gcra = policies.iter().any(|(_, g)| g.is_some());
        let any_store_policy = policies.iter().any(|(_, g)| g.is_none());
        // GCRA advertises its rate (`limit` per `window`), not its burst.
        let policy_header = decision::policy_value(
            policies
                .iter()
                .map(|(p, _)| (&*p.name, u64::from(p.limit), p.window)),
        );
        let inner = Arc::new(Inner {
            store: self.store,
            policies,
            prefix: self.prefix,
            failure: self.failure,
            shadow: self.shadow,
            bypass: self.bypass,
            cost: self.cost,
            headers: self.headers,
            clock: self.clock,
            janitor: Janitor::default(),
            any_store_policy,
            policy_header,
        });
        if any_gcra {
            Janitor::start(
                &inner,
                |i| &i.janitor,
                "kv-ratelimit-prune",
                self.prune_interval,
                prune::<S>,
            );
        }
        Ok(RateLimiter { inner })
    }
}

fn prune<S>(inner: &Inner<S>) {
    for gcra in inner.policies.iter().filter_map(|(_, g)| g.as_ref()) {
        gcra.prune();
    }
}

#[cfg(test)]
mod tests;
