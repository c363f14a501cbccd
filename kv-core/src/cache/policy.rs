//! The RFC 9111 rules, as pure functions: storability, freshness, age, the headers kept,
//! conditional requests and freshening with a `304`.

use std::time::{Duration, UNIX_EPOCH};

use http::header::{
    AGE, CONTENT_LENGTH, DATE, ETAG, EXPIRES, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::Config;
use super::directives::{Directives, split_top_level, trim};
use super::entry::{Entry, FLAG_NO_CACHE, FLAG_NO_STALE};
pub(crate) use super::head::{HOP_BY_HOP, Head, HeaderLines, name};

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
    match httpdate::parse_http_date(s.trim()) {
        Ok(t) => Some(
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        ),
        Err(_) => lenient_date_ms(s.trim()),
    }
}

/// The three HTTP date formats (RFC 9110 section 5.6.7: IMF-fixdate, RFC 850, asctime),
/// exactly as laid out there, but with names in any case and the weekday not checked
/// against the date (`httpdate` refuses both, recipients should not). `None` for anything
/// else (a missing comma, a one-digit hour, dashes in an IMF-fixdate..: invalid).
fn lenient_date_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if !s.is_ascii() {
        return None;
    }
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let (day, mon, year, time) = if b.len() == 29
        && at(3, b',')
        && at(4, b' ')
        && at(7, b' ')
        && at(11, b' ')
        && at(16, b' ')
        && at(25, b' ')
        && s[26..].eq_ignore_ascii_case("GMT")
        && weekday(&s[..3])
    {
        (
            digits(&s[5..7])?,
            month(&s[8..11])?,
            digits(&s[12..16])?,
            &s[17..25],
        )
    } else if b.len() == 24
        && at(3, b' ')
        && at(7, b' ')
        && at(10, b' ')
        && at(19, b' ')
        && weekday(&s[..3])
    {
        (
            digits(s[8..10].trim_start())?,
            month(&s[4..7])?,
            digits(&s[20..24])?,
            &s[11..19],
        )
    } else {
        let (wd, rest) = s.split_once(", ")?;
        let r = rest.as_bytes();
        if !(weekday(wd)
            && wd.len() > 3
            && r.len() == 22
            && r[2] == b'-'
            && r[6] == b'-'
            && r[9] == b' '
            && r[18] == b' '
            && rest[19..].eq_ignore_ascii_case("GMT"))
        {
            return None;
        }
        // RFC 9110: a two-digit year more than 50 years ahead is in the past century.
        let yy = digits(&rest[7..9])?;
        let year = if yy > 70 { 1900 + yy } else { 2000 + yy };
        (
            digits(&rest[..2])?,
            month(&rest[3..6])?,
            year,
            &rest[10..18],
        )
    };
    let t = time.as_bytes();
    if t.len() != 8 || t[2] != b':' || t[5] != b':' {
        return None;
    }
    let (h, m, sec) = (
        digits(&time[..2])?,
        digits(&time[3..5])?,
        digits(&time[6..])?,
    );
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 || year < 1970 {
        return None;
    }
    // Days since the epoch of a civil date (the proleptic Gregorian calendar).
    let (y, mo) = if mon <= 2 {
        (year - 1, mon + 9)
    } else {
        (year, mon - 3)
    };
    let era = y / 400;
    let yoe = y % 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    secs.checked_mul(1000)
}

fn digits(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn weekday(w: &str) -> bool {
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    DAYS.iter()
        .any(|d| w.eq_ignore_ascii_case(d) || (w.len() == 3 && w.eq_ignore_ascii_case(&d[..3])))
}

fn month(m: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    MONTHS
        .iter()
        .position(|n| m.eq_ignore_ascii_case(n))
        .map(|i| i as u64 + 1)
}

pub(crate) fn header_date_ms(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    headers.get(name).and_then(http_date_ms)
}

/// The `Age` header's value in seconds: the first line's first member, digits only;
/// anything else is ignored (0).
pub(crate) fn age_value(head: &Head<'_>) -> u64 {
    let Some(first) = head.get(&name::AGE) else {
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
pub(crate) fn vary_names(head: &Head<'_>) -> Result<Vec<HeaderName>, ()> {
    let mut names = Vec::new();
    for line in head.get_all(&name::VARY) {
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
pub(crate) fn vary_value(headers: &impl HeaderLines, name: &HeaderName) -> Option<HeaderValue> {
    let mut lines = headers.lines(name);
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
            window = self
                .swr
                .max(self.sie)
                .max(millis(config.stale_on_disconnect));
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
    head: &Head<'_>,
) -> Result<Freshness, NotStored> {
    let headers = head.map;
    // A targeted field (RFC 9213), when configured and present, replaces Cache-Control.
    let cc = config
        .targeted
        .as_ref()
        .and_then(|name| Directives::parse_targeted(headers, name))
        .unwrap_or_else(|| {
            if head.has(name::CACHE_CONTROL.bit | name::PRAGMA.bit) {
                Directives::parse(headers)
            } else {
                Directives::default()
            }
        });
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
    // `Set-Cookie` or `Set-Cookie2`.
    if head.has(name::SET_COOKIE.bit) {
        return Err(NotStored::SetCookie);
    }
    if request_had_authorization
        && !config.cache_authorized
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return Err(NotStored::Authorization);
    }
    if vary_names(head).is_err() {
        return Err(NotStored::VaryStar);
    }

    let date = head
        .get(&name::DATE)
        .and_then(http_date_ms)
        .unwrap_or(response_time);
    let explicit = if let Some(s) = cc.s_maxage {
        Some(s.saturating_mul(1000))
    } else if let Some(m) = cc.max_age {
        Some(m.saturating_mul(1000))
    } else {
        // An invalid Expires (e.g. "0") means "already expired".
        head.get(&name::EXPIRES)
            .map(|expires| http_date_ms(expires).map_or(0, |e| e.saturating_sub(date)))
    };
    let default_ok = cacheable_by_default(status) || cc.public;
    let fresh = match explicit {
        Some(f) => f,
        None if !default_ok => return Err(NotStored::NoFreshness),
        None => {
            let heuristic = if config.heuristic_freshness {
                head.get(&name::LAST_MODIFIED)
                    .and_then(http_date_ms)
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
    let corrected_age_value = age_value(head)
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

/// Which headers of a response are stored: not the hop-by-hop ones, nor those listed in
/// `Connection`, nor `Age` (recomputed on every hit), nor our status header.
pub(crate) struct Storable<'a> {
    /// The names `Connection` lists, lowercased.
    listed: Vec<Vec<u8>>,
    status_header: Option<&'a HeaderName>,
    /// Whether the head has a hop-by-hop name or `Age`: if not, only the status header
    /// can be dropped (the common case, decided without comparing every name).
    drops_some: bool,
}

impl<'a> Storable<'a> {
    pub(crate) fn of(head: &Head<'_>, status_header: Option<&'a HeaderName>) -> Self {
        let mut listed: Vec<Vec<u8>> = Vec::new();
        for line in head.get_all(&name::CONNECTION) {
            for item in line.as_bytes().split(|&b| b == b',') {
                let item = trim(item);
                if !item.is_empty() {
                    listed.push(item.to_ascii_lowercase());
                }
            }
        }
        Storable {
            listed,
            status_header,
            drops_some: head.has(name::HOP_BY_HOP | name::AGE.bit),
        }
    }

    pub(crate) fn keeps(&self, header: &HeaderName) -> bool {
        if Some(header) == self.status_header {
            return false;
        }
        if !self.drops_some {
            return true;
        }
        let n = header.as_str();
        !(HOP_BY_HOP.contains(&n)
            || header == AGE
            || self.listed.iter().any(|l| l.as_slice() == n.as_bytes()))
    }

    /// The stored headers of `headers`, in their order.
    pub(crate) fn filter(&self, headers: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            if self.keeps(name) {
                out.append(name.clone(), value.clone());
            }
        }
        out
    }
}

/// The headers of a response as they are stored ([`Storable`]).
pub(crate) fn storable_headers(
    headers: &HeaderMap,
    status_header: Option<&HeaderName>,
) -> HeaderMap {
    Storable::of(&Head::of(headers), status_header).filter(headers)
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

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn dates_in_any_case_and_with_a_wrong_weekday_are_read() {
        let ms = |s: &'static str| http_date_ms(&HeaderValue::from_static(s));
        let exact = ms("Thu, 18 Aug 2050 02:01:18 GMT").expect("IMF-fixdate");
        assert_eq!(ms("THU, 18 Aug 2050 02:01:18 GMT"), Some(exact));
        assert_eq!(ms("Thu, 18 AUG 2050 02:01:18 GMT"), Some(exact));
        assert_eq!(ms("Thu, 18 Aug 2050 02:01:18 gMT"), Some(exact));
        assert_eq!(ms("Mon, 18 Aug 2050 02:01:18 GMT"), Some(exact));
        assert_eq!(ms("Thu Aug 18 02:01:18 2050"), Some(exact));
        assert_eq!(ms("Thursday, 18-Aug-50 02:01:18 GMT"), Some(exact));
        assert_eq!(
            ms("Thu Aug  8 02:01:18 2050"),
            Some(exact - 10 * 86_400_000)
        );
        for bad in [
            "0",
            "-1",
            "tomorrow",
            "Thu, 32 Aug 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 25:01:18 GMT",
            "Thu, 18 Aug 2050 02:01:18 PST",
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18  Aug 2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu, 18 Aug 50 02:01:18 GMT",
        ] {
            assert_eq!(lenient_date_ms(bad), None, "{bad}");
        }
    }
}
