//! [`Session`]: one request's handle on its session — loading, and the `async` calls.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http::{HeaderValue, StatusCode};
use parking_lot::Mutex;
use smallvec::SmallVec;

use super::SessionError;
use super::cookie::{Candidate, Found};
use super::record::{Record, RecordReader};
use super::save::{self, Save};
use super::shared::ManagerInner;
use super::state::{Loaded, State};
use crate::{KvError, Step, Store};

/// One request's session: a cheap `Clone` (`Arc`), `Send + Sync`.
///
/// Lazy: nothing is read from the store, and no cookie is checked, until a method is
/// called. The first call loads the record (one round trip: `HGETALL` and `PTTL` sent
/// together); later calls work on what was loaded. Changes are written once, by
/// [`end`](Session::end), after the handler answered.
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
    /// `None` only while the allocation waits for the next session of its thread
    /// ([`Session::recycle`]): never seen through a [`Session`].
    manager: Option<Arc<ManagerInner>>,
    cookies: SmallVec<[HeaderValue; 1]>,
    touched: AtomicBool,
    state: Mutex<State>,
}

thread_local! {
    /// One cleared session allocation per thread, left by [`Session::recycle`].
    static SPARE: Cell<Option<Arc<SessionInner>>> = const { Cell::new(None) };
}

impl Session {
    /// A fresh session in the allocation [`recycle`](Session::recycle) left for this
    /// thread, if any, else in a new one; `cookies` fills in the request's cookies.
    pub(super) fn new(
        manager: &Arc<ManagerInner>,
        cookies: impl FnOnce(&mut SmallVec<[HeaderValue; 1]>),
    ) -> Self {
        if let Some(mut inner) = SPARE.try_with(Cell::take).ok().flatten()
            && let Some(slot) = Arc::get_mut(&mut inner)
        {
            // Cleared by `recycle`: only what is per request is set, in place.
            slot.manager = Some(Arc::clone(manager));
            cookies(&mut slot.cookies);
            return Session { inner };
        }
        let mut inner = SessionInner {
            manager: Some(Arc::clone(manager)),
            cookies: SmallVec::new(),
            touched: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        };
        cookies(&mut inner.cookies);
        Session {
            inner: Arc::new(inner),
        }
    }

    /// Gives this handle back once the request is over; adapters call it after the
    /// response (and after [`end`](Session::end)). When it is the session's last handle,
    /// the allocation is cleared (cookies, state, the manager's reference) and kept for
    /// the next session started on this thread, which saves an allocation and a free per
    /// request. A handle that is still shared (a clone kept by a spawned task, a pending
    /// [`Save`]) is only dropped: the clone goes on seeing its session as it was.
    pub fn recycle(self) {
        let mut inner = self.inner;
        let Some(slot) = Arc::get_mut(&mut inner) else {
            return;
        };
        slot.manager = None;
        slot.cookies.clear();
        // Only a touched session has state (every method marks it touched first).
        if std::mem::take(slot.touched.get_mut()) {
            *slot.state.get_mut() = State::default();
        }
        // The thread is exiting when this fails: the allocation is freed instead.
        let _ = SPARE.try_with(move |spare| spare.set(Some(inner)));
    }

    /// Which allocation this handle lives in (tests of [`recycle`](Session::recycle)).
    #[cfg(test)]
    pub(super) fn allocation(&self) -> *const () {
        Arc::as_ptr(&self.inner).cast()
    }

    /// The manager this session belongs to (set whenever a `Session` exists).
    fn manager_arc(&self) -> &Arc<ManagerInner> {
        match &self.inner.manager {
            Some(manager) => manager,
            None => unreachable!("a recycled session allocation is never handed out"),
        }
    }

    /// The response header the value of [`end`](Session::end) goes in: `Set-Cookie`, or
    /// in token mode the configured token header.
    pub fn response_header(&self) -> http::HeaderName {
        self.manager().cookie.response_header()
    }

    /// Whether any method was called in this request. An untouched session needs no
    /// [`end`](Session::end): it made no store call and sets no cookie.
    pub fn is_touched(&self) -> bool {
        self.inner.touched.load(Ordering::Relaxed)
    }

    /// Loads the session if this request has not yet: checks the cookie and reads the
    /// record. The other methods call it; adapters that offer synchronous access (through
    /// [`data`](Session::data)) call it before the handler runs.
    ///
    /// [`Step::Ready`] when nothing has to be awaited: loaded already, no valid cookie, or
    /// a store with a [`LocalStore`](crate::LocalStore) face (read in place, without
    /// copies); [`Step::Pending`] with the read of a remote store (`HGETALL` and `PTTL` in
    /// one round trip). `session.load().await` works either way.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails (logged; the request should fail).
    pub fn load(&self) -> Step<Result<(), SessionError>, Loading> {
        match self.load_now() {
            Ok(None) => Step::Ready(Ok(())),
            Err(err) => Step::Ready(Err(err)),
            Ok(Some(found)) => {
                let session = self.clone();
                Step::Pending(Loading(Box::pin(async move {
                    session.load_remote(found).await
                })))
            }
        }
    }

    /// Loads without waiting when it can (loaded already, no valid cookie, or the
    /// embedded store); else the candidate ids to read from the store.
    ///
    /// Several cookies of our name may check out (a planted, validly signed but dead
    /// one beside the live one): they are tried in the order sent, one store read each,
    /// at most [`MAX_CANDIDATES`](super::cookie::MAX_CANDIDATES), and the first live
    /// session wins.
    fn load_now(&self) -> Result<Option<Found>, SessionError> {
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
        let m = self.manager();
        let found = m.cookie.find_ids(&self.inner.cookies);
        let mut loaded = Loaded::empty(found.seen);
        if found.candidates.is_empty() {
            self.set_loaded(loaded);
            return Ok(None);
        }
        let Some(local) = m.store.local() else {
            return Ok(Some(found));
        };
        for candidate in found.candidates {
            let key = m.record_key(&candidate.id);
            // Both reads at once, the fields lent without copies.
            let mut reader = RecordReader::default();
            let read = local
                .hget_all_with_ttl(&key, &mut |name, value| reader.field(name, value))
                .map(|ttl| reader.finish(ttl));
            if self.consider(&mut loaded, candidate, key, read)? {
                break;
            }
        }
        self.set_loaded(loaded);
        Ok(None)
    }

    async fn load_remote(&self, found: Found) -> Result<(), SessionError> {
        let store = &self.manager().store;
        let mut loaded = Loaded::empty(found.seen);
        for candidate in found.candidates {
            let key = self.manager().record_key(&candidate.id);
            // `HGETALL` and `PTTL` sent together: one round trip.
            let read = futures_util::future::try_join(store.hget_all(&key), store.ttl(&key)).await;
            let record = read.map(|(fields, ttl)| {
                Record::decode(fields.iter().map(|(n, v)| (n.as_str(), v)), ttl)
            });
            if self.consider(&mut loaded, candidate, key, record)? {
                break;
            }
        }
        self.set_loaded(loaded);
        Ok(())
    }

    /// Takes in one candidate's read: `true` when it named a live session (now the
    /// current one), `false` to try the next.
    fn consider(
        &self,
        loaded: &mut Loaded,
        candidate: Candidate,
        key: String,
        read: Result<Option<Record>, KvError>,
    ) -> Result<bool, SessionError> {
        let record = match read {
            Ok(record) => record,
            Err(err) => {
                tracing::error!(error = %err, "kv session: loading the session failed");
                self.manager().metrics.errors.inc();
                self.inner.state.lock().failed = Some(err.clone());
                return Err(SessionError::Store(err));
            }
        };
        let m = self.manager();
        // An id the store does not know is never adopted: `current` stays `None` and a
        // write issues a new id.
        let Some(mut record) = record else {
            return Ok(false);
        };
        let now = m.clock.now_millis();
        loaded.read_at = Some(now);
        let life = m.lifetime(record.user.is_some(), &record.meta);
        if m.ttl_at(record.created_ms, now, life).is_some() {
            loaded.data = std::mem::take(&mut record.data);
            loaded.meta = record.meta.clone();
            loaded.reissue = candidate.stale_key;
            loaded.current = Some((candidate.id, record));
            loaded.current_key = key;
            m.metrics.loads.inc();
            Ok(true)
        } else {
            // Past its absolute deadline (its TTL had not run out yet).
            m.metrics.ended_expired.inc();
            loaded.ended_expired = loaded.ended_expired.saturating_add(1);
            loaded.ended.push((candidate.id, record.user));
            Ok(false)
        }
    }

    fn set_loaded(&self, loaded: Loaded) {
        let mut state = self.inner.state.lock();
        if state.loaded.is_none() {
            state.loaded = Some(Box::new(loaded));
        }
    }

    /// The manager this session belongs to.
    pub(super) fn manager(&self) -> &ManagerInner {
        self.manager_arc()
    }

    /// Runs `f` on the loaded state.
    pub(super) fn with_loaded<R>(
        &self,
        f: impl FnOnce(&mut State) -> Result<R, SessionError>,
    ) -> Result<R, SessionError> {
        let mut state = self.inner.state.lock();
        if state.loaded.is_none() {
            return Err(SessionError::NotLoaded);
        }
        f(&mut state)
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
            Some((user, id)) => Ok(self.manager().end_sessions(&user, Some(&id)).await?),
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
            Some((user, id)) => Ok(self.manager().list(&user, Some(&id)).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Ends the session of this session's user whose [`UserSession::handle`] is
    /// `handle` (a "log out that device" button); whether it was live. `Ok(false)` for an
    /// anonymous session: a user only ends their own sessions.
    ///
    /// [`UserSession::handle`]: super::UserSession::handle
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn end_user_session(&self, handle: &str) -> Result<bool, SessionError> {
        self.load().await?;
        let user = self.with_loaded(|state| {
            let current = state.loaded.as_ref().and_then(|l| l.current.as_ref());
            Ok(current.and_then(|(_, r)| r.user.clone()))
        })?;
        match user {
            Some(user) => Ok(self.manager().end_by_handle(&user, handle).await?),
            None => Ok(false),
        }
    }

    /// Ends the request's use of the session: writes what changed (at most one round
    /// trip; two after a `login`), refreshes the record's TTL when due, and gives the
    /// `Set-Cookie` value to send, if any. For adapters: call it once, after the handler.
    ///
    /// [`Step::Ready`] when nothing is to be written or the store has a
    /// [`LocalStore`](crate::LocalStore) face (written at once); [`Step::Pending`] with the
    /// [`Save`] to await otherwise. `session.end(status).await` works either way.
    ///
    /// A `status` of 5xx discards the request's changes (a handler that failed half-way
    /// saves nothing) and sets no cookie.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed earlier or a write fails now (logged,
    /// without the session id); the adapter answers 500.
    pub fn end(&self, status: StatusCode) -> Step<Result<Option<HeaderValue>, SessionError>, Save> {
        if !self.is_touched() {
            return Step::Ready(Ok(None));
        }
        let state = std::mem::take(&mut *self.inner.state.lock());
        if !tracing::level_enabled!(tracing::Level::DEBUG) {
            return save::end(self.manager_arc(), state, status);
        }
        let span = tracing::debug_span!("kv.session", outcome = tracing::field::Empty);
        match span.in_scope(|| save::end(self.manager_arc(), state, status)) {
            Step::Ready(result) => {
                span.record("outcome", save::outcome(&result));
                Step::Ready(result)
            }
            Step::Pending(save) => Step::Pending(save.in_span(span)),
        }
    }
}

/// A remote store's read of a session, returned by [`Session::load`].
#[must_use = "a load does nothing unless it is awaited"]
pub struct Loading(Pin<Box<dyn Future<Output = Result<(), SessionError>> + Send>>);

impl fmt::Debug for Loading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loading").finish_non_exhaustive()
    }
}

impl Future for Loading {
    type Output = Result<(), SessionError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
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
