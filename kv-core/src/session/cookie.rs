//! The session cookie (or token header): finding it in a request, checking it, and
//! writing `Set-Cookie` (or the token response header).

use std::fmt;
use std::time::Duration;

use cookie::{Cookie, CookieJar, Key, SameSite};
use http::{HeaderName, HeaderValue, header};
use smallvec::SmallVec;

use super::id::SessionId;
use crate::ConfigError;

/// How many ids that check out a request may offer the store: each costs one read, tried
/// in order until one names a live session. A browser sends at most a few cookies of one
/// name (one per matching path and domain); more is an attack, and costs no more.
pub(crate) const MAX_CANDIDATES: usize = 3;

/// How many values of our name are checked at all (signature or decryption): the rest are
/// ignored unread, so that a header stuffed with cookies costs bounded crypto.
pub(crate) const MAX_CHECKED: usize = 8;

/// How the id is protected inside the cookie. With several keys, the first signs or
/// encrypts and every one is accepted (key rotation).
#[derive(Clone)]
pub(crate) enum Protection {
    /// The bare id: 128 random bits are unguessable on their own.
    Plain,
    /// The id plus an HMAC-SHA256 tag (`cookie`'s signed jar).
    Signed(Vec<Key>),
    /// The id encrypted and authenticated with AES-256-GCM (`cookie`'s private jar).
    Private(Vec<Key>),
}

/// Where the id travels.
#[derive(Debug, Clone)]
pub(crate) enum Carrier {
    /// A cookie (the default).
    Cookie,
    /// `Authorization: Bearer <token>`; handed back in `response`.
    Bearer { response: HeaderName },
    /// Header `name`; handed back in `response`.
    Header {
        name: HeaderName,
        response: HeaderName,
    },
}

/// An id that checked out.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) id: SessionId,
    /// It verified with an older key: re-issue it under the current one.
    pub(crate) stale_key: bool,
}

/// What the request's cookies (or token headers) offered.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// In the order sent, at most [`MAX_CANDIDATES`].
    pub(crate) candidates: SmallVec<[Candidate; 1]>,
    /// A value of our name was sent at all (valid or not).
    pub(crate) seen: bool,
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
    pub(crate) carrier: Carrier,
}

impl CookieConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Protection::Signed(keys) | Protection::Private(keys) = &self.protection
            && keys.is_empty()
        {
            return Err(ConfigError::new(
                "session manager",
                "signed or private cookies need at least one key",
            ));
        }
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

    /// The header the id arrives in.
    pub(crate) fn request_header(&self) -> HeaderName {
        match &self.carrier {
            Carrier::Cookie => header::COOKIE,
            Carrier::Bearer { .. } => header::AUTHORIZATION,
            Carrier::Header { name, .. } => name.clone(),
        }
    }

    /// The header the id is handed back in.
    pub(crate) fn response_header(&self) -> HeaderName {
        match &self.carrier {
            Carrier::Cookie => header::SET_COOKIE,
            Carrier::Bearer { response } | Carrier::Header { response, .. } => response.clone(),
        }
    }

    /// Whether the id travels in a cookie (which browsers attach by themselves).
    pub(crate) fn is_cookie(&self) -> bool {
        matches!(self.carrier, Carrier::Cookie)
    }

    /// The session ids the request carries that check out, in the order sent, and
    /// whether a value of our name was sent at all. Every one is kept (up to
    /// [`MAX_CANDIDATES`]): a valid but dead cookie planted beside a live one (cookie
    /// tossing from a sibling domain) must not hide it; the loader tries them in order.
    pub(crate) fn find_ids(&self, headers: &[HeaderValue]) -> Found {
        let mut found = Found::default();
        let mut checked = 0;
        let mut offer = |value: &str, found: &mut Found| {
            found.seen = true;
            if checked >= MAX_CHECKED || found.candidates.len() >= MAX_CANDIDATES {
                return;
            }
            checked += 1;
            if let Some(candidate) = self.open(value)
                && !found.candidates.iter().any(|c| c.id == candidate.id)
            {
                found.candidates.push(candidate);
            }
        };
        for value in headers {
            let Ok(text) = value.to_str() else { continue };
            match &self.carrier {
                Carrier::Cookie => {
                    for pair in text.split(';') {
                        let Some((name, value)) = pair.trim().split_once('=') else {
                            continue;
                        };
                        if name.trim() == self.name {
                            offer(value.trim().trim_matches('"'), &mut found);
                        }
                    }
                }
                Carrier::Bearer { .. } => {
                    let text = text.trim();
                    let Some((scheme, token)) = text.split_once(' ') else {
                        continue;
                    };
                    if scheme.eq_ignore_ascii_case("bearer") {
                        offer(token.trim(), &mut found);
                    }
                }
                Carrier::Header { .. } => offer(text.trim(), &mut found),
            }
        }
        found
    }

    /// Checks and unwraps one value; `None` for anything forged or malformed.
    fn open(&self, value: &str) -> Option<Candidate> {
        // Cheap refusal before any crypto: a valid value is short.
        if value.len() > 256 {
            return None;
        }
        let fresh = |id| Candidate {
            id,
            stale_key: false,
        };
        match &self.protection {
            Protection::Plain => SessionId::parse(value).map(fresh),
            Protection::Signed(keys) => keys.iter().enumerate().find_map(|(at, key)| {
                let jar = CookieJar::new();
                let cookie = Cookie::new(self.name.clone(), value.to_owned());
                let verified = jar.signed(key).verify(cookie)?;
                let id = SessionId::parse(verified.value())?;
                Some(Candidate {
                    id,
                    stale_key: at > 0,
                })
            }),
            Protection::Private(keys) => keys.iter().enumerate().find_map(|(at, key)| {
                let jar = CookieJar::new();
                let cookie = Cookie::new(self.name.clone(), value.to_owned());
                let opened = jar.private(key).decrypt(cookie)?;
                let id = SessionId::parse(opened.value())?;
                Some(Candidate {
                    id,
                    stale_key: at > 0,
                })
            }),
        }
    }

    /// The protected form of `id` (what the cookie or token carries).
    fn seal(&self, id: &SessionId) -> Option<String> {
        Some(match &self.protection {
            Protection::Plain => id.as_str().to_owned(),
            Protection::Signed(keys) => {
                let mut jar = CookieJar::new();
                jar.signed_mut(keys.first()?)
                    .add(Cookie::new(self.name.clone(), id.as_str().to_owned()));
                jar.get(&self.name)?.value().to_owned()
            }
            Protection::Private(keys) => {
                let mut jar = CookieJar::new();
                jar.private_mut(keys.first()?)
                    .add(Cookie::new(self.name.clone(), id.as_str().to_owned()));
                jar.get(&self.name)?.value().to_owned()
            }
        })
    }

    /// The `Set-Cookie` value that hands `id` to the client; `max_age` unless the cookie is
    /// a browser-session cookie.
    /// In token mode, the bare token for the response header.
    pub(crate) fn issue(&self, id: &SessionId, max_age: Duration) -> Option<HeaderValue> {
        let value = self.seal(id)?;
        if !self.is_cookie() {
            return sensitive(HeaderValue::try_from(value).ok());
        }
        let mut cookie = self.attributes(Cookie::new(self.name.clone(), value));
        if self.persistent {
            // Rounded up: a cookie must not die before its session does.
            let secs = max_age.as_secs() + u64::from(max_age.subsec_nanos() > 0);
            let secs = i64::try_from(secs).unwrap_or(i64::MAX);
            cookie.set_max_age(cookie::time::Duration::seconds(secs.max(1)));
        }
        sensitive(HeaderValue::try_from(cookie.to_string()).ok())
    }

    /// The `Set-Cookie` value that makes the client drop the cookie (nothing in token
    /// mode: a client drops a token the server no longer knows when told so by the app).
    pub(crate) fn removal(&self) -> Option<HeaderValue> {
        if !self.is_cookie() {
            return None;
        }
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
