//! Per-session lifetimes ("remember me"): idle and absolute timeouts chosen by the
//! application for one session, kept in its record, within the manager's maxima; and a
//! session's own expiry, readable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::SessionError;
use super::data::SessionData;
use super::handle::Session;
use super::shared::millis;

/// When a session ends, as [`Session::expiry`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionExpiry {
    /// The session's idle timeout (its own, or the manager's for its class).
    pub idle_timeout: Duration,
    /// The session's absolute timeout.
    pub absolute_timeout: Duration,
    /// When it ends if it is not used again (the idle timeout from now, cut at the
    /// absolute deadline).
    pub idle_deadline: SystemTime,
    /// When it ends however active it is.
    pub absolute_deadline: SystemTime,
}

/// Per-session lifetimes.
impl Session {
    /// Gives this session its own idle and absolute timeouts (e.g. "remember me" at
    /// login), kept in its record; each is cut to the manager's
    /// [`max_idle_timeout`](super::SessionManagerBuilder::max_idle_timeout) /
    /// [`max_absolute_timeout`](super::SessionManagerBuilder::max_absolute_timeout).
    /// The absolute timeout counts from the session's creation or login; the cookie's
    /// `Max-Age` follows it.
    ///
    /// # Errors
    /// [`SessionError::InvalidLifetime`] for a zero timeout;
    /// [`SessionError::Store`] when loading failed.
    pub async fn set_lifetime(
        &self,
        idle: Duration,
        absolute: Duration,
    ) -> Result<(), SessionError> {
        self.load().await?;
        self.data().set_lifetime(idle, absolute)
    }

    /// When this session ends, as things stand in this request (a login or
    /// [`set_lifetime`](Session::set_lifetime) in it counted); `None` when the request
    /// has no session and will not create one.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn expiry(&self) -> Result<Option<SessionExpiry>, SessionError> {
        self.load().await?;
        self.data().expiry()
    }
}

impl SessionData<'_> {
    /// [`Session::set_lifetime`] in place.
    ///
    /// # Errors
    /// [`SessionError::InvalidLifetime`] for a zero timeout;
    /// [`SessionError::NotLoaded`] before the session was loaded.
    pub fn set_lifetime(&self, idle: Duration, absolute: Duration) -> Result<(), SessionError> {
        if idle.is_zero() || absolute.is_zero() {
            return Err(SessionError::InvalidLifetime);
        }
        let m = self.0.manager();
        let idle = millis(idle.min(m.max_idle));
        let absolute = millis(absolute.min(m.max_absolute));
        self.0.with_loaded(|state| {
            if let Some(loaded) = state.loaded.as_mut() {
                loaded.meta.idle_ms = Some(idle);
                loaded.meta.absolute_ms = Some(absolute);
                loaded.meta_dirty = true;
            }
            Ok(())
        })
    }

    /// [`Session::expiry`] in place.
    ///
    /// # Errors
    /// [`SessionError::NotLoaded`] before the session was loaded.
    pub fn expiry(&self) -> Result<Option<SessionExpiry>, SessionError> {
        let m = self.0.manager();
        self.0.with_loaded(|state| {
            let Some(loaded) = state.loaded.as_ref() else {
                return Ok(None);
            };
            let now = loaded.read_at.unwrap_or_else(|| m.clock.now_millis());
            let current = loaded.current.as_ref().map(|(_, r)| r);
            let pending = !loaded.data.is_empty() || state.login.is_some() || loaded.meta_dirty;
            if current.is_none() && !pending {
                return Ok(None);
            }
            let created = match (&state.login, current) {
                (None, Some(record)) => record.created_ms,
                _ => now,
            };
            let logged_in = state.login.is_some() || current.is_some_and(|r| r.user.is_some());
            let life = m.lifetime(logged_in, &loaded.meta);
            let deadline = m.absolute_deadline(created, life);
            let idle_end = now.saturating_add(millis(life.idle)).min(deadline);
            Ok(Some(SessionExpiry {
                idle_timeout: life.idle,
                absolute_timeout: life.absolute,
                idle_deadline: UNIX_EPOCH + Duration::from_millis(idle_end),
                absolute_deadline: UNIX_EPOCH + Duration::from_millis(deadline),
            }))
        })
    }
}
