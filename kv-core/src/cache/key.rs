//! Store keys: one primary key per URL (method class, host, path, query), and one key
//! per `Vary` variant under it.

use std::fmt::Write as _;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::policy::vary_value;

/// URLs longer than this are hashed in the key (two independent 64-bit FNV-1a hashes),
/// so that keys stay within every backend's limits.
const MAX_URL_IN_KEY: usize = 1024;

/// The primary key of a URL, for the GET/HEAD method class (the only cacheable one).
pub(crate) fn primary_key(
    prefix: &str,
    host: &str,
    path: &str,
    query: Option<&str>,
    sort_query: bool,
) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let url_len = host.len() + path.len() + query.map_or(0, |q| q.len() + 1);
    let mut key = String::with_capacity(prefix.len() + 2 + url_len.min(MAX_URL_IN_KEY + 40));
    key.push_str(prefix);
    key.push_str("G:");
    let start = key.len();
    for c in host.chars() {
        key.push(c.to_ascii_lowercase());
    }
    key.push_str(path);
    if let Some(q) = query {
        key.push('?');
        if sort_query {
            let mut pairs: Vec<&str> = q.split('&').filter(|p| !p.is_empty()).collect();
            pairs.sort_unstable();
            for (i, p) in pairs.iter().enumerate() {
                if i > 0 {
                    key.push('&');
                }
                key.push_str(p);
            }
        } else {
            key.push_str(q);
        }
    }
    if key.len() - start > MAX_URL_IN_KEY {
        let url = key.split_off(start);
        let _ = write!(
            key,
            "#{:016x}{:016x}",
            fnv1a(FNV_OFFSET, url.as_bytes()),
            fnv1a(FNV_OFFSET ^ 0x9e37_79b9_7f4a_7c15, url.as_bytes())
        );
    }
    key
}

/// The variant key for a request under a `Vary` marker, and the request's values of the
/// named headers (stored in the entry and compared on every hit, so a hash collision can
/// never serve the wrong variant).
pub(crate) fn variant(
    primary: &str,
    nonce: u64,
    names: &[HeaderName],
    request: &HeaderMap,
) -> (String, Vec<(HeaderName, Option<HeaderValue>)>) {
    let values = vary_values(names, request);
    let mut h = FNV_OFFSET;
    for (name, value) in &values {
        h = fnv1a(h, name.as_str().as_bytes());
        h = fnv1a(h, &[0]);
        match value {
            Some(v) => {
                h = fnv1a(h, &[1]);
                h = fnv1a(h, v.as_bytes());
            }
            None => h = fnv1a(h, &[2]),
        }
    }
    let mut key = String::with_capacity(primary.len() + 36);
    key.push_str(primary);
    let _ = write!(key, "|v{nonce:016x}|{h:016x}");
    (key, values)
}

pub(crate) fn vary_values(
    names: &[HeaderName],
    request: &HeaderMap,
) -> Vec<(HeaderName, Option<HeaderValue>)> {
    names
        .iter()
        .map(|n| (n.clone(), vary_value(request, n)))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_hosts_paths_and_queries_and_can_sort_the_query() {
        let a = primary_key("c:", "Example.com", "/a", Some("y=2&x=1"), false);
        assert_eq!(a, "c:G:example.com/a?y=2&x=1");
        assert_ne!(a, primary_key("c:", "other", "/a", Some("y=2&x=1"), false));
        assert_ne!(a, primary_key("c:", "example.com", "/a", None, false));
        assert_eq!(
            primary_key("c:", "h", "/a", Some("y=2&x=1"), true),
            primary_key("c:", "h", "/a", Some("x=1&y=2"), true)
        );
        let long = "/".repeat(5000);
        let k = primary_key("c:", "h", &long, None, false);
        assert!(k.len() < 64, "{k}");
        assert_ne!(k, primary_key("c:", "h", &long[1..], None, false));
    }

    #[test]
    fn variants_differ_by_value_and_by_presence() {
        let names = [HeaderName::from_static("accept-language")];
        let mut fr = HeaderMap::new();
        fr.insert("accept-language", HeaderValue::from_static("fr"));
        let mut en = HeaderMap::new();
        en.insert("accept-language", HeaderValue::from_static("en"));
        let mut empty = HeaderMap::new();
        empty.insert("accept-language", HeaderValue::from_static(""));
        let keys: Vec<String> = [&fr, &en, &empty, &HeaderMap::new()]
            .iter()
            .map(|h| variant("p", 7, &names, h).0)
            .collect();
        for i in 0..keys.len() {
            for j in i + 1..keys.len() {
                assert_ne!(keys[i], keys[j]);
            }
        }
        assert_ne!(
            variant("p", 7, &names, &fr).0,
            variant("p", 8, &names, &fr).0
        );
    }
}
