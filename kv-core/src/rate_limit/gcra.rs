//! GCRA in process, through `governor`, on our clock; and GCRA in the store: the key,
//! the [`Throttle`] asked and the policy state read from the store's reply.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};

use super::decision::PolicyState;
use super::key::RateKey;
use super::policy::Policy;
use crate::clock::ClockHandle;
use crate::store::{Throttle, ThrottleReply};

/// The store key of a GCRA policy's state: `<prefix><policy>:<key>`.
pub(crate) fn store_key(prefix: &str, policy: &Policy, key: &RateKey) -> String {
    let mut out = String::with_capacity(prefix.len() + policy.name.len() + 24);
    out.push_str(prefix);
    out.push_str(&policy.name);
    out.push(':');
    key.write_to(&mut out);
    out
}

/// The emission interval of a GCRA policy: one request's worth of quota per `interval`.
pub(crate) fn interval(policy: &Policy) -> Duration {
    policy.window / policy.limit
}

/// The store's decision for one request of `cost`, at `now` (the caller's clock) or at
/// the store's time (`None`).
pub(crate) fn throttle(policy: &Policy, cost: u32, now: Option<Duration>) -> Throttle {
    Throttle {
        interval: interval(policy),
        burst: policy.burst_size(),
        cost,
        now,
        peek: false,
    }
}

/// The policy state from the store's reply: the headers and `Retry-After` come from the
/// stored state, as from `governor`'s in process.
pub(crate) fn state_of(policy: &Policy, reply: &ThrottleReply) -> PolicyState {
    PolicyState {
        name: policy.name.clone(),
        limit: u64::from(policy.limit),
        window: policy.window,
        remaining: reply.remaining,
        reset_after: reply.reset_after,
        retry_after: (!reply.allowed).then(|| {
            if reply.retry_after == Duration::MAX {
                PolicyState::NEVER
            } else {
                reply.retry_after.max(Duration::from_nanos(1))
            }
        }),
    }
}

/// `governor`'s view of our clock: [`ClockHandle::monotonic`] (in-process state only
/// measures intervals; a custom clock still drives it, as tests do).
#[derive(Debug, Clone)]
pub(crate) struct GovClock(pub(crate) ClockHandle);

impl governor::clock::Clock for GovClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.0.monotonic()
    }
}

impl governor::clock::ReasonablyRealtime for GovClock {}

type Keyed = RateLimiter<
    RateKey,
    governor::state::keyed::DashMapStateStore<RateKey, foldhash::fast::RandomState>,
    GovClock,
    StateInformationMiddleware,
>;

pub(crate) struct Gcra {
    limiter: Keyed,
    clock: GovClock,
    period: Duration,
    burst: u32,
}

impl Gcra {
    /// `None` when the policy's numbers make no GCRA quota (validated before).
    pub(crate) fn new(policy: &Policy, clock: ClockHandle) -> Option<Gcra> {
        let period = policy.window / policy.limit;
        let burst = policy.burst_size();
        let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?);
        let clock = GovClock(clock);
        let limiter = RateLimiter::dashmap_with_clock_and_hasher(
            quota,
            clock.clone(),
            foldhash::fast::RandomState::default(),
        )
        .with_middleware::<StateInformationMiddleware>();
        Some(Gcra {
            limiter,
            clock,
            period,
            burst,
        })
    }

    pub(crate) fn check(&self, policy: &Policy, key: &RateKey, cost: u32) -> PolicyState {
        match self.spend(key, cost) {
            Ok(remaining) => self.allowed_state(policy, remaining),
            Err(state) => state.into_state(policy),
        }
    }

    /// Spends `cost` of `key`'s budget: `Ok` with the burst capacity left, or `Err` with
    /// why not (nothing is spent then).
    pub(crate) fn spend(&self, key: &RateKey, cost: u32) -> Result<u32, Denied> {
        let n = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        // Only a denial needs the full period (computed there: an allowed request is the
        // hot path).
        let full = || self.period * self.burst;
        match self.limiter.check_key_n(key, n) {
            Ok(Ok(snapshot)) => Ok(snapshot.remaining_burst_capacity()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
                Err(Denied {
                    reset_after: full().max(wait),
                    retry_after: wait.max(Duration::from_nanos(1)),
                })
            }
            // The cost exceeds the burst: this request can never pass.
            Err(_) => Err(Denied {
                reset_after: full(),
                retry_after: PolicyState::NEVER,
            }),
        }
    }

    /// The burst: the most that `spend` ever reports left.
    pub(crate) fn burst(&self) -> u32 {
        self.burst
    }

    /// When the budget is whole again, with `remaining` of the burst left.
    pub(crate) fn reset_after(&self, remaining: u32) -> Duration {
        self.period * (self.burst - remaining.min(self.burst))
    }

    fn allowed_state(&self, policy: &Policy, remaining: u32) -> PolicyState {
        PolicyState {
            name: policy.name.clone(),
            limit: u64::from(policy.limit),
            window: policy.window,
            remaining: u64::from(remaining),
            reset_after: self.reset_after(remaining),
            retry_after: None,
        }
    }

    pub(crate) fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    pub(crate) fn len(&self) -> usize {
        self.limiter.len()
    }
}

/// A request GCRA refused: when the budget is whole again, and when the next request of
/// the same cost would pass ([`PolicyState::NEVER`]: never).
pub(crate) struct Denied {
    reset_after: Duration,
    retry_after: Duration,
}

impl Denied {
    pub(crate) fn into_state(self, policy: &Policy) -> PolicyState {
        PolicyState {
            name: policy.name.clone(),
            limit: u64::from(policy.limit),
            window: policy.window,
            remaining: 0,
            reset_after: self.reset_after,
            retry_after: Some(self.retry_after),
        }
    }
}
