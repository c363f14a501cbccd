//! Storing entries (and `Vary` markers) and purging them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderName;

use super::entry::{self, Entry, Marker, Stored};
use super::stats::bump;
use super::{Cache, key};
use crate::{Result, Store};

impl<St: Store> Cache<St> {
    pub(super) async fn purge_key(&self, key: &str) -> Result<bool> {
        #[cfg(feature = "near-cache")]
        if let Some(near) = &self.inner.near {
            near.remove(key);
        }
        self.inner.store.del(key).await
    }

    /// Writes an entry (and its `Vary` marker) to the store.
    pub(super) async fn write(
        &self,
        primary: &str,
        marker: Option<Arc<Marker>>,
        entry: &Arc<Entry>,
        encoded: Option<Bytes>,
        ttl: Duration,
    ) -> Result<()> {
        let store = &self.inner.store;
        let encoded = encoded.unwrap_or_else(|| entry.encode());
        let now = self.now();
        if entry.vary.is_empty() {
            store.set(primary, encoded, Some(ttl)).await?;
            #[cfg(feature = "near-cache")]
            if let Some(near) = &self.inner.near {
                near.insert(primary, &Stored::Entry(Arc::clone(entry)), now);
            }
        } else {
            let names: Vec<HeaderName> = entry.vary.iter().map(|(n, _)| n.clone()).collect();
            let max_ttl = self.inner.config.max_ttl;
            let marker = match marker.filter(|m| m.names == names) {
                Some(m) => m,
                None => {
                    let fresh = Marker {
                        nonce: nonce(),
                        names: names.clone(),
                    };
                    if store.set_nx(primary, fresh.encode(), Some(max_ttl)).await? {
                        Arc::new(fresh)
                    } else {
                        match store.get(primary).await?.and_then(entry::decode) {
                            Some(Stored::Marker(m)) if m.names == names => m,
                            _ => {
                                store.set(primary, fresh.encode(), Some(max_ttl)).await?;
                                Arc::new(fresh)
                            }
                        }
                    }
                }
            };
            // The variant key, from the request values the entry was stored for.
            let vkey = variant_key_for(primary, &marker, entry);
            store.set(&vkey, encoded, Some(ttl)).await?;
            // Keep the marker at least as long as its variants.
            store.expire(primary, max_ttl).await?;
            #[cfg(feature = "near-cache")]
            if let Some(near) = &self.inner.near {
                near.insert(primary, &Stored::Marker(Arc::clone(&marker)), now);
                near.insert(&vkey, &Stored::Entry(Arc::clone(entry)), now);
            }
        }
        let _ = now;
        bump(&self.inner.counters.stored);
        Ok(())
    }
}

/// The variant key of an entry from the (normalised) values it was stored for, in the
/// marker's name order.
pub(super) fn variant_key_for(primary: &str, marker: &Marker, entry: &Entry) -> String {
    key::variant_key(primary, marker.nonce, &entry.vary)
}

/// A fresh marker nonce: unique per process and time, without a CSPRNG.
pub(super) fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
