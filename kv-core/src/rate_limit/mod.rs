//! Rate limiting: INCR-based fixed and sliding windows and GCRA over any [`Store`] —
//! decided once here, for every adapter.
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
//!   (see below). The window algorithms count every request, denied
//!   ones included, so a client that keeps hammering stays limited; GCRA (as `governor`
//!   does) only spends quota on admitted requests. With several policies, a request denied
//!   by one is still counted by the others.
//! - **GCRA's state**: in the store when the store is shared — one atomic
//!   [`Store::throttle`] per decision (one Lua script on Redis), so every replica spends
//!   one budget; the key carries a TTL and `Retry-After` and the `RateLimit` fields come
//!   from the stored state. In process through `governor` when the store is in process
//!   anyway (a [`LocalStore`] face), or when a policy asks for it
//!   ([`GcraState::InProcess`]: then each replica has its own budget). The decision in
//!   the store is made on the store's clock (Redis `TIME`) unless
//!   [`GcraClock::Caller`] is chosen; see there for what clock skew does then.
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
//!   limiter outage does not become a site outage), [`FailureMode::Closed`] (`503`), or
//!   [`FailureMode::Local`] (degraded mode: a local share of each quota while the store is
//!   unreachable, the outage logged once).
//! - **Memory**: counters always carry a TTL (the window), so the store reclaims them; the
//!   in-process GCRA state is pruned by a background thread (`retain_recent` every
//!   [`prune_interval`](RateLimiterBuilder::prune_interval)) that ends with the limiter.

//! # Where things are
//! `mod.rs` (this facade: [`RateLimiter::check`]), `builder.rs` (configuration and its
//! validation), `policy.rs` ([`Policy`], [`GcraState`], [`GcraClock`]), `quota.rs`
//! ([`Quota`] per request), `window.rs` (the fixed- and sliding-window arithmetic),
//! `gcra.rs` (GCRA through `governor`, and the key, request and state of GCRA in the
//! store), `lean.rs` (the shortcut of [`RateLimiter::admit`]), `ban.rs` (bans), `outcome.rs` (charging after the handler, ban / unban),
//! `manage.rs` (the key API, [`LimitKey`]), `degraded.rs` ([`FailureMode`], degraded
//! mode), `decision.rs` (the [`Verdict`] and its headers), `key.rs` ([`KeySource`]),
//! `forwarded.rs` (the `Forwarded` parser and the CDN headers). A new algorithm is a
//! variant of [`Algorithm`] and its arithmetic beside `window.rs` (a store-backed one:
//! the keys a request touches in `Plan::new`, the state from the replies in
//! `Plan::state`) or beside `gcra.rs` (an in-process one, chosen in `builder.rs`); see
//! `CONTRIBUTING.md`. The details for users: `docs/rate-limiting.md`.

mod ban;
mod builder;
pub(crate) mod decision;
mod degraded;
pub(crate) mod forwarded;
mod gcra;
pub(crate) mod key;
mod lean;
mod manage;
mod observed;
mod outcome;
#[cfg(feature = "test-util")]
mod parse;
mod policy;
mod quota;
mod window;

use std::fmt;
use std::sync::Arc;

use futures_util::future::try_join_all;
use http::StatusCode;
use smallvec::SmallVec;

pub use builder::RateLimiterBuilder;
pub use decision::{Decision, HeaderOptions, Headers, PolicyState, RejectBody, Verdict};
pub use degraded::FailureMode;
/// CIDR networks, for [`KeySource::client_ip`]'s trusted proxies (re-exported from `ipnet`).
pub use ipnet::IpNet;
use key::RateKey;
pub use key::{ForwardedHeader, KeySource, MissingKey};
pub use manage::LimitKey;
pub use outcome::ChargeAfter;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use parse::parse_rate_limit_header;
pub use policy::{Algorithm, GcraClock, GcraState, Policy};
pub use quota::Quota;

use crate::clock::ClockHandle;
use crate::janitor::Janitor;
use crate::request::RequestView;
use crate::{KvError, LocalStore, Result, Store};
use gcra::Gcra;
use window::Plan;

type Predicate = Arc<dyn Fn(&dyn RequestView) -> bool + Send + Sync>;
type CostFn = Arc<dyn Fn(&dyn RequestView) -> u32 + Send + Sync>;
type RejectFn = Arc<dyn Fn(&Decision) -> crate::Answer + Send + Sync>;

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
    reject: Option<RejectFn>,
    preflights: bool,
    expose: bool,
    headers: HeaderOptions,
    clock: ClockHandle,
    gcra_clock: GcraClock,
    degraded: Option<degraded::Degraded>,
    /// Some policy resolves its quota per request: `RateLimit-Policy` is then per request.
    dynamic_quota: bool,
    /// Some policy is counted after the handler: allowed decisions carry a ticket.
    by_outcome: bool,
    janitor: Janitor,
    any_store_policy: bool,
    /// The `RateLimit-Policy` value: constant, so computed once.
    policy_header: http::HeaderValue,
    /// Per policy (bans included), its decision counters (feature `metrics`).
    metrics: Vec<crate::observe::PolicyCounters>,
    /// One policy — GCRA in process, or a window counted in a store with an in-process
    /// face — and no bypass, cost, quota function, counting by outcome, shadow mode,
    /// exposed decision, legacy headers or degraded mode: [`Inner::check_lean`] then
    /// answers [`RateLimiter::admit`].
    lean: bool,
    /// A lean GCRA policy's `RateLimit` values for the burst left from `lean_states_from`
    /// up (the top [`builder::LEAN_STATES_MAX`]; else empty): its reset follows from the
    /// burst left alone, so each value is formatted once, not per request.
    lean_states: Box<[http::HeaderValue]>,
    lean_states_from: u64,
}

/// The keys and cost of one request, read from it before anything is counted.
struct Count {
    keys: SmallVec<[RateKey; 1]>,
    cost: u32,
    /// Per policy, the quota resolved for this request (`None`: the configured one).
    applied: Vec<Option<Policy>>,
}

impl Count {
    /// The policy as it applies to this request (its quota resolved).
    fn policy<'a>(&'a self, i: usize, configured: &'a Policy) -> &'a Policy {
        self.applied
            .get(i)
            .and_then(Option::as_ref)
            .unwrap_or(configured)
    }
}

impl<S: Store> RateLimiter<S> {
    /// A builder over `store`.
    pub fn builder(store: S) -> RateLimiterBuilder<S> {
        RateLimiterBuilder::new(store)
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

    /// How many store outages degraded mode ([`FailureMode::Local`]) went through (0 in
    /// the other modes).
    pub fn outages(&self) -> u64 {
        self.inner
            .degraded
            .as_ref()
            .map_or(0, degraded::Degraded::outages)
    }

    /// Whether the adapters put the [`Decision`] of an allowed request into the request
    /// extensions for the handler ([`RateLimiterBuilder::decision_in_extensions`]).
    pub fn decision_in_extensions(&self) -> bool {
        self.inner.expose
    }

    /// The `RateLimit-Policy` value this limiter's verdicts carry, when it is the same for
    /// every request (the IETF fields on, and no policy resolving its quota per request).
    /// For adapters whose framework has header types of its own: they convert it once.
    pub fn policy_header(&self) -> Option<&http::HeaderValue> {
        (self.inner.headers.ietf && !self.inner.dynamic_quota).then_some(&self.inner.policy_header)
    }

    /// Whether this limiter's allowed requests send `RateLimit` values formatted ahead
    /// (one lean GCRA policy): the same value comes back for every request at the same
    /// count left, so an adapter that converts it may keep the last conversion.
    pub fn repeats_state_values(&self) -> bool {
        !self.inner.lean_states.is_empty()
    }

    /// The store the counters live in.
    pub fn store(&self) -> &S {
        &self.inner.store
    }
}

impl<S: Store> Inner<S> {
    /// Bypass, keys and cost: everything read from the request. `Err` is the verdict of
    /// a request that is not counted (bypassed, or without a key).
    fn count_of(&self, req: &dyn RequestView) -> std::result::Result<Count, Box<Verdict>> {
        if self.uncounted_preflight(req) || self.bypass.as_ref().is_some_and(|bypass| bypass(req)) {
            return Err(Box::new(Verdict::Allow {
                headers: Headers::new(),
                decision: None,
            }));
        }
        let mut keys: SmallVec<[RateKey; 1]> = SmallVec::with_capacity(self.policies.len());
        for (policy, _) in &self.policies {
            match policy.key.extract(req) {
                Some(key) => keys.push(key),
                None => match policy.missing_key() {
                    MissingKey::UseKey(key) => {
                        keys.push(RateKey::Text(compact_str::CompactString::from(key)))
                    }
                    MissingKey::Reject(status) => {
                        tracing::debug!(policy = &*policy.name, %status, "rate limit: request has no key");
                        return Err(Box::new(Verdict::plain(
                            status,
                            decision::missing_key_text(status),
                        )));
                    }
                },
            }
        }
        let cost = self.cost.as_ref().map_or(1, |cost| cost(req)).max(1);
        let mut applied: Vec<Option<Policy>> = Vec::new();
        if self.dynamic_quota {
            for ((policy, _), key) in self.policies.iter().zip(keys.iter()) {
                applied.push(policy.applied(req, &key.to_string()));
            }
        }
        Ok(Count {
            keys,
            cost,
            applied,
        })
    }

    /// A CORS preflight, passed uncounted unless the limiter counts them.
    fn uncounted_preflight(&self, req: &dyn RequestView) -> bool {
        !self.preflights
            && req.method() == http::Method::OPTIONS
            && req
                .header(&http::header::ACCESS_CONTROL_REQUEST_METHOD)
                .is_some()
    }

    /// The verdict without waiting, when every policy is in process (`governor`) or the store
    /// has a [`LocalStore`] face; `None` when the store must be awaited.
    fn decide_now(&self, count: &Count) -> Option<Verdict> {
        let local = if self.any_store_policy {
            Some(self.store.local()?)
        } else {
            None
        };
        // The clock only matters to the window algorithms (GCRA reads its own or the store's).
        let now = if local.is_some() {
            self.clock.now_millis()
        } else {
            0
        };
        let states: Result<SmallVec<[PolicyState; 1]>> = self
            .policies
            .iter()
            .zip(&count.keys)
            .enumerate()
            .map(|(i, ((policy, gcra), key))| (count.policy(i, policy), gcra, key))
            .map(|(policy, gcra, key)| match (gcra, local) {
                (Some(gcra), _) => Ok(gcra.check(policy, key, count.cost)),
                (None, Some(store)) => self.count_local(store, policy, key, count.cost, now),
                // Not reached: `local` is set whenever a policy is store-backed.
                (None, None) => Err(KvError::invalid_input(
                    "a store-backed policy needs a store",
                )),
            })
            .collect();
        Some(self.finish(states, count))
    }

    async fn decide(&self, count: Count) -> Verdict {
        let now = self.clock.now_millis();
        let cost = count.cost;
        if let ([(policy, gcra)], [key]) = (&self.policies[..], &count.keys[..]) {
            // One policy: no join (and no vector of futures) needed.
            let policy = count.policy(0, policy);
            let state = self
                .count_policy(policy, gcra.as_ref(), key, cost, now)
                .await;
            return self.finish(state.map(|s| smallvec::smallvec![s]), &count);
        }
        let counted =
            self.policies
                .iter()
                .zip(&count.keys)
                .enumerate()
                .map(|(i, ((policy, gcra), key))| {
                    self.count_policy(count.policy(i, policy), gcra.as_ref(), key, cost, now)
                });
        // Every store call at once: one round trip on a multiplexed connection.
        let states = try_join_all(counted).await.map(SmallVec::from_vec);
        self.finish(states, &count)
    }

    /// One policy's state: GCRA in process (`governor`), or through the store.
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

    /// Counts one request against one store-backed policy; a policy counted by outcome
    /// is only read here (and charged after the handler).
    async fn count(
        &self,
        policy: &Policy,
        key: &RateKey,
        cost: u32,
        now: u64,
    ) -> Result<PolicyState> {
        if policy.outcome.is_some() {
            return self.peek(policy, key, cost, now).await;
        }
        self.spend(policy, key, cost, now).await
    }

    /// Spends `cost` of one store-backed policy.
    async fn spend(
        &self,
        policy: &Policy,
        key: &RateKey,
        cost: u32,
        now: u64,
    ) -> Result<PolicyState> {
        if policy.algorithm == Algorithm::Gcra {
            let store_key = gcra::store_key(&self.prefix, policy, key);
            let reply = self
                .store
                .throttle(&store_key, gcra::throttle(policy, cost, self.gcra_now()))
                .await?;
            return Ok(gcra::state_of(policy, &reply));
        }
        let plan = Plan::new(&self.prefix, policy, key, cost, now);
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
        let state = plan.state(policy, current, previous.as_deref());
        plan.recycle();
        Ok(state)
    }

    /// [`count`](Inner::count) through the store's in-process face.
    #[inline]
    fn count_local(
        &self,
        store: &dyn LocalStore,
        policy: &Policy,
        key: &RateKey,
        cost: u32,
        now: u64,
    ) -> Result<PolicyState> {
        if policy.outcome.is_some() {
            return self.peek_local(store, policy, key, cost, now);
        }
        self.spend_local(store, policy, key, cost, now)
    }

    /// [`spend`](Inner::spend) through the store's in-process face.
    #[inline]
    fn spend_local(
        &self,
        store: &dyn LocalStore,
        policy: &Policy,
        key: &RateKey,
        cost: u32,
        now: u64,
    ) -> Result<PolicyState> {
        if policy.algorithm == Algorithm::Gcra {
            let store_key = gcra::store_key(&self.prefix, policy, key);
            let reply =
                store.throttle(&store_key, gcra::throttle(policy, cost, self.gcra_now()))?;
            return Ok(gcra::state_of(policy, &reply));
        }
        let plan = Plan::new(&self.prefix, policy, key, cost, now);
        let current = store.incr_by(&plan.current_key, plan.cost, Some(plan.ttl))?;
        let previous = match &plan.previous_key {
            Some(previous_key) => store.get(previous_key)?,
            None => None,
        };
        let state = plan.state(policy, current, previous.as_deref());
        plan.recycle();
        Ok(state)
    }

    /// The time a GCRA decision in the store is made at: the store's (`None`) unless the
    /// limiter was asked to use its own clock.
    fn gcra_now(&self) -> Option<std::time::Duration> {
        match self.gcra_clock {
            GcraClock::Store => None,
            GcraClock::Caller => Some(self.clock.now_since_epoch()),
        }
    }

    fn finish(&self, states: Result<SmallVec<[PolicyState; 1]>>, count: &Count) -> Verdict {
        let degraded_now = states.is_err();
        let policies = match (states, &self.degraded) {
            (Ok(states), degraded) => {
                if let Some(degraded) = degraded {
                    degraded.store_answered();
                }
                states
            }
            (Err(err), Some(degraded)) => degraded.decide(&err, &count.keys, count.cost),
            (Err(err), None) => return self.store_failed(&err),
        };
        let ticket = if self.by_outcome && !degraded_now {
            decision::Ticket(Some(Arc::new(decision::TicketData {
                keys: count.keys.clone(),
                cost: count.cost,
                applied: count.applied.clone(),
            })))
        } else {
            decision::Ticket::default()
        };
        let decision = Decision {
            policies,
            ticket,
            shadow: self.shadow,
        };
        #[cfg(feature = "metrics")]
        self.count_decision(&decision);
        if decision.allowed() {
            if decision.exceeded() {
                let policy = decision.denied_by().map_or("", |p| &*p.name);
                tracing::info!(policy, "rate limit exceeded (shadow mode: not enforced)");
            }
            let headers = if self.headers.on_allowed && (self.headers.ietf || self.headers.legacy) {
                if self.dynamic_quota {
                    decision.headers(&self.headers)
                } else {
                    decision.headers_with(&self.headers, Some(&self.policy_header))
                }
            } else {
                Headers::new()
            };
            Verdict::Allow {
                headers,
                decision: Some(decision),
            }
        } else {
            let policy = decision.denied_by().map_or("", |p| &*p.name);
            tracing::debug!(policy, "rate limit exceeded: request refused");
            let verdict = if self.dynamic_quota {
                let policy = decision.policy_header();
                decision.reject(&self.headers, Some(&policy))
            } else {
                decision.reject(&self.headers, Some(&self.policy_header))
            };
            match (&self.reject, verdict) {
                (
                    Some(reject),
                    Verdict::Reject {
                        answer,
                        decision: Some(decision),
                    },
                ) => Verdict::Reject {
                    answer: decision::custom_rejection(reject(&decision), answer),
                    decision: Some(decision),
                },
                (_, verdict) => verdict,
            }
        }
    }

    fn store_failed(&self, err: &KvError) -> Verdict {
        for m in &self.metrics {
            m.error.inc();
        }
        match self.failure {
            // `Local` is handled by `finish` (a limiter in that mode has `degraded`).
            FailureMode::Open | FailureMode::Local { .. } => {
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

#[cfg(test)]
mod tests;
