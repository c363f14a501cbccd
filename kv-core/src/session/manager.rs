//! The session configuration: [`SessionManager`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cookie::{Key, SameSite};
use http::{HeaderName, HeaderValue};

use super::SessionError;
use super::cookie::{Carrier, CookieConfig, Protection};
use super::handle::Session;
use super::id::USER_TAG;
use super::index::UserSession;
use super::origin::{self, CrossOriginProtection};
use super::shared::ManagerInner;
use crate::clock::{Clock, ClockHandle};
use crate::request::RequestView;
use crate::{Answer, AnyStore, ConfigError, MAX_TTL, Store};

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

    /// The session of one request: only its `Cookie` headers (in token mode, its token
    /// header) are read (copied, no parsing). Makes no store call and checks no
    /// signature: that happens when the handler first uses the session.
    #[inline]
    pub fn start(&self, req: &dyn RequestView) -> Session {
        Session::new(&self.inner, |cookies| {
            req.for_each_header(&self.inner.cookie.request_header(), &mut |value| {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    cookies.push(value);
                }
            });
        })
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

    /// The cross-origin check, for adapters to run before the handler: `Some(403)` when
    /// the request is refused (see [`CrossOriginProtection`]); `None` to go on. Reads
    /// two or three headers; no store call.
    #[inline]
    pub fn check_cross_origin(&self, req: &dyn RequestView) -> Option<Answer> {
        let rules = self.inner.cross_origin.as_ref()?;
        // Safe methods always pass: decided here, without the unsafe methods' frame.
        if origin::is_safe(req.method()) {
            return None;
        }
        self.check_unsafe(rules, req)
    }

    #[inline(never)]
    fn check_unsafe(&self, rules: &origin::CrossOrigin, req: &dyn RequestView) -> Option<Answer> {
        let refused = rules.check(req)?;
        self.inner.metrics.cross_origin_refused.inc();
        tracing::debug!(method = %req.method(), "kv session: cross-origin request refused (403)");
        Some(refused)
    }

    /// The response header the value of [`Session::end`] goes in: `Set-Cookie`, or in
    /// token mode the configured token header.
    pub fn response_header(&self) -> HeaderName {
        self.inner.cookie.response_header()
    }

    /// The key prefixes of this manager's logged-in session records and per-user
    /// indexes, for [`MemoryStoreBuilder::protect_prefix`](crate::MemoryStoreBuilder::protect_prefix)
    /// (so that a flood of anonymous sessions or cache entries cannot evict them).
    pub fn protected_prefixes(&self) -> [String; 2] {
        Self::protected_prefixes_for(&self.inner.prefix)
    }

    /// [`protected_prefixes`](Self::protected_prefixes) for a key prefix (the default
    /// is `session:`), before the manager exists: the store is built first.
    pub fn protected_prefixes_for(key_prefix: &str) -> [String; 2] {
        [
            format!("{key_prefix}{USER_TAG}"),
            format!("{key_prefix}user:"),
        ]
    }
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("SessionManager")
            .field("store", &inner.store.backend_name())
            .field("cookie", &inner.cookie)
            .field("idle_timeout", &inner.idle)
            .field("anonymous_idle_timeout", &inner.anonymous_idle)
            .field("absolute_timeout", &inner.absolute)
            .field("max_idle_timeout", &inner.max_idle)
            .field("max_absolute_timeout", &inner.max_absolute)
            .field("refresh_fraction", &inner.refresh_fraction)
            .field("key_prefix", &inner.prefix)
            .field("cross_origin", &inner.cross_origin)
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
/// | idle timeout | 30 minutes (logged in); anonymous sessions: 10 minutes |
/// | absolute timeout | 12 hours |
/// | per-session lifetimes ([`Session::set_lifetime`](super::Session::set_lifetime)) | up to the idle / absolute timeout |
/// | refresh | at most once per quarter of the idle timeout |
/// | key prefix | `session:` |
/// | id carrier | the cookie ([`bearer_token`](Self::bearer_token) / [`header_token`](Self::header_token): a header) |
/// | cross-origin protection | on for cookies, off in token mode |
///
/// The timeouts are NIST SP 800-63B's AAL2 values, which OWASP ASVS level 2 refers to.
#[must_use]
pub struct SessionManagerBuilder {
    store: AnyStore,
    clock: ClockHandle,
    cookie: CookieConfig,
    idle: Duration,
    anonymous_idle: Option<Duration>,
    absolute: Duration,
    max_idle: Option<Duration>,
    max_absolute: Option<Duration>,
    refresh_fraction: f64,
    prefix: String,
    cross_origin: Option<CrossOriginProtection>,
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
                carrier: Carrier::Cookie,
            },
            idle: Duration::from_secs(30 * 60),
            anonymous_idle: None,
            absolute: Duration::from_secs(12 * 60 * 60),
            max_idle: None,
            max_absolute: None,
            refresh_fraction: 0.25,
            prefix: "session:".to_owned(),
            cross_origin: None,
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
        self.cookie.protection = Protection::Signed(vec![key]);
        self
    }

    /// Encrypts and authenticates the cookie with AES-256-GCM under `key`.
    pub fn private(mut self, key: Key) -> Self {
        self.cookie.protection = Protection::Private(vec![key]);
        self
    }

    /// Signs with the first of `keys` and accepts a cookie signed with any of them (key
    /// rotation: put the new key first, keep the old ones while their cookies live). A
    /// cookie that verified with an older key is re-issued under the first one on that
    /// response, if its session is live. `build()` refuses an empty list.
    pub fn signed_keys(mut self, keys: impl IntoIterator<Item = Key>) -> Self {
        self.cookie.protection = Protection::Signed(keys.into_iter().collect());
        self
    }

    /// [`signed_keys`](Self::signed_keys) for private (AES-256-GCM) cookies.
    pub fn private_keys(mut self, keys: impl IntoIterator<Item = Key>) -> Self {
        self.cookie.protection = Protection::Private(keys.into_iter().collect());
        self
    }

    /// Token mode: the session id comes from `Authorization: Bearer <token>` instead of a
    /// cookie, and is handed back in the response header `x-session-token` when a session
    /// is created or its id cycles (see [`token_response_header`](Self::token_response_header)).
    /// Same records, lifecycle and protection (`signed`/`private` apply to the token);
    /// no cookie is read or set, and cross-origin protection is off unless asked for.
    pub fn bearer_token(mut self) -> Self {
        self.cookie.carrier = Carrier::Bearer {
            response: HeaderName::from_static("x-session-token"),
        };
        self
    }

    /// Token mode with the id in request header `name` (e.g. `x-session-token`), handed
    /// back in the same header name.
    pub fn header_token(mut self, name: HeaderName) -> Self {
        self.cookie.carrier = Carrier::Header {
            name: name.clone(),
            response: name,
        };
        self
    }

    /// In token mode, the response header the new token goes in (default
    /// `x-session-token` for [`bearer_token`](Self::bearer_token), the request header's
    /// name for [`header_token`](Self::header_token)). No effect in cookie mode.
    pub fn token_response_header(mut self, name: HeaderName) -> Self {
        match &mut self.cookie.carrier {
            Carrier::Cookie => {}
            Carrier::Bearer { response } | Carrier::Header { response, .. } => *response = name,
        }
        self
    }

    /// Cross-origin protection for unsafe methods (see [`CrossOriginProtection`]). The
    /// default: on (no trusted origin beyond the request's own) for cookie sessions,
    /// off in token mode; [`CrossOriginProtection::disabled`] turns it off.
    pub fn cross_origin_protection(mut self, protection: CrossOriginProtection) -> Self {
        self.cross_origin = Some(protection);
        self
    }

    /// The idle timeout of anonymous sessions (never logged in): default 10 minutes, or
    /// the idle timeout if that is shorter. Shorter than a logged-in session's, so that
    /// a flood of cookieless visits costs less memory for less time.
    pub fn anonymous_idle_timeout(mut self, idle: Duration) -> Self {
        self.anonymous_idle = Some(idle);
        self
    }

    /// The longest idle timeout a session may choose for itself with
    /// [`Session::set_lifetime`](super::Session::set_lifetime) (default: the idle timeout).
    pub fn max_idle_timeout(mut self, idle: Duration) -> Self {
        self.max_idle = Some(idle);
        self
    }

    /// The longest absolute timeout a session may choose for itself with
    /// [`Session::set_lifetime`](super::Session::set_lifetime) (default: the absolute
    /// timeout). "Remember me for 30 days": raise both maxima, and set the lifetime at login.
    pub fn max_absolute_timeout(mut self, absolute: Duration) -> Self {
        self.max_absolute = Some(absolute);
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
    /// without `Secure`, no key for signed or private cookies, zero or over-long
    /// timeouts, maxima below the timeouts, a malformed trusted origin, or a refresh
    /// fraction outside `(0, 1]`.
    pub fn build(self) -> Result<SessionManager, ConfigError> {
        self.cookie.validate()?;
        let anonymous_idle = self
            .anonymous_idle
            .unwrap_or(self.idle.min(Duration::from_secs(10 * 60)));
        let max_idle = self.max_idle.unwrap_or(self.idle);
        let max_absolute = self.max_absolute.unwrap_or(self.absolute);
        for (what, d) in [
            ("idle_timeout", self.idle),
            ("anonymous_idle_timeout", anonymous_idle),
            ("absolute_timeout", self.absolute),
            ("max_idle_timeout", max_idle),
            ("max_absolute_timeout", max_absolute),
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
        if max_idle < self.idle.max(anonymous_idle) || max_absolute < self.absolute {
            return Err(ConfigError::new(
                "session manager",
                "max_idle_timeout and max_absolute_timeout must be at least the timeouts they bound",
            ));
        }
        let cross_origin = match self.cross_origin {
            Some(protection) => protection.compile()?,
            None if self.cookie.is_cookie() => CrossOriginProtection::new().compile()?,
            None => None,
        };
        Ok(SessionManager {
            inner: Arc::new(ManagerInner {
                store: self.store,
                clock: self.clock,
                cookie: self.cookie,
                idle: self.idle,
                anonymous_idle,
                absolute: self.absolute,
                max_idle,
                max_absolute,
                refresh_fraction: self.refresh_fraction,
                prefix: self.prefix,
                cross_origin,
                metrics: crate::observe::SessionMetrics::new(),
            }),
        })
    }
}
