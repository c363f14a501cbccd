//! The window algorithms: which counters a request increments, and the policy state
//! computed from their values. Pure arithmetic over store replies; the facade
//! (`mod.rs`) makes the store calls.
//!
//! - **Fixed window**: one counter per `window`-long slot, `incr_by` with the rest of the
//!   slot and a short linger as TTL ([`LINGER`]).
//! - **Sliding window** (Cloudflare's counter estimate): the current slot's counter plus
//!   the previous slot's, weighted by how much of it still overlaps the sliding window.

use std::time::Duration;

use super::decision::PolicyState;
use super::key::RateKey;
use super::policy::{Algorithm, Policy};
use crate::store::input::parse_redis_int;

/// How long a fixed-window counter outlives its window (at most one window). A request
/// decided just before its window ends can reach the store just after (a queue on a busy
/// connection, a preempted thread): had its counter expired at the window's end, the
/// request would recreate it at 1 and be admitted above the quota (found by the load test
/// over TCP, issue 19: 8 admitted in a window of 5 on Redis). The key names its slot, so
/// no later window ever reads the lingering counter; it only costs memory for a second.
const LINGER: Duration = Duration::from_secs(1);

/// One count against a store: its keys and TTL, then the state computed from the replies.
pub(super) struct Plan {
    pub(super) current_key: String,
    pub(super) previous_key: Option<String>,
    pub(super) ttl: Duration,
    pub(super) cost: i64,
    now: u64,
    window: u64,
    index: u64,
    to_end: Duration,
}

impl Plan {
    /// Gives the current key back as this thread's spare buffer: a count on an
    /// in-process store then allocates no key for it (−90 instructions a request).
    pub(super) fn recycle(self) {
        crate::spare::recycle(self.current_key);
    }

    /// The store keys and TTL of one count of `cost` at `now` (ms) for `key`, the counters
    /// named `<prefix><policy>:<key>:<slot>`.
    pub(super) fn new(prefix: &str, policy: &Policy, key: &RateKey, cost: u32, now: u64) -> Plan {
        let window = u64::try_from(policy.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let index = now / window;
        let end = (index + 1) * window;
        let to_end = Duration::from_millis(end - now);
        // The current key in this thread's spare buffer (given back after the count:
        // [`Plan::recycle`]), the previous one, when sliding, in a new one.
        let store_key = |index: u64, mut out: String| {
            out.reserve(prefix.len() + policy.name.len() + 40);
            out.push_str(prefix);
            out.push_str(&policy.name);
            out.push(':');
            key.write_to(&mut out);
            out.push(':');
            out.push_str(itoa::Buffer::new().format(index));
            out
        };
        let sliding = policy.algorithm == Algorithm::SlidingWindow;
        Plan {
            current_key: store_key(index, crate::spare::take()),
            // The current counter lives two windows when sliding: it is the previous one
            // next time.
            previous_key: sliding.then(|| store_key(index.wrapping_sub(1), String::new())),
            ttl: if sliding {
                to_end + policy.window
            } else {
                to_end + LINGER.min(policy.window)
            },
            cost: i64::from(cost),
            now,
            window,
            index,
            to_end,
        }
    }

    pub(super) fn state(
        &self,
        policy: &Policy,
        current: i64,
        previous: Option<&[u8]>,
    ) -> PolicyState {
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
