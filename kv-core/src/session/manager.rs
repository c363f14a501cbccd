//! The session configuration ([`SessionManager`] and its builder) and the per-user index.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cookie::{Key, SameSite};
use futures_util::future::try_join_all;
use http::HeaderMap;

use super::SessionError;
use super::cookie::{CookieConfig, Protection, cookie_headers};
use super::handle::Session;
use super::id::SessionId;
use crate::clock::{Clock, ClockHandle};
use crate::{AnyStore, KvError, MAX_TTL, Store};

/// The session engine: configuration, store and clock, shared by every request.
///
/// Cheap to clone. An adapter calls [`start`](SessionManager::start) once per request
/// (no store call, no cookie crypto), hands the [`Session`] to the handler, and calls
/// [`Session::finish`] when the handler has answered.
#[derive(Clone)]
pub struct SessionManager {
    pub(crate) inner: Arc<ManagerInner>,
}

pub(crate) struct ManagerInner {
    pub(crate) store: AnyStore,
    pub(crate) clock: ClockHandle,
    pub(crate) cookie: CookieConfig,
    pub(crate) idle: Duration,
    pub(crate) absolute: Duration,
    /// Refresh the record's TTL once this much of the idle timeout has passed.
    pub(crate) refresh_after: Duration,
    pub(crate) prefix: String,
}

/// The most live sessions one user keeps: a login beyond it ends the oldest.
pub const MAX_USER_SESSIONS: usize = 256;

impl ManagerInner {
    pub(crate) fn record_key(&self, id: &SessionId) -> String {
        let mut key = String::with_capacity(self.prefix.len() + super::id::ID_LEN);
        key.push_str(&self.prefix);
        key.push_str(id.as_str());
        key
    }

    /// The per-user index: a hash of session id → absolute deadline (Unix ms). `user:`
    /// holds a `:`, which ids never do, so the two kinds of keys cannot meet.
    pub(crate) fn user_key(&self, user: &str) -> String {
        format!("{}user:{user}", self.prefix)
    }

    /// The TTL a record gets now: the idle timeout, cut at the absolute deadline.
    /// `None` once the absolute deadline has passed.
    pub(crate) fn ttl_at(&self, created_ms: u64, now_ms: u64) -> Option<Duration> {
        let deadline = created_ms.saturating_add(millis(self.absolute));
        let left = deadline.checked_sub(now_ms).filter(|l| *l > 0)?;
        Some(self.idle.min(Duration::from_millis(left)))
    }

    pub(crate) fn absolute_deadline(&self, created_ms: u64) -> u64 {
        created_ms.saturating_add(millis(self.absolute))
    }

    /// Removes `ids` from `user`'s index and deletes their records; how many were live.
    async fn end_sessions(&self, user: &str, skip: Option<&SessionId>) -> Result<usize, KvError> {
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
        Ok(removed.into_iter().filter(|r| *r).count())
    }

    /// Adds `id` to `user`'s index, dropping entries whose sessions are past their
    /// absolute deadline (so that the index of a user who logs in often stays small).
    pub(crate) async fn index_add(
        &self,
        user: &str,
        id: &SessionId,
        created_ms: u64,
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
            deadline_ms: self.absolute_deadline(created_ms),
            created_ms,
            handle: SessionId::random().as_str()[..12].to_owned(),
        };
        let add = self.store.hset(
            &index,
            vec![(id.as_str().to_owned(), Bytes::from(entry.encode()))],
            Some(self.absolute),
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
    pub(crate) async fn list(
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
    pub(crate) async fn end_by_handle(&self, user: &str, handle: &str) -> Result<bool, KvError> {
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
        Ok(removed)
    }
}

/// One session of a user, for a "your devices" page (OWASP ASVS V3.3.4): no secret in it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserSession {
    /// An opaque, random handle (not the session id): pass it to
    /// [`SessionManager::end_user_session`] to end that session.
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

impl SessionManager {
    /// A builder over `store` (any [`Store`]; it is held as an [`AnyStore`]).
    pub fn builder(store: impl Store) -> SessionManagerBuilder {
        SessionManagerBuilder::new(AnyStore::new(store))
    }

    /// The session of one request, from its headers. Makes no store call and checks no
    /// signature: that happens when the handler first uses the session.
    pub fn start(&self, headers: &HeaderMap) -> Session {
        Session::new(Arc::clone(&self.inner), cookie_headers(headers))
    }

    /// [`start`](SessionManager::start) for adapters whose header types are not `http`
    /// 1.x (actix-web): the raw values of the request's `Cookie` headers.
    pub fn start_with_cookies<'a>(
        &self,
        cookie_values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Session {
        let cookies = cookie_values
            .into_iter()
            .filter_map(|v| http::HeaderValue::from_bytes(v).ok())
            .collect();
        Session::new(Arc::clone(&self.inner), cookies)
    }

    /// Ends every session of `user` (recorded by [`Session::login`]), for example after
    /// a password change or an account lock. Returns how many live sessions were ended.
    /// Costs two round trips plus one per session, all sessions' deletions in parallel.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails; sessions already deleted stay so.
    pub async fn end_user_sessions(&self, user: &str) -> Result<usize, SessionError> {
        Ok(self.inner.end_sessions(user, None).await?)
    }

    /// The live sessions of `user` (logged in with [`Session::login`]), oldest first: when
    /// each logged in and when it will end at the latest, with an opaque handle. For a
    /// "your devices" page (OWASP ASVS V3.3.4). One read of the user's index and one `PTTL`
    /// per session, in parallel.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn user_sessions(&self, user: &str) -> Result<Vec<UserSession>, SessionError> {
        Ok(self.inner.list(user, None).await?)
    }

    /// Ends the session of `user` with this [`UserSession::handle`]; whether it was live.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn end_user_session(&self, user: &str, handle: &str) -> Result<bool, SessionError> {
        Ok(self.inner.end_by_handle(user, handle).await?)
    }

    pub(crate) async fn list_for(
        &self,
        user: &str,
        current: &SessionId,
    ) -> Result<Vec<UserSession>, SessionError> {
        Ok(self.inner.list(user, Some(current)).await?)
    }

    pub(crate) async fn end_other_sessions(
        &self,
        user: &str,
        keep: &SessionId,
    ) -> Result<usize, SessionError> {
        Ok(self.inner.end_sessions(user, Some(keep)).await?)
    }

    /// The name of the session cookie.
    pub fn cookie_name(&self) -> &str {
        &self.inner.cookie.name
    }
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("SessionManager")
            .field("store", &inner.store.backend_name())
            .field("cookie", &inner.cookie)
            .field("idle_timeout", &inner.idle)
            .field("absolute_timeout", &inner.absolute)
            .field("refresh_after", &inner.refresh_after)
            .field("key_prefix", &inner.prefix)
            .finish()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Builds a [`SessionManager`]. Every setter has a secure default:
///
/// | setting | default |
/// |---|---|
/// | cookie name | `__Host-session` (needs `Secure`, `Path=/`, no `Domain`) |
/// | `Secure` / `HttpOnly` / `SameSite` | on / on / `Lax` |
/// | cookie lifetime | `Max-Age` = the absolute timeout ([`browser_session_cookie`](Self::browser_session_cookie) drops it) |
/// | protection | the bare 128-bit id ([`signed`](Self::signed) / [`private`](Self::private) add HMAC / AES-GCM) |
/// | idle timeout | 30 minutes |
/// | absolute timeout | 12 hours |
/// | refresh | at most once per quarter of the idle timeout |
/// | key prefix | `session:` |
///
/// The timeouts are NIST SP 800-63B's AAL2 values, which OWASP ASVS level 2 refers to.
#[must_use]
pub struct SessionManagerBuilder {
    store: AnyStore,
    clock: ClockHandle,
    cookie: CookieConfig,
    idle: Duration,
    absolute: Duration,
    refresh_fraction: f64,
    prefix: String,
}

impl fmt::Debug for SessionManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManagerBuilder")
            .field("cookie", &self.cookie)
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .finish_non_exhaustive()
    }
}

impl SessionManagerBuilder {
    fn new(store: AnyStore) -> Self {
        SessionManagerBuilder {
            store,
            clock: ClockHandle::System,
            cookie: CookieConfig {
                name: "__Host-session".to_owned(),
                path: "/".to_owned(),
                domain: None,
                secure: true,
                http_only: true,
                same_site: SameSite::Lax,
                persistent: true,
                protection: Protection::Plain,
            },
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 60 * 60),
            refresh_fraction: 0.25,
            prefix: "session:".to_owned(),
        }
    }

    /// The cookie's name (default `__Host-session`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie.name = name.into();
        self
    }

    /// The cookie's `Path` (default `/`).
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// The cookie's `Domain` (default none: the cookie goes to the exact host only).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// The `Secure` attribute (default on). Turn it off only for plain-HTTP development,
    /// together with a cookie name without the `__Host-` prefix.
    pub fn secure(mut self, secure: bool) -> Self {
        self.cookie.secure = secure;
        self
    }

    /// The `HttpOnly` attribute (default on: scripts cannot read the cookie).
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.cookie.http_only = http_only;
        self
    }

    /// The `SameSite` attribute (default `Lax`).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.cookie.same_site = same_site;
        self
    }

    /// A browser-session cookie: no `Max-Age`, so the browser forgets it when it closes.
    /// The server-side timeouts apply as always.
    pub fn browser_session_cookie(mut self) -> Self {
        self.cookie.persistent = false;
        self
    }

    /// Signs the cookie with HMAC-SHA256 under `key` (the id stays readable).
    pub fn signed(mut self, key: Key) -> Self {
        self.cookie.protection = Protection::Signed(key);
        self
    }

    /// Encrypts and authenticates the cookie with AES-256-GCM under `key`.
    pub fn private(mut self, key: Key) -> Self {
        self.cookie.protection = Protection::Private(key);
        self
    }

    /// The idle timeout: a session not used for this long ends (default 30 minutes).
    /// Reads count as use.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// The absolute timeout: a session ends this long after login or creation however
    /// active it is (default 12 hours).
    pub fn absolute_timeout(mut self, absolute: Duration) -> Self {
        self.absolute = absolute;
        self
    }

    /// How much of the idle timeout passes before a use refreshes the record's TTL, as a
    /// fraction in `(0, 1]` (default 0.25). The refresh is one `expire` call, made at most
    /// once per this much time; the effective idle timeout is therefore between
    /// `(1 - fraction) × idle` and `idle`.
    pub fn refresh_fraction(mut self, fraction: f64) -> Self {
        self.refresh_fraction = fraction;
        self
    }

    /// The prefix of the session records' keys in the store (default `session:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The clock the timeouts are measured with (default: the system clock). Give the
    /// store the same clock in tests.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = ClockHandle::new(clock);
        self
    }

    /// Builds the manager.
    ///
    /// # Errors
    /// [`KvError::InvalidInput`] for an invalid cookie name, path or domain, a `__Host-`
    /// or `__Secure-` name without the attributes browsers demand, `SameSite=None`
    /// without `Secure`, zero or over-long timeouts, or a refresh fraction outside
    /// `(0, 1]`.
    pub fn build(self) -> Result<SessionManager, KvError> {
        self.cookie.validate()?;
        for (what, d) in [
            ("idle_timeout", self.idle),
            ("absolute_timeout", self.absolute),
        ] {
            if d.is_zero() || d > MAX_TTL {
                return Err(KvError::invalid_input(format!(
                    "{what} must be positive and at most kv_core::MAX_TTL"
                )));
            }
        }
        if !(self.refresh_fraction > 0.0 && self.refresh_fraction <= 1.0) {
            return Err(KvError::invalid_input("refresh_fraction must be in (0, 1]"));
        }
        let refresh_after = self.idle.mul_f64(self.refresh_fraction);
        Ok(SessionManager {
            inner: Arc::new(ManagerInner {
                store: self.store,
                clock: self.clock,
                cookie: self.cookie,
                idle: self.idle,
                absolute: self.absolute,
                refresh_after,
                prefix: self.prefix,
            }),
        })
    }
}
