//! Reading entries: the near cache, a local store (decoded entries kept beside their
//! bytes), a remote one.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use super::entry::{self, Entry, Marker, Stored};
use super::stats::bump;
use super::{Cache, key};
use crate::Store;

impl<St: Store> Cache<St> {
    /// Reads what a key holds (near cache first), counting store errors as misses.
    pub(super) async fn read(&self, key: &str, now: u64) -> Option<Stored> {
        if let Some(found) = self.read_now(key, now) {
            return found;
        }
        match self.inner.store.get(key).await {
            Ok(Some(bytes)) => {
                let found = entry::decode(bytes);
                if found.is_none() {
                    tracing::debug!("kv cache: undecodable entry ignored");
                }
                #[cfg(feature = "near-cache")]
                if let (Some(near), Some(found)) = (&self.inner.near, &found) {
                    near.insert(key, found, now);
                }
                found
            }
            Ok(None) => None,
            Err(err) => {
                self.read_failed(&err);
                None
            }
        }
    }

    fn read_failed(&self, err: &crate::KvError) {
        bump(&self.inner.counters.store_errors);
        tracing::warn!(error = %err, "kv cache: store read failed; treated as a miss");
    }

    /// Reads a key without waiting: from the near cache, or from an in-process store.
    /// `None` when the store would have to be awaited.
    pub(super) fn read_now(&self, key: &str, now: u64) -> Option<Option<Stored>> {
        #[cfg(feature = "near-cache")]
        if let Some(near) = &self.inner.near
            && let Some(found) = near.get(key)
        {
            match &found {
                // A copy that went stale by our clock: ask the store (another replica
                // may have freshened it).
                Stored::Entry(e) if !e.is_fresh(now) => near.remove(key),
                _ => return Some(Some(found)),
            }
        }
        let _ = now;
        let local = self.inner.store.local()?;
        // The store keeps the decoded entry beside its bytes: a hit decodes nothing.
        Some(match local.get_kept(key, decode_kept) {
            Ok(Some(stored)) => Some(Stored::clone(&stored)),
            Ok(None) => None,
            Err(err) => {
                self.read_failed(&err);
                None
            }
        })
    }

    /// [`find`](Self::find) without waiting, when the reads can be answered at once.
    pub(super) fn find_now(&self, primary: &str, headers: &HeaderMap, now: u64) -> Option<Found> {
        let (found, marker) = self.find_now_untagged(primary, headers, now)?;
        match found {
            Some(e) if !e.tags.is_empty() => {
                let current = self.tags_current_now(&e)?;
                Some((current.then_some(e), marker))
            }
            found => Some((found, marker)),
        }
    }

    fn find_now_untagged(&self, primary: &str, headers: &HeaderMap, now: u64) -> Option<Found> {
        Some(match self.read_now(primary, now)? {
            Some(Stored::Entry(e)) => (Some(e), None),
            Some(Stored::Marker(m)) => {
                let (vkey, values) =
                    key::variant(primary, m.nonce, &m.names, headers, &self.inner.config.keys);
                let found = match self.read_now(&vkey, now)? {
                    Some(Stored::Entry(e)) if e.vary == values => Some(e),
                    _ => None,
                };
                (found, Some(m))
            }
            None => (None, None),
        })
    }

    /// Finds the entry for a request: the primary key's, or its variant's.
    pub(super) async fn find(
        &self,
        primary: &str,
        headers: &HeaderMap,
        now: u64,
    ) -> (Option<Arc<Entry>>, Option<Arc<Marker>>) {
        let (found, marker) = self.find_untagged(primary, headers, now).await;
        match found {
            Some(e) if !self.tags_current(&e).await => {
                // A purged copy in the near cache: the store may hold a refill.
                #[cfg(feature = "near-cache")]
                if let Some(near) = &self.inner.near {
                    near.remove(primary);
                    if let Some(m) = &marker {
                        let keys = &self.inner.config.keys;
                        near.remove(&key::variant(primary, m.nonce, &m.names, headers, keys).0);
                    }
                    let (found, marker) = self.find_untagged(primary, headers, now).await;
                    return match found {
                        Some(e) if self.tags_current(&e).await => (Some(e), marker),
                        _ => (None, marker),
                    };
                }
                (None, marker)
            }
            found => (found, marker),
        }
    }

    async fn find_untagged(
        &self,
        primary: &str,
        headers: &HeaderMap,
        now: u64,
    ) -> (Option<Arc<Entry>>, Option<Arc<Marker>>) {
        match self.read(primary, now).await {
            Some(Stored::Entry(e)) => (Some(e), None),
            Some(Stored::Marker(m)) => {
                let (vkey, values) =
                    key::variant(primary, m.nonce, &m.names, headers, &self.inner.config.keys);
                let found = match self.read(&vkey, now).await {
                    Some(Stored::Entry(e)) if e.vary == values => Some(e),
                    _ => None,
                };
                (found, Some(m))
            }
            None => (None, None),
        }
    }
}

/// An entry found for a request, and the URL's `Vary` marker.
pub(super) type Found = (Option<Arc<Entry>>, Option<Arc<Marker>>);

/// Decodes a stored value for an in-process store to keep, with its accounted size.
fn decode_kept(bytes: &Bytes) -> Option<(Stored, usize)> {
    let stored = entry::decode(bytes.clone())?;
    let cost = stored.decoded_cost();
    Some((stored, cost))
}
