//! Entry points into the crate's parsers for the fuzz targets in `fuzz/` (feature
//! `fuzzing`). Not a public API: thin wrappers that call the real parsers and return
//! something simple to assert on; they never change what the parsers do.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::Ttl;
use crate::cache::entry::{self, Stored};
use crate::cache::{directives::Directives, policy, tags};
use crate::rate_limit::{ForwardedHeader, KeySource, forwarded};
use crate::session::record::{self, Record};

/// Decodes stored cache bytes (an entry or a `Vary` marker) and encodes what they
/// decode to again; `None` when they are not a stored form.
pub fn cache_entry_reencode(bytes: &[u8]) -> Option<Vec<u8>> {
    match entry::decode(Bytes::copy_from_slice(bytes))? {
        Stored::Entry(e) => {
            let mut head = BytesMut::new();
            e.encode_head(&mut head);
            assert_eq!(head.len(), e.head_len(), "head_len is encode_head's size");
            Some(e.encode().to_vec())
        }
        Stored::Marker(m) => Some(m.encode().to_vec()),
    }
}

/// A decoded session record, in comparable form: created ms, user, idle ms, absolute
/// ms, csrf token, the user keys with their values.
pub type RecordSummary = (
    u64,
    Option<String>,
    Option<u64>,
    Option<u64>,
    Option<String>,
    Vec<(String, Vec<u8>)>,
);

fn summary(r: &Record) -> RecordSummary {
    (
        r.created_ms,
        r.user.clone(),
        r.meta.idle_ms,
        r.meta.absolute_ms,
        r.meta.csrf.clone(),
        r.data
            .iter()
            .map(|f| (f.key.to_string(), f.value.to_vec()))
            .collect(),
    )
}

/// The fields of a session hash: name, value.
pub type Fields = Vec<(String, Vec<u8>)>;

/// Decodes the fields of a session hash as read from the store (`persistent`: the
/// record has no TTL); with the record it decodes to, the fields it encodes to again.
pub fn session_record(
    fields: &[(String, Vec<u8>)],
    persistent: bool,
) -> Option<(RecordSummary, Fields)> {
    let values: Vec<(&str, Bytes)> = fields
        .iter()
        .map(|(n, v)| (n.as_str(), Bytes::copy_from_slice(v)))
        .collect();
    let ttl = if persistent {
        Ttl::Persistent
    } else {
        Ttl::Expires(std::time::Duration::from_secs(60))
    };
    let r = Record::decode(values.iter().map(|(n, v)| (*n, v)), ttl)?;
    let again: Fields = record::encode(r.created_ms, r.user.as_deref(), &r.meta, &r.data)
        .into_iter()
        .map(|(n, v)| (n, v.to_vec()))
        .collect();
    Some((summary(&r), again))
}

/// Redis' integer grammar (`string2ll`), as the stores parse it.
pub fn parse_redis_int(bytes: &[u8]) -> Option<i64> {
    crate::store::input::parse_redis_int(bytes)
}

/// The hops of one RFC 7239 `Forwarded` field value, as text (`None`: no address).
pub fn forwarded_hops(value: &[u8]) -> Vec<Option<std::net::IpAddr>> {
    let mut out = Vec::new();
    forwarded::forwarded_hops(value, &mut out);
    out
}

/// The address of a single-value client-IP header (`CF-Connecting-IP` and its peers).
pub fn single_ip(value: &[u8]) -> Option<std::net::IpAddr> {
    forwarded::single_ip(value)
}

/// The rate-limit key [`KeySource::client_ip`] takes from a request from the trusted
/// proxy `10.0.0.1` (trusted: `10.0.0.0/8`) carrying `lines` of the header `which`
/// selects (0 `X-Forwarded-For`, 1 `Forwarded`, 2 `CF-Connecting-IP`, 3
/// `True-Client-IP`, 4 `Fly-Client-IP`, else `X-Real-IP`); `None`: no key.
pub fn client_ip_key(which: u8, lines: &[&[u8]]) -> Option<String> {
    let header = match which % 6 {
        0 => ForwardedHeader::XForwardedFor,
        1 => ForwardedHeader::Forwarded,
        2 => ForwardedHeader::CfConnectingIp,
        3 => ForwardedHeader::TrueClientIp,
        4 => ForwardedHeader::FlyClientIp,
        _ => ForwardedHeader::XRealIp,
    };
    let name = match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
        ForwardedHeader::CfConnectingIp => "cf-connecting-ip",
        ForwardedHeader::TrueClientIp => "true-client-ip",
        ForwardedHeader::FlyClientIp => "fly-client-ip",
        _ => "x-real-ip",
    };
    let mut req = http::Request::new(());
    for line in lines {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            req.headers_mut().append(HeaderName::from_static(name), v);
        }
    }
    req.extensions_mut()
        .insert(SocketAddr::from(([10, 0, 0, 1], 4000)));
    let trusted = "10.0.0.0/8".parse::<ipnet::IpNet>().ok()?;
    let source = KeySource::client_ip([trusted]).forwarded_header(header);
    source.extract(&req).map(|k| k.to_string())
}

/// A response's caching headers parsed as the cache parses them: `Cache-Control` (and
/// `Pragma`), `CDN-Cache-Control`, `Vary` and the surrogate-key (tag) header
/// `Surrogate-Key`. Returns whether the targeted field was valid, the `Vary` names (`None`
/// for `*`) and the tags (`None`: refused).
pub fn cache_headers(lines: &[(u8, &[u8])]) -> (bool, Option<Vec<String>>, Option<Vec<String>>) {
    let mut headers = HeaderMap::new();
    for (which, line) in lines {
        let name = match which % 5 {
            0 => http::header::CACHE_CONTROL,
            1 => HeaderName::from_static("cdn-cache-control"),
            2 => http::header::VARY,
            3 => HeaderName::from_static("surrogate-key"),
            _ => http::header::PRAGMA,
        };
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(name, v);
        }
    }
    let _ = Directives::parse(&headers);
    let targeted =
        Directives::parse_targeted(&headers, &HeaderName::from_static("cdn-cache-control"))
            .is_some();
    let vary = policy::vary_names(&policy::Head::of(&headers))
        .ok()
        .map(|n| n.iter().map(|n| n.as_str().to_owned()).collect());
    let tags = tags::parse(&headers, &HeaderName::from_static("surrogate-key")).ok();
    (targeted, vary, tags)
}

fn cookie_config(mode: u8) -> crate::session::cookie::CookieConfig {
    use crate::session::cookie::{Carrier, CookieConfig, Protection};
    let key = |b: u8| crate::session::Key::from(&[b; 64]);
    CookieConfig {
        name: "id".to_owned(),
        path: "/".to_owned(),
        domain: None,
        secure: true,
        http_only: true,
        same_site: crate::session::SameSite::Lax,
        persistent: true,
        // Two keys: the second is an older one still accepted (rotation).
        protection: match mode % 3 {
            0 => Protection::Plain,
            1 => Protection::Signed(vec![key(1), key(2)]),
            _ => Protection::Private(vec![key(1), key(2)]),
        },
        carrier: Carrier::Cookie,
    }
}

/// The session cookie `id` in its plain (`mode % 3 == 0`), signed (1) or private (2)
/// form: the ids (text) that `Cookie` lines offer, and whether a value of the name was
/// seen at all.
pub fn session_cookie_ids(mode: u8, lines: &[&[u8]]) -> (Vec<String>, bool) {
    let headers: Vec<HeaderValue> = lines
        .iter()
        .filter_map(|l| HeaderValue::from_bytes(l).ok())
        .collect();
    let found = cookie_config(mode).find_ids(&headers);
    let ids = found
        .candidates
        .iter()
        .map(|c| c.id.as_str().to_owned())
        .collect();
    (ids, found.seen)
}

/// The cookie value (`id=…`) the engine issues for the session id made of `random` in
/// the given mode, and the id's text.
pub fn issue_session_cookie(mode: u8, random: [u8; 16]) -> Option<(String, String)> {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
    let id = crate::session::id::SessionId::parse(&text)?;
    let set_cookie = cookie_config(mode).issue(&id, std::time::Duration::from_secs(60))?;
    let pair = set_cookie.to_str().ok()?.split(';').next()?.to_owned();
    Some((pair, text))
}

/// The `RateLimit-Policy` and `RateLimit` field values the limiter emits for `policies`
/// (name, limit, window ms, remaining, reset ms; names as the builder admits them).
pub fn ratelimit_fields(policies: &[(String, u64, u64, u64, u64)]) -> (String, String) {
    use crate::rate_limit::PolicyState;
    use crate::rate_limit::decision::{policy_value, state_value};
    use std::time::Duration;
    let policy = policy_value(
        policies
            .iter()
            .map(|(n, limit, window, _, _)| (n.as_str(), *limit, Duration::from_millis(*window))),
    );
    let states: Vec<PolicyState> = policies
        .iter()
        .map(|(n, limit, window, remaining, reset)| PolicyState {
            name: n.as_str().into(),
            limit: *limit,
            window: Duration::from_millis(*window),
            remaining: *remaining,
            reset_after: Duration::from_millis(*reset),
            retry_after: None,
        })
        .collect();
    let state = state_value(&states);
    let text = |v: HeaderValue| v.to_str().map(str::to_owned).unwrap_or_default();
    (text(policy), text(state))
}
