//! Tag purge (surrogate keys): a response names its tags in a configured header
//! (`Surrogate-Key`, `Cache-Tag`); [`Cache::purge_tag`] retires every entry carrying a
//! tag with one store command and without scanning the store.
//!
//! Each tag has a generation counter in the store (`prefix "T:" len ":" tag`, missing =
//! 0). An entry records the generation of each of its tags when it is stored; a purge
//! increments the counter (`INCR`), and an entry is served only while all of its
//! generations are current. The check is made on every read of a tagged entry, from the
//! store, so a purge is seen at once by every replica sharing the store, whatever their
//! near caches hold; an entry without tags costs nothing more.

use http::{HeaderMap, HeaderName};

use super::Cache;
use super::entry::Entry;
use super::stats::bump;
use crate::{Result, Store};

/// The most tags one response may carry; a response with more is not stored (a tag left
/// out could not purge it).
pub(crate) const MAX_TAGS: usize = 64;
/// The longest tag.
pub(crate) const MAX_TAG_LEN: usize = 256;

/// The tags a response names (space- or comma-separated, deduplicated); `Err(())` when
/// there are too many or one is too long.
pub(crate) fn parse(
    headers: &HeaderMap,
    name: &HeaderName,
) -> std::result::Result<Vec<String>, ()> {
    let mut tags: Vec<String> = Vec::new();
    for line in headers.get_all(name) {
        let Ok(line) = line.to_str() else {
            return Err(());
        };
        for tag in line.split([' ', ',', '\t']) {
            if tag.is_empty() || tags.iter().any(|t| t == tag) {
                continue;
            }
            if tag.len() > MAX_TAG_LEN || tags.len() == MAX_TAGS {
                return Err(());
            }
            tags.push(tag.to_owned());
        }
    }
    Ok(tags)
}

impl<St: Store> Cache<St> {
    /// The generation counter's key of a tag.
    pub(super) fn tag_key(&self, tag: &str) -> String {
        let prefix = &self.inner.config.prefix;
        let mut key = String::with_capacity(prefix.len() + tag.len() + 8);
        key.push_str(prefix);
        key.push_str("T:");
        key.push_str(itoa::Buffer::new().format(tag.len()));
        key.push(':');
        key.push_str(tag);
        key
    }

    /// Invalidates every entry carrying `tag`, on every replica sharing the store (near
    /// caches included): one `INCR` of the tag's generation, no scan. Returns the new
    /// generation.
    ///
    /// Entries are checked when they are read, so a response that the origin produced
    /// before the purge but that is stored after it (a fill in flight) survives it.
    ///
    /// # Errors
    /// The store's error.
    pub async fn purge_tag(&self, tag: &str) -> Result<i64> {
        self.inner.store.incr_by(&self.tag_key(tag), 1, None).await
    }

    /// The current generation of each tag (a store read each); `None` when one cannot be
    /// read (the entry is then not served).
    pub(super) async fn generations(&self, tags: &[(String, u64)]) -> Option<Vec<u64>> {
        let mut out = Vec::with_capacity(tags.len());
        for (tag, _) in tags {
            match self.inner.store.get(&self.tag_key(tag)).await {
                Ok(v) => out.push(parse_generation(v.as_deref())),
                Err(err) => {
                    bump(&self.inner.counters.store_errors);
                    tracing::warn!(error = %err, "kv cache: tag generation read failed");
                    return None;
                }
            }
        }
        Some(out)
    }

    /// Whether no tag of `entry` was purged since it was stored.
    pub(super) async fn tags_current(&self, entry: &Entry) -> bool {
        if entry.tags.is_empty() {
            return true;
        }
        self.generations(&entry.tags).await.is_some_and(|now| {
            now.iter()
                .zip(&entry.tags)
                .all(|(n, (_, stored))| n == stored)
        })
    }

    /// [`tags_current`](Self::tags_current) without waiting: on a store with a local
    /// face; `None` when the store must be awaited.
    pub(super) fn tags_current_now(&self, entry: &Entry) -> Option<bool> {
        if entry.tags.is_empty() {
            return Some(true);
        }
        let local = self.inner.store.local()?;
        for (tag, stored) in &entry.tags {
            match local.get(&self.tag_key(tag)) {
                Ok(v) if parse_generation(v.as_deref()) == *stored => {}
                Ok(_) => return Some(false),
                Err(err) => {
                    bump(&self.inner.counters.store_errors);
                    tracing::warn!(error = %err, "kv cache: tag generation read failed");
                    return Some(false);
                }
            }
        }
        Some(true)
    }
}

/// A generation as stored (`INCR`'s decimal text); missing is 0, anything unreadable a
/// value no entry holds.
fn parse_generation(v: Option<&[u8]>) -> u64 {
    match v {
        None => 0,
        Some(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(u64::MAX),
    }
}
