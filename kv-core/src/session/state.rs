//! One request's view of its session: what was loaded and what the handler changed.

use super::id::SessionId;
use super::record::{Field, Meta, Record};
use crate::KvError;

#[derive(Default)]
pub(super) struct State {
    /// Boxed: keeps an untouched session's allocation small.
    pub(super) loaded: Option<Box<Loaded>>,
    /// The store failed while loading: the request ends with a 500.
    pub(super) failed: Option<KvError>,
    /// Keys removed by this request (keys set are marked `dirty` in `loaded.data`).
    pub(super) removed: Vec<String>,
    pub(super) cycle: bool,
    /// `login(user)` was called: new id, new absolute lifetime, this user.
    pub(super) login: Option<String>,
}

pub(super) struct Loaded {
    /// The live session the client's cookie named, if any, and its record's key.
    pub(super) current: Option<(SessionId, Record)>,
    pub(super) current_key: String,
    /// The data as this request sees it (JSON text per key; few keys, so a vector).
    pub(super) data: Vec<Field>,
    /// Sessions to delete at the end: flushed, or found past their absolute deadline.
    pub(super) ended: Vec<(SessionId, Option<String>)>,
    /// Of `ended`, the ones found past their absolute deadline (the others were flushed).
    pub(super) ended_expired: u8,
    /// The client sent a cookie of our name (valid or not).
    pub(super) had_cookie: bool,
    /// When the record was read (Unix ms), reused as "now" at the end of the request.
    pub(super) read_at: Option<u64>,
    /// The engine's per-session settings as this request sees them.
    pub(super) meta: Meta,
    /// `meta` was changed by this request: written at the end.
    pub(super) meta_dirty: bool,
    /// The cookie verified with an older key: re-issued under the current one.
    pub(super) reissue: bool,
}

impl Loaded {
    pub(super) fn empty(had_cookie: bool) -> Self {
        Loaded {
            current: None,
            current_key: String::new(),
            data: Vec::new(),
            ended: Vec::new(),
            ended_expired: 0,
            had_cookie,
            read_at: None,
            meta: Meta::default(),
            meta_dirty: false,
            reissue: false,
        }
    }
}
