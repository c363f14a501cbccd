//! The end of a request: planning what to write (the changed keys, a refreshed TTL, a
//! new id, the per-user index) and making those store calls, together.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::try_join_all;
use http::{HeaderValue, StatusCode};
use smallvec::SmallVec;

use super::SessionError;
use super::id::SessionId;
use super::record;
use super::shared::ManagerInner;
use super::state::State;
use crate::{KvError, LocalStore, Step, Store};

/// One store call of a save.
enum Op {
    Del(String),
    Hdel(String, Vec<String>),
    Hset(String, Vec<(String, Bytes)>, Duration),
    Expire(String, Duration),
    IndexAdd {
        user: String,
        id: SessionId,
        created: u64,
        deadline: u64,
        now: u64,
    },
    /// `cycle_id` of a session: delete the old record and, only if it still existed (no
    /// logout or `end_user_sessions` meanwhile), write the new one. Sequential on purpose:
    /// writing first could revive a session ended while this request ran.
    Move {
        old: String,
        new: String,
        fields: Vec<(String, Bytes)>,
        ttl: Duration,
        index: Option<Box<Op>>,
    },
}

/// What a save's call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Done,
    /// The session had been ended meanwhile: nothing was written, drop the cookie.
    Gone,
}

impl Op {
    /// The op as one call of the store's in-process face; `Err` with the op back for
    /// those that are more than one call (an index update, a move), left to `run`.
    fn run_local(self, local: &dyn LocalStore) -> Result<Result<Ran, KvError>, Box<Op>> {
        let (key, ran) = match self {
            Op::Del(key) => {
                let ran = local.del(&key).map(|_| Ran::Done);
                (key, ran)
            }
            Op::Hdel(key, fields) => {
                let ran = local.hdel(&key, fields).map(|_| Ran::Done);
                (key, ran)
            }
            Op::Hset(key, fields, ttl) => {
                let ran = local.hset(&key, fields, Some(ttl)).map(|()| Ran::Done);
                (key, ran)
            }
            Op::Expire(key, ttl) => {
                let ran = local.expire(&key, ttl).map(|_| Ran::Done);
                (key, ran)
            }
            other => return Err(Box::new(other)),
        };
        // The key's buffer serves the next request's key on this thread.
        crate::spare::recycle(key);
        Ok(ran)
    }

    async fn run(self, m: &ManagerInner) -> Result<Ran, KvError> {
        match self {
            Op::Del(key) => m.store.del(&key).await.map(|_| Ran::Done),
            Op::Hdel(key, fields) => m.store.hdel(&key, fields).await.map(|_| Ran::Done),
            Op::Hset(key, fields, ttl) => m
                .store
                .hset(&key, fields, Some(ttl))
                .await
                .map(|()| Ran::Done),
            Op::Expire(key, ttl) => m.store.expire(&key, ttl).await.map(|_| Ran::Done),
            Op::IndexAdd {
                user,
                id,
                created,
                deadline,
                now,
            } => m
                .index_add(&user, &id, created, deadline, now)
                .await
                .map(|()| Ran::Done),
            Op::Move {
                old,
                new,
                fields,
                ttl,
                index,
            } => {
                if !m.store.del(&old).await? {
                    return Ok(Ran::Gone);
                }
                m.store.hset(&new, fields, Some(ttl)).await?;
                if let Some(index) = index {
                    Box::pin(index.run(m)).await?;
                }
                Ok(Ran::Done)
            }
        }
    }
}

/// Plans and runs the save at the end of a request: what to write given what the
/// handler did, done at once on a store with a [`LocalStore`](crate::LocalStore) face.
pub(super) fn end(
    manager: &Arc<ManagerInner>,
    state: State,
    status: StatusCode,
) -> Step<Result<Option<HeaderValue>, SessionError>, Save> {
    if let Some(err) = state.failed {
        return Step::Ready(Err(SessionError::Store(err)));
    }
    if status.is_server_error() {
        tracing::debug!(%status, "kv session: the handler failed; its changes are discarded");
        return Step::Ready(Ok(None));
    }
    let Some(loaded) = state.loaded.map(|l| *l) else {
        return Step::Ready(Ok(None));
    };
    let m = &**manager;
    // A request is short: the time of its read stands for "now" (one clock read less).
    let now = loaded.read_at.unwrap_or_else(|| m.clock.now_millis());
    let mut ops: SmallVec<[Op; 2]> = SmallVec::new();
    let mut cookie = None;
    let mut wrote_new = false;

    // Ended past its deadline is counted when found; the rest is `flush` (logout).
    let logouts = loaded
        .ended
        .len()
        .saturating_sub(usize::from(loaded.ended_expired));
    m.metrics
        .ended_logout
        .add(u64::try_from(logouts).unwrap_or(u64::MAX));
    for (id, user) in loaded.ended {
        ops.push(Op::Del(m.record_key(&id)));
        if let Some(user) = user {
            ops.push(Op::Hdel(m.user_key(&user), vec![id.as_str().to_owned()]));
        }
    }

    let meta = loaded.meta;
    match loaded.current {
        Some((id, record)) if state.cycle => {
            let fresh = state.login.is_some();
            let created = if fresh { now } else { record.created_ms };
            let user = state.login.or_else(|| record.user.clone());
            if let Some(old_user) = &record.user {
                ops.push(Op::Hdel(m.user_key(old_user), vec![id.as_str().to_owned()]));
            }
            let life = m.lifetime(user.is_some(), &meta);
            match m.ttl_at(created, now, life) {
                Some(ttl) => {
                    // A logged-in session's id is of the protected class (`u.`).
                    let new_id = SessionId::random_of(user.is_some());
                    let fields = record::encode(created, user.as_deref(), &meta, &loaded.data);
                    let deadline = m.absolute_deadline(created, life);
                    let index = user.map(|user| Op::IndexAdd {
                        user,
                        id: new_id.clone(),
                        created,
                        deadline,
                        now,
                    });
                    if fresh {
                        // A login authenticated this request: the new session stands
                        // whatever happened to the old one.
                        ops.push(Op::Del(m.record_key(&id)));
                        ops.push(Op::Hset(m.record_key(&new_id), fields, ttl));
                        ops.extend(index);
                    } else {
                        ops.push(Op::Move {
                            old: m.record_key(&id),
                            new: m.record_key(&new_id),
                            fields,
                            ttl,
                            index: index.map(Box::new),
                        });
                    }
                    let left = deadline.saturating_sub(now);
                    cookie = m.cookie.issue(&new_id, Duration::from_millis(left));
                    wrote_new = true;
                    m.metrics.ended_cycle.inc();
                }
                None => ops.push(Op::Del(m.record_key(&id))),
            }
        }
        Some((id, record)) => {
            let key = loaded.current_key;
            let life = m.lifetime(record.user.is_some(), &meta);
            match m.ttl_at(record.created_ms, now, life) {
                // The absolute deadline passed during the request.
                None => ops.push(Op::Del(key)),
                Some(ttl) => {
                    let mut sets: Vec<(String, Bytes)> = loaded
                        .data
                        .into_iter()
                        .filter(|f| f.dirty)
                        .map(|f| (f.key.into(), f.value))
                        .collect();
                    if loaded.meta_dirty {
                        sets.extend(meta.fields());
                    }
                    let dels = state.removed;
                    let due = record
                        .ttl_left
                        .is_none_or(|left| ttl.saturating_sub(left) >= m.refresh_after(life));
                    let changed = !sets.is_empty() || !dels.is_empty();
                    // The key moves into the last op that names it (cloned only for an
                    // earlier one); unused (a read), it goes back as the spare buffer.
                    let mut key = key;
                    let hdel = !dels.is_empty();
                    let name = |key: &mut String| {
                        if hdel {
                            key.clone()
                        } else {
                            std::mem::take(key)
                        }
                    };
                    if !sets.is_empty() {
                        // The write refreshes the TTL in the same step.
                        ops.push(Op::Hset(name(&mut key), sets, ttl));
                    } else if changed || due {
                        ops.push(Op::Expire(name(&mut key), ttl));
                    }
                    if hdel {
                        ops.push(Op::Hdel(std::mem::take(&mut key), dels));
                    }
                    if key.capacity() > 0 {
                        crate::spare::recycle(key);
                    }
                    wrote_new = true; // the cookie stays valid
                    // Re-issued: verified with an older key, or a new absolute timeout
                    // (the cookie's `Max-Age` follows it).
                    if loaded.reissue || meta.absolute_ms != record.meta.absolute_ms {
                        let left = m
                            .absolute_deadline(record.created_ms, life)
                            .saturating_sub(now);
                        cookie = m.cookie.issue(&id, Duration::from_millis(left));
                    }
                }
            }
        }
        None if !loaded.data.is_empty() || state.login.is_some() || loaded.meta_dirty => {
            let user = state.login;
            let new_id = SessionId::random_of(user.is_some());
            let life = m.lifetime(user.is_some(), &meta);
            let fields = record::encode(now, user.as_deref(), &meta, &loaded.data);
            if let Some(ttl) = m.ttl_at(now, now, life) {
                ops.push(Op::Hset(m.record_key(&new_id), fields, ttl));
                if let Some(user) = user {
                    ops.push(Op::IndexAdd {
                        user,
                        id: new_id.clone(),
                        created: now,
                        deadline: m.absolute_deadline(now, life),
                        now,
                    });
                }
                cookie = m.cookie.issue(&new_id, life.absolute);
                wrote_new = true;
                m.metrics.creations.inc();
            }
        }
        None => {}
    }
    if !wrote_new && loaded.had_cookie {
        // Logged out, or the cookie named no live session: tell the client to drop it.
        cookie = m.cookie.removal();
    }
    if ops.is_empty() {
        return Step::Ready(Ok(cookie));
    }
    m.metrics.saves.inc();
    if let Some(local) = m.store.local() {
        // The common save (one write) as a plain call: no future built and polled.
        if ops.len() == 1
            && let Some(op) = ops.pop()
        {
            return Step::Ready(match op.run_local(local) {
                Ok(ran) => settle(ran, cookie, m),
                Err(op) => futures_util::FutureExt::now_or_never(run_ops(
                    smallvec::smallvec![*op],
                    cookie,
                    m,
                ))
                .unwrap_or_else(not_ready),
            });
        }
        // Every call completes on its first poll through the local face: no future.
        let run = run_ops(ops, cookie, m);
        if let Some(result) = futures_util::FutureExt::now_or_never(run) {
            return Step::Ready(result);
        }
        return Step::Ready(not_ready());
    }
    let manager = Arc::clone(manager);
    Step::Pending(Save(Box::pin(async move {
        run_ops(ops, cookie, &manager).await
    })))
}

/// The store calls that save a session on a remote store: await it for the
/// `Set-Cookie` to send, if any.
///
/// # Errors
/// [`SessionError::Store`] when a call fails (logged without the session id).
#[must_use = "a save does nothing unless it is awaited"]
pub struct Save(Pin<Box<dyn Future<Output = Result<Option<HeaderValue>, SessionError>> + Send>>);

impl fmt::Debug for Save {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Save").finish_non_exhaustive()
    }
}

impl Save {
    /// Runs the save inside `span` (the `kv.session` span), recording its outcome.
    pub(super) fn in_span(self, span: tracing::Span) -> Save {
        let inner = self.0;
        Save(Box::pin(tracing::Instrument::instrument(
            async move {
                let result = inner.await;
                tracing::Span::current().record("outcome", outcome(&result));
                result
            },
            span,
        )))
    }
}

/// The `outcome` field of the `kv.session` span: `saved` (a cookie to send), `kept`
/// (nothing for the client) or `error`.
pub(super) fn outcome(result: &Result<Option<HeaderValue>, SessionError>) -> &'static str {
    match result {
        Ok(Some(_)) => "saved",
        Ok(None) => "kept",
        Err(_) => "error",
    }
}

impl Future for Save {
    type Output = Result<Option<HeaderValue>, SessionError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

async fn run_ops(
    mut ops: SmallVec<[Op; 2]>,
    cookie: Option<HeaderValue>,
    m: &ManagerInner,
) -> Result<Option<HeaderValue>, SessionError> {
    let result = match ops.len() {
        0 => Ok(Ran::Done),
        1 => match ops.pop() {
            Some(op) => op.run(m).await,
            None => Ok(Ran::Done),
        },
        _ => try_join_all(ops.into_iter().map(|op| op.run(m)))
            .await
            .map(|all| {
                if all.contains(&Ran::Gone) {
                    Ran::Gone
                } else {
                    Ran::Done
                }
            }),
    };
    settle(result, cookie, m)
}

/// The answer of a save from what its calls did.
fn settle(
    result: Result<Ran, KvError>,
    cookie: Option<HeaderValue>,
    m: &ManagerInner,
) -> Result<Option<HeaderValue>, SessionError> {
    match result {
        Ok(Ran::Done) => Ok(cookie),
        // Ended by another request while this one ran: nothing was revived.
        Ok(Ran::Gone) => Ok(m.cookie.removal()),
        Err(err) => {
            tracing::error!(error = %err, "kv session: saving the session failed");
            m.metrics.errors.inc();
            Err(SessionError::Store(err))
        }
    }
}

/// Not reached: a local store's calls are always ready.
fn not_ready() -> Result<Option<HeaderValue>, SessionError> {
    Err(SessionError::Store(KvError::backend(
        std::io::Error::other("a local store call was not ready"),
    )))
}
