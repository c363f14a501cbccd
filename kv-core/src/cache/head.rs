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

/// The names of a response head that the policy reads: each a bit of [`Head`]'s set and
/// the header it stands for, together, so that a look-up cannot ask for one name under
/// another's bit.
pub(crate) mod name {
    use http::HeaderName;
    use http::header;

    /// A name the policy reads: its bit, and its header (statics, not constants: a
    /// constant `HeaderName` is built and dropped at each use).
    pub(crate) struct Name {
        pub(crate) bit: u32,
        pub(crate) header: HeaderName,
    }

    const fn n(bit: u32, header: HeaderName) -> Name {
        Name { bit, header }
    }

    /// The bits alone, as constants: the pass over a head's names sets them as
    /// immediates rather than loads from the statics (neutral in callgrind, within the
    /// scenario's ±40 run-to-run spread; the statics below pair each with its header).
    pub(super) mod bit {
        pub(crate) const CACHE_CONTROL: u32 = 1 << 0;
        pub(crate) const PRAGMA: u32 = 1 << 1;
        pub(crate) const SET_COOKIE: u32 = 1 << 2;
        pub(crate) const VARY: u32 = 1 << 3;
        pub(crate) const DATE: u32 = 1 << 4;
        pub(crate) const EXPIRES: u32 = 1 << 5;
        pub(crate) const LAST_MODIFIED: u32 = 1 << 6;
        pub(crate) const AGE: u32 = 1 << 7;
        pub(crate) const ETAG: u32 = 1 << 8;
        pub(crate) const CONNECTION: u32 = 1 << 9;
        pub(crate) const CONTENT_LENGTH: u32 = 1 << 10;
    }

    pub(crate) static CACHE_CONTROL: Name = n(bit::CACHE_CONTROL, header::CACHE_CONTROL);
    pub(crate) static PRAGMA: Name = n(bit::PRAGMA, header::PRAGMA);
    /// `Set-Cookie` or `Set-Cookie2` (the bit stands for both).
    pub(crate) static SET_COOKIE: Name = n(bit::SET_COOKIE, header::SET_COOKIE);
    pub(crate) static VARY: Name = n(bit::VARY, header::VARY);
    pub(crate) static DATE: Name = n(bit::DATE, header::DATE);
    pub(crate) static EXPIRES: Name = n(bit::EXPIRES, header::EXPIRES);
    pub(crate) static LAST_MODIFIED: Name = n(bit::LAST_MODIFIED, header::LAST_MODIFIED);
    pub(crate) static AGE: Name = n(bit::AGE, header::AGE);
    pub(crate) static ETAG: Name = n(bit::ETAG, header::ETAG);
    pub(crate) static CONNECTION: Name = n(bit::CONNECTION, header::CONNECTION);
    pub(crate) static CONTENT_LENGTH: Name = n(bit::CONTENT_LENGTH, header::CONTENT_LENGTH);
    /// Any hop-by-hop name ([`HOP_BY_HOP`](super::HOP_BY_HOP), `Connection` included): a
    /// bit only.
    pub(crate) const HOP_BY_HOP: u32 = 1 << 11;
}

/// A response head with the names the policy reads found in one pass over its names.
///
/// A miss asks a response for some fifteen names, most of them absent (`Set-Cookie`,
/// `Vary`, `Expires`, `Age`, the validators, `Connection`..), and a look-up of an absent
/// name hashes and probes as much as one of a present name. Reading every name once and
/// asking the map only for those present cost ~1 000 instructions less a miss
/// (callgrind, paired).
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

    /// Whether any of `bits` (of [`name`]) is present.
    pub(crate) fn has(&self, bits: u32) -> bool {
        self.present & bits != 0
    }

    /// The first value of `name`, asked of the map only when the pass saw it.
    pub(crate) fn get(&self, name: &name::Name) -> Option<&'a HeaderValue> {
        if self.has(name.bit) {
            self.map.get(&name.header)
        } else {
            None
        }
    }

    /// Every line of `name`, asked of the map only when the pass saw it.
    pub(crate) fn get_all(&self, name: &name::Name) -> impl Iterator<Item = &'a HeaderValue> {
        self.has(name.bit)
            .then(|| self.map.get_all(&name.header))
            .into_iter()
            .flatten()
    }
}

/// The [`name`] bit of a (lowercase) header name; 0 for the names the policy never reads.
fn bit_of(n: &str) -> u32 {
    match n {
        "cache-control" => name::bit::CACHE_CONTROL,
        "pragma" => name::bit::PRAGMA,
        "set-cookie" | "set-cookie2" => name::bit::SET_COOKIE,
        "vary" => name::bit::VARY,
        "date" => name::bit::DATE,
        "expires" => name::bit::EXPIRES,
        "last-modified" => name::bit::LAST_MODIFIED,
        "age" => name::bit::AGE,
        "etag" => name::bit::ETAG,
        "connection" => name::bit::CONNECTION | name::HOP_BY_HOP,
        "content-length" => name::bit::CONTENT_LENGTH,
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
