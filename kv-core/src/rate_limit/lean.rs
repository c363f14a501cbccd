//! The shortcut of [`RateLimiter::admit`](super::RateLimiter::admit): one policy, GCRA in
//! process or a window on a store's in-process face, decided without a [`Decision`]
//! when the request is allowed (see [`Inner::lean`] for when it applies).

use std::time::Duration;

use smallvec::SmallVec;

use super::decision::{self, Headers, PolicyState, Verdict};
use super::key::RateKey;
use super::{Count, Inner};
#[cfg(doc)]
use super::{Decision, RateLimiter};
use crate::request::RequestView;
use crate::{Result, Store};

impl<S: Store> Inner<S> {
    /// [`RateLimiter::admit`] in the lean configuration ([`Inner::lean`]): the key, one
    /// `governor` check or one count in the store, and the headers, without the
    /// [`Count`] and the [`Decision`] an allowed request needs nowhere then. A denied one
    /// goes through [`Inner::finish`] like any other. [`Lean::General`] (a preflight, a
    /// request without a key, a store without an in-process face: nothing counted) sends
    /// the request the general way.
    pub(super) fn check_lean(&self, req: &dyn RequestView, headers: &mut Headers) -> Lean {
        let Some((policy, gcra)) = self.policies.first() else {
            return Lean::General;
        };
        // A window policy counts in the store: lean only on its in-process face.
        let local = match gcra {
            Some(_) => None,
            None => match self.store.local() {
                Some(local) => Some(local),
                None => return Lean::General,
            },
        };
        if self.uncounted_preflight(req) {
            return Lean::General;
        }
        let Some(key) = policy.key.extract(req) else {
            return Lean::General;
        };
        let denied = |key: RateKey, states: Result<SmallVec<[PolicyState; 1]>>| {
            let count = Count {
                keys: smallvec::smallvec![key],
                cost: 1,
                applied: Vec::new(),
            };
            Lean::Decided(self.finish(states, &count))
        };
        // GCRA's reset follows from the count left: computed only if a header needs it.
        let (remaining, reset_after) = match (gcra, local) {
            (Some(gcra), _) => match gcra.spend(&key, 1) {
                Ok(remaining) => (u64::from(remaining), None),
                Err(refused) => {
                    return denied(key, Ok(smallvec::smallvec![refused.into_state(policy)]));
                }
            },
            (None, Some(store)) => {
                let now = self.clock.now_millis();
                match self.count_local(store, policy, &key, 1, now) {
                    Ok(state) if state.allowed() => (state.remaining, Some(state.reset_after)),
                    // Denied, or the store failed: `finish` says what that means.
                    other => return denied(key, other.map(|s| smallvec::smallvec![s])),
                }
            }
            (None, None) => return Lean::General,
        };
        #[cfg(feature = "metrics")]
        if let Some(counters) = self.metrics.first() {
            counters.allowed.inc();
        }
        if self.headers.on_allowed && self.headers.ietf {
            // Formatted ahead for a GCRA policy (only then is the table filled).
            let ahead = remaining
                .checked_sub(self.lean_states_from)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| self.lean_states.get(i));
            let state = match ahead {
                Some(value) => value.clone(),
                None => {
                    let reset_after = reset_after.unwrap_or_else(|| {
                        gcra.as_ref().map_or(Duration::ZERO, |g| {
                            g.reset_after(u32::try_from(remaining).unwrap_or(u32::MAX))
                        })
                    });
                    decision::state_value_of(std::iter::once((
                        &*policy.name,
                        remaining,
                        reset_after,
                    )))
                }
            };
            decision::push_ietf(headers, Some(&self.policy_header), state);
        }
        Lean::Allowed
    }
}

/// What [`Inner::check_lean`] made of a request. Passed straight back by
/// [`RateLimiter::admit_into`]: boxing the large variant would cost an allocation per
/// denial to save nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Lean {
    /// Allowed; its headers were appended.
    Allowed,
    /// Denied, or the store failed: the verdict of [`Inner::finish`].
    Decided(Verdict),
    /// Not for the shortcut (a preflight, no key, no in-process face): nothing counted.
    General,
}
