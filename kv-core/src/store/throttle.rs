//! `throttle`: GCRA (the generic cell rate algorithm) kept in the store, so that every
//! process that shares the store shares one budget per key.
//!
//! The Redis twin is redis-cell's `CL.THROTTLE`, written as one Lua script (called by SHA)
//! so that it runs on a stock Redis, Valkey or Redis Cluster. The key holds the
//! *theoretical arrival time* (TAT) of the next request, in microseconds since the Unix
//! epoch, as decimal text (`GET` reads it), with a TTL of the time until the budget is
//! whole again (1 s more when the caller gives the time) — a key that is gone and a key
//! whose TAT has passed mean the same thing.
//!
//! The arithmetic is `governor`'s (0.10), to the microsecond: emission interval `t`,
//! tolerance `tau = t * (burst - 1)`, a request of cost `n` weighs `t * n`. It is written
//! once here ([`step`]) for the in-process backends; the Lua script in `redis.rs` mirrors
//! it line by line, and the differential tests compare both with `governor` itself.

use std::time::Duration;

use crate::{KvError, MAX_TTL, Result};

/// One GCRA decision asked of the store: see [`Store::throttle`](super::Store::throttle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// The emission interval: one request's worth of quota comes back every `interval`
    /// (a limit of `q` per window `w` is `w / q`). Microsecond resolution, at least 1 µs.
    pub interval: Duration,
    /// How many requests may come at once after a quiet time (at least 1).
    pub burst: u32,
    /// The weight of this request (at least 1).
    pub cost: u32,
    /// The time of the decision since the Unix epoch; `None` (the default) uses the
    /// store's own clock — Redis' `TIME`, the memory store's [`Clock`](crate::Clock) — so
    /// that the clocks of the processes sharing the store do not matter.
    pub now: Option<Duration>,
    /// Decide without spending: the reply is what this request would get, and nothing is
    /// written (as redis-cell's quantity 0 reads the state). For reading a key's state.
    pub peek: bool,
}

impl Throttle {
    /// A request of cost 1 against `burst` per `interval`, on the store's clock.
    pub fn new(interval: Duration, burst: u32) -> Self {
        Throttle {
            interval,
            burst,
            cost: 1,
            now: None,
            peek: false,
        }
    }

    /// Asks what this request would get, spending nothing.
    #[must_use]
    pub fn peek(mut self) -> Self {
        self.peek = true;
        self
    }

    /// The weight of the request.
    #[must_use]
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    /// Decides at `now` (since the Unix epoch) instead of at the store's time.
    #[must_use]
    pub fn at(mut self, now: Duration) -> Self {
        self.now = Some(now);
        self
    }
}

/// What the store decided for one [`Throttle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleReply {
    /// Whether the request was admitted (and its cost spent).
    pub allowed: bool,
    /// Requests of cost 1 that would be admitted right after this one.
    pub remaining: u64,
    /// Zero when admitted; else the wait until this request would be admitted (assuming
    /// no other request meanwhile), or [`Duration::MAX`] when its cost exceeds the burst
    /// and no wait admits it.
    pub retry_after: Duration,
    /// The time until the budget is whole again (the key's TTL after this call).
    pub reset_after: Duration,
}

/// A [`Throttle`] checked and in microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// Emission interval.
    pub(crate) t: u64,
    /// Tolerance: `t * (burst - 1)`.
    pub(crate) tau: u64,
    /// The weight beyond the first request: `t * (cost - 1)`.
    pub(crate) extra: u64,
    /// The caller's time, if given.
    pub(crate) now: Option<u64>,
    /// Decide without writing.
    pub(crate) peek: bool,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Checks a request: every backend refuses the same input with `InvalidInput`.
pub(crate) fn params(request: &Throttle) -> Result<Params> {
    let t = micros(request.interval);
    if t == 0 {
        return Err(KvError::invalid_input(
            "throttle interval must be at least 1 µs",
        ));
    }
    if request.burst == 0 || request.cost == 0 {
        return Err(KvError::invalid_input(
            "throttle burst and cost must be positive",
        ));
    }
    // The whole budget must fit in a TTL (and, on Redis, in a Lua number exactly).
    let full = t.checked_mul(u64::from(request.burst));
    if full.is_none_or(|full| full > micros(MAX_TTL)) {
        return Err(KvError::invalid_input(
            "throttle interval × burst is longer than kv_core::MAX_TTL",
        ));
    }
    let now = request.now.map(micros);
    if now.is_some_and(|now| now > micros(MAX_TTL) * 2) {
        return Err(KvError::invalid_input("throttle time is too far ahead"));
    }
    Ok(Params {
        t,
        tau: t * u64::from(request.burst - 1),
        // cost > burst makes this exceed tau (and it is saturated, never wrapped).
        extra: t.saturating_mul(u64::from(request.cost - 1)),
        now,
        peek: request.peek,
    })
}

/// How much longer a key lives than its TAT needs when the decision is made at the
/// caller's time: the store's clock enforces the TTL, and latency or jitter between the
/// two clocks must not drop the state early (a key kept longer changes no decision: a
/// TAT in the past means a whole budget, as no key does).
pub(crate) const CALLER_TIME_SLACK_MS: u64 = 1000;

/// The TTL (ms, rounded up, at least 1) of a key whose TAT is `tat` at `now` (µs); with
/// the caller's time, [`CALLER_TIME_SLACK_MS`] more.
pub(crate) fn ttl_millis(tat: u64, now: u64, caller_time: bool) -> u64 {
    let ttl = tat.saturating_sub(now).div_ceil(1000).max(1);
    if caller_time {
        ttl + CALLER_TIME_SLACK_MS
    } else {
        ttl
    }
}

/// One decision at `now` (µs) over the stored TAT (`None`: no live key). Returns the
/// reply and the TAT to store, `None` when the state is left as it was (a denial).
pub(crate) fn step(p: &Params, now: u64, tat: Option<u64>) -> (ThrottleReply, Option<u64>) {
    let tat = tat.unwrap_or(now);
    let reset = Duration::from_micros(tat.saturating_sub(now));
    if p.extra > p.tau {
        let reply = ThrottleReply {
            allowed: false,
            remaining: 0,
            retry_after: Duration::MAX,
            reset_after: reset,
        };
        return (reply, None);
    }
    let earliest = (tat + p.extra).saturating_sub(p.tau);
    if now < earliest {
        let reply = ThrottleReply {
            allowed: false,
            remaining: 0,
            retry_after: Duration::from_micros(earliest - now),
            reset_after: reset,
        };
        return (reply, None);
    }
    let next = tat.max(now) + p.t + p.extra;
    let remaining = (now + p.tau + p.t).saturating_sub(next).min(p.tau + p.t) / p.t;
    let reply = ThrottleReply {
        allowed: true,
        remaining,
        retry_after: Duration::ZERO,
        reset_after: Duration::from_micros(next - now),
    };
    (reply, (!p.peek).then_some(next))
}

/// The error of a store that does not implement `throttle` (the trait's default).
pub(crate) fn unsupported() -> KvError {
    KvError::backend(std::io::Error::other(
        "this store does not implement `throttle` (GCRA in the store)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(interval_ms: u64, burst: u32, cost: u32) -> Params {
        params(&Throttle::new(Duration::from_millis(interval_ms), burst).cost(cost)).expect("valid")
    }

    #[test]
    fn a_burst_passes_then_one_per_interval() {
        let p = p(100, 3, 1);
        let mut tat = None;
        for left in [2, 1, 0] {
            let (reply, next) = step(&p, 1_000_000, tat);
            assert!(reply.allowed);
            assert_eq!(reply.remaining, left);
            tat = next;
        }
        let (denied, unchanged) = step(&p, 1_000_000, tat);
        assert!(!denied.allowed);
        assert_eq!(unchanged, None);
        assert_eq!(denied.retry_after, Duration::from_millis(100));
        assert_eq!(denied.reset_after, Duration::from_millis(300));
        let (later, _) = step(&p, 1_100_000, tat);
        assert!(later.allowed, "one interval later one request passes");
    }

    #[test]
    fn a_cost_over_the_burst_never_passes_and_bad_input_is_refused() {
        let (reply, next) = step(&p(100, 3, 4), 5, None);
        assert!(!reply.allowed);
        assert_eq!(reply.retry_after, Duration::MAX);
        assert_eq!(next, None);
        for bad in [
            Throttle::new(Duration::ZERO, 1),
            Throttle::new(Duration::from_nanos(999), 1),
            Throttle::new(Duration::from_secs(1), 0),
            Throttle::new(Duration::from_secs(1), 1).cost(0),
            Throttle::new(MAX_TTL, 2),
        ] {
            assert!(
                matches!(params(&bad), Err(KvError::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ttl_is_rounded_up_to_whole_milliseconds() {
        assert_eq!(ttl_millis(1_001, 0, false), 2);
        assert_eq!(ttl_millis(5, 10, false), 1);
        assert_eq!(ttl_millis(5, 10, true), 1 + CALLER_TIME_SLACK_MS);
    }
}
