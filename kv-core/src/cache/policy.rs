//! The RFC 9111 rules, as pure functions: storability, freshness, age, the headers kept,
//! conditional requests and freshening with a `304`.

use std::time::{Duration, UNIX_EPOCH};

use http::header::{
    AGE, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, DATE, ETAG, EXPIRES, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, SET_COOKIE, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::Config;
use super::directives::{Directives, split_top_level, trim};
use super::entry::{Entry, FLAG_NO_CACHE, FLAG_NO_STALE};

/// Why a response was not stored (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotStored {
    Status,
    NoStore,
    Private,
    SetCookie,
    Authorization,
    VaryStar,
    NoFreshness,
    MustUnderstand,
}

/// Statuses that are cacheable by default (RFC 9110 section 15.1): heuristic freshness
/// and the configured default TTL apply to them only.
pub(crate) fn cacheable_by_default(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The statuses for which `stale-if-error` may serve a stale entry (RFC 5861 section 4):
/// 500, 502, 503 and 504; any other passes through.
pub(crate) fn is_error_for_stale(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// Statuses whose caching semantics we implement (`must-understand`).
fn understood(status: StatusCode) -> bool {
    cacheable_by_default(status) || matches!(status.as_u16(), 302 | 303 | 307)
}

/// Milliseconds since the epoch of an HTTP date.
fn http_date_ms(value: &HeaderValue) -> Option<u64> {
    let s = value.to_str().ok()?;
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    Some(
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    )
}

pub(crate) fn header_date_ms(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    headers.get(name).and_then(http_date_ms)
}

/// The `Age` header's value in seconds: the first line's first member, digits only;
/// anything else is ignored (0).
pub(crate) fn age_value(headers: &HeaderMap) -> u64 {
    let Some(first) = headers.get(AGE) else {
        return 0;
    };
    let bytes = first.as_bytes();
    let token = trim(bytes.split(|&b| b == b',').next().unwrap_or_default());
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    let mut n: u64 = 0;
    for &b in token {
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    n.min(2_147_483_648)
}

/// The `Vary` header names of a response, lowercased, sorted, deduplicated; `Err(())`
/// for `Vary: *` (anywhere in any line).
pub(crate) fn vary_names(headers: &HeaderMap) -> Result<Vec<HeaderName>, ()> {
    let mut names = Vec::new();
    for line in headers.get_all(VARY) {
        for item in line.as_bytes().split(|&b| b == b',') {
            let item = trim(item);
            if item.is_empty() {
                continue;
            }
            if item == b"*" {
                return Err(());
            }
            match HeaderName::from_bytes(item) {
                Ok(n) => names.push(n),
                // A name that cannot be a header never matches: treat as `*`.
                Err(_) => return Err(()),
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Ok(names)
}

/// A request's value of a `Vary`-named header: every line joined with `, `, whitespace
/// around the commas normalised, so that `a,b` and `a, b` select the same variant.
pub(crate) fn vary_value(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?;
    let mut out: Vec<u8> = Vec::with_capacity(first.len());
    let mut push = |line: &HeaderValue| {
        for part in line.as_bytes().split(|&b| b == b',') {
            let part = trim(part);
            if part.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(part);
        }
    };
    push(first);
    for line in lines {
        push(line);
    }
    HeaderValue::from_bytes(&out).ok()
}

/// What [`evaluate`] decided for a storable response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Freshness {
    pub(crate) initial_age: u64,
    pub(crate) fresh: u64,
    pub(crate) swr: u64,
    pub(crate) sie: u64,
    pub(crate) flags: u8,
}

impl Freshness {
    /// How long the store should keep the entry, from `response_time`; `None` when it
    /// would be useless at once.
    pub(crate) fn store_ttl(&self, config: &Config, has_validator: bool) -> Option<Duration> {
        let remaining = self.fresh.saturating_sub(self.initial_age);
        let mut window = 0;
        if self.flags & FLAG_NO_STALE == 0 {
            window = self.swr.max(self.sie);
        }
        if has_validator {
            window = window.max(millis(config.revalidation_window));
        }
        let ttl = remaining.saturating_add(window).min(millis(config.max_ttl));
        (ttl > 0).then(|| Duration::from_millis(ttl))
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a response to a GET may be stored, and its freshness (RFC 9111 sections 3
/// and 4.2, shared-cache rules, plus ours: never `Set-Cookie`).
pub(crate) fn evaluate(
    config: &Config,
    request_had_authorization: bool,
    request_time: u64,
    response_time: u64,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<Freshness, NotStored> {
    // A targeted field (RFC 9213), when configured and present, replaces Cache-Control.
    let cc = config
        .targeted
        .as_ref()
        .and_then(|name| Directives::parse_targeted(headers, name))
        .unwrap_or_else(|| Directives::parse(headers));
    let code = status.as_u16();
    if code < 200 || code == 206 || code == 304 {
        return Err(NotStored::Status);
    }
    if cc.must_understand {
        if !understood(status) {
            return Err(NotStored::MustUnderstand);
        }
    } else if cc.no_store {
        return Err(NotStored::NoStore);
    }
    if cc.private {
        return Err(NotStored::Private);
    }
    if headers.contains_key(SET_COOKIE) || headers.contains_key("set-cookie2") {
        return Err(NotStored::SetCookie);
    }
    if request_had_authorization
        && !config.cache_authorized
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return Err(NotStored::Authorization);
    }
    if vary_names(headers).is_err() {
        return Err(NotStored::VaryStar);
    }

    let date = header_date_ms(headers, &DATE).unwrap_or(response_time);
    let explicit = if let Some(s) = cc.s_maxage {
        Some(s.saturating_mul(1000))
    } else if let Some(m) = cc.max_age {
        Some(m.saturating_mul(1000))
    } else {
        // An invalid Expires (e.g. "0") means "already expired".
        headers
            .get(EXPIRES)
            .map(|expires| http_date_ms(expires).map_or(0, |e| e.saturating_sub(date)))
    };
    let default_ok = cacheable_by_default(status) || cc.public;
    let fresh = match explicit {
        Some(f) => f,
        None if !default_ok => return Err(NotStored::NoFreshness),
        None => {
            let heuristic = if config.heuristic_freshness {
                header_date_ms(headers, &LAST_MODIFIED)
                    .filter(|&lm| lm < date)
                    .map(|lm| ((date - lm) / 10).min(millis(config.heuristic_max)))
            } else {
                None
            };
            match heuristic.or(config.default_ttl.map(millis)) {
                Some(f) => f,
                None => return Err(NotStored::NoFreshness),
            }
        }
    };

    let apparent_age = response_time.saturating_sub(date);
    let response_delay = response_time.saturating_sub(request_time);
    let corrected_age_value = age_value(headers)
        .saturating_mul(1000)
        .saturating_add(response_delay);
    let initial_age = apparent_age.max(corrected_age_value);

    let mut flags = 0;
    if cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some() || cc.no_cache {
        flags |= FLAG_NO_STALE;
    }
    if cc.no_cache {
        flags |= FLAG_NO_CACHE;
    }
    Ok(Freshness {
        initial_age,
        fresh: if cc.no_cache { 0 } else { fresh },
        swr: cc.stale_while_revalidate.unwrap_or(0).saturating_mul(1000),
        sie: cc.stale_if_error.unwrap_or(0).saturating_mul(1000),
        flags,
    })
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1 and the usual legacy ones): never stored.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authentication-info",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The headers of a response as they are stored: without hop-by-hop headers, those
/// listed in `Connection`, `Age` (recomputed on every hit) and our status header.
pub(crate) fn storable_headers(
    headers: &HeaderMap,
    status_header: Option<&HeaderName>,
) -> HeaderMap {
    let mut listed: Vec<Vec<u8>> = Vec::new();
    for line in headers.get_all(CONNECTION) {
        for item in line.as_bytes().split(|&b| b == b',') {
            let item = trim(item);
            if !item.is_empty() {
                listed.push(item.to_ascii_lowercase());
            }
        }
    }
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || name == AGE
            || Some(name) == status_header
            || listed.iter().any(|l| l.as_slice() == n.as_bytes())
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Freshens a stored entry with a `304`'s headers (RFC 9111 section 4.3.4): every header
/// of the `304` replaces the stored one of that name, except `Content-Length`.
pub(crate) fn merge_304(
    stored: &HeaderMap,
    update: &HeaderMap,
    status_header: Option<&HeaderName>,
) -> HeaderMap {
    let update = storable_headers(update, status_header);
    let mut out = stored.clone();
    let mut replaced: Vec<&HeaderName> = Vec::new();
    for (name, value) in &update {
        if name == CONTENT_LENGTH {
            continue;
        }
        if !replaced.contains(&name) {
            out.remove(name);
            replaced.push(name);
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The opaque part of an entity tag (`W/` dropped), for weak comparison.
fn opaque_tag(tag: &[u8]) -> &[u8] {
    let tag = trim(tag);
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// Whether a conditional request is answered `304` by this entry (RFC 9110 section 13.2.2:
/// `If-None-Match` first, with weak comparison; else `If-Modified-Since` against
/// `Last-Modified`).
pub(crate) fn not_modified(entry: &Entry, request: &HeaderMap) -> bool {
    let mut inm = request.get_all(IF_NONE_MATCH).iter().peekable();
    if inm.peek().is_some() {
        let Some(etag) = entry.headers.get(ETAG) else {
            return false;
        };
        let ours = opaque_tag(etag.as_bytes());
        return inm.any(|line| {
            split_top_level(line.as_bytes()).any(|t| {
                let t = trim(t);
                t == b"*" || opaque_tag(t) == ours
            })
        });
    }
    if let Some(since) = header_date_ms(request, &IF_MODIFIED_SINCE) {
        let modified = header_date_ms(&entry.headers, &LAST_MODIFIED)
            .or_else(|| header_date_ms(&entry.headers, &DATE));
        return modified.is_some_and(|m| m <= since);
    }
    false
}

/// The headers a `304` generated from an entry carries (RFC 9110 section 15.4.5).
pub(crate) const HEADERS_OF_304: [HeaderName; 7] = [
    http::header::CACHE_CONTROL,
    http::header::CONTENT_LOCATION,
    DATE,
    ETAG,
    EXPIRES,
    VARY,
    LAST_MODIFIED,
];

/// Whether a request carries credentials (`Authorization`).
pub(crate) fn has_authorization(headers: &HeaderMap) -> bool {
    headers.contains_key(AUTHORIZATION)
}
