//! Bans, fail2ban style ([`Policy::ban`](super::Policy::ban)): strikes counted after the
//! handler, a ban key with a TTL, read before the handler with the other policies.

use std::time::Duration;

use bytes::Bytes;

use super::decision::PolicyState;
use super::key::RateKey;
use super::policy::Policy;
use crate::store::input::parse_redis_int;
use crate::{LocalStore, Result, Store, Ttl};

/// The two keys of a ban: `<prefix><name>:<key>:strikes` and `..:ban`.
pub(crate) fn keys(prefix: &str, policy: &Policy, key: &RateKey) -> (String, String) {
    let mut base = String::with_capacity(prefix.len() + policy.name.len() + 32);
    base.push_str(prefix);
    base.push_str(&policy.name);
    base.push(':');
    key.write_to(&mut base);
    (format!("{base}:strikes"), format!("{base}:ban"))
}

/// The ban's state from its keys: refused while the ban key lives.
pub(crate) fn state(policy: &Policy, ban: Ttl, strikes: Option<&[u8]>) -> PolicyState {
    let strikes = strikes.and_then(parse_redis_int).unwrap_or(0).max(0) as u64;
    let limit = u64::from(policy.limit);
    let (remaining, reset_after, retry_after) = match ban {
        Ttl::Expires(left) => (0, left, Some(left.max(Duration::from_millis(1)))),
        Ttl::Persistent => (0, policy.ban_for, Some(policy.ban_for)),
        Ttl::Missing => (limit.saturating_sub(strikes), policy.window, None),
    };
    PolicyState {
        name: policy.name.clone(),
        limit,
        window: policy.window,
        remaining,
        reset_after,
        retry_after,
    }
}

/// Reads a ban (its TTL and the strikes), both at once.
pub(crate) async fn read<S: Store>(
    store: &S,
    prefix: &str,
    policy: &Policy,
    key: &RateKey,
) -> Result<PolicyState> {
    let (strikes, ban) = keys(prefix, policy, key);
    let (ttl, count) = futures_util::future::try_join(store.ttl(&ban), store.get(&strikes)).await?;
    Ok(state(policy, ttl, count.as_deref()))
}

/// [`read`] through the in-process face.
pub(crate) fn read_local(
    store: &dyn LocalStore,
    prefix: &str,
    policy: &Policy,
    key: &RateKey,
) -> Result<PolicyState> {
    let (strikes, ban) = keys(prefix, policy, key);
    let ttl = store.ttl(&ban)?;
    let count = store.get(&strikes)?;
    Ok(state(policy, ttl, count.as_deref()))
}

/// One strike; the ban when it is the last one allowed.
pub(crate) async fn strike<S: Store>(
    store: &S,
    prefix: &str,
    policy: &Policy,
    key: &RateKey,
) -> Result<()> {
    let (strikes, ban) = keys(prefix, policy, key);
    let n = store.incr_by(&strikes, 1, Some(policy.window)).await?;
    if n >= i64::from(policy.limit) {
        impose(store, &strikes, &ban, policy.ban_for).await?;
    }
    Ok(())
}

/// [`strike`] through the in-process face.
pub(crate) fn strike_local(
    store: &dyn LocalStore,
    prefix: &str,
    policy: &Policy,
    key: &RateKey,
) -> Result<()> {
    let (strikes, ban) = keys(prefix, policy, key);
    let n = store.incr_by(&strikes, 1, Some(policy.window))?;
    if n >= i64::from(policy.limit) {
        store.set(&ban, Bytes::from_static(b"1"), Some(policy.ban_for))?;
        store.del(&strikes)?;
        tracing::info!(ban = &*policy.name, "rate limit: key banned");
    }
    Ok(())
}

/// Bans for `duration` and forgets the strikes.
pub(crate) async fn impose<S: Store>(
    store: &S,
    strikes: &str,
    ban: &str,
    duration: Duration,
) -> Result<()> {
    futures_util::future::try_join(
        store.set(ban, Bytes::from_static(b"1"), Some(duration)),
        store.del(strikes),
    )
    .await?;
    tracing::info!(?duration, "rate limit: key banned");
    Ok(())
}
