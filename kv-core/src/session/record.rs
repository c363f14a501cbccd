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

use std::collections::HashMap;
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
    pub(crate) data: HashMap<String, Box<str>>,
    /// The record's remaining TTL when it was read (`None`: it has none).
    pub(crate) ttl_left: Option<Duration>,
}

impl Record {
    /// Decodes the fields of a hash; `None` when it is not a live session record (empty,
    /// or without the creation field: the leftover of a write racing with a logout).
    pub(crate) fn decode(fields: Vec<(String, Bytes)>, ttl: Ttl) -> Option<Record> {
        let mut created_ms = None;
        let mut user = None;
        let mut data = HashMap::with_capacity(fields.len());
        for (name, value) in fields {
            let Ok(text) = std::str::from_utf8(&value) else {
                tracing::warn!("kv session: a record field is not UTF-8; ignored");
                continue;
            };
            match name.as_str() {
                CREATED => created_ms = text.parse::<u64>().ok(),
                USER => user = Some(text.to_owned()),
                _ if name.starts_with(RESERVED_PREFIX) => {}
                _ => {
                    data.insert(name, text.into());
                }
            }
        }
        let ttl_left = match ttl {
            Ttl::Missing => return None,
            Ttl::Persistent => None,
            Ttl::Expires(left) => Some(left),
        };
        Some(Record {
            created_ms: created_ms?,
            user,
            data,
            ttl_left,
        })
    }
}

/// The fields that create a whole record.
pub(crate) fn encode(
    created_ms: u64,
    user: Option<&str>,
    data: &HashMap<String, Box<str>>,
) -> Vec<(String, Bytes)> {
    let mut fields = Vec::with_capacity(data.len() + 2);
    fields.push((CREATED.to_owned(), Bytes::from(created_ms.to_string())));
    if let Some(user) = user {
        fields.push((USER.to_owned(), Bytes::from(user.to_owned())));
    }
    fields.extend(
        data.iter()
            .map(|(k, v)| (k.clone(), Bytes::from(v.as_bytes().to_vec()))),
    );
    fields
}
