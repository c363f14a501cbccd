//! Counting by outcome: policies charged after the handler ([`Policy::count_if`] and
//! bans), and the key API's `ban` / `unban`.
//!
//! [`Policy::count_if`]: super::Policy::count_if

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use smallvec::SmallVec;

use super::decision::{Decision, PolicyState, TicketData as Ticket};
use super::key::RateKey;
use super::manage::LimitKey;
use super::policy::{Algorithm, Policy};
use super::window::Plan;
use super::{Inner, RateLimiter, ban, gcra};
use crate::{KvError, LocalStore, Result, Step, StepFuture, Store};

/// The charge an adapter makes once the response's status is known (see
/// [`RateLimiter::charge_after`]).
pub type ChargeAfter = Box<dyn FnOnce(StatusCode) -> Step<(), StepFuture<()>> + Send>;

impl<S: Store> RateLimiter<S> {
    /// For an allowed request's `decision`: the charge to make with the response's status
    /// ([`after_response`](Self::after_response) bound to this limiter and decision), or
    /// `None` when no policy counts by outcome. The adapters call it after the handler.
    pub fn charge_after(&self, decision: &Decision) -> Option<ChargeAfter> {
        decision.charges_after().then(|| {
            let (limiter, decision) = (self.clone(), decision.clone());
            Box::new(move |status| limiter.after_response(&decision, status)) as ChargeAfter
        })
    }
}

impl<S: Store> RateLimiter<S> {
    /// Charges the policies counted by outcome ([`Policy::count_if`](super::Policy::count_if),
    /// bans) for a response of `status` to the request `decision` was made for. The
    /// adapters call it after the handler; [`Step::Ready`] on an in-process store.
    /// Store failures are logged, not returned (the response is already made).
    pub fn after_response(
        &self,
        decision: &Decision,
        status: StatusCode,
    ) -> Step<(), StepFuture<()>> {
        let Some(ticket) = decision.ticket.0.clone() else {
            return Step::Ready(());
        };
        let inner = &self.inner;
        let due: SmallVec<[usize; 2]> = inner
            .policies
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| p.outcome.as_ref().is_some_and(|o| (o.0)(status)))
            .map(|(i, _)| i)
            .collect();
        if due.is_empty() {
            return Step::Ready(());
        }
        if let Some(local) = inner.store.local() {
            for i in due {
                if let Err(err) = inner.charge_local(local, &ticket, i) {
                    tracing::warn!(error = %err, "rate limit: charging after the response failed");
                }
            }
            return Step::Ready(());
        }
        let inner = Arc::clone(&self.inner);
        Step::Pending(Box::pin(async move {
            let charges = due.iter().map(|&i| inner.charge(&ticket, i));
            if let Err(err) = futures_util::future::try_join_all(charges).await {
                tracing::warn!(error = %err, "rate limit: charging after the response failed");
            }
        }))
    }

    /// Bans `key` for `duration` on every ban policy of the limiter.
    ///
    /// # Errors
    /// The store's error; [`KvError::InvalidInput`] when the limiter has no ban policy.
    pub async fn ban(&self, key: &LimitKey, duration: Duration) -> Result<()> {
        let inner = &*self.inner;
        let bans = inner.bans().collect::<Vec<_>>();
        if bans.is_empty() {
            return Err(KvError::invalid_input(
                "this rate limiter has no ban policy",
            ));
        }
        for policy in bans {
            let (strikes, banned) = ban::keys(&inner.prefix, policy, &key.0);
            ban::impose(&inner.store, &strikes, &banned, duration).await?;
        }
        Ok(())
    }

    /// Lifts the bans of `key` and forgets its strikes.
    ///
    /// # Errors
    /// The store's error.
    pub async fn unban(&self, key: &LimitKey) -> Result<()> {
        let inner = &*self.inner;
        for policy in inner.bans() {
            let (strikes, banned) = ban::keys(&inner.prefix, policy, &key.0);
            futures_util::future::try_join(inner.store.del(&strikes), inner.store.del(&banned))
                .await?;
        }
        Ok(())
    }
}

impl<S: Store> Inner<S> {
    fn bans(&self) -> impl Iterator<Item = &Policy> {
        self.policies
            .iter()
            .map(|(p, _)| p)
            .filter(|p| p.algorithm == Algorithm::Ban)
    }

    fn ticket_policy<'a>(&'a self, ticket: &'a Ticket, i: usize) -> (&'a Policy, &'a RateKey) {
        let configured = &self.policies[i].0;
        let policy = ticket
            .applied
            .get(i)
            .and_then(Option::as_ref)
            .unwrap_or(configured);
        (policy, &ticket.keys[i])
    }

    async fn charge(&self, ticket: &Ticket, i: usize) -> Result<()> {
        let (policy, key) = self.ticket_policy(ticket, i);
        if policy.algorithm == Algorithm::Ban {
            return ban::strike(&self.store, &self.prefix, policy, key).await;
        }
        self.spend(policy, key, ticket.cost, self.clock.now_millis())
            .await
            .map(drop)
    }

    fn charge_local(&self, store: &dyn LocalStore, ticket: &Ticket, i: usize) -> Result<()> {
        let (policy, key) = self.ticket_policy(ticket, i);
        if policy.algorithm == Algorithm::Ban {
            return ban::strike_local(store, &self.prefix, policy, key);
        }
        self.spend_local(store, policy, key, ticket.cost, self.clock.now_millis())
            .map(drop)
    }

    /// A policy counted by outcome, before the handler: read, not counted.
    pub(crate) fn peek_local(
        &self,
        store: &dyn LocalStore,
        policy: &Policy,
        key: &RateKey,
        cost: u32,
        now: u64,
    ) -> Result<PolicyState> {
        match policy.algorithm {
            Algorithm::Ban => ban::read_local(store, &self.prefix, policy, key),
            Algorithm::Gcra => {
                let store_key = gcra::store_key(&self.prefix, policy, key);
                let reply = store.throttle(
                    &store_key,
                    gcra::throttle(policy, cost, self.gcra_now()).peek(),
                )?;
                Ok(gcra::state_of(policy, &reply))
            }
            _ => {
                let plan = Plan::new(&self.prefix, policy, key, cost, now);
                let current = store.get(&plan.current_key)?;
                let current = current
                    .as_deref()
                    .and_then(crate::store::input::parse_redis_int)
                    .unwrap_or(0);
                let previous = match &plan.previous_key {
                    Some(k) => store.get(k)?,
                    None => None,
                };
                Ok(plan.state(policy, current + plan.cost, previous.as_deref()))
            }
        }
    }
}
