//! [`Session`]: one request's handle on its session, and what happens when it ends.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::try_join_all;
use http::{HeaderValue, StatusCode};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use smallvec::SmallVec;

use super::SessionError;
use super::id::SessionId;
use super::manager::ManagerInner;
use super::record::{self, Field, RESERVED_PREFIX, Record};
use crate::{KvError, Store};

/// One request's session: a cheap `Clone` (`Arc`), `Send + Sync`.
///
/// Lazy: nothing is read from the store, and no cookie is checked, until a method is
/// called. The first call loads the record (one round trip: `HGETALL` and `PTTL` sent
/// together); later calls work on what was loaded. Changes are written once, by
/// [`finish`](Session::finish), after the handler answered.
///
/// # Concurrent requests of one session
/// Each key is its own hash field, and a save writes only the keys this request changed
/// (`HSET`) or removed (`HDEL`). So two requests that change *different* keys both land;
/// two that change the *same* key: the last save wins. [`clear`](Session::clear) removes
/// the keys this request saw (a key added meanwhile by another request survives).
/// [`cycle_id`](Session::cycle_id) copies the data this request saw to the new id; a
/// write by another request to the old id after that is lost with the old id. A write
/// racing with a logout never revives the session: the leftover lacks the record's
/// creation field, is never loaded as a session, and expires with its TTL; a `cycle_id`
/// racing with one writes nothing and drops the cookie.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    manager: Arc<ManagerInner>,
    cookies: SmallVec<[HeaderValue; 1]>,
    touched: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Boxed: keeps an untouched session's allocation small.
    loaded: Option<Box<Loaded>>,
    /// The store failed while loading: the request ends with a 500.
    failed: Option<KvError>,
    /// Keys removed by this request (keys set are marked `dirty` in `loaded.data`).
    removed: Vec<String>,
    cycle: bool,
    /// `login(user)` was called: new id, new absolute lifetime, this user.
    login: Option<String>,
}

struct Loaded {
    /// The live session the client's cookie named, if any, and its record's key.
    current: Option<(SessionId, Record)>,
    current_key: String,
    /// The data as this request sees it (JSON text per key; few keys, so a vector).
    data: Vec<Field>,
    /// Sessions to delete at the end: flushed, or found past their absolute deadline.
    ended: Vec<(SessionId, Option<String>)>,
    /// The client sent a cookie of our name (valid or not).
    had_cookie: bool,
    /// When the record was read (Unix ms), reused as "now" at the end of the request.
    read_at: Option<u64>,
}

impl Loaded {
    fn empty(had_cookie: bool) -> Self {
        Loaded {
            current: None,
            current_key: String::new(),
            data: Vec::new(),
            ended: Vec::new(),
            had_cookie,
            read_at: None,
        }
    }
}

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
                now,
            } => m
                .index_add(&user, &id, created, now)
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

impl Session {
    pub(crate) fn new(manager: Arc<ManagerInner>, cookies: SmallVec<[HeaderValue; 1]>) -> Self {
        Session {
            inner: Arc::new(SessionInner {
                manager,
                cookies,
                touched: AtomicBool::new(false),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Whether any method was called in this request. An untouched session needs no
    /// [`finish`](Session::finish): it made no store call and sets no cookie.
    pub fn is_touched(&self) -> bool {
        self.inner.touched.load(Ordering::Relaxed)
    }

    /// Loads the session if this request has not yet: checks the cookie and reads the
    /// record. The other methods call it; adapters that offer synchronous access call it
    /// before the handler runs.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails (logged; the request should fail).
    pub async fn load(&self) -> Result<(), SessionError> {
        match self.load_now()? {
            None => Ok(()),
            // Boxed: keeps `load`'s future (inside every handler's) small; the embedded
            // store never gets here.
            Some((id, key, had_cookie)) => Box::pin(self.load_remote(id, key, had_cookie)).await,
        }
    }

    /// [`load`](Session::load) when it needs no wait: `Some` with the outcome when the
    /// session was loaded already, carries no valid cookie, or lives in the embedded
    /// store; `None` when the store must be asked (then await `load`). For adapters that
    /// load before the handler runs without allocating a future in the common case.
    pub fn load_if_ready(&self) -> Option<Result<(), SessionError>> {
        match self.load_now() {
            Ok(None) => Some(Ok(())),
            Ok(Some(_)) => None,
            Err(err) => Some(Err(err)),
        }
    }

    /// Loads without waiting when it can (loaded already, no valid cookie, or the
    /// embedded store); else the id and key to read from the store.
    fn load_now(&self) -> Result<Option<(SessionId, String, bool)>, SessionError> {
        self.inner.touched.store(true, Ordering::Relaxed);
        {
            let state = self.inner.state.lock();
            if let Some(err) = &state.failed {
                return Err(SessionError::Store(err.clone()));
            }
            if state.loaded.is_some() {
                return Ok(None);
            }
        }
        let m = &*self.inner.manager;
        let (id, had_cookie) = m.cookie.find_id(&self.inner.cookies);
        let Some(id) = id else {
            self.set_loaded(Loaded::empty(had_cookie));
            return Ok(None);
        };
        let key = m.record_key(&id);
        #[cfg(feature = "memory")]
        if let Some(memory) = m.store.as_memory() {
            // The embedded store answers both reads under one lock, without copies.
            let read = memory.with_hash(&key, |fields, ttl| Record::decode(fields, ttl));
            return self.loaded_from(id, key, had_cookie, read).map(|()| None);
        }
        Ok(Some((id, key, had_cookie)))
    }

    async fn load_remote(
        &self,
        id: SessionId,
        key: String,
        had_cookie: bool,
    ) -> Result<(), SessionError> {
        let store = &self.inner.manager.store;
        // `HGETALL` and `PTTL` sent together: one round trip.
        let read = futures_util::future::try_join(store.hget_all(&key), store.ttl(&key)).await;
        let record = read
            .map(|(fields, ttl)| Record::decode(fields.iter().map(|(n, v)| (n.as_str(), v)), ttl));
        self.loaded_from(id, key, had_cookie, record)
    }

    fn loaded_from(
        &self,
        id: SessionId,
        key: String,
        had_cookie: bool,
        read: Result<Option<Record>, KvError>,
    ) -> Result<(), SessionError> {
        let record = match read {
            Ok(record) => record,
            Err(err) => {
                tracing::error!(error = %err, "kv session: loading the session failed");
                self.inner.state.lock().failed = Some(err.clone());
                return Err(SessionError::Store(err));
            }
        };
        let m = &*self.inner.manager;
        let mut loaded = Loaded::empty(had_cookie);
        // An id the store does not know is never adopted: `current` stays `None` and a
        // write issues a new id.
        if let Some(mut record) = record {
            let now = m.clock.now_millis();
            loaded.read_at = Some(now);
            if m.ttl_at(record.created_ms, now).is_some() {
                loaded.data = std::mem::take(&mut record.data);
                loaded.current = Some((id, record));
                loaded.current_key = key;
            } else {
                // Past its absolute deadline (its TTL had not run out yet).
                loaded.ended.push((id, record.user));
            }
        }
        self.set_loaded(loaded);
        Ok(())
    }

    fn set_loaded(&self, loaded: Loaded) {
        let mut state = self.inner.state.lock();
        if state.loaded.is_none() {
            state.loaded = Some(Box::new(loaded));
        }
    }

    /// Runs `f` on the loaded state.
    fn with_loaded<R>(
        &self,
        f: impl FnOnce(&mut State) -> Result<R, SessionError>,
    ) -> Result<R, SessionError> {
        let mut state = self.inner.state.lock();
        if state.loaded.is_none() {
            return Err(SessionError::NotLoaded);
        }
        f(&mut state)
    }

    /// The value under `key`, deserialized as `T`; `None` when absent.
    ///
    /// # Errors
    /// [`SessionError::Deserialize`] when the stored value is not a `T`;
    /// [`SessionError::Store`] when loading failed.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.load().await?;
        self.get_loaded(key)
    }

    /// [`get`](Session::get) for a session already [`load`](Session::load)ed, without
    /// awaiting. [`SessionError::NotLoaded`] otherwise.
    pub fn get_loaded<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.with_loaded(|state| {
            let data = state.loaded.as_ref().map(|l| l.data.as_slice());
            let Some(field) = data.and_then(|d| d.iter().find(|f| f.key == key)) else {
                return Ok(None);
            };
            serde_json::from_slice(&field.value)
                .map(Some)
                .map_err(|source| SessionError::Deserialize {
                    key: key.to_owned(),
                    source,
                })
        })
    }

    /// Stores `value` under `key` (serialized as JSON), written when the request ends.
    ///
    /// # Errors
    /// [`SessionError::ReservedKey`] for keys starting with `__kv.`;
    /// [`SessionError::Serialize`] when `value` cannot be serialized;
    /// [`SessionError::Store`] when loading failed.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        self.load().await?;
        self.insert_loaded(key, value)
    }

    /// [`insert`](Session::insert) for a session already loaded, without awaiting.
    pub fn insert_loaded<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        if key.starts_with(RESERVED_PREFIX) {
            return Err(SessionError::ReservedKey(key.to_owned()));
        }
        let value = to_json(&value).map_err(|source| SessionError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        self.with_loaded(|state| {
            if let Some(loaded) = state.loaded.as_mut() {
                match loaded.data.iter_mut().find(|f| f.key == key) {
                    Some(field) => {
                        field.value = value;
                        field.dirty = true;
                    }
                    None => loaded.data.push(Field {
                        key: key.to_owned(),
                        value,
                        dirty: true,
                    }),
                }
            }
            state.removed.retain(|k| k != key);
            Ok(())
        })
    }

    /// Removes `key`; whether it was present.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn remove(&self, key: &str) -> Result<bool, SessionError> {
        self.load().await?;
        self.remove_loaded(key)
    }

    /// [`remove`](Session::remove) for a session already loaded, without awaiting.
    pub fn remove_loaded(&self, key: &str) -> Result<bool, SessionError> {
        self.with_loaded(|state| {
            let data = state.loaded.as_mut().map(|l| &mut l.data);
            let at = data
                .as_ref()
                .and_then(|d| d.iter().position(|f| f.key == key));
            let present = match (data, at) {
                (Some(data), Some(at)) => {
                    data.swap_remove(at);
                    true
                }
                _ => false,
            };
            if present && !state.removed.iter().any(|k| k == key) {
                state.removed.push(key.to_owned());
            }
            Ok(present)
        })
    }

    /// The keys present, in no particular order.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn keys(&self) -> Result<Vec<String>, SessionError> {
        self.load().await?;
        self.keys_loaded()
    }

    /// [`keys`](Session::keys) for a session already loaded, without awaiting.
    pub fn keys_loaded(&self) -> Result<Vec<String>, SessionError> {
        self.with_loaded(|state| {
            Ok(state
                .loaded
                .as_ref()
                .map(|l| l.data.iter().map(|f| f.key.clone()).collect())
                .unwrap_or_default())
        })
    }

    /// Removes every key; the session (and its id) stays.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.load().await?;
        self.clear_loaded()
    }

    /// [`clear`](Session::clear) for a session already loaded, without awaiting.
    pub fn clear_loaded(&self) -> Result<(), SessionError> {
        self.with_loaded(|state| {
            if let Some(loaded) = state.loaded.as_mut() {
                for field in loaded.data.drain(..) {
                    if !state.removed.contains(&field.key) {
                        state.removed.push(field.key);
                    }
                }
            }
            Ok(())
        })
    }

    /// Gives the session a new id at the end of the request, keeping its data, and
    /// deletes the record under the old id: the defence against session fixation, for
    /// every change of privilege. (A session not yet stored just gets its first id.) The old
    /// record is deleted before the new one is written (one more round trip, on a cycle
    /// only), so a cycle racing with a logout or `end_user_sessions` revives nothing: the
    /// client is told to drop its cookie instead.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn cycle_id(&self) -> Result<(), SessionError> {
        self.load().await?;
        self.cycle_id_loaded()
    }

    /// [`cycle_id`](Session::cycle_id) for a session already loaded, without awaiting.
    pub fn cycle_id_loaded(&self) -> Result<(), SessionError> {
        self.with_loaded(|state| {
            state.cycle = true;
            Ok(())
        })
    }

    /// Logs the session in as `user`: a new id (as [`cycle_id`](Session::cycle_id)), a
    /// new absolute lifetime, and an entry in the user's index so that
    /// [`SessionManager::end_user_sessions`](super::SessionManager::end_user_sessions)
    /// can end it. Costs one more round trip at the end of the request (the index is
    /// pruned of dead sessions). A user keeps at most
    /// [`MAX_USER_SESSIONS`](super::MAX_USER_SESSIONS) live sessions: a login beyond it
    /// ends the oldest.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn login(&self, user: &str) -> Result<(), SessionError> {
        self.load().await?;
        self.login_loaded(user)
    }

    /// [`login`](Session::login) for a session already loaded, without awaiting.
    pub fn login_loaded(&self, user: &str) -> Result<(), SessionError> {
        self.with_loaded(|state| {
            state.login = Some(user.to_owned());
            state.cycle = true;
            Ok(())
        })
    }

    /// The user this session was logged in as, if any.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn user(&self) -> Result<Option<String>, SessionError> {
        self.load().await?;
        self.user_loaded()
    }

    /// [`user`](Session::user) for a session already loaded, without awaiting.
    pub fn user_loaded(&self) -> Result<Option<String>, SessionError> {
        self.with_loaded(|state| {
            let current = state.loaded.as_ref().and_then(|l| l.current.as_ref());
            Ok(state
                .login
                .clone()
                .or_else(|| current.and_then(|(_, r)| r.user.clone())))
        })
    }

    /// Logs out: the record is deleted and the client told to drop the cookie when the
    /// request ends. Keys inserted after this start a new, anonymous session.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn flush(&self) -> Result<(), SessionError> {
        self.load().await?;
        self.flush_loaded()
    }

    /// [`flush`](Session::flush) for a session already loaded, without awaiting.
    pub fn flush_loaded(&self) -> Result<(), SessionError> {
        self.with_loaded(|state| {
            if let Some(loaded) = state.loaded.as_mut() {
                if let Some((id, record)) = loaded.current.take() {
                    loaded.ended.push((id, record.user));
                }
                loaded.data.clear();
            }
            state.removed.clear();
            state.cycle = false;
            state.login = None;
            Ok(())
        })
    }

    /// Ends every *other* session of this session's user now (for example after a
    /// password change); returns how many were live. `Ok(0)` for an anonymous session.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn end_other_sessions(&self) -> Result<usize, SessionError> {
        self.load().await?;
        let target = self.with_loaded(|state| {
            let current = state.loaded.as_ref().and_then(|l| l.current.as_ref());
            let user = state
                .login
                .clone()
                .or_else(|| current.and_then(|(_, r)| r.user.clone()));
            Ok(user.zip(current.map(|(id, _)| id.clone())))
        })?;
        match target {
            Some((user, id)) => {
                let manager = super::SessionManager {
                    inner: Arc::clone(&self.inner.manager),
                };
                manager.end_other_sessions(&user, &id).await
            }
            None => Ok(0),
        }
    }

    /// The live sessions of this session's user, oldest first, this one marked
    /// `current` (see [`SessionManager::user_sessions`](super::SessionManager::user_sessions)).
    /// Empty for an anonymous session.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn user_sessions(&self) -> Result<Vec<super::UserSession>, SessionError> {
        self.load().await?;
        let target = self.with_loaded(|state| {
            let current = state.loaded.as_ref().and_then(|l| l.current.as_ref());
            Ok(current.and_then(|(id, r)| Some((r.user.clone()?, id.clone()))))
        })?;
        match target {
            Some((user, id)) => {
                let manager = super::SessionManager {
                    inner: Arc::clone(&self.inner.manager),
                };
                manager.list_for(&user, &id).await
            }
            None => Ok(Vec::new()),
        }
    }

    /// Ends the request's use of the session: writes what changed (at most one round
    /// trip; two after a `login`), refreshes the record's TTL when due, and returns the
    /// `Set-Cookie` value to send, if any. For adapters: call it (or [`end`](Session::end))
    /// once, after the handler.
    ///
    /// A `status` of 5xx discards the request's changes (a handler that failed half-way
    /// saves nothing) and sets no cookie.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed earlier or a write fails now (logged,
    /// without the session id); the adapter answers 500.
    pub async fn finish(&self, status: StatusCode) -> Result<Option<HeaderValue>, SessionError> {
        match self.end(status) {
            Finish::Done(result) => result,
            Finish::Save(save) => save.run().await,
        }
    }

    /// [`finish`](Session::finish) in two steps, for adapters that want to avoid a future
    /// when there is nothing to wait for: decides what to write and, when nothing is to
    /// be written or the store is the embedded one, does it at once
    /// ([`Finish::Done`]); otherwise returns the [`Save`] to await.
    pub fn end(&self, status: StatusCode) -> Finish {
        if !self.is_touched() {
            return Finish::Done(Ok(None));
        }
        let state = std::mem::take(&mut *self.inner.state.lock());
        if let Some(err) = state.failed {
            return Finish::Done(Err(SessionError::Store(err)));
        }
        if status.is_server_error() {
            tracing::debug!(%status, "kv session: the handler failed; its changes are discarded");
            return Finish::Done(Ok(None));
        }
        let Some(loaded) = state.loaded.map(|l| *l) else {
            return Finish::Done(Ok(None));
        };
        let m = &*self.inner.manager;
        // A request is short: the time of its read stands for "now" (one clock read less).
        let now = loaded.read_at.unwrap_or_else(|| m.clock.now_millis());
        let mut ops: SmallVec<[Op; 2]> = SmallVec::new();
        let mut cookie = None;
        let mut wrote_new = false;

        for (id, user) in loaded.ended {
            ops.push(Op::Del(m.record_key(&id)));
            if let Some(user) = user {
                ops.push(Op::Hdel(m.user_key(&user), vec![id.as_str().to_owned()]));
            }
        }

        match loaded.current {
            Some((id, record)) if state.cycle => {
                let fresh = state.login.is_some();
                let created = if fresh { now } else { record.created_ms };
                let user = state.login.or_else(|| record.user.clone());
                if let Some(old_user) = &record.user {
                    ops.push(Op::Hdel(m.user_key(old_user), vec![id.as_str().to_owned()]));
                }
                match m.ttl_at(created, now) {
                    Some(ttl) => {
                        let new_id = SessionId::random();
                        let fields = record::encode(created, user.as_deref(), &loaded.data);
                        let index = user.map(|user| Op::IndexAdd {
                            user,
                            id: new_id.clone(),
                            created,
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
                        let left = m.absolute_deadline(created).saturating_sub(now);
                        cookie = m.cookie.issue(&new_id, Duration::from_millis(left));
                        wrote_new = true;
                    }
                    None => ops.push(Op::Del(m.record_key(&id))),
                }
            }
            Some((_, record)) => {
                let key = loaded.current_key;
                match m.ttl_at(record.created_ms, now) {
                    // The absolute deadline passed during the request.
                    None => ops.push(Op::Del(key)),
                    Some(ttl) => {
                        let sets: Vec<(String, Bytes)> = loaded
                            .data
                            .into_iter()
                            .filter(|f| f.dirty)
                            .map(|f| (f.key, f.value))
                            .collect();
                        let dels = state.removed;
                        let due = record
                            .ttl_left
                            .is_none_or(|left| ttl.saturating_sub(left) >= m.refresh_after);
                        let changed = !sets.is_empty() || !dels.is_empty();
                        if !sets.is_empty() {
                            // The write refreshes the TTL in the same step.
                            ops.push(Op::Hset(key.clone(), sets, ttl));
                        } else if changed || due {
                            ops.push(Op::Expire(key.clone(), ttl));
                        }
                        if !dels.is_empty() {
                            ops.push(Op::Hdel(key, dels));
                        }
                        wrote_new = true; // the cookie stays valid
                    }
                }
            }
            None if !loaded.data.is_empty() || state.login.is_some() => {
                let new_id = SessionId::random();
                let user = state.login;
                let fields = record::encode(now, user.as_deref(), &loaded.data);
                if let Some(ttl) = m.ttl_at(now, now) {
                    ops.push(Op::Hset(m.record_key(&new_id), fields, ttl));
                    if let Some(user) = user {
                        ops.push(Op::IndexAdd {
                            user,
                            id: new_id.clone(),
                            created: now,
                            now,
                        });
                    }
                    cookie = m.cookie.issue(&new_id, m.absolute);
                    wrote_new = true;
                }
            }
            None => {}
        }
        if !wrote_new && loaded.had_cookie {
            // Logged out, or the cookie named no live session: tell the client to drop it.
            cookie = m.cookie.removal();
        }
        if ops.is_empty() {
            return Finish::Done(Ok(cookie));
        }
        #[cfg(feature = "memory")]
        if m.store.as_memory().is_some() {
            // The embedded store's calls complete on their first poll: no future needed.
            let run = run_ops(ops, cookie, m);
            if let Some(result) = futures_util::FutureExt::now_or_never(run) {
                return Finish::Done(result);
            }
            // Not reached: memory store calls are always ready.
            return Finish::Done(Err(SessionError::Store(KvError::backend(
                std::io::Error::other("a memory store call was not ready"),
            ))));
        }
        Finish::Save(Save {
            manager: Arc::clone(&self.inner.manager),
            ops,
            cookie,
        })
    }
}

/// A value as compact JSON in a buffer of its exact size (one allocation).
fn to_json<T: Serialize>(value: &T) -> Result<Bytes, serde_json::Error> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            serde_json::to_writer(&mut *buf, value)?;
            let bytes = Bytes::copy_from_slice(&buf);
            if buf.capacity() > 64 << 10 {
                *buf = Vec::new(); // do not keep a huge buffer per thread
            }
            Ok(bytes)
        }
        // Re-entered from inside a `Serialize` impl: a buffer of its own.
        Err(_) => serde_json::to_vec(value).map(Bytes::from),
    })
}

/// What [`Session::end`] leaves to do.
#[derive(Debug)]
pub enum Finish {
    /// Nothing left: the `Set-Cookie` to send (if any), or the failure (answer 500).
    Done(Result<Option<HeaderValue>, SessionError>),
    /// Store calls to make: await [`Save::run`].
    Save(Save),
}

/// The store calls that save a session, made by [`Save::run`].
pub struct Save {
    manager: Arc<ManagerInner>,
    ops: SmallVec<[Op; 2]>,
    cookie: Option<HeaderValue>,
}

impl fmt::Debug for Save {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Save")
            .field("calls", &self.ops.len())
            .finish_non_exhaustive()
    }
}

impl Save {
    /// Makes the calls, all in flight together (independent keys: one round trip on
    /// Redis); the `Set-Cookie` to send, if any.
    ///
    /// # Errors
    /// [`SessionError::Store`] when a call fails (logged without the session id).
    pub async fn run(self) -> Result<Option<HeaderValue>, SessionError> {
        run_ops(self.ops, self.cookie, &self.manager).await
    }
}

async fn run_ops(
    mut ops: SmallVec<[Op; 2]>,
    cookie: Option<HeaderValue>,
    m: &ManagerInner,
) -> Result<Option<HeaderValue>, SessionError> {
    {
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
        match result {
            Ok(Ran::Done) => Ok(cookie),
            // Ended by another request while this one ran: nothing was revived.
            Ok(Ran::Gone) => Ok(m.cookie.removal()),
            Err(err) => {
                tracing::error!(error = %err, "kv session: saving the session failed");
                Err(SessionError::Store(err))
            }
        }
    }
}

impl fmt::Debug for Session {
    /// Shows whether the session was used, never its id or data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("touched", &self.is_touched())
            .finish_non_exhaustive()
    }
}
