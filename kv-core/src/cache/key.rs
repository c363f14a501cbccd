//! Store keys: one primary key per URL (method class, host, path, query), and one key
//! per `Vary` variant under it.
//!
//! A primary key is `prefix "G:"` and then every field length-prefixed
//! (`len ":" bytes`, lengths in decimal): the host, the path, the query (`-` when there is
//! none) and, when a [custom key function](super::CacheBuilder::custom_key) gives one, its
//! part after a `+`. No two different field tuples give the same string, whatever bytes the
//! fields hold. When that string is longer than [`MAX_URL_IN_KEY`], it is replaced by `#`
//! and 128 bits of its SHA-256 (the `#` cannot start a length, so a hashed key never equals
//! a plain one).

use std::fmt::Write as _;

use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use super::config::KeyRules;
use super::head::HeaderLines;
use super::policy::vary_value;

/// URLs longer than this are hashed in the key, so that keys stay within every backend's
/// limits.
const MAX_URL_IN_KEY: usize = 1024;

/// The fields of a primary key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyFields<'a> {
    pub(crate) host: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    /// The custom key function's part, if any.
    pub(crate) custom: Option<&'a str>,
}

/// Appends a length in decimal (short ones without a copy call: this runs on every hit).
fn push_len(key: &mut String, n: usize) {
    if n < 10 {
        key.push(char::from(b'0' + n as u8));
    } else if n < 100 {
        key.push(char::from(b'0' + (n / 10) as u8));
        key.push(char::from(b'0' + (n % 10) as u8));
    } else {
        key.push_str(itoa::Buffer::new().format(n));
    }
}

/// Appends `len ":" bytes`.
fn field(key: &mut String, s: &str) {
    push_len(key, s.len());
    key.push(':');
    key.push_str(s);
}

/// A hit's primary key is built in this thread's spare buffer and given back
/// ([`recycle`]), so a hit allocates no key; a miss keeps its key (it moves into the fill).
pub(crate) use crate::spare::recycle;
use crate::spare::take as spare_buffer;

/// The primary key of a URL, for the GET/HEAD method class (the only cacheable one).
pub(crate) fn primary_key(prefix: &str, fields: KeyFields<'_>, rules: &KeyRules) -> String {
    let KeyFields {
        host,
        path,
        query,
        custom,
    } = fields;
    let path = if path.is_empty() { "/" } else { path };
    let query = query.and_then(|q| rules.query(q));
    let url_len = host.len() + path.len() + query.as_ref().map_or(1, |q| q.len() + 6) + 16;
    let mut key = spare_buffer();
    key.reserve(prefix.len() + 2 + url_len.min(MAX_URL_IN_KEY + 40));
    key.push_str(prefix);
    key.push_str("G:");
    let start = key.len();
    push_len(&mut key, host.len());
    key.push(':');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        for c in host.chars() {
            key.push(c.to_ascii_lowercase());
        }
    } else {
        key.push_str(host);
    }
    field(&mut key, path);
    match &query {
        Some(q) => field(&mut key, q),
        None => key.push('-'),
    }
    if let Some(custom) = custom {
        key.push('+');
        field(&mut key, custom);
    }
    if key.len() - start > MAX_URL_IN_KEY {
        let url = key.split_off(start);
        let digest = Sha256::digest(url.as_bytes());
        key.push('#');
        for b in &digest[..16] {
            let _ = write!(key, "{b:02x}");
        }
    }
    key
}

/// Whether `s` is an RFC 3986 `host [ ":" port ]` (the form `Host` and an absolute-form
/// authority must have; RFC 9110 section 7.2): an IP-literal in brackets, or a non-empty
/// reg-name / IPv4address of unreserved characters, percent-encodings and sub-delims;
/// then optionally `:` and at most five digits.
pub(crate) fn valid_authority(s: &str) -> bool {
    let b = s.as_bytes();
    // The common case in one pass: reg-name characters, at most one `:` followed by
    // digits only.
    let mut colon = None;
    let mut simple = true;
    for (i, &c) in b.iter().enumerate() {
        if HOST_CHARS[usize::from(c)] {
            continue;
        }
        if c == b':' && colon.is_none() {
            colon = Some(i);
            continue;
        }
        simple = false;
        break;
    }
    if simple {
        return match colon {
            None => !b.is_empty(),
            Some(i) => {
                let digits = &b[i + 1..];
                i > 0 && digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit)
            }
        };
    }
    let (host, port) = if b.first() == Some(&b'[') {
        let Some(close) = b.iter().position(|&c| c == b']') else {
            return false;
        };
        let inner = &s[1..close];
        let literal_ok = inner.parse::<std::net::Ipv6Addr>().is_ok() || ip_future(inner);
        if !literal_ok {
            return false;
        }
        (&b[..=close], &b[close + 1..])
    } else {
        match b.iter().rposition(|&c| c == b':') {
            Some(i) => (&b[..i], &b[i..]),
            None => (b, &b[b.len()..]),
        }
    };
    if host.is_empty() {
        return false;
    }
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    port_ok && (host[0] == b'[' || reg_name(host))
}

/// `unreserved / sub-delims` (RFC 3986), as a table: the check runs on every request.
const HOST_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        c += 1;
    }
    t
};

fn unreserved_or_sub_delim(c: u8) -> bool {
    HOST_CHARS[usize::from(c)]
}

fn reg_name(host: &[u8]) -> bool {
    // The common case: no percent-encoding.
    if host.iter().all(|&c| HOST_CHARS[usize::from(c)]) {
        return true;
    }
    let mut i = 0;
    while i < host.len() {
        let c = host[i];
        if c == b'%' {
            let hex = |j: usize| host.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !unreserved_or_sub_delim(c) {
            return false;
        }
        i += 1;
    }
    true
}

/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn ip_future(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['v', 'V']) else {
        return false;
    };
    let Some((ver, tail)) = rest.split_once('.') else {
        return false;
    };
    !ver.is_empty()
        && ver.bytes().all(|c| c.is_ascii_hexdigit())
        && !tail.is_empty()
        && tail
            .bytes()
            .all(|c| c == b':' || unreserved_or_sub_delim(c))
}

/// The variant key for a request under a `Vary` marker, and the request's values of the
/// named headers (stored in the entry and compared on every hit, so a hash collision can
/// never serve the wrong variant).
pub(crate) fn variant(
    primary: &str,
    nonce: u64,
    names: &[HeaderName],
    request: &HeaderMap,
    rules: &KeyRules,
) -> (String, Vec<(HeaderName, Option<HeaderValue>)>) {
    let values = vary_values(names, request, rules);
    let key = variant_key(primary, nonce, &values);
    (key, values)
}

/// The variant key of a set of (normalised) `Vary` values: every name and value
/// length-prefixed into two independent 64-bit FNV-1a hashes.
pub(crate) fn variant_key(
    primary: &str,
    nonce: u64,
    values: &[(HeaderName, Option<HeaderValue>)],
) -> String {
    let mut h = [FNV_OFFSET, FNV_OFFSET ^ 0x9e37_79b9_7f4a_7c15];
    for (name, value) in values {
        for h in &mut h {
            *h = fnv1a(*h, &(name.as_str().len() as u64).to_be_bytes());
            *h = fnv1a(*h, name.as_str().as_bytes());
            match value {
                Some(v) => {
                    *h = fnv1a(*h, &[1]);
                    *h = fnv1a(*h, &(v.len() as u64).to_be_bytes());
                    *h = fnv1a(*h, v.as_bytes());
                }
                None => *h = fnv1a(*h, &[2]),
            }
        }
    }
    let mut key = String::with_capacity(primary.len() + 52);
    key.push_str(primary);
    let _ = write!(key, "|v{nonce:016x}|{:016x}{:016x}", h[0], h[1]);
    key
}

/// The request's values of the `Vary`-named headers, normalised (see
/// [`KeyRules::vary_value`]).
pub(crate) fn vary_values(
    names: &[HeaderName],
    request: &impl HeaderLines,
    rules: &KeyRules,
) -> Vec<(HeaderName, Option<HeaderValue>)> {
    names
        .iter()
        .map(|n| (n.clone(), rules.vary_value(request, n)))
        .collect()
}

impl KeyRules {
    /// The query as it goes into the key: ignored parameters dropped (`None` when nothing
    /// is left of a query that had some), pairs sorted when configured.
    fn query<'q>(&self, q: &'q str) -> Option<std::borrow::Cow<'q, str>> {
        use std::borrow::Cow;
        if self.ignored_query.is_empty() && !self.sort_query {
            return Some(Cow::Borrowed(q));
        }
        let mut pairs: Vec<&str> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split_once('=').map_or(*p, |(n, _)| n);
                !self.ignored_query.iter().any(|rule| rule.matches(name))
            })
            .collect();
        if pairs.is_empty() && !q.is_empty() {
            return None;
        }
        if self.sort_query {
            pairs.sort_unstable();
        }
        Some(Cow::Owned(pairs.join("&")))
    }

    /// A request's value of a `Vary`-named header: every line joined with `, `; an
    /// `Accept-Encoding` normalised (see
    /// [`normalize_accept_encoding`](super::CacheBuilder::normalize_accept_encoding)).
    pub(crate) fn vary_value(
        &self,
        request: &impl HeaderLines,
        name: &HeaderName,
    ) -> Option<HeaderValue> {
        if name == http::header::ACCEPT_ENCODING && request.has(name) {
            return Some(accept_encoding(request, self.encodings.as_deref()));
        }
        if name == http::header::ACCEPT_LANGUAGE && request.has(name) {
            return Some(accept_language(request));
        }
        vary_value(request, name)
    }
}

/// `Accept-Encoding` reduced to what it selects: with the origin's `encodings` (in its
/// order of preference), the first one the request accepts (`q` above 0), else
/// `identity`; without, the accepted codings lowercased, sorted and deduplicated (so that
/// `gzip, br` and `br, gzip` share one variant). An absent header stays a variant of its
/// own (RFC 9110 section 12.5.3: it accepts any coding).
fn accept_encoding(request: &impl HeaderLines, encodings: Option<&[String]>) -> HeaderValue {
    let mut accepted: Vec<String> = Vec::new();
    for line in request.lines(&http::header::ACCEPT_ENCODING) {
        let Ok(line) = line.to_str() else { continue };
        for item in line.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if coding.is_empty() {
                continue;
            }
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .next()
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 {
                accepted.push(coding);
            }
        }
    }
    match encodings {
        Some(encodings) => {
            let chosen = encodings
                .iter()
                .find(|e| accepted.iter().any(|a| a == *e || a == "*"))
                .map_or("identity", String::as_str);
            HeaderValue::from_str(chosen).unwrap_or(HeaderValue::from_static("identity"))
        }
        None => {
            accepted.sort_unstable();
            accepted.dedup();
            HeaderValue::from_str(&accepted.join(", ")).unwrap_or(HeaderValue::from_static(""))
        }
    }
}

/// `Accept-Language` as the preferences it states: tags lowercased, `q=0` ones dropped,
/// ordered by `q` (highest first) and, where the `q`s are equal (no preference), by tag;
/// so `en, de`, `de, en` and `De, EN` share one variant.
fn accept_language(request: &impl HeaderLines) -> HeaderValue {
    let mut prefs: Vec<(u16, String)> = Vec::new();
    for line in request.lines(&http::header::ACCEPT_LANGUAGE) {
        let Ok(line) = line.to_str() else { continue };
        for item in line.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if tag.is_empty() {
                continue;
            }
            let q = parts
                .filter_map(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="))
                })
                .next()
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0)
                .clamp(0.0, 1.0);
            // Thousandths, as RFC 9110 section 12.4.2 writes them.
            let q = (q * 1000.0).round() as u16;
            if q > 0 {
                prefs.push((q, tag));
            }
        }
    }
    prefs.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    prefs.dedup_by(|a, b| a.1 == b.1);
    let mut out = String::new();
    for (i, (q, tag)) in prefs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(tag);
        if *q < 1000 {
            let _ = write!(out, ";q=0.{q:03}");
        }
    }
    HeaderValue::from_str(&out).unwrap_or(HeaderValue::from_static(""))
}

/// The cross-replica fill lock of a primary key.
pub(crate) fn lock_key(primary: &str) -> String {
    let mut key = String::with_capacity(primary.len() + 5);
    key.push_str(primary);
    key.push_str("|lock");
    key
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a: stable across processes and versions (variant keys are shared by
/// replicas), unlike the std hasher.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
