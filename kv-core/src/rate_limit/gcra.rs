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

/// `governor`'s view of our clock: time since the Unix epoch.
#[derive(Debug, Clone)]
pub(crate) struct GovClock(pub(crate) ClockHandle);

impl governor::clock::Clock for GovClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.0.now_since_epoch()
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
        let n = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        let full = self.period * self.burst;
        let (remaining, reset_after, retry_after) = match self.limiter.check_key_n(key, n) {
            Ok(Ok(snapshot)) => {
                let remaining = snapshot.remaining_burst_capacity();
                (
                    remaining,
                    self.period * (self.burst - remaining.min(self.burst)),
                    None,
                )
            }
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
                (0, full.max(wait), Some(wait.max(Duration::from_nanos(1))))
            }
            // The cost exceeds the burst: this request can never pass.
            Err(_) => (0, full, Some(PolicyState::NEVER)),
        };
        PolicyState {
            name: policy.name.clone(),
            limit: u64::from(policy.limit),
            window: policy.window,
            remaining: u64::from(remaining),
            reset_after,
            retry_after,
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
