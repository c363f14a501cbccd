//! [`Session`]: one request's handle on its session, and what happens when it ends.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
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
use super::record::{self, RESERVED_PREFIX, Record};
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
/// creation field, is never loaded as a session, and expires with its TTL.
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
    loaded: Option<Loaded>,
    /// The store failed while loading: the request ends with a 500.
    failed: Option<KvError>,
    /// Keys set by this request (their values are in `loaded.data`).
    dirty: HashSet<String>,
    /// Keys removed by this request.
    removed: HashSet<String>,
    cycle: bool,
    /// `login(user)` was called: new id, new absolute lifetime, this user.
    login: Option<String>,
}

struct Loaded {
    /// The live session the client's cookie named, if any.
    current: Option<(SessionId, Record)>,
    /// The data as this request sees it (JSON text per key).
    data: HashMap<String, Box<str>>,
    /// Sessions to delete at the end: flushed, or found past their absolute deadline.
    ended: Vec<(SessionId, Option<String>)>,
    /// The client sent a cookie of our name (valid or not).
    had_cookie: bool,
}

type Op<'a> = Pin<Box<dyn Future<Output = Result<(), KvError>> + Send + 'a>>;

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
        self.inner.touched.store(true, Ordering::Relaxed);
        {
            let state = self.inner.state.lock();
            if let Some(err) = &state.failed {
                return Err(SessionError::Store(err.clone()));
            }
            if state.loaded.is_some() {
                return Ok(());
            }
        }
        let m = &*self.inner.manager;
        let (id, had_cookie) = m.cookie.find_id(&self.inner.cookies);
        let mut loaded = Loaded {
            current: None,
            data: HashMap::new(),
            ended: Vec::new(),
            had_cookie,
        };
        if let Some(id) = id {
            let key = m.record_key(&id);
            let read =
                futures_util::future::try_join(m.store.hget_all(&key), m.store.ttl(&key)).await;
            let (fields, ttl) = match read {
                Ok(read) => read,
                Err(err) => {
                    tracing::error!(error = %err, "kv session: loading the session failed");
                    self.inner.state.lock().failed = Some(err.clone());
                    return Err(SessionError::Store(err));
                }
            };
            // An id the store does not know is never adopted: `current` stays `None`
            // and a write issues a new id.
            if let Some(mut record) = Record::decode(fields, ttl) {
                let now = m.clock.now_millis();
                if m.ttl_at(record.created_ms, now).is_some() {
                    loaded.data = std::mem::take(&mut record.data);
                    loaded.current = Some((id, record));
                } else {
                    // Past its absolute deadline (its TTL had not run out yet).
                    loaded.ended.push((id, record.user));
                }
            }
        }
        let mut state = self.inner.state.lock();
        if state.loaded.is_none() {
            state.loaded = Some(loaded);
        }
        Ok(())
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
            let data = state.loaded.as_ref().map(|l| &l.data);
            let Some(text) = data.and_then(|d| d.get(key)) else {
                return Ok(None);
            };
            serde_json::from_str(text)
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
        let text = serde_json::to_string(&value).map_err(|source| SessionError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        self.with_loaded(|state| {
            if let Some(loaded) = state.loaded.as_mut() {
                loaded.data.insert(key.to_owned(), text.into());
            }
            state.removed.remove(key);
            state.dirty.insert(key.to_owned());
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
            let present = state
                .loaded
                .as_mut()
                .is_some_and(|l| l.data.remove(key).is_some());
            state.dirty.remove(key);
            if present {
                state.removed.insert(key.to_owned());
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
        self.with_loaded(|state| {
            Ok(state
                .loaded
                .as_ref()
                .map(|l| l.data.keys().cloned().collect())
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
                let keys: Vec<String> = loaded.data.drain().map(|(k, _)| k).collect();
                state.removed.extend(keys);
            }
            state.dirty.clear();
            Ok(())
        })
    }

    /// Gives the session a new id at the end of the request, keeping its data, and
    /// deletes the record under the old id: the defence against session fixation, for
    /// every change of privilege. (A session not yet stored just gets its first id.)
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn cycle_id(&self) -> Result<(), SessionError> {
        self.load().await?;
        self.with_loaded(|state| {
            state.cycle = true;
            Ok(())
        })
    }

    /// Logs the session in as `user`: a new id (as [`cycle_id`](Session::cycle_id)), a
    /// new absolute lifetime, and an entry in the user's index so that
    /// [`SessionManager::end_user_sessions`](super::SessionManager::end_user_sessions)
    /// can end it. Costs one more round trip at the end of the request (the index is
    /// pruned of dead sessions).
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn login(&self, user: &str) -> Result<(), SessionError> {
        self.load().await?;
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
        self.with_loaded(|state| {
            if let Some(loaded) = state.loaded.as_mut() {
                if let Some((id, record)) = loaded.current.take() {
                    loaded.ended.push((id, record.user));
                }
                loaded.data.clear();
            }
            state.dirty.clear();
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

    /// Ends the request's use of the session: writes what changed (at most one round
    /// trip; two after a `login`), refreshes the record's TTL when due, and returns the
    /// `Set-Cookie` value to send, if any. For adapters: call it once, after the handler.
    ///
    /// A `status` of 5xx discards the request's changes (a handler that failed half-way
    /// saves nothing) and sets no cookie.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed earlier or a write fails now (logged,
    /// without the session id); the adapter answers 500.
    pub async fn finish(&self, status: StatusCode) -> Result<Option<HeaderValue>, SessionError> {
        if !self.is_touched() {
            return Ok(None);
        }
        let state = std::mem::take(&mut *self.inner.state.lock());
        if let Some(err) = state.failed {
            return Err(SessionError::Store(err));
        }
        if status.is_server_error() {
            tracing::debug!(%status, "kv session: the handler failed; its changes are discarded");
            return Ok(None);
        }
        let Some(loaded) = state.loaded else {
            return Ok(None);
        };
        let m = &*self.inner.manager;
        let now = m.clock.now_millis();
        let mut ops: Vec<Op<'_>> = Vec::new();
        let mut cookie = None;
        let mut wrote_new = false;

        for (id, user) in loaded.ended {
            ops.push(del(m, m.record_key(&id)));
            if let Some(user) = user {
                ops.push(hdel(m, m.user_key(&user), vec![id.as_str().to_owned()]));
            }
        }

        match loaded.current {
            Some((id, record)) if state.cycle => {
                let fresh = state.login.is_some();
                let created = if fresh { now } else { record.created_ms };
                let user = state.login.or_else(|| record.user.clone());
                ops.push(del(m, m.record_key(&id)));
                if let Some(old_user) = &record.user {
                    ops.push(hdel(m, m.user_key(old_user), vec![id.as_str().to_owned()]));
                }
                if let Some(ttl) = m.ttl_at(created, now) {
                    let new_id = SessionId::random();
                    let fields = record::encode(created, user.as_deref(), &loaded.data);
                    ops.push(hset(m, m.record_key(&new_id), fields, ttl));
                    if let Some(user) = user {
                        ops.push(index_add(m, user, new_id.clone(), created, now));
                    }
                    let left = m.absolute_deadline(created).saturating_sub(now);
                    cookie = m.cookie.issue(&new_id, Duration::from_millis(left));
                    wrote_new = true;
                }
            }
            Some((id, record)) => {
                let key = m.record_key(&id);
                match m.ttl_at(record.created_ms, now) {
                    // The absolute deadline passed during the request.
                    None => ops.push(del(m, key)),
                    Some(ttl) => {
                        let sets: Vec<(String, Bytes)> = state
                            .dirty
                            .iter()
                            .filter_map(|k| {
                                let v = loaded.data.get(k)?;
                                Some((k.clone(), Bytes::from(v.as_bytes().to_vec())))
                            })
                            .collect();
                        let dels: Vec<String> = state.removed.into_iter().collect();
                        let due = record
                            .ttl_left
                            .is_none_or(|left| ttl.saturating_sub(left) >= m.refresh_after);
                        let changed = !sets.is_empty() || !dels.is_empty();
                        if !sets.is_empty() {
                            // The write refreshes the TTL in the same step.
                            ops.push(hset(m, key.clone(), sets, ttl));
                        } else if changed || due {
                            ops.push(expire(m, key.clone(), ttl));
                        }
                        if !dels.is_empty() {
                            ops.push(hdel(m, key, dels));
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
                    ops.push(hset(m, m.record_key(&new_id), fields, ttl));
                    if let Some(user) = user {
                        ops.push(index_add(m, user, new_id.clone(), now, now));
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
        if let Err(err) = try_join_all(ops).await {
            tracing::error!(error = %err, "kv session: saving the session failed");
            return Err(SessionError::Store(err));
        }
        Ok(cookie)
    }
}

fn del(m: &ManagerInner, key: String) -> Op<'_> {
    Box::pin(async move { m.store.del(&key).await.map(drop) })
}

fn hdel(m: &ManagerInner, key: String, fields: Vec<String>) -> Op<'_> {
    Box::pin(async move { m.store.hdel(&key, fields).await.map(drop) })
}

fn hset(m: &ManagerInner, key: String, fields: Vec<(String, Bytes)>, ttl: Duration) -> Op<'_> {
    Box::pin(async move { m.store.hset(&key, fields, Some(ttl)).await })
}

fn expire(m: &ManagerInner, key: String, ttl: Duration) -> Op<'_> {
    Box::pin(async move { m.store.expire(&key, ttl).await.map(drop) })
}

fn index_add(m: &ManagerInner, user: String, id: SessionId, created: u64, now: u64) -> Op<'_> {
    Box::pin(async move {
        m.index_add(&user, &id, m.absolute_deadline(created), now)
            .await
    })
}

impl fmt::Debug for Session {
    /// Shows whether the session was used, never its id or data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("touched", &self.is_touched())
            .finish_non_exhaustive()
    }
}
