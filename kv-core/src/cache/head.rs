//! Heads read once: which of the names the caching policy reads a response has, and
//! what a miss notes of its request.

use http::header::{AUTHORIZATION, IF_RANGE, RANGE};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 section 7.6.1 and the usual legacy ones): never stored.
pub(crate) const HOP_BY_HOP: [&str; 10] = [
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

/// The names of a response head that the policy reads, as bits of [`Head::present`].
pub(crate) mod name {
    pub(crate) const CACHE_CONTROL: u32 = 1;
    pub(crate) const PRAGMA: u32 = 1 << 1;
    /// `Set-Cookie` or `Set-Cookie2`.
    pub(crate) const SET_COOKIE: u32 = 1 << 2;
    pub(crate) const VARY: u32 = 1 << 3;
    pub(crate) const DATE: u32 = 1 << 4;
    pub(crate) const EXPIRES: u32 = 1 << 5;
    pub(crate) const LAST_MODIFIED: u32 = 1 << 6;
    pub(crate) const AGE: u32 = 1 << 7;
    pub(crate) const ETAG: u32 = 1 << 8;
    pub(crate) const CONNECTION: u32 = 1 << 9;
    pub(crate) const CONTENT_LENGTH: u32 = 1 << 10;
    /// Any hop-by-hop name ([`HOP_BY_HOP`](HOP_BY_HOP), `Connection` included).
    pub(crate) const HOP_BY_HOP: u32 = 1 << 11;
}

/// A response head with the names the policy reads found in one pass over its names.
///
/// A miss asks a response for some fifteen names, most of them absent (`Set-Cookie`,
/// `Vary`, `Expires`, `Age`, the validators, `Connection`..), and a look-up of an absent
/// name hashes and probes as much as one of a present name. Reading every name once and
/// asking the map only for those present cost ~600 instructions less a miss (callgrind).
#[derive(Clone, Copy)]
pub(crate) struct Head<'a> {
    pub(crate) map: &'a HeaderMap,
    present: u32,
}

impl<'a> Head<'a> {
    pub(crate) fn of(map: &'a HeaderMap) -> Self {
        let mut present = 0;
        for n in map.keys() {
            present |= bit_of(n.as_str());
        }
        Head { map, present }
    }

    /// Whether any of `bits` ([`name`]) is present.
    pub(crate) fn has(&self, bits: u32) -> bool {
        self.present & bits != 0
    }

    /// The first value of `header`, asked of the map only when `bit` is present.
    pub(crate) fn get(&self, bit: u32, header: &HeaderName) -> Option<&'a HeaderValue> {
        if self.has(bit) {
            self.map.get(header)
        } else {
            None
        }
    }

    /// Every line of `header`, asked of the map only when `bit` is present.
    pub(crate) fn get_all(
        &self,
        bit: u32,
        header: HeaderName,
    ) -> impl Iterator<Item = &'a HeaderValue> {
        self.has(bit)
            .then(|| self.map.get_all(header))
            .into_iter()
            .flatten()
    }
}

/// The [`name`] bit of a (lowercase) header name; 0 for the names the policy never reads.
fn bit_of(n: &str) -> u32 {
    match n {
        "cache-control" => name::CACHE_CONTROL,
        "pragma" => name::PRAGMA,
        "set-cookie" | "set-cookie2" => name::SET_COOKIE,
        "vary" => name::VARY,
        "date" => name::DATE,
        "expires" => name::EXPIRES,
        "last-modified" => name::LAST_MODIFIED,
        "age" => name::AGE,
        "etag" => name::ETAG,
        "connection" => name::CONNECTION | name::HOP_BY_HOP,
        "content-length" => name::CONTENT_LENGTH,
        n if HOP_BY_HOP.contains(&n) => name::HOP_BY_HOP,
        _ => 0,
    }
}

/// What a miss's [`Forward`](super::Forward) needs to know of its request besides the header values,
/// found in one pass over its names on a miss only (a hit does not pay for it): the
/// look-ups of these names, mostly absent, cost a miss ~370 instructions (callgrind).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Asked {
    /// `Authorization`: the response is stored only if it says it may be.
    pub(crate) authorization: bool,
    /// `Range`: the range is answered from the whole response recorded.
    pub(crate) range: bool,
    /// `Range` or `If-Range`: both are taken off the request sent on.
    pub(crate) ranged: bool,
}

impl Asked {
    pub(crate) fn of(headers: &HeaderMap) -> Asked {
        let mut asked = Asked::default();
        for name in headers.keys() {
            if *name == AUTHORIZATION {
                asked.authorization = true;
            } else if *name == RANGE {
                asked.range = true;
                asked.ranged = true;
            } else if *name == IF_RANGE {
                asked.ranged = true;
            }
        }
        asked
    }
}

/// Reading the lines of one header name, from a request's header map or from the copy a
/// miss keeps of it ([`Lines`]): what `Vary` selects on.
pub(crate) trait HeaderLines {
    /// Every line of `name`, in order.
    fn lines<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a HeaderValue>;
    /// Whether `name` has a line.
    fn has(&self, name: &HeaderName) -> bool {
        self.lines(name).next().is_some()
    }
}

impl HeaderLines for HeaderMap {
    fn lines<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a HeaderValue> {
        self.get_all(name).iter()
    }
}

/// A request's header lines as a miss keeps them for its response (for `Vary`, a range,
/// a stale answer): one vector, where a `HeaderMap` clone allocated its index and its
/// entries (~300 instructions of every miss, callgrind). The rare paths that need a map
/// (serving a stale entry, a range) build one with [`Lines::to_map`].
#[derive(Debug, Default)]
pub(crate) struct Lines(Vec<(HeaderName, HeaderValue)>);

impl Lines {
    pub(crate) fn of(map: &HeaderMap) -> Lines {
        let mut lines = Vec::with_capacity(map.len());
        for (name, value) in map {
            lines.push((name.clone(), value.clone()));
        }
        Lines(lines)
    }

    pub(crate) fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.0.len());
        for (name, value) in &self.0 {
            map.append(name.clone(), value.clone());
        }
        map
    }
}

impl HeaderLines for Lines {
    fn lines<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a HeaderValue> {
        let name = name.clone();
        self.0
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, value)| value)
    }
}
