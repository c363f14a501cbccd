//! Byte ranges (RFC 9110 section 14): a single `bytes` range of a complete `200` answered
//! `206` with `Content-Range`, `416` when unsatisfiable, `If-Range` honoured. Anything
//! else (several ranges, another unit, a malformed header, a failed `If-Range`) is
//! answered with the whole `200`, which a server may always do.

use http::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::policy::header_date_ms;

/// What a request's `Range` selects of a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selected {
    /// The whole representation (no range, or one that is ignored).
    Full,
    /// Bytes `start..end` (end exclusive, never empty).
    Part { start: u64, end: u64, len: u64 },
    /// `416`: no byte of the range exists.
    Unsatisfiable { len: u64 },
}

impl Selected {
    /// The window of the body sent, `start..end`.
    pub(crate) fn window(self) -> Option<(u64, u64)> {
        match self {
            Selected::Full => None,
            Selected::Part { start, end, .. } => Some((start, end)),
            Selected::Unsatisfiable { .. } => Some((0, 0)),
        }
    }

    /// The status and headers of a selected range, applied to `headers`.
    pub(crate) fn apply(self, headers: &mut HeaderMap) -> Option<StatusCode> {
        match self {
            Selected::Full => None,
            Selected::Part { start, end, len } => {
                let value = format!("bytes {start}-{}/{len}", end - 1);
                headers.insert(CONTENT_RANGE, header_value(value));
                headers.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
                Some(StatusCode::PARTIAL_CONTENT)
            }
            Selected::Unsatisfiable { len } => {
                headers.insert(CONTENT_RANGE, header_value(format!("bytes */{len}")));
                headers.insert(CONTENT_LENGTH, HeaderValue::from(0u64));
                Some(StatusCode::RANGE_NOT_SATISFIABLE)
            }
        }
    }
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or(HeaderValue::from_static("bytes */0"))
}

/// What `request`'s `Range` selects of a `status` response with `headers` and a body of
/// `len` bytes.
pub(crate) fn select(
    request: &HeaderMap,
    status: StatusCode,
    headers: &HeaderMap,
    len: u64,
) -> Selected {
    let mut lines = request.get_all(RANGE).iter();
    let Some(range) = lines.next() else {
        return Selected::Full;
    };
    if lines.next().is_some() || status != StatusCode::OK || !if_range_holds(request, headers) {
        return Selected::Full;
    }
    let Some(spec) = parse(range.as_bytes()) else {
        return Selected::Full;
    };
    let (start, end) = match spec {
        Spec::From(a, b) => {
            if a >= len {
                return Selected::Unsatisfiable { len };
            }
            (a, b.map_or(len, |b| b.saturating_add(1).min(len)))
        }
        Spec::Suffix(n) => {
            if n == 0 || len == 0 {
                return Selected::Unsatisfiable { len };
            }
            (len.saturating_sub(n), len)
        }
    };
    Selected::Part { start, end, len }
}

enum Spec {
    /// `a-b` or `a-`.
    From(u64, Option<u64>),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// One `bytes` range spec; `None` for anything else (another unit, several ranges,
/// a malformed or backwards one).
fn parse(value: &[u8]) -> Option<Spec> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (unit, set) = value.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let spec = specs.next()?;
    if specs.next().is_some() {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if a.trim().is_empty() {
        return Some(Spec::Suffix(num(b)?));
    }
    let a = num(a)?;
    if b.trim().is_empty() {
        return Some(Spec::From(a, None));
    }
    let b = num(b)?;
    (a <= b).then_some(Spec::From(a, Some(b)))
}

/// `If-Range` (RFC 9110 section 13.1.5): absent, or a strong entity tag equal to the
/// response's, or a date equal to its `Last-Modified`.
fn if_range_holds(request: &HeaderMap, headers: &HeaderMap) -> bool {
    let Some(cond) = request.get(IF_RANGE) else {
        return true;
    };
    let cond = cond.as_bytes();
    if cond.starts_with(b"\"") || cond.starts_with(b"W/") {
        if cond.starts_with(b"W/") {
            return false;
        }
        return headers
            .get(ETAG)
            .is_some_and(|e| !e.as_bytes().starts_with(b"W/") && e.as_bytes() == cond);
    }
    match (
        header_date_ms(request, &IF_RANGE),
        header_date_ms(headers, &LAST_MODIFIED),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(list: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in list {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn single_ranges_suffixes_and_unsatisfiable_ones() {
        let ok = StatusCode::OK;
        let none = HeaderMap::new();
        let sel = |r: &'static str, len| select(&req(&[("range", r)]), ok, &none, len);
        assert_eq!(
            sel("bytes=0-4", 10),
            Selected::Part {
                start: 0,
                end: 5,
                len: 10
            }
        );
        assert_eq!(
            sel("bytes=5-", 10),
            Selected::Part {
                start: 5,
                end: 10,
                len: 10
            }
        );
        assert_eq!(
            sel("bytes=8-100", 10),
            Selected::Part {
                start: 8,
                end: 10,
                len: 10
            }
        );
        assert_eq!(
            sel("bytes=-3", 10),
            Selected::Part {
                start: 7,
                end: 10,
                len: 10
            }
        );
        assert_eq!(
            sel("bytes=-30", 10),
            Selected::Part {
                start: 0,
                end: 10,
                len: 10
            }
        );
        assert_eq!(
            sel("BYTES = 1-1", 10),
            Selected::Part {
                start: 1,
                end: 2,
                len: 10
            }
        );
        assert_eq!(sel("bytes=10-", 10), Selected::Unsatisfiable { len: 10 });
        assert_eq!(sel("bytes=-0", 10), Selected::Unsatisfiable { len: 10 });
        assert_eq!(sel("bytes=0-0", 0), Selected::Unsatisfiable { len: 0 });
        // Ignored: several ranges, another unit, garbage, backwards.
        for r in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=",
            "0-1",
        ] {
            assert_eq!(sel(r, 10), Selected::Full, "{r}");
        }
        // Not a 200: the whole response.
        let h = req(&[("range", "bytes=0-1")]);
        assert_eq!(select(&h, StatusCode::NOT_FOUND, &none, 10), Selected::Full);
    }

    #[test]
    fn if_range_needs_a_strong_match() {
        let resp = req(&[
            ("etag", "\"v1\""),
            ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ]);
        let part = Selected::Part {
            start: 0,
            end: 2,
            len: 10,
        };
        let with = |ir: &'static str| {
            select(
                &req(&[("range", "bytes=0-1"), ("if-range", ir)]),
                StatusCode::OK,
                &resp,
                10,
            )
        };
        assert_eq!(with("\"v1\""), part);
        assert_eq!(with("\"v2\""), Selected::Full);
        assert_eq!(with("W/\"v1\""), Selected::Full);
        assert_eq!(with("Tue, 01 Dec 2026 10:00:00 GMT"), part);
        assert_eq!(with("Tue, 01 Dec 2026 10:00:01 GMT"), Selected::Full);
        assert_eq!(with("garbage"), Selected::Full);
    }

    #[test]
    fn the_headers_of_a_part_and_of_a_416() {
        let mut h = HeaderMap::new();
        let s = Selected::Part {
            start: 2,
            end: 5,
            len: 10,
        }
        .apply(&mut h);
        assert_eq!(s, Some(StatusCode::PARTIAL_CONTENT));
        assert_eq!(h["content-range"], "bytes 2-4/10");
        assert_eq!(h["content-length"], "3");
        let s = Selected::Unsatisfiable { len: 10 }.apply(&mut h);
        assert_eq!(s, Some(StatusCode::RANGE_NOT_SATISFIABLE));
        assert_eq!(h["content-range"], "bytes */10");
        assert_eq!(h["content-length"], "0");
    }
}
