//! [`SessionData`]: the synchronous calls on a loaded session.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::SessionError;
use super::handle::Session;
use super::record::{Field, Meta, RESERVED_PREFIX};

/// The calls of a [`Session`] that has been [`load`](Session::load)ed, answered in place:
/// returned by [`Session::data`]. Each is the synchronous twin of the `async` method of
/// the same name on `Session` (which loads first); before a load they fail with
/// [`SessionError::NotLoaded`].
#[derive(Debug, Clone, Copy)]
pub struct SessionData<'a>(pub(super) &'a Session);

/// The `async` calls: each loads the session (once per request), then does what its
/// [`SessionData`] twin does.
impl Session {
    /// The value under `key`, deserialized as `T`; `None` when absent.
    ///
    /// # Errors
    /// [`SessionError::Deserialize`] when the stored value is not a `T`;
    /// [`SessionError::Store`] when loading failed.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.load().await?;
        self.data().get(key)
    }

    /// Stores `value` under `key` (serialized as JSON), written when the request ends.
    ///
    /// # Errors
    /// [`SessionError::ReservedKey`] for keys starting with `__kv.`;
    /// [`SessionError::Serialize`] when `value` cannot be serialized;
    /// [`SessionError::Store`] when loading failed.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        self.load().await?;
        self.data().insert(key, value)
    }

    /// Replaces the value under `key` with `f(value)`; whether it was present (nothing
    /// is stored when it was not).
    ///
    /// # Errors
    /// As [`get`](Session::get) and [`insert`](Session::insert).
    pub async fn update<T, F>(&self, key: &str, f: F) -> Result<bool, SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(T) -> T,
    {
        self.load().await?;
        self.data().update(key, f)
    }

    /// Replaces the value under `key` with `f(value)`, or stores `default` when absent.
    ///
    /// # Errors
    /// As [`get`](Session::get) and [`insert`](Session::insert).
    pub async fn update_or<T, F>(&self, key: &str, default: T, f: F) -> Result<(), SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(T) -> T,
    {
        self.load().await?;
        self.data().update_or(key, default, f)
    }

    /// Removes `key`; whether it was present.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn remove(&self, key: &str) -> Result<bool, SessionError> {
        self.load().await?;
        self.data().remove(key)
    }

    /// The keys present, in no particular order.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn keys(&self) -> Result<Vec<String>, SessionError> {
        self.load().await?;
        self.data().keys()
    }

    /// Removes every key; the session (and its id) stays.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.load().await?;
        self.data().clear()
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
        self.data().cycle_id()
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
        self.data().login(user)
    }

    /// The user this session was logged in as, if any.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn user(&self) -> Result<Option<String>, SessionError> {
        self.load().await?;
        self.data().user()
    }

    /// Logs out: the record is deleted and the client told to drop the cookie when the
    /// request ends. Keys inserted after this start a new, anonymous session.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn flush(&self) -> Result<(), SessionError> {
        self.load().await?;
        self.data().flush()
    }

    /// The synchronous face of a [`load`](Session::load)ed session: the same calls as
    /// the `async` ones, answered in place ([`SessionError::NotLoaded`] before a load).
    /// For adapters whose handlers are synchronous (kv-actix's `Session`).
    pub fn data(&self) -> SessionData<'_> {
        SessionData(self)
    }
}

impl SessionData<'_> {
    /// The value under `key`, deserialized as `T`; `None` when absent.
    ///
    /// # Errors
    /// [`SessionError::Deserialize`] when the stored value is not a `T`;
    /// [`SessionError::NotLoaded`] before the session was loaded;
    /// [`SessionError::Store`] when loading failed.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.0.with_loaded(|state| {
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
    /// [`SessionError::NotLoaded`] before the session was loaded;
    /// [`SessionError::Store`] when loading failed.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        if key.starts_with(RESERVED_PREFIX) {
            return Err(SessionError::ReservedKey(key.to_owned()));
        }
        let value = to_json(&value).map_err(|source| SessionError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        self.0.with_loaded(|state| {
            if let Some(loaded) = state.loaded.as_mut() {
                match loaded.data.iter_mut().find(|f| f.key == key) {
                    Some(field) => {
                        field.value = value;
                        field.dirty = true;
                    }
                    None => loaded.data.push(Field {
                        key: key.into(),
                        value,
                        dirty: true,
                    }),
                }
            }
            state.removed.retain(|k| k != key);
            Ok(())
        })
    }

    /// Replaces the value under `key` with `f(value)`; whether it was present (nothing
    /// is stored when it was not).
    ///
    /// # Errors
    /// As [`get`](SessionData::get) and [`insert`](SessionData::insert).
    pub fn update<T, F>(&self, key: &str, f: F) -> Result<bool, SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(T) -> T,
    {
        match self.get::<T>(key)? {
            Some(value) => self.insert(key, f(value)).map(|()| true),
            None => Ok(false),
        }
    }

    /// Replaces the value under `key` with `f(value)`, or stores `default` when absent.
    ///
    /// # Errors
    /// As [`get`](SessionData::get) and [`insert`](SessionData::insert).
    pub fn update_or<T, F>(&self, key: &str, default: T, f: F) -> Result<(), SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(T) -> T,
    {
        match self.get::<T>(key)? {
            Some(value) => self.insert(key, f(value)),
            None => self.insert(key, default),
        }
    }

    /// Removes `key`; whether it was present.
    ///
    /// # Errors
    /// [`SessionError::NotLoaded`] before the session was loaded;
    /// [`SessionError::Store`] when loading failed.
    pub fn remove(&self, key: &str) -> Result<bool, SessionError> {
        self.0.with_loaded(|state| {
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
    /// [`SessionError::NotLoaded`] before the session was loaded;
    /// [`SessionError::Store`] when loading failed.
    pub fn keys(&self) -> Result<Vec<String>, SessionError> {
        self.0.with_loaded(|state| {
            Ok(state
                .loaded
                .as_ref()
                .map(|l| l.data.iter().map(|f| f.key.to_string()).collect())
                .unwrap_or_default())
        })
    }

    /// Removes every key; the session (and its id) stays.
    ///
    /// # Errors
    /// [`SessionError::NotLoaded`] before the session was loaded;
    /// [`SessionError::Store`] when loading failed.
    pub fn clear(&self) -> Result<(), SessionError> {
        self.0.with_loaded(|state| {
            if let Some(loaded) = state.loaded.as_mut() {
                for field in loaded.data.drain(..) {
                    if !state.removed.iter().any(|k| *k == field.key) {
                        state.removed.push(field.key.into());
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
    /// [`SessionError::NotLoaded`] before the session was loaded;
    /// [`SessionError::Store`] when loading failed.
    pub fn cycle_id(&self) -> Result<(), SessionError> {
        self.0.with_loaded(|state| {
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
    /// [`SessionError::NotLoaded`] before the session was loaded;
    /// [`SessionError::Store`] when loading failed.
    pub fn login(&self, user: &str) -> Result<(), SessionError> {
        self.0.with_loaded(|state| {
            state.login = Some(user.to_owned());
            state.cycle = true;
            // The login form's synchronizer token belonged to the anonymous session.
            if let Some(loaded) = state.loaded.as_mut()
                && loaded.meta.csrf.take().is_some()
            {
                loaded.meta_dirty = true;
            }
            Ok(())
        })
    }

    /// The user this session was logged in as, if any.
    ///
    /// # Errors
    /// [`SessionError::NotLoaded`] before the session was loaded;
    /// [`SessionError::Store`] when loading failed.
    pub fn user(&self) -> Result<Option<String>, SessionError> {
        self.0.with_loaded(|state| {
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
    /// [`SessionError::NotLoaded`] before the session was loaded;
    /// [`SessionError::Store`] when loading failed.
    pub fn flush(&self) -> Result<(), SessionError> {
        self.0.with_loaded(|state| {
            if let Some(loaded) = state.loaded.as_mut() {
                if let Some((id, record)) = loaded.current.take() {
                    loaded.ended.push((id, record.user));
                }
                loaded.data.clear();
                loaded.meta = Meta::default();
                loaded.meta_dirty = false;
                loaded.reissue = false;
            }
            state.removed.clear();
            state.cycle = false;
            state.login = None;
            Ok(())
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
