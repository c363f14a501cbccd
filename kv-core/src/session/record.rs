//! The stored form of a session: one hash per session, one field per session key.
//!
//! ```text
//! session:<id>        (hash, TTL = idle timeout cut at the absolute deadline)
//!   __kv.created  -> "1764095000123"      Unix ms of creation or login
//!   __kv.user     -> "alice"              only after `login`
//!   cart          -> "[1,2,3]"            each of your keys: its value as JSON text
//!   theme         -> "\"dark\""
//! session:user:<user> (hash, TTL = absolute timeout since the last login)
//!   <id>          -> "1764138200123"      that session's absolute deadline, Unix ms
//! ```
//!
//! `redis-cli HGETALL session:<id>` reads a session as it is.

use std::time::Duration;

use bytes::Bytes;

use crate::Ttl;

/// Field-name prefix reserved for the engine's own fields.
pub(crate) const RESERVED_PREFIX: &str = "__kv.";
pub(crate) const CREATED: &str = "__kv.created";
pub(crate) const USER: &str = "__kv.user";

/// A record as read from the store.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) created_ms: u64,
    pub(crate) user: Option<String>,
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
    data: Vec<Field>,
}

impl RecordReader {
    pub(crate) fn field(&mut self, name: &str, value: &Bytes) {
        match name {
            CREATED => {
                self.created_ms = std::str::from_utf8(value)
                    .ok()
                    .and_then(|t| t.parse::<u64>().ok());
            }
            USER => self.user = String::from_utf8(value.to_vec()).ok(),
            _ if name.starts_with(RESERVED_PREFIX) => {}
            _ => self.data.push(Field {
                key: name.to_owned(),
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
            data: self.data,
            ttl_left,
        })
    }
}

/// One key of a session as this request sees it.
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) key: String,
    /// The value as JSON text (checked when deserialized).
    pub(crate) value: Bytes,
    /// Set by this request: written at the end.
    pub(crate) dirty: bool,
}

/// The fields that create a whole record.
pub(crate) fn encode(created_ms: u64, user: Option<&str>, data: &[Field]) -> Vec<(String, Bytes)> {
    let mut fields = Vec::with_capacity(data.len() + 2);
    fields.push((CREATED.to_owned(), Bytes::from(created_ms.to_string())));
    if let Some(user) = user {
        fields.push((USER.to_owned(), Bytes::from(user.to_owned())));
    }
    fields.extend(data.iter().map(|f| (f.key.clone(), f.value.clone())));
    fields
}
