//! The per-user index: which sessions a user has (`session:user:<user>`, a hash of
//! session id → `"<deadline ms> <created ms> <handle>"`), for "log out everywhere" and a
//! "your devices" page. Touched only by logins and the calls that end sessions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::try_join_all;

use super::id::SessionId;
use super::shared::ManagerInner;
use crate::{KvError, Store};

/// The most live sessions one user keeps: a login beyond it ends the oldest.
pub const MAX_USER_SESSIONS: usize = 256;

impl ManagerInner {
    /// Removes `ids` from `user`'s index and deletes their records; how many were live.
    pub(super) async fn end_sessions(
        &self,
        user: &str,
        skip: Option<&SessionId>,
    ) -> Result<usize, KvError> {
        let index = self.user_key(user);
        let entries = self.store.hget_all(&index).await?;
        let ids: Vec<(String, SessionId)> = entries
            .into_iter()
            .filter_map(|(field, _)| SessionId::parse(&field).map(|id| (field, id)))
            .filter(|(_, id)| Some(id) != skip)
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let keys: Vec<String> = ids.iter().map(|(_, id)| self.record_key(id)).collect();
        let removed = try_join_all(keys.iter().map(|k| self.store.del(k))).await?;
        // Only the entries read: a login racing with this call keeps its own entry.
        let fields: Vec<String> = ids.into_iter().map(|(field, _)| field).collect();
        self.store.hdel(&index, fields).await?;
        let ended = removed.into_iter().filter(|r| *r).count();
        self.metrics
            .ended_end_all
            .add(u64::try_from(ended).unwrap_or(u64::MAX));
        Ok(ended)
    }

    /// Adds `id` to `user`'s index, dropping entries whose sessions are past their
    /// absolute deadline (so that the index of a user who logs in often stays small).
    pub(super) async fn index_add(
        &self,
        user: &str,
        id: &SessionId,
        created_ms: u64,
        deadline_ms: u64,
        now_ms: u64,
    ) -> Result<(), KvError> {
        let index = self.user_key(user);
        let entries = self.store.hget_all(&index).await?;
        let deadline_of = |v: &Bytes| IndexEntry::parse(v).map(|e| e.deadline_ms);
        let (mut live, dead): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|(_, v)| deadline_of(v).is_some_and(|d| d > now_ms));
        let mut dead: Vec<String> = dead.into_iter().map(|(field, _)| field).collect();
        // At most MAX_USER_SESSIONS live sessions per user: logging in beyond ends the
        // oldest (so that the index, read at every login, stays small).
        if live.len() >= MAX_USER_SESSIONS {
            live.sort_by_key(|(_, v)| deadline_of(v));
            let excess = live.len() + 1 - MAX_USER_SESSIONS;
            for (field, _) in live.drain(..excess) {
                if let Some(id) = SessionId::parse(&field) {
                    self.store.del(&self.record_key(&id)).await?;
                }
                dead.push(field);
            }
        }
        let entry = IndexEntry {
            deadline_ms,
            created_ms,
            handle: SessionId::random().as_str()[..12].to_owned(),
        };
        let add = self.store.hset(
            &index,
            vec![(id.as_str().to_owned(), Bytes::from(entry.encode()))],
            // The longest a session of this user may live.
            Some(self.max_absolute),
        );
        if dead.is_empty() {
            add.await
        } else {
            futures_util::future::try_join(add, self.store.hdel(&index, dead))
                .await
                .map(drop)
        }
    }

    /// The live sessions of `user`, oldest first; `current` marks `current_id`'s.
    pub(super) async fn list(
        &self,
        user: &str,
        current_id: Option<&SessionId>,
    ) -> Result<Vec<UserSession>, KvError> {
        let now = self.clock.now_millis();
        let entries = self.store.hget_all(&self.user_key(user)).await?;
        let candidates: Vec<(SessionId, IndexEntry)> = entries
            .into_iter()
            .filter_map(|(field, value)| {
                Some((SessionId::parse(&field)?, IndexEntry::parse(&value)?))
            })
            .filter(|(_, e)| e.deadline_ms > now)
            .collect();
        // A session that ended by idle timeout is still in the index: ask the store.
        let alive = try_join_all(
            candidates
                .iter()
                .map(|(id, _)| async move { self.store.ttl(&self.record_key(id)).await }),
        )
        .await?;
        let mut sessions: Vec<UserSession> = candidates
            .into_iter()
            .zip(alive)
            .filter(|(_, ttl)| *ttl != crate::Ttl::Missing)
            .map(|((id, e), _)| UserSession {
                handle: e.handle,
                created: UNIX_EPOCH + Duration::from_millis(e.created_ms),
                expires: UNIX_EPOCH + Duration::from_millis(e.deadline_ms),
                current: Some(&id) == current_id,
            })
            .collect();
        sessions.sort_by_key(|s| s.created);
        Ok(sessions)
    }

    /// Ends the session of `user` whose handle is `handle`; whether it was live.
    pub(super) async fn end_by_handle(&self, user: &str, handle: &str) -> Result<bool, KvError> {
        let index = self.user_key(user);
        let entries = self.store.hget_all(&index).await?;
        let Some((field, id)) = entries.into_iter().find_map(|(field, value)| {
            let entry = IndexEntry::parse(&value)?;
            let id = SessionId::parse(&field)?;
            (!entry.handle.is_empty() && entry.handle == handle).then_some((field, id))
        }) else {
            return Ok(false);
        };
        let removed = self.store.del(&self.record_key(&id)).await?;
        self.store.hdel(&index, vec![field]).await?;
        if removed {
            self.metrics.ended_end_all.inc();
        }
        Ok(removed)
    }
}

/// One session of a user, for a "your devices" page (OWASP ASVS V3.3.4): no secret in it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserSession {
    /// An opaque, random handle (not the session id): pass it to
    /// [`SessionManager::end_user_session`](super::SessionManager::end_user_session) to end that session.
    pub handle: String,
    /// When the session logged in.
    pub created: SystemTime,
    /// Its absolute deadline.
    pub expires: SystemTime,
    /// Whether it is the session of the request that asked
    /// ([`Session::user_sessions`](super::Session::user_sessions)).
    pub current: bool,
}

/// The value of a session's entry in its user's index: `"<deadline ms> <created ms> <handle>"`.
struct IndexEntry {
    deadline_ms: u64,
    created_ms: u64,
    handle: String,
}

impl IndexEntry {
    fn parse(value: &[u8]) -> Option<IndexEntry> {
        let text = std::str::from_utf8(value).ok()?;
        let mut parts = text.split(' ');
        let deadline_ms = parts.next()?.parse().ok()?;
        let created_ms = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        let handle = parts.next().unwrap_or_default().to_owned();
        Some(IndexEntry {
            deadline_ms,
            created_ms,
            handle,
        })
    }

    fn encode(&self) -> String {
        format!("{} {} {}", self.deadline_ms, self.created_ms, self.handle)
    }
}
