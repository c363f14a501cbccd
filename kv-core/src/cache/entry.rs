//! The stored forms: a response entry and a `Vary` marker, in a compact binary encoding.
//!
//! Response entry (`R`, version 1), integers big-endian:
//! `b'R' 1 | response_time u64 ms | initial_age u64 ms | fresh u64 ms | swr u64 ms |
//! sie u64 ms | flags u8 | status u16 | vary: n u16, (name u16-len, present u8, value
//! u32-len)* | headers: n u16, (name u16-len, value u32-len)* | body (the rest)`.
//!
//! Version 2 is version 1 with the entry's tags between the headers and the body:
//! `tags: n u16, (tag u16-len, generation u64)*` (an entry without tags is written as
//! version 1).
//!
//! `Vary` marker (`V`, version 1), stored under a URL's primary key when its responses
//! vary: `b'V' 1 | nonce u64 | names: n u16, (name u16-len)*`. Variants live under keys
//! that include the nonce, so replacing or deleting the marker retires every variant.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// Never serve stale without revalidation (`must-revalidate`, `proxy-revalidate`,
/// `s-maxage`, `no-cache`).
pub(crate) const FLAG_NO_STALE: u8 = 1;
/// Always revalidate before use (`no-cache`).
pub(crate) const FLAG_NO_CACHE: u8 = 2;

/// A stored response.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// When the response was received, ms since the Unix epoch.
    pub(crate) response_time: u64,
    /// RFC 9111 `corrected_initial_age`, ms.
    pub(crate) initial_age: u64,
    /// The freshness lifetime, ms.
    pub(crate) fresh: u64,
    /// `stale-while-revalidate`, ms.
    pub(crate) swr: u64,
    /// `stale-if-error`, ms.
    pub(crate) sie: u64,
    pub(crate) flags: u8,
    pub(crate) status: StatusCode,
    /// The request header values this variant was stored for (`None`: absent).
    pub(crate) vary: Vec<(HeaderName, Option<HeaderValue>)>,
    pub(crate) headers: HeaderMap,
    /// The entry's tags, each with the tag's generation when it was stored (see
    /// `tags.rs`): it is served only while every generation is still current.
    pub(crate) tags: Vec<(String, u64)>,
    pub(crate) body: Bytes,
    /// What the first hit makes for the ones after it.
    pub(crate) hits: HitMemo,
}

/// What the first hit on an entry makes once for every later hit: nothing of it is
/// stored, and a clone of the entry (a freshened copy, whose headers may differ) starts
/// empty.
#[derive(Default)]
pub(crate) struct HitMemo {
    /// The entry's headers with `Age` and the status header in place: a hit clones them
    /// and overwrites `Age` (no growth, no rehash of the other names).
    pub(crate) headers: std::sync::OnceLock<HeaderMap>,
    /// An adapter's conversion of `headers` into its framework's types
    /// ([`Answer::converted_headers`](crate::Answer::converted_headers)).
    pub(crate) converted: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

impl Clone for HitMemo {
    fn clone(&self) -> Self {
        HitMemo::default()
    }
}

impl std::fmt::Debug for HitMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HitMemo").finish_non_exhaustive()
    }
}

impl Entry {
    /// RFC 9111 `current_age` at `now` (ms).
    pub(crate) fn age(&self, now: u64) -> u64 {
        self.initial_age
            .saturating_add(now.saturating_sub(self.response_time))
    }

    pub(crate) fn is_fresh(&self, now: u64) -> bool {
        self.flags & FLAG_NO_CACHE == 0 && self.fresh > self.age(now)
    }

    /// How long past its freshness the entry is at `now` (0 while fresh).
    pub(crate) fn staleness(&self, now: u64) -> u64 {
        self.age(now).saturating_sub(self.fresh)
    }

    /// Remaining freshness at `now`, ms.
    #[cfg_attr(not(feature = "near-cache"), allow(dead_code))]
    pub(crate) fn remaining(&self, now: u64) -> u64 {
        self.fresh.saturating_sub(self.age(now))
    }

    pub(crate) fn may_serve_stale(&self) -> bool {
        self.flags & FLAG_NO_STALE == 0
    }

    pub(crate) fn has_validator(&self) -> bool {
        self.headers.contains_key(http::header::ETAG)
            || self.headers.contains_key(http::header::LAST_MODIFIED)
    }

    /// The size of [`encode_head`](Self::encode_head)'s output.
    pub(crate) fn head_len(&self) -> usize {
        let mut size = 2 + 8 * 5 + 1 + 2 + 2 + 2;
        for (n, v) in &self.vary {
            // An absent value is its presence byte alone (no length).
            size += 2 + n.as_str().len() + 1 + v.as_ref().map_or(0, |v| 4 + v.len());
        }
        size += headers_len(&self.headers);
        if !self.tags.is_empty() {
            size += 2;
            for (t, _) in &self.tags {
                size += 2 + t.len() + 8;
            }
        }
        size
    }

    /// Everything but the body (which follows it in the stored form).
    pub(crate) fn encode_head(&self, out: &mut BytesMut) {
        self.encode_head_with(&self.headers, |_| true, out);
    }

    /// [`encode_head`](Self::encode_head) with the headers of `headers` that `keep`
    /// admits in place of the entry's own: a response recorded in place encodes its
    /// storable headers straight from the response, without building the stored map
    /// (see `Recorder::in_place`).
    pub(crate) fn encode_head_with(
        &self,
        headers: &HeaderMap,
        keep: impl Fn(&HeaderName) -> bool,
        out: &mut BytesMut,
    ) {
        out.put_u8(b'R');
        out.put_u8(if self.tags.is_empty() { 1 } else { 2 });
        for n in [
            self.response_time,
            self.initial_age,
            self.fresh,
            self.swr,
            self.sie,
        ] {
            out.put_u64(n);
        }
        out.put_u8(self.flags);
        out.put_u16(self.status.as_u16());
        out.put_u16(len16(self.vary.len()));
        for (n, v) in &self.vary {
            put_name(out, n);
            match v {
                Some(v) => {
                    out.put_u8(1);
                    out.put_u32(len32(v.len()));
                    out.put_slice(v.as_bytes());
                }
                None => out.put_u8(0),
            }
        }
        // The count is known once the headers are written: a placeholder, then patched.
        let count_at = out.len();
        out.put_u16(0);
        let mut count = 0;
        for (n, v) in headers {
            if keep(n) {
                put_name(out, n);
                out.put_u32(len32(v.len()));
                out.put_slice(v.as_bytes());
                count += 1;
            }
        }
        out[count_at..count_at + 2].copy_from_slice(&len16(count).to_be_bytes());
        if !self.tags.is_empty() {
            out.put_u16(len16(self.tags.len()));
            for (t, generation) in &self.tags {
                out.put_u16(len16(t.len()));
                out.put_slice(t.as_bytes());
                out.put_u64(*generation);
            }
        }
    }

    pub(crate) fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.head_len() + self.body.len());
        self.encode_head(&mut out);
        out.put_slice(&self.body);
        out.freeze()
    }
}

/// The `Vary` marker of a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub(crate) nonce: u64,
    /// Lowercase, sorted, without duplicates.
    pub(crate) names: Vec<HeaderName>,
}

impl Marker {
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(12 + self.names.len() * 24);
        out.put_u8(b'V');
        out.put_u8(1);
        out.put_u64(self.nonce);
        out.put_u16(len16(self.names.len()));
        for n in &self.names {
            put_name(&mut out, n);
        }
        out.freeze()
    }
}

/// What a primary key holds.
#[derive(Debug, Clone)]
pub(crate) enum Stored {
    Entry(Arc<Entry>),
    Marker(Arc<Marker>),
}

impl Stored {
    /// What the decoded form holds beyond the stored bytes it points into (the values
    /// and the body are slices of those), as an in-process store accounts it: the
    /// structs, the header map's buckets and index, and the copy of it the first hit
    /// makes (`HitMemo`). An estimate, like the store's per-entry overhead.
    pub(crate) fn decoded_cost(&self) -> usize {
        match self {
            Stored::Entry(e) => {
                std::mem::size_of::<Entry>()
                    + 64
                    + 2 * 96 * (e.headers.len() + 2)
                    + 64 * e.vary.len()
            }
            Stored::Marker(m) => std::mem::size_of::<Marker>() + 32 + 96 * m.names.len(),
        }
    }
}

/// The encoded size of `headers` (a bound for any subset of them).
pub(crate) fn headers_len(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| 2 + n.as_str().len() + 4 + v.len())
        .sum()
}

fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put_name(out: &mut BytesMut, n: &HeaderName) {
    out.put_u16(len16(n.as_str().len()));
    out.put_slice(n.as_str().as_bytes());
}

/// A reader over stored bytes; every read is bounds-checked (stored bytes may come from
/// another version or be corrupted: they decode to `None`, never panic).
struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Option<Bytes> {
        let end = self.pos.checked_add(n)?;
        if end > self.buf.len() {
            return None;
        }
        let out = self.buf.slice(self.pos..end);
        self.pos = end;
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Some(u64::from_be_bytes(a))
    }
    /// A `u16` count of items taking at least `min_len` bytes each: `None` when it is over
    /// [`MAX_STORED_HEADERS`] or more than the bytes left could hold.
    fn count(&mut self, min_len: usize) -> Option<usize> {
        let n = usize::from(self.u16()?);
        let left = self.buf.len() - self.pos;
        (n <= MAX_STORED_HEADERS && n <= left / min_len).then_some(n)
    }
    fn name(&mut self) -> Option<HeaderName> {
        let n = usize::from(self.u16()?);
        HeaderName::from_bytes(&self.take(n)?).ok()
    }
    fn value(&mut self) -> Option<HeaderValue> {
        let n = usize::try_from(self.u32()?).ok()?;
        HeaderValue::from_maybe_shared(self.take(n)?).ok()
    }
}

/// The most headers (and `Vary` names) an entry may hold: far above any real response,
/// far below `http`'s `HeaderMap` limit (32 768), whose overflow panics.
pub(crate) const MAX_STORED_HEADERS: usize = 4096;

/// Decodes what a key holds; `None` for anything malformed or of an unknown version.
///
/// The bytes may come from anyone who can write to the store (another version, a bit
/// flip, a hostile client of a shared Redis): every count read from them is bounded by
/// [`MAX_STORED_HEADERS`] and by the bytes left before it sizes anything, so a corrupt
/// entry is a miss, never a panic or a huge allocation.
pub(crate) fn decode(buf: Bytes) -> Option<Stored> {
    let mut r = Reader { buf, pos: 0 };
    let kind = r.u8()?;
    let version = r.u8()?;
    match (kind, version) {
        (b'R', 1 | 2) => {
            let response_time = r.u64()?;
            let initial_age = r.u64()?;
            let fresh = r.u64()?;
            let swr = r.u64()?;
            let sie = r.u64()?;
            let flags = r.u8()?;
            let status = StatusCode::from_u16(r.u16()?).ok()?;
            let nvary = r.count(3)?;
            let mut vary = Vec::with_capacity(nvary);
            for _ in 0..nvary {
                let name = r.name()?;
                let value = match r.u8()? {
                    0 => None,
                    _ => Some(r.value()?),
                };
                vary.push((name, value));
            }
            let nheaders = r.count(6)?;
            let mut headers = HeaderMap::try_with_capacity(nheaders).ok()?;
            for _ in 0..nheaders {
                let name = r.name()?;
                let value = r.value()?;
                headers.try_append(name, value).ok()?;
            }
            let mut tags = Vec::new();
            if version == 2 {
                let n = r.count(11)?;
                tags.reserve(n);
                for _ in 0..n {
                    let len = usize::from(r.u16()?);
                    let tag = String::from_utf8(r.take(len)?.to_vec()).ok()?;
                    tags.push((tag, r.u64()?));
                }
            }
            let body = r.buf.slice(r.pos..);
            Some(Stored::Entry(Arc::new(Entry {
                response_time,
                initial_age,
                fresh,
                swr,
                sie,
                flags,
                status,
                vary,
                headers,
                tags,
                body,
                hits: HitMemo::default(),
            })))
        }
        (b'V', 1) => {
            let nonce = r.u64()?;
            let n = r.count(2)?;
            let mut names = Vec::with_capacity(n);
            for _ in 0..n {
                names.push(r.name()?);
            }
            Some(Stored::Marker(Arc::new(Marker { nonce, names })))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of an `R` entry up to its header count: kind, version, five u64 times,
    /// flags, status 200, no `Vary` values.
    fn head_until_header_count() -> Vec<u8> {
        let mut b = vec![b'R', 1];
        b.extend_from_slice(&[0u8; 40]);
        b.push(0);
        b.extend_from_slice(&200u16.to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes());
        b
    }

    #[test]
    fn a_huge_header_count_from_the_store_is_a_miss_not_a_panic() {
        // Found by fuzzing a store that answers arbitrary bytes: a count above `http`'s
        // limit made `HeaderMap::with_capacity` panic.
        let mut b = head_until_header_count();
        b.extend_from_slice(&0xFFFFu16.to_be_bytes());
        assert!(decode(Bytes::from(b)).is_none());
        // The same count with the bytes to back it: 40 000 one-letter headers.
        let mut b = head_until_header_count();
        b.extend_from_slice(&40_000u16.to_be_bytes());
        for _ in 0..40_000 {
            b.extend_from_slice(&1u16.to_be_bytes());
            b.push(b'a');
            b.extend_from_slice(&0u32.to_be_bytes());
        }
        assert!(decode(Bytes::from(b)).is_none(), "over MAX_STORED_HEADERS");
        // A marker claiming 65 535 names in 4 bytes.
        let mut m = vec![b'V', 1];
        m.extend_from_slice(&7u64.to_be_bytes());
        m.extend_from_slice(&0xFFFFu16.to_be_bytes());
        m.extend_from_slice(b"abcd");
        assert!(decode(Bytes::from(m)).is_none());
        // And a legitimate entry with many headers still decodes.
        let mut b = head_until_header_count();
        b.extend_from_slice(&1000u16.to_be_bytes());
        for i in 0..1000u32 {
            let name = format!("x-h{i}");
            b.extend_from_slice(&(name.len() as u16).to_be_bytes());
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&1u32.to_be_bytes());
            b.push(b'v');
        }
        match decode(Bytes::from(b)) {
            Some(Stored::Entry(e)) => assert_eq!(e.headers.len(), 1000),
            _ => panic!("a 1000-header entry decodes"),
        }
    }

    #[test]
    fn entries_and_markers_round_trip_and_garbage_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let entry = Entry {
            response_time: 1,
            initial_age: 2,
            fresh: 3,
            swr: 4,
            sie: 5,
            flags: FLAG_NO_STALE,
            status: StatusCode::NOT_FOUND,
            vary: vec![
                (
                    HeaderName::from_static("accept-language"),
                    Some(HeaderValue::from_static("fr")),
                ),
                (HeaderName::from_static("accept-encoding"), None),
            ],
            headers,
            tags: Vec::new(),
            body: Bytes::from_static(b"hello"),
            hits: HitMemo::default(),
        };
        let bytes = entry.encode();
        assert_eq!(bytes[1], 1, "an entry without tags stays version 1");
        let tagged = Entry {
            tags: vec![("product-7".to_owned(), 3), ("all".to_owned(), 0)],
            ..entry.clone()
        };
        let tagged_bytes = tagged.encode();
        assert_eq!(tagged_bytes[1], 2);
        let Some(Stored::Entry(back)) = decode(tagged_bytes.clone()) else {
            panic!("not an entry")
        };
        assert_eq!(back.tags, tagged.tags);
        assert_eq!(back.body, tagged.body);
        for cut in 0..tagged_bytes.len() - tagged.body.len() {
            assert!(decode(tagged_bytes.slice(..cut)).is_none(), "cut at {cut}");
        }
        let Some(Stored::Entry(back)) = decode(bytes.clone()) else {
            panic!("not an entry")
        };
        assert_eq!(back.status, StatusCode::NOT_FOUND);
        assert_eq!(
            (
                back.response_time,
                back.initial_age,
                back.fresh,
                back.swr,
                back.sie
            ),
            (1, 2, 3, 4, 5)
        );
        assert_eq!(back.vary, entry.vary);
        assert_eq!(back.headers, entry.headers);
        assert_eq!(back.body, entry.body);
        for cut in 0..bytes.len() - entry.body.len() {
            assert!(decode(bytes.slice(..cut)).is_none(), "cut at {cut}");
        }
        let marker = Marker {
            nonce: 42,
            names: vec![HeaderName::from_static("accept")],
        };
        let Some(Stored::Marker(m)) = decode(marker.encode()) else {
            panic!("not a marker")
        };
        assert_eq!(*m, marker);
        assert!(decode(Bytes::from_static(b"R\x02")).is_none());
        assert!(decode(Bytes::from_static(b"zz")).is_none());
    }

    #[test]
    fn head_len_is_the_size_of_the_encoded_head() {
        // Found by the `cache_entry` fuzz target: `head_len` counted a 4-byte length for
        // a `Vary` name whose request value was absent, which is written as its presence
        // byte alone (so the size it promised was 4 bytes too large per absent value).
        let crash = b"\x52\x01\x00\x01\x00\x10\x24\x08\x00\x00\x1e\x02\x00\x00\x00\x00\
              \x00\x00\x32\x00\xd0\xd0\x00\x01\x10\x00\x60\x00\x00\xd0\x60\x24\
              \x00\x00\xd0\x60\xd9\x00\x08\x00\x00\x1e\x00\x02\xd0\x00\x01\x00\
              \x1e\x61\x57\x57\x57\x57\x57\x57\x57\x57\x57\x57\x56\x57\x57\x57\
              \x57\x57\x57\x57\x57\x57\x6d\x6d\x6d\x6d\x6d\x6d\x6d\x6d\x6d\x00\
              \x00\x00\xd0";
        let Some(Stored::Entry(e)) = decode(Bytes::from_static(crash)) else {
            panic!("the fuzzer's input decodes to an entry")
        };
        assert!(e.vary.iter().any(|(_, v)| v.is_none()));
        let mut head = BytesMut::new();
        e.encode_head(&mut head);
        assert_eq!(head.len(), e.head_len());
        let Some(Stored::Entry(back)) = decode(e.encode()) else {
            panic!("the re-encoded entry decodes")
        };
        assert_eq!(back.vary, e.vary);
        assert_eq!(back.headers, e.headers);
        assert_eq!(back.body, e.body);
    }
}
