//! Cross-origin protection for cookie sessions: the algorithm of Go 1.25's
//! `net/http.CrossOriginProtection`, decided before the handler runs.

use http::{Method, StatusCode, header};

use crate::request::RequestView;
use crate::{Answer, ConfigError};

/// Which cross-origin requests a session middleware refuses, with `403 Forbidden`, before
/// the handler runs (against login CSRF and CSRF in general).
///
/// The rules, as Go 1.25's `net/http.CrossOriginProtection`:
/// 1. `GET`, `HEAD` and `OPTIONS` always pass (safe methods must not change state).
/// 2. A request with `Sec-Fetch-Site: same-origin` or `none` (typed in the address bar, a
///    bookmark) passes; any other `Sec-Fetch-Site` value (`cross-site`, `same-site`) is
///    refused unless its `Origin` is a [trusted origin](CrossOriginProtection::trust_origin).
/// 3. Without `Sec-Fetch-Site` (older browsers), an `Origin` whose host equals the
///    request's host (`Host`, or the authority of the request target) passes, a trusted
///    one too; any other is refused (`Origin: null` included).
/// 4. A request with neither header is not from a browser (curl, a server, a mobile app)
///    and passes: it cannot carry a victim's cookies by itself.
///
/// On by default for cookie sessions; off in token mode (a token in a header is never
/// attached by a browser on its own, and cross-origin API clients are legitimate there).
/// See [`SessionManagerBuilder::cross_origin_protection`](super::SessionManagerBuilder::cross_origin_protection).
///
/// ```
/// use kv_core::session::CrossOriginProtection;
/// let protection = CrossOriginProtection::new().trust_origin("https://sso.example.com");
/// # let _ = protection;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct CrossOriginProtection {
    trusted: Vec<String>,
    disabled: bool,
}

impl CrossOriginProtection {
    /// Protection on, no trusted origin beyond the request's own.
    pub fn new() -> Self {
        Self::default()
    }

    /// No protection at all (for an application that checks origins or tokens itself).
    pub fn disabled() -> Self {
        CrossOriginProtection {
            trusted: Vec::new(),
            disabled: true,
        }
    }

    /// Also accept unsafe requests whose `Origin` is exactly `origin`
    /// (`scheme://host[:port]`, compared without regard to case), e.g. a separate
    /// single-sign-on front end. Checked in `SessionManagerBuilder::build`.
    pub fn trust_origin(mut self, origin: impl Into<String>) -> Self {
        self.trusted.push(origin.into());
        self
    }

    /// The rules ready for requests: `None` when disabled.
    pub(super) fn compile(self) -> Result<Option<CrossOrigin>, ConfigError> {
        if self.disabled {
            return Ok(None);
        }
        let mut trusted = Vec::with_capacity(self.trusted.len());
        for origin in self.trusted {
            let valid = origin.split_once("://").is_some_and(|(scheme, host)| {
                !scheme.is_empty()
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                    && !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"/?#@".contains(&b))
            });
            if !valid {
                return Err(ConfigError::new(
                    "session manager",
                    "a trusted origin must be `scheme://host[:port]`, without path, query or user",
                ));
            }
            trusted.push(origin.to_ascii_lowercase());
        }
        Ok(Some(CrossOrigin { trusted }))
    }
}

/// `GET`, `HEAD` and `OPTIONS`: the methods that always pass (rule 1; `TRACE` does not,
/// as in Go, although RFC 9110 counts it safe too).
#[inline]
pub(super) fn is_safe(method: &Method) -> bool {
    method.is_safe() && *method != Method::TRACE
}

/// [`CrossOriginProtection`], validated.
#[derive(Debug, Clone)]
pub(super) struct CrossOrigin {
    /// Lower-case `scheme://host[:port]`.
    trusted: Vec<String>,
}

impl CrossOrigin {
    /// `Some(403)` when the request is refused.
    pub(super) fn check(&self, req: &dyn RequestView) -> Option<Answer> {
        let method = req.method();
        if is_safe(method) {
            return None;
        }
        let origin = req.header(&header::ORIGIN);
        let trusted = || {
            origin.is_some_and(|o| {
                self.trusted
                    .iter()
                    .any(|t| t.as_bytes().eq_ignore_ascii_case(o))
            })
        };
        let refuse = || {
            tracing::debug!(%method, "kv session: a cross-origin request was refused");
            Some(Answer::text(StatusCode::FORBIDDEN, "Forbidden"))
        };
        match req.header(&header::HeaderName::from_static("sec-fetch-site")) {
            Some(b"same-origin" | b"none") => return None,
            Some(_) => return if trusted() { None } else { refuse() },
            None => {}
        }
        let Some(origin) = origin else {
            return None; // neither header: not a browser
        };
        let host = req
            .authority()
            .map(str::as_bytes)
            .or_else(|| req.header(&header::HOST));
        let origin_host = origin
            .windows(3)
            .position(|w| w == b"://")
            .map(|at| &origin[at + 3..]);
        if let (Some(host), Some(origin_host)) = (host, origin_host)
            && !host.is_empty()
            && origin_host.eq_ignore_ascii_case(host)
        {
            return None;
        }
        if trusted() { None } else { refuse() }
    }
}
