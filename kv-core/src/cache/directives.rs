//! `Cache-Control` parsing (RFC 9111 section 5.2), shared by requests and responses.

use http::HeaderMap;
use http::header::{CACHE_CONTROL, PRAGMA};

/// The directives the cache acts on. Unknown directives (extensions) are ignored.
///
/// Parsing is conservative where the input is malformed: a `max-age` / `s-maxage` whose
/// value is not a (possibly quoted) run of digits counts as `0` (stale at once), as does
/// a negative one; when a directive appears twice, the first occurrence wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) private: bool,
    pub(crate) public: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) proxy_revalidate: bool,
    pub(crate) must_understand: bool,
    pub(crate) max_age: Option<u64>,
    pub(crate) s_maxage: Option<u64>,
    pub(crate) stale_while_revalidate: Option<u64>,
    pub(crate) stale_if_error: Option<u64>,
    /// Request only: `Pragma: no-cache` without any `Cache-Control`.
    pub(crate) pragma_no_cache: bool,
}

/// Delta-seconds are capped here (2^31, as RFC 9111 section 1.2.2 suggests).
const MAX_DELTA: u64 = 2_147_483_648;

impl Directives {
    /// Parses every line of a targeted field (RFC 9213, e.g. `CDN-Cache-Control`), which
    /// shares `Cache-Control`'s directives; `None` when the response has none.
    pub(crate) fn parse_targeted(
        headers: &HeaderMap,
        name: &http::HeaderName,
    ) -> Option<Directives> {
        let mut lines = headers.get_all(name).iter().peekable();
        lines.peek()?;
        let mut d = Directives::default();
        for line in lines {
            // The field is a Structured Field Dictionary: an invalid one is ignored whole.
            if !valid_sf_dictionary(line.as_bytes()) {
                return None;
            }
            d.parse_line(line.as_bytes());
        }
        Some(d)
    }

    /// Parses every `Cache-Control` line of `headers`.
    pub(crate) fn parse(headers: &HeaderMap) -> Directives {
        let mut d = Directives::default();
        let mut any = false;
        for line in headers.get_all(CACHE_CONTROL) {
            any = true;
            d.parse_line(line.as_bytes());
        }
        if !any {
            d.pragma_no_cache = headers.get_all(PRAGMA).iter().any(|v| {
                v.as_bytes()
                    .split(|&b| b == b',')
                    .any(|t| trim(t).eq_ignore_ascii_case(b"no-cache"))
            });
        }
        d
    }

    fn parse_line(&mut self, line: &[u8]) {
        // Without a quote, a comma always separates (the usual line): split on it
        // directly instead of tracking quoted strings byte by byte.
        if !line.contains(&b'"') {
            for item in line.split(|&b| b == b',') {
                self.item(item);
            }
        } else {
            for item in split_top_level(line) {
                self.item(item);
            }
        }
    }

    fn item(&mut self, item: &[u8]) {
        let item = trim(item);
        if item.is_empty() {
            return;
        }
        let (name, value) = match item.iter().position(|&b| b == b'=') {
            Some(i) => (&item[..i], Some(&item[i + 1..])),
            None => (item, None),
        };
        // A space before `=` makes the name something else (an unknown directive).
        // Dispatched on the length first: one comparison or two per directive.
        let is = |d: &[u8]| name.eq_ignore_ascii_case(d);
        match name.len() {
            6 if is(b"public") => self.public = true,
            7 if is(b"max-age") => set_first(&mut self.max_age, value),
            7 if is(b"private") => self.private = true,
            8 if is(b"no-store") => self.no_store = true,
            // `no-cache="field"` and `private="field"` are treated as their unqualified
            // forms: stricter than required, never less safe.
            8 if is(b"no-cache") => self.no_cache = true,
            8 if is(b"s-maxage") => set_first(&mut self.s_maxage, value),
            14 if is(b"stale-if-error") => set_first(&mut self.stale_if_error, value),
            15 if is(b"must-revalidate") => self.must_revalidate = true,
            15 if is(b"must-understand") => self.must_understand = true,
            16 if is(b"proxy-revalidate") => self.proxy_revalidate = true,
            22 if is(b"stale-while-revalidate") => {
                set_first(&mut self.stale_while_revalidate, value);
            }
            _ => {}
        }
    }
}

/// Whether a targeted field line is a valid Structured Field Dictionary (RFC 9651, parsed
/// by `sfv`) as far as the cache reads it: no inner lists, and the delta-seconds directives
/// integers (or bare, which reads as `0`). Only a miss's response is checked (this is not
/// on the hit path).
fn valid_sf_dictionary(line: &[u8]) -> bool {
    let Ok(dict) = sfv::Parser::new(line).parse::<sfv::Dictionary>() else {
        return false;
    };
    dict.iter().all(|(key, entry)| {
        let numeric = matches!(
            key.as_str(),
            "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error"
        );
        match entry {
            sfv::ListEntry::InnerList(_) => false,
            sfv::ListEntry::Item(item) => {
                !numeric
                    || matches!(
                        item.bare_item,
                        sfv::BareItem::Integer(_) | sfv::BareItem::Boolean(true)
                    )
            }
        }
    })
}

fn set_first(slot: &mut Option<u64>, value: Option<&[u8]>) {
    if slot.is_none() {
        *slot = Some(value.map_or(0, delta_seconds));
    }
}

/// delta-seconds, optionally in double quotes; anything else is `0`.
fn delta_seconds(value: &[u8]) -> u64 {
    let value = match value {
        [b'"', inner @ .., b'"'] => inner,
        v => v,
    };
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    let mut n: u64 = 0;
    for &b in value {
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
        if n >= MAX_DELTA {
            return MAX_DELTA;
        }
    }
    n
}

pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Splits on commas that are not inside a quoted string (lazily: no allocation; this runs
/// over every `Cache-Control` and `Vary` line of a miss).
pub(crate) fn split_top_level(line: &[u8]) -> SplitTopLevel<'_> {
    SplitTopLevel { rest: Some(line) }
}

/// The pieces of [`split_top_level`].
#[derive(Debug, Clone)]
pub(crate) struct SplitTopLevel<'a> {
    /// What is left to split; `None` once the last piece was given.
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for SplitTopLevel<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let line = self.rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, &b) in line.iter().enumerate() {
            if escaped {
                escaped = false;
                continue;
            }
            match b {
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    self.rest = Some(&line[i + 1..]);
                    return Some(&line[..i]);
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cc(lines: &[&'static str]) -> Directives {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(CACHE_CONTROL, HeaderValue::from_static(l));
        }
        Directives::parse(&h)
    }

    #[test]
    fn parses_the_directives_case_insensitively() {
        let d = cc(&["Public, MaX-AgE=60, s-maxage=30", "no-CACHE"]);
        assert!(d.public && d.no_cache && !d.no_store);
        assert_eq!((d.max_age, d.s_maxage), (Some(60), Some(30)));
        assert!(cc(&["nO-StOrE"]).no_store);
        // Every directive, in upper case, each alone and all on one line: each is read
        // (a name dispatched under the wrong length would be silently dropped).
        let all = "PUBLIC, PRIVATE, NO-STORE, NO-CACHE, MUST-REVALIDATE, PROXY-REVALIDATE, \
                   MUST-UNDERSTAND, MAX-AGE=1, S-MAXAGE=2, STALE-WHILE-REVALIDATE=3, \
                   STALE-IF-ERROR=4";
        for d in [cc(&[all]), cc(&all.split(", ").collect::<Vec<_>>())] {
            assert!(d.public && d.private && d.no_store && d.no_cache);
            assert!(d.must_revalidate && d.proxy_revalidate && d.must_understand);
            assert_eq!(
                (
                    d.max_age,
                    d.s_maxage,
                    d.stale_while_revalidate,
                    d.stale_if_error
                ),
                (Some(1), Some(2), Some(3), Some(4))
            );
        }
        // Near misses are other directives.
        let near = cc(&["publi, max-ag=1, s-max-age=2, no_store, privates"]);
        assert_eq!(near, Directives::default());
    }

    #[test]
    fn malformed_ages_are_stale_and_the_first_wins() {
        assert_eq!(cc(&["max-age=-3600"]).max_age, Some(0));
        assert_eq!(cc(&["max-age='3600'"]).max_age, Some(0));
        assert_eq!(cc(&["max-age=3600a"]).max_age, Some(0));
        assert_eq!(cc(&["max-age=\"3600\""]).max_age, Some(3600));
        assert_eq!(cc(&["max-age=003600"]).max_age, Some(3600));
        assert_eq!(cc(&["max-age=99999999999"]).max_age, Some(MAX_DELTA));
        assert_eq!(cc(&["max-age=1800, max-age=1"]).max_age, Some(1800));
        assert_eq!(cc(&["max-age =3600"]).max_age, None);
        // a directive inside a quoted string is not a directive
        assert_eq!(
            cc(&["extension=\"max-age=3600\", max-age=1"]).max_age,
            Some(1)
        );
    }

    #[test]
    fn targeted_fields_must_be_sf_dictionaries() {
        for ok in [
            "max-age=60",
            "max-age=60, s-maxage=30",
            "no-store",
            "max-age=60;a=1, private",
            "ext=\"x, y\", max-age=1",
            "ext=tok, ext2=?0, e3=1.5",
        ] {
            assert!(valid_sf_dictionary(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "Max-Age=60",
            "max-age=\"60\"",
            "max-age=6.0",
            "max-age=(1 2)",
            "max-age=60,",
            "a=\"unterminated",
            "max-age=1234567890123456",
            "9key=1",
        ] {
            assert!(!valid_sf_dictionary(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn pragma_counts_only_without_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        assert!(Directives::parse(&h).pragma_no_cache);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert!(!Directives::parse(&h).pragma_no_cache);
    }

    /// The pieces, eagerly: the splitting as a plain loop over the line, to check the lazy
    /// iterator against.
    fn pieces_of(line: &[u8]) -> Vec<&[u8]> {
        let (mut out, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
        for (i, &b) in line.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == b',' && !quoted {
                out.push(&line[start..i]);
                start = i + 1;
            }
        }
        out.push(&line[start..]);
        out
    }

    #[test]
    fn splits_on_top_level_commas_only() {
        let split = |l: &'static str| split_top_level(l.as_bytes()).collect::<Vec<_>>();
        assert_eq!(split(""), [b""]);
        assert_eq!(split("a"), [b"a"]);
        assert_eq!(split("a,,b,"), [&b"a"[..], b"", b"b", b""]);
        assert_eq!(
            split(r#"private="a,b", max-age=1"#),
            [&br#"private="a,b""#[..], b" max-age=1"]
        );
        assert_eq!(
            split(r#"x="q\",still", y"#),
            [&br#"x="q\",still""#[..], b" y"]
        );
        // An unterminated quote runs to the end of the line.
        assert_eq!(split(r#"a="b,c"#), [br#"a="b,c"#]);
    }

    proptest::proptest! {
        #[test]
        fn the_lazy_split_gives_the_eager_pieces(line in proptest::collection::vec(
            proptest::sample::select(vec![b'a', b',', b'"', b'\\', b' ', b'=']), 0..40)) {
            let lazy: Vec<&[u8]> = split_top_level(&line).collect();
            proptest::prop_assert_eq!(lazy, pieces_of(&line));
        }
    }
}
