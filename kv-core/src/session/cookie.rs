//! The session cookie: finding it in a request, checking it, and writing `Set-Cookie`.

use std::fmt;
use std::time::Duration;

use cookie::{Cookie, CookieJar, Key, SameSite};
use http::HeaderValue;

use super::id::SessionId;
use crate::ConfigError;

/// How the id is protected inside the cookie.
#[derive(Clone)]
pub(crate) enum Protection {
    /// The bare id: 128 random bits are unguessable on their own.
    Plain,
    /// The id plus an HMAC-SHA256 tag (`cookie`'s signed jar).
    Signed(Key),
    /// The id encrypted and authenticated with AES-256-GCM (`cookie`'s private jar).
    Private(Key),
}

impl fmt::Debug for Protection {
    /// Never shows the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protection::Plain => "Plain",
            Protection::Signed(_) => "Signed(<key redacted>)",
            Protection::Private(_) => "Private(<key redacted>)",
        })
    }
}

/// The cookie's name and attributes.
#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    /// `false`: a browser-session cookie (no `Max-Age`).
    pub(crate) persistent: bool,
    pub(crate) protection: Protection,
}

impl CookieConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_graphic()
                        && !matches!(
                            b,
                            b'(' | b')'
                                | b'<'
                                | b'>'
                                | b'@'
                                | b','
                                | b';'
                                | b':'
                                | b'\\'
                                | b'"'
                                | b'/'
                                | b'['
                                | b']'
                                | b'?'
                                | b'='
                                | b'{'
                                | b'}'
                        )
                })
        };
        if !token(&self.name) {
            return Err(ConfigError::new(
                "session manager",
                "the session cookie name must be a non-empty RFC 6265 token",
            ));
        }
        let attr = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && b != b';');
        if !self.path.starts_with('/') || !attr(&self.path) {
            return Err(ConfigError::new(
                "session manager",
                "the session cookie path must start with '/' and hold no ';', space or control character",
            ));
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty() || !attr(domain))
        {
            return Err(ConfigError::new(
                "session manager",
                "the session cookie domain must be non-empty and hold no ';', space or control character",
            ));
        }
        if self.name.starts_with("__Host-")
            && (!self.secure || self.path != "/" || self.domain.is_some())
        {
            return Err(ConfigError::new(
                "session manager",
                "a `__Host-` cookie name requires Secure, Path=/ and no Domain (browsers drop it \
                 otherwise); choose another `cookie_name` for plain-HTTP development",
            ));
        }
        if self.name.starts_with("__Secure-") && !self.secure {
            return Err(ConfigError::new(
                "session manager",
                "a `__Secure-` cookie name requires Secure",
            ));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::new(
                "session manager",
                "SameSite=None requires Secure (browsers drop it otherwise)",
            ));
        }
        Ok(())
    }

    /// The session id the request's cookies carry, if one checks out, and whether a
    /// cookie of our name was sent at all. The first one that verifies wins (a browser
    /// sends the most specific cookie first when several share the name).
    pub(crate) fn find_id(&self, cookie_headers: &[HeaderValue]) -> (Option<SessionId>, bool) {
        let mut seen = false;
        for value in cookie_headers {
            let Ok(text) = value.to_str() else { continue };
            for pair in text.split(';') {
                let Some((name, value)) = pair.trim().split_once('=') else {
                    continue;
                };
                if name.trim() != self.name {
                    continue;
                }
                seen = true;
                let value = value.trim().trim_matches('"');
                if let Some(id) = self.open(value) {
                    return (Some(id), true);
                }
            }
        }
        (None, seen)
    }

    /// Checks and unwraps one cookie value; `None` for anything forged or malformed.
    fn open(&self, value: &str) -> Option<SessionId> {
        // Cheap refusal before any crypto: a valid value is short.
        if value.len() > 256 {
            return None;
        }
        match &self.protection {
            Protection::Plain => SessionId::parse(value),
            Protection::Signed(key) => {
                let jar = CookieJar::new();
                let cookie = Cookie::new(self.name.clone(), value.to_owned());
                let verified = jar.signed(key).verify(cookie)?;
                SessionId::parse(verified.value())
            }
            Protection::Private(key) => {
                let jar = CookieJar::new();
                let cookie = Cookie::new(self.name.clone(), value.to_owned());
                let opened = jar.private(key).decrypt(cookie)?;
                SessionId::parse(opened.value())
            }
        }
    }

    /// The `Set-Cookie` value that hands `id` to the client; `max_age` unless the cookie is
    /// a browser-session cookie.
    pub(crate) fn issue(&self, id: &SessionId, max_age: Duration) -> Option<HeaderValue> {
        let value = match &self.protection {
            Protection::Plain => id.as_str().to_owned(),
            Protection::Signed(key) => {
                let mut jar = CookieJar::new();
                jar.signed_mut(key)
                    .add(Cookie::new(self.name.clone(), id.as_str().to_owned()));
                jar.get(&self.name)?.value().to_owned()
            }
            Protection::Private(key) => {
                let mut jar = CookieJar::new();
                jar.private_mut(key)
                    .add(Cookie::new(self.name.clone(), id.as_str().to_owned()));
                jar.get(&self.name)?.value().to_owned()
            }
        };
        let mut cookie = self.attributes(Cookie::new(self.name.clone(), value));
        if self.persistent {
            // Rounded up: a cookie must not die before its session does.
            let secs = max_age.as_secs() + u64::from(max_age.subsec_nanos() > 0);
            let secs = i64::try_from(secs).unwrap_or(i64::MAX);
            cookie.set_max_age(cookie::time::Duration::seconds(secs.max(1)));
        }
        sensitive(HeaderValue::try_from(cookie.to_string()).ok())
    }

    /// The `Set-Cookie` value that makes the client drop the cookie.
    pub(crate) fn removal(&self) -> Option<HeaderValue> {
        let mut cookie = self.attributes(Cookie::new(self.name.clone(), ""));
        cookie.make_removal();
        sensitive(HeaderValue::try_from(cookie.to_string()).ok())
    }

    fn attributes(&self, mut cookie: Cookie<'static>) -> Cookie<'static> {
        cookie.set_path(self.path.clone());
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.set_secure(self.secure);
        cookie.set_http_only(self.http_only);
        cookie.set_same_site(self.same_site);
        cookie
    }
}

/// Marks a `Set-Cookie` value sensitive: its `Debug` no longer shows the session id (and
/// HTTP/2 encoders keep it out of their compression tables).
fn sensitive(value: Option<HeaderValue>) -> Option<HeaderValue> {
    value.map(|mut v| {
        v.set_sensitive(true);
        v
    })
}
