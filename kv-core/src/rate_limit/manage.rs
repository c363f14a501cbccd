//! The key API: check, consume, read, reset — by key, without a request (a handler that
//! resets the login limit after a good password, an admin tool, a background job).

use std::net::IpAddr;

use compact_str::{CompactString, format_compact};
use futures_util::future::try_join_all;
use smallvec::SmallVec;

use super::decision::{Decision, PolicyState};
use super::key::RateKey;
use super::policy::{Algorithm, Policy};
use super::window::Plan;
use super::{Inner, RateLimiter, gcra};
use crate::{Result, Store};

/// Whom a key-API call is about: the key a request would have, built the way its
/// [`KeySource`](super::KeySource) builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitKey(pub(crate) RateKey);

impl LimitKey {
    /// An IP address, as [`KeySource::peer_ip`](super::KeySource::peer_ip) and
    /// [`client_ip`](super::KeySource::client_ip) key it (IPv6 grouped by its /64).
    pub fn ip(ip: IpAddr) -> Self {
        LimitKey(super::key::ip_key(ip, 64))
    }

    /// A header value, as [`KeySource::header`](super::KeySource::header) keys it.
    pub fn header(value: &str) -> Self {
        LimitKey(RateKey::Text(format_compact!("h:{value}")))
    }

    /// A value of [`KeySource::custom`](super::KeySource::custom) or
    /// [`KeySource::extension`](super::KeySource::extension) (a user id, say).
    pub fn custom(value: &str) -> Self {
        LimitKey(RateKey::Text(format_compact!("x:{value}")))
    }

    /// The key of [`KeySource::global`](super::KeySource::global).
    pub fn global() -> Self {
        LimitKey(RateKey::Text(CompactString::const_new("global")))
    }
}

/// The key API. Every call applies to every policy of the limiter, under this key, and
/// reports store failures as errors (the failure mode is for requests). A GCRA policy
/// whose state is in process ([`GcraState::InProcess`](super::GcraState::InProcess), or
/// `Auto` on an in-process store) is counted by [`consume`](RateLimiter::consume) but
/// not seen by the other calls (`governor` keeps no readable, resettable state per key):
/// choose [`GcraState::Store`](super::GcraState::Store) for a policy you manage by key.
impl<S: Store> RateLimiter<S> {
    /// Counts `cost` against `key` on every policy — also on those counted by outcome
    /// (this is the charge); a ban is only read (strikes come from responses, or use
    /// [`ban`](RateLimiter::ban)).
    ///
    /// # Errors
    /// The store's error.
    pub async fn consume(&self, key: &LimitKey, cost: u32) -> Result<Decision> {
        let inner = &*self.inner;
        let now = inner.clock.now_millis();
        let cost = cost.max(1);
        let states = try_join_all(inner.policies.iter().map(|(policy, gcra)| async move {
            match (gcra, policy.algorithm) {
                (Some(gcra), _) => Ok(gcra.check(policy, &key.0, cost)),
                (None, Algorithm::Ban) => inner.peek(policy, &key.0, cost, now).await,
                (None, _) => inner.spend(policy, &key.0, cost, now).await,
            }
        }))
        .await?;
        Ok(inner.decision(SmallVec::from_vec(states)))
    }

    /// What a request of `cost` would get under `key` now, spending nothing: whether it
    /// would pass, and the remaining quota after it.
    ///
    /// # Errors
    /// The store's error.
    pub async fn check_key(&self, key: &LimitKey, cost: u32) -> Result<Decision> {
        let inner = &*self.inner;
        let now = inner.clock.now_millis();
        let cost = cost.max(1);
        let states = try_join_all(
            inner
                .policies
                .iter()
                .filter(|(_, gcra)| gcra.is_none())
                .map(|(policy, _)| inner.peek(policy, &key.0, cost, now)),
        )
        .await?;
        Ok(inner.decision(SmallVec::from_vec(states)))
    }

    /// The state of `key` now: the quota left and, when nothing is left, the wait until
    /// a request would pass.
    ///
    /// # Errors
    /// The store's error.
    pub async fn state(&self, key: &LimitKey) -> Result<Decision> {
        let mut decision = self.check_key(key, 1).await?;
        let store_held = self.inner.policies.iter().filter(|(_, g)| g.is_none());
        for (p, (policy, _)) in decision.policies.iter_mut().zip(store_held) {
            // Before the hypothetical request, not after it (a ban reads as it is).
            if p.allowed() && policy.algorithm != Algorithm::Ban {
                p.remaining += 1;
            }
        }
        Ok(decision)
    }

    /// Forgets every count of `key` (after a successful password, say): its next request
    /// has the whole quota; bans are lifted and strikes forgotten.
    ///
    /// # Errors
    /// The store's error.
    pub async fn reset(&self, key: &LimitKey) -> Result<()> {
        let inner = &*self.inner;
        let now = inner.clock.now_millis();
        let mut keys = Vec::new();
        for (policy, gcra) in &inner.policies {
            match (policy.algorithm, gcra) {
                (_, Some(_)) => {}
                (Algorithm::Gcra, None) => {
                    keys.push(gcra::store_key(&inner.prefix, policy, &key.0))
                }
                (Algorithm::Ban, None) => {
                    let (strikes, ban) = super::ban::keys(&inner.prefix, policy, &key.0);
                    keys.extend([strikes, ban]);
                }
                _ => {
                    let plan = Plan::new(&inner.prefix, policy, &key.0, 1, now);
                    keys.extend(plan.previous_key);
                    keys.push(plan.current_key);
                }
            }
        }
        try_join_all(keys.iter().map(|k| inner.store.del(k))).await?;
        Ok(())
    }
}

impl<S: Store> Inner<S> {
    fn decision(&self, policies: SmallVec<[PolicyState; 1]>) -> Decision {
        Decision {
            policies,
            shadow: false,
            ticket: super::decision::Ticket::default(),
        }
    }

    /// One store-held policy's state for a request of `cost`, writing nothing.
    pub(crate) async fn peek(
        &self,
        policy: &Policy,
        key: &RateKey,
        cost: u32,
        now: u64,
    ) -> Result<PolicyState> {
        if policy.algorithm == Algorithm::Ban {
            return super::ban::read(&self.store, &self.prefix, policy, key).await;
        }
        if policy.algorithm == Algorithm::Gcra {
            let store_key = gcra::store_key(&self.prefix, policy, key);
            let request = gcra::throttle(policy, cost, self.gcra_now()).peek();
            let reply = self.store.throttle(&store_key, request).await?;
            let mut state = gcra::state_of(policy, &reply);
            state.remaining = state.remaining.min(u64::from(policy.burst_size()));
            return Ok(state);
        }
        let plan = Plan::new(&self.prefix, policy, key, cost, now);
        let current = match self.store.get(&plan.current_key).await? {
            Some(v) => crate::store::input::parse_redis_int(&v).unwrap_or(0),
            None => 0,
        };
        let previous = match &plan.previous_key {
            Some(k) => self.store.get(k).await?,
            None => None,
        };
        Ok(plan.state(policy, current + plan.cost, previous.as_deref()))
    }
}
