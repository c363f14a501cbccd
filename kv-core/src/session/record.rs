//! The stored form of a session: one hash per session, one field per session key.
//!
//! ```text
//! session:<id>        (hash, TTL = idle timeout cut at the absolute deadline)
//!   __kv.created  -> "1764095000123"      Unix ms of creation or login
//!   __kv.user     -> "alice"              only after `login`
//!   __kv.idle     -> "2592000000"         only with a lifetime of its own (`set_lifetime`):
//!   __kv.abs      -> "2592000000"           idle and absolute timeout, ms
//!   __kv.csrf     -> "<22 chars>"         only once `csrf_token` was asked for
//!   cart          -> "[1,2,3]"            each of your keys: its value as JSON text
//!   theme         -> "\"dark\""
//! session:user:<user> (hash, TTL = the longest absolute timeout since the last login)
//!   <id>          -> "<deadline ms> <created ms> <handle>"
//! ```
//!
//! A logged-in session's id starts with `u.` (so its record is `session:u.<id>`), an
//! anonymous one's does not: see `id.rs`.
//!
//! `redis-cli HGETALL session:<id>` reads a session as it is.

use std::time::Duration;

use bytes::Bytes;
use compact_str::CompactString;

use crate::Ttl;

/// Field-name prefix reserved for the engine's own fields.
pub(crate) const RESERVED_PREFIX: &str = "__kv.";
pub(crate) const CREATED: &str = "__kv.created";
pub(crate) const USER: &str = "__kv.user";
pub(crate) const IDLE: &str = "__kv.idle";
pub(crate) const ABSOLUTE: &str = "__kv.abs";
pub(crate) const CSRF: &str = "__kv.csrf";

/// The engine's per-session settings beyond creation time and user.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    /// The session's own idle timeout, ms (`None`: the manager's).
    pub(crate) idle_ms: Option<u64>,
    /// The session's own absolute timeout, ms (`None`: the manager's).
    pub(crate) absolute_ms: Option<u64>,
    /// The synchronizer token (OWASP CSRF cheat sheet), once asked for.
    pub(crate) csrf: Option<String>,
}

impl Meta {
    /// The fields that store it.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (String, Bytes)> + '_ {
        let num =
            |name: &str, v: Option<u64>| v.map(|v| (name.to_owned(), Bytes::from(v.to_string())));
        num(IDLE, self.idle_ms)
            .into_iter()
            .chain(num(ABSOLUTE, self.absolute_ms))
            .chain(
                self.csrf
                    .as_ref()
                    .map(|t| (CSRF.to_owned(), Bytes::from(t.clone()))),
            )
    }
}

/// A record as read from the store.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) created_ms: u64,
    pub(crate) user: Option<String>,
    pub(crate) meta: Meta,
    /// Each user key's value as JSON text.
    pub(crate) data: Vec<Field>,
    /// The record's remaining TTL when it was read (`None`: it has none).
    pub(crate) ttl_left: Option<Duration>,
}

impl Record {
    /// Decodes the fields of a hash; `None` when it is not a live session record (empty,
    /// or without the creation field: the leftover of a write racing with a logout).
    pub(crate) fn decode<'a>(
        fields: impl IntoIterator<Item = (&'a str, &'a Bytes)>,
        ttl: Ttl,
    ) -> Option<Record> {
        let mut reader = RecordReader::default();
        for (name, value) in fields {
            reader.field(name, value);
        }
        reader.finish(ttl)
    }
}

/// [`Record::decode`] one field at a time, for stores that lend their fields.
#[derive(Default)]
pub(crate) struct RecordReader {
    created_ms: Option<u64>,
    user: Option<String>,
    meta: Meta,
    data: Vec<Field>,
}

impl RecordReader {
    pub(crate) fn field(&mut self, name: &str, value: &Bytes) {
        match name {
            CREATED => self.created_ms = digits(value),
            USER => self.user = String::from_utf8(value.to_vec()).ok(),
            // A malformed number is ignored: the manager's timeouts apply.
            IDLE => self.meta.idle_ms = digits(value).filter(|v| *v > 0),
            ABSOLUTE => self.meta.absolute_ms = digits(value).filter(|v| *v > 0),
            CSRF => {
                self.meta.csrf = std::str::from_utf8(value)
                    .ok()
                    .filter(|t| t.len() <= 64)
                    .map(str::to_owned);
            }
            _ if name.starts_with(RESERVED_PREFIX) => {}
            _ => self.data.push(Field {
                key: CompactString::new(name),
                value: value.clone(),
                dirty: false,
            }),
        }
    }

    pub(crate) fn finish(self, ttl: Ttl) -> Option<Record> {
        let ttl_left = match ttl {
            Ttl::Missing => return None,
            Ttl::Persistent => None,
            Ttl::Expires(left) => Some(left),
        };
        Some(Record {
            created_ms: self.created_ms?,
            user: self.user,
            meta: self.meta,
            data: self.data,
            ttl_left,
        })
    }
}

/// One key of a session as this request sees it.
#[derive(Debug)]
pub(crate) struct Field {
    /// Inline up to 24 bytes (most keys): reading a session allocates nothing per key.
    pub(crate) key: CompactString,
    /// The value as JSON text (checked when deserialized).
    pub(crate) value: Bytes,
    /// Set by this request: written at the end.
    pub(crate) dirty: bool,
}

/// A decimal `u64` (ASCII digits only, as `str::parse` reads them without a sign), read
/// from the bytes without a UTF-8 pass first; `None` for anything else or an overflow.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        let d = b.wrapping_sub(b'0');
        (d <= 9).then_some(())?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// The fields that create a whole record.
pub(crate) fn encode(
    created_ms: u64,
    user: Option<&str>,
    meta: &Meta,
    data: &[Field],
) -> Vec<(String, Bytes)> {
    let mut fields = Vec::with_capacity(data.len() + 5);
    fields.push((CREATED.to_owned(), Bytes::from(created_ms.to_string())));
    if let Some(user) = user {
        fields.push((USER.to_owned(), Bytes::from(user.to_owned())));
    }
    fields.extend(meta.fields());
    fields.extend(data.iter().map(|f| (f.key.to_string(), f.value.clone())));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers read back from a (possibly corrupt) record: what `str::parse::<u64>` reads
    /// from unsigned digits, and nothing else (a sign, spaces, other bytes, an overflow).
    #[test]
    fn stored_numbers_are_read_as_unsigned_digits_only() {
        let max = u64::MAX.to_string();
        let over = "18446744073709551616";
        for text in [
            "0",
            "7",
            "0042",
            "1700000000000",
            &max,
            over,
            "",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1a",
            "٣",
            "1.5",
            "99999999999999999999999",
        ] {
            let expected = if text.starts_with('+') {
                None
            } else {
                text.parse::<u64>().ok()
            };
            assert_eq!(digits(text.as_bytes()), expected, "{text:?}");
        }
        assert_eq!(digits(&[b'1', 0xff]), None);
        assert_eq!(digits(b"1700000000000"), Some(1_700_000_000_000));
    }
}
