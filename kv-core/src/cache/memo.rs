//! Decoded entries of an in-process store, reused while the store holds the same bytes.
//!
//! A `MemoryStore` hands out clones of the `Bytes` it holds, so "the store still holds what
//! we decoded" is a pointer-and-length comparison. The memo keeps the original `Bytes`
//! alive, so the allocation cannot be reused for another value while it is remembered.
//! For other stores (fresh bytes on every read) the comparison simply fails and the entry
//! is decoded again. Each shard is bounded; a full shard is cleared.

use std::collections::HashMap;

use bytes::Bytes;
use parking_lot::Mutex;

use super::entry::{self, Stored};

const SHARDS: usize = 16;

type Map = HashMap<String, (Bytes, Stored), foldhash::fast::RandomState>;
const PER_SHARD: usize = 4096;

pub(crate) struct Memo {
    shards: Box<[Mutex<Map>]>,
}

impl Memo {
    pub(crate) fn new() -> Memo {
        Memo {
            shards: (0..SHARDS).map(|_| Mutex::new(Map::default())).collect(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Map> {
        let h = key.bytes().rev().take(16).fold(key.len(), |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        &self.shards[h % SHARDS]
    }

    /// The decoded form of `bytes`, read from `key`.
    pub(crate) fn decode(&self, key: &str, bytes: Bytes) -> Option<Stored> {
        let shard = self.shard(key);
        if let Some((held, stored)) = shard.lock().get(key)
            && held.as_ptr() == bytes.as_ptr()
            && held.len() == bytes.len()
        {
            return Some(stored.clone());
        }
        let stored = entry::decode(bytes.clone())?;
        let mut map = shard.lock();
        if map.len() >= PER_SHARD && !map.contains_key(key) {
            map.clear();
        }
        map.insert(key.to_owned(), (bytes, stored.clone()));
        Some(stored)
    }
}
