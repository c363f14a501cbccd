//! The session configuration: [`SessionManager`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cookie::{Key, SameSite};
use http::{HeaderValue, header};
use smallvec::SmallVec;

use super::SessionError;
use super::cookie::{CookieConfig, Protection};
use super::handle::Session;
use super::index::UserSession;
use super::shared::ManagerInner;
use crate::clock::{Clock, ClockHandle};
use crate::request::RequestView;
use crate::{AnyStore, ConfigError, MAX_TTL, Store};

/// The session engine: configuration, store and clock, shared by every request.
///
/// Cheap to clone. An adapter calls [`start`](SessionManager::start) once per request
/// (no store call, no cookie crypto), hands the [`Session`] to the handler, and calls
/// [`Session::end`] when the handler has answered.
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<ManagerInner>,
}

impl SessionManager {
    /// A builder over `store` (any [`Store`]; it is held as an [`AnyStore`]).
    pub fn builder(store: impl Store) -> SessionManagerBuilder {
        SessionManagerBuilder::new(AnyStore::new(store))
    }

    /// The session of one request: only its `Cookie` headers are read (copied, no
    /// parsing). Makes no store call and checks no signature: that happens when the
    /// handler first uses the session.
    pub fn start(&self, req: &dyn RequestView) -> Session {
        let mut cookies = SmallVec::new();
        req.for_each_header(&header::COOKIE, &mut |value| {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                cookies.push(value);
            }
        });
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
    /// [`ConfigError`] for an invalid cookie name, path or domain, a `__Host-`
    /// or `__Secure-` name without the attributes browsers demand, `SameSite=None`
    /// without `Secure`, zero or over-long timeouts, or a refresh fraction outside
    /// `(0, 1]`.
    pub fn build(self) -> Result<SessionManager, ConfigError> {
        self.cookie.validate()?;
        for (what, d) in [
            ("idle_timeout", self.idle),
            ("absolute_timeout", self.absolute),
        ] {
            if d.is_zero() || d > MAX_TTL {
                return Err(ConfigError::new(
                    "session manager",
                    format!("{what} must be positive and at most kv_core::MAX_TTL"),
                ));
            }
        }
        if !(self.refresh_fraction > 0.0 && self.refresh_fraction <= 1.0) {
            return Err(ConfigError::new(
                "session manager",
                "refresh_fraction must be in (0, 1]",
            ));
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
