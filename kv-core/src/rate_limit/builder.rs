//! [`RateLimiterBuilder`]: the limiter's configuration, validated once in `build()`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::decision::{self, HeaderOptions};
use super::gcra::Gcra;
use super::policy::{Algorithm, GcraClock, GcraState, Policy};
use super::{CostFn, Decision, FailureMode, Inner, Predicate, RateLimiter, RejectFn};
use crate::clock::{Clock, ClockHandle};
use crate::janitor::Janitor;
use crate::request::RequestView;
use crate::{ConfigError, MAX_TTL, Store};

/// How many of a GCRA policy's `RateLimit` values a lean limiter formats ahead: those of
/// the top counts left, where a client's bucket sits unless it is bursting (~60 bytes
/// each, 15 KiB at most); a value further down is formatted per request.
pub(super) const LEAN_STATES_MAX: u32 = 256;

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
    reject: Option<RejectFn>,
    preflights: bool,
    expose: bool,
    headers: HeaderOptions,
    clock: ClockHandle,
    gcra_clock: GcraClock,
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
    pub(super) fn new(store: S) -> Self {
        RateLimiterBuilder {
            store,
            policies: Vec::new(),
            prefix: "rl:".to_owned(),
            failure: FailureMode::Open,
            shadow: false,
            bypass: None,
            cost: None,
            reject: None,
            preflights: false,
            expose: false,
            headers: HeaderOptions::default(),
            clock: ClockHandle::System,
            gcra_clock: GcraClock::Store,
            prune_interval: Duration::from_secs(10),
        }
    }

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

    /// A `429` of your own: `reject` turns the decision into the response (status,
    /// headers, body — a JSON error envelope, say). The rate-limit headers (`RateLimit`,
    /// `RateLimit-Policy`, `Retry-After`, `X-RateLimit-*` as configured) are added unless
    /// the answer sets them itself. Only for requests a policy denied; a store failure
    /// (`503`) and a request without a key keep their plain answers.
    pub fn on_reject(
        mut self,
        reject: impl Fn(&Decision) -> crate::Answer + Send + Sync + 'static,
    ) -> Self {
        self.reject = Some(Arc::new(reject));
        self
    }

    /// Whether CORS preflights — `OPTIONS` requests with `Access-Control-Request-Method` —
    /// are limited and counted (default `false`: they pass uncounted, as a bypass, since
    /// a browser sends one before many real requests and cannot read a `429` to it).
    /// Other `OPTIONS` requests are limited as any request. Put the CORS layer *outside*
    /// the rate limiter (added after it), so that a `429` carries the CORS headers a
    /// browser app needs to read it.
    pub fn count_preflights(mut self, count: bool) -> Self {
        self.preflights = count;
        self
    }

    /// Whether the adapters put the [`Decision`] of an allowed request into the request
    /// extensions, for the handler to show the remaining quota (default `false`: it costs
    /// a clone and an insertion per request). Read it with axum's
    /// `Extension<Decision>` or actix's `web::ReqData<Decision>`.
    pub fn decision_in_extensions(mut self, expose: bool) -> Self {
        self.expose = expose;
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

    /// Whose clock a GCRA decision in the store uses (default [`GcraClock::Store`]: the
    /// store's, so that clock skew between replicas does not matter).
    pub fn gcra_clock(mut self, clock: GcraClock) -> Self {
        self.gcra_clock = clock;
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
    /// [`ConfigError`] when there is no policy, two policies share a name, a
    /// name is empty, longer than 64 bytes or not made of `A-Z a-z 0-9 - _ . : /`, a limit
    /// or burst is zero, a window is shorter than 1 ms (or than one nanosecond per request
    /// for GCRA) or longer than half of [`MAX_TTL`] (50 years), or the prune interval is zero.
    pub fn build(self) -> Result<RateLimiter<S>, ConfigError> {
        if self.policies.is_empty() {
            return Err(ConfigError::new(
                "rate limiter",
                "a rate limiter needs at least one policy",
            ));
        }
        if self.prune_interval.is_zero() {
            return Err(ConfigError::new(
                "rate limiter",
                "prune_interval must be positive",
            ));
        }
        for (i, p) in self.policies.iter().enumerate() {
            let name = &*p.name;
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
            if !valid_name {
                return Err(ConfigError::new(
                    "rate limiter",
                    format!(
                        "policy name {name:?} must be 1 to 64 characters of A-Z a-z 0-9 - _ . : /"
                    ),
                ));
            }
            if self.policies[..i].iter().any(|q| q.name == p.name) {
                return Err(ConfigError::new(
                    "rate limiter",
                    format!("two policies are named {name:?}"),
                ));
            }
            if p.limit == 0 || p.burst == Some(0) {
                return Err(ConfigError::new(
                    "rate limiter",
                    format!("policy {name:?}: limit and burst must be positive"),
                ));
            }
            // A sliding-window counter lives two windows: both must fit in a TTL.
            if p.window < Duration::from_millis(1) || p.window > MAX_TTL / 2 {
                return Err(ConfigError::new(
                    "rate limiter",
                    format!("policy {name:?}: window must be 1 ms to 50 years"),
                ));
            }
        }
        // In process on an in-process store, or when asked for; in the store otherwise.
        let local_store = self.store.local().is_some();
        let mut policies = Vec::with_capacity(self.policies.len());
        for policy in self.policies {
            if (policy.quota.is_some() || policy.outcome.is_some())
                && policy.algorithm == Algorithm::Gcra
                && policy.gcra_state == GcraState::InProcess
            {
                return Err(ConfigError::new(
                    "rate limiter",
                    format!(
                        "policy {:?}: a quota per request or counting by outcome needs the GCRA state in the store",
                        policy.name
                    ),
                ));
            }
            if policy.algorithm == Algorithm::Ban
                && (policy.ban_for < Duration::from_millis(1) || policy.ban_for > MAX_TTL)
            {
                return Err(ConfigError::new(
                    "rate limiter",
                    format!("ban {:?}: the ban must last 1 ms to 100 years", policy.name),
                ));
            }
            let in_process = match policy.gcra_state {
                _ if policy.quota.is_some() || policy.outcome.is_some() => false,
                GcraState::InProcess => true,
                GcraState::Store => false,
                _ => local_store,
            };
            let gcra = match policy.algorithm {
                Algorithm::Gcra if !in_process => {
                    let request = super::gcra::throttle(&policy, 1, None);
                    if crate::store::throttle_params_ok(&request).is_err() {
                        return Err(ConfigError::new(
                            "rate limiter",
                            format!(
                                "policy {:?}: window too short for its limit (under 1 µs a request) \
                                 or window × burst / limit longer than MAX_TTL",
                                policy.name
                            ),
                        ));
                    }
                    None
                }
                Algorithm::Gcra => {
                    Some(Gcra::new(&policy, self.clock.clone()).ok_or_else(|| {
                        ConfigError::new(
                            "rate limiter",
                            format!("policy {:?}: window too short for its limit", policy.name),
                        )
                    })?)
                }
                _ => None,
            };
            policies.push((policy, gcra));
        }
        let degraded = match self.failure {
            FailureMode::Local { replicas } => {
                let plain: Vec<Policy> = policies.iter().map(|(p, _)| p.clone()).collect();
                Some(
                    super::degraded::Degraded::new(&plain, replicas, &self.clock).ok_or_else(
                        || {
                            ConfigError::new(
                                "rate limiter",
                                "FailureMode::Local: a policy's local share makes no quota",
                            )
                        },
                    )?,
                )
            }
            _ => None,
        };
        let any_gcra = policies.iter().any(|(_, g)| g.is_some()) || degraded.is_some();
        let dynamic_quota = policies.iter().any(|(p, _)| p.quota.is_some());
        let by_outcome = policies.iter().any(|(p, _)| p.outcome.is_some());
        let any_store_policy = policies.iter().any(|(_, g)| g.is_none());
        // GCRA advertises its rate (`limit` per `window`), not its burst.
        let policy_header = decision::policy_value(
            policies
                .iter()
                .map(|(p, _)| (&*p.name, u64::from(p.limit), p.window)),
        );
        let metrics = policies
            .iter()
            .map(|(p, _)| crate::observe::PolicyCounters::new(Arc::clone(&p.name)))
            .collect();
        // The shortcut of `RateLimiter::admit`: one in-process GCRA or window policy, and
        // nothing that reads an allowed request's `Decision` or changes how it is counted.
        let lean = matches!(&policies[..], [(p, gcra)] if gcra.is_some()
                || matches!(p.algorithm, Algorithm::FixedWindow | Algorithm::SlidingWindow))
            && !dynamic_quota
            && !by_outcome
            && self.bypass.is_none()
            && self.cost.is_none()
            && !self.shadow
            && !self.expose
            && !self.headers.legacy
            && degraded.is_none();
        let (lean_states_from, lean_states) = match &policies[..] {
            [(policy, Some(gcra))] if lean && self.headers.ietf && self.headers.on_allowed => {
                let from = gcra.burst().saturating_sub(LEAN_STATES_MAX - 1);
                let values = (from..=gcra.burst())
                    .map(|left| {
                        let state = (&*policy.name, u64::from(left), gcra.reset_after(left));
                        decision::state_value_of(std::iter::once(state))
                    })
                    .collect();
                (u64::from(from), values)
            }
            _ => (0, Box::default()),
        };
        let inner = Arc::new(Inner {
            store: self.store,
            policies,
            prefix: self.prefix,
            failure: self.failure,
            shadow: self.shadow,
            bypass: self.bypass,
            cost: self.cost,
            reject: self.reject,
            preflights: self.preflights,
            expose: self.expose,
            headers: self.headers,
            clock: self.clock,
            gcra_clock: self.gcra_clock,
            degraded,
            dynamic_quota,
            by_outcome,
            janitor: Janitor::default(),
            any_store_policy,
            policy_header,
            metrics,
            lean,
            lean_states_from,
            lean_states,
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
    if let Some(degraded) = &inner.degraded {
        degraded.prune();
    }
}
