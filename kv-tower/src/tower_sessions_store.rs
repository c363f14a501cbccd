//! [`TowerSessionsStore`]: a `tower_sessions::SessionStore` over any kv [`Store`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use kv_core::{Clock, KvError, MAX_TTL, Store, SystemClock};

/// The key prefix of [`TowerSessionsStore::new`]: records live at `tower-sessions:<id>`.
pub const DEFAULT_TOWER_SESSIONS_PREFIX: &str = "tower-sessions:";

/// The record bound of [`TowerSessionsStore::new`]: 64 KiB of serialized record.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 << 10;

/// How many fresh ids [`SessionStore::create`] tries before it gives up. A collision of
/// two 128-bit random ids is not expected in the life of the universe; the bound only
/// keeps a misbehaving store from looping forever.
const CREATE_ATTEMPTS: usize = 8;

/// A [`tower_sessions::SessionStore`](tower_sessions_core::SessionStore) over any kv
/// [`Store`] — [`MemoryStore`](kv_core::MemoryStore), `RedisStore` (single node, Cluster,
/// Sentinel), [`AnyStore`](kv_core::AnyStore) or a store of yours — so that
/// `tower-sessions` and what is built on it (axum-login, axum-messages) run on kv's stores.
///
/// Feature `tower-sessions` of kv-tower (and `tower-sessions-014` for tower-sessions 0.14,
/// which axum-login 0.18 is built on: the same type implements both traits).
///
/// | `SessionStore` call | store commands | |
/// |---|---|---|
/// | `create` | `SET key record NX PX ttl` | a taken id is never overwritten: a new id is drawn and tried again |
/// | `save` | `SET key record PX ttl` | an already expired record is not stored (and an older one is deleted) |
/// | `load` | `GET key` | a record whose own `expiry_date` has passed is `None` |
/// | `delete` | `DEL key` | |
///
/// - **Expiry as tower-sessions means it**: the store TTL of a record is the time left
///   until its `Record::expiry_date`, read from the store's [`Clock`] (the system clock,
///   or the one given to [`with_clock`](Self::with_clock)), so the store itself forgets a
///   session when tower-sessions considers it over; no deletion task is needed.
/// - **Records are bounded**: a record whose serialized form (JSON) is larger than
///   [`max_record_bytes`](Self::max_record_bytes) is refused with
///   `session_store::Error::Encode`, and nothing is stored; bytes read back that are larger, are not
///   JSON of a record, or name another id than their key are `Error::Decode`, never a
///   panic.
/// - Store failures are `Error::Backend` (tower-sessions answers the request with a 500).
/// - Keys are `<prefix><id>` (the id as tower-sessions prints it); the prefix defaults to
///   [`DEFAULT_TOWER_SESSIONS_PREFIX`] and is set with [`key_prefix`](Self::key_prefix),
///   so one store can serve kv's own middlewares beside it.
///
/// `Clone` is cheap (the store's handle and an `Arc`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use kv_tower::{MemoryStore, TowerSessionsStore};
/// use tower_sessions_core::SessionStore;
/// use tower_sessions_core::session::{Id, Record};
///
/// let sessions = TowerSessionsStore::new(MemoryStore::new()).key_prefix("app:sessions:");
/// let mut record = Record {
///     id: Id::default(),
///     data: Default::default(),
///     expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(10),
/// };
/// sessions.create(&mut record).await.unwrap();
/// let loaded = sessions.load(&record.id).await.unwrap().expect("stored");
/// assert_eq!(loaded.id, record.id);
/// # }
/// ```
///
/// With tower-sessions: `SessionManagerLayer::new(TowerSessionsStore::new(store))`.
pub struct TowerSessionsStore<S> {
    store: S,
    prefix: Arc<str>,
    max_record_bytes: usize,
    clock: Arc<dyn Clock>,
}

impl<S: Store + Clone> TowerSessionsStore<S> {
    /// Sessions in `store`, under [`DEFAULT_TOWER_SESSIONS_PREFIX`], records up to
    /// [`DEFAULT_MAX_RECORD_BYTES`], time from the system clock.
    pub fn new(store: S) -> Self {
        Self::with_clock(store, SystemClock)
    }

    /// As [`new`](Self::new), with time from `clock` (give the store's clock, e.g. a
    /// `kv_core::ManualClock` (feature `test-util`) shared with a `MemoryStore::with_clock`, to
    /// test expiry without sleeping).
    pub fn with_clock(store: S, clock: impl Clock) -> Self {
        TowerSessionsStore {
            store,
            prefix: Arc::from(DEFAULT_TOWER_SESSIONS_PREFIX),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            clock: Arc::new(clock),
        }
    }

    /// Stores records at `<prefix><id>` instead of `tower-sessions:<id>`.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// The largest serialized record stored (and read back), in bytes.
    #[must_use]
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// The kv store underneath.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// `<prefix><id>`, the id as tower-sessions prints it.
    fn key(&self, id: &impl fmt::Display) -> String {
        format!("{}{id}", self.prefix)
    }

    /// The bound on a serialized record, as an error message.
    fn check_len(&self, len: usize) -> std::result::Result<(), String> {
        if len > self.max_record_bytes {
            return Err(format!(
                "session record of {len} bytes is larger than the limit of {} bytes",
                self.max_record_bytes
            ));
        }
        Ok(())
    }

    /// The store TTL of a record expiring at `expiry` (Unix nanoseconds): the time left,
    /// `None` when it has passed (capped at [`MAX_TTL`]).
    fn ttl_until(&self, expiry: i128) -> Option<Duration> {
        let now = match self.clock.now().duration_since(UNIX_EPOCH) {
            Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
            Err(before_epoch) => -i128::try_from(before_epoch.duration().as_nanos()).unwrap_or(0),
        };
        let left = expiry.saturating_sub(now);
        if left <= 0 {
            return None;
        }
        let left = Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX));
        Some(left.min(MAX_TTL))
    }
}

/// `SessionStore` of one tower-sessions-core version (0.15, and 0.14 for axum-login
/// 0.18): the trait did not change between them, so the code is written once.
macro_rules! session_store_impl {
    ($core:ident) => {
        const _: () = {
            use $core::session::{Id, Record};
            use $core::session_store::{Error, Result, SessionStore};

            fn backend(e: KvError) -> Error {
                Error::Backend(e.to_string())
            }

            /// The serialized record, within the bound.
            fn encode_record<S: Store + Clone>(
                this: &TowerSessionsStore<S>,
                record: &Record,
            ) -> Result<Bytes> {
                let bytes = serde_json::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
                this.check_len(bytes.len()).map_err(Error::Encode)?;
                Ok(Bytes::from(bytes))
            }

            #[async_trait]
            impl<S: Store + Clone> SessionStore for TowerSessionsStore<S> {
                async fn create(&self, record: &mut Record) -> Result<()> {
                    let Some(ttl) = self.ttl_until(record.expiry_date.unix_timestamp_nanos())
                    else {
                        // Already over: tower-sessions would never load it; store nothing.
                        return Ok(());
                    };
                    for _ in 0..CREATE_ATTEMPTS {
                        let bytes = encode_record(self, record)?;
                        let key = self.key(&record.id);
                        if self
                            .store
                            .set_nx(&key, bytes, Some(ttl))
                            .await
                            .map_err(backend)?
                        {
                            return Ok(());
                        }
                        tracing::warn!("session id collision on create; drawing a new id");
                        record.id = Id::default();
                    }
                    Err(Error::Backend(format!(
                        "no free session id after {CREATE_ATTEMPTS} attempts"
                    )))
                }

                async fn save(&self, record: &Record) -> Result<()> {
                    let bytes = encode_record(self, record)?;
                    let key = self.key(&record.id);
                    match self.ttl_until(record.expiry_date.unix_timestamp_nanos()) {
                        Some(ttl) => self
                            .store
                            .set(&key, bytes, Some(ttl))
                            .await
                            .map_err(backend),
                        None => {
                            // A record saved with a past expiry date ends the session, as
                            // `SET ... EXAT` with a past time does in Redis.
                            self.store.del(&key).await.map_err(backend)?;
                            Ok(())
                        }
                    }
                }

                async fn load(&self, id: &Id) -> Result<Option<Record>> {
                    let Some(bytes) = self.store.get(&self.key(id)).await.map_err(backend)? else {
                        return Ok(None);
                    };
                    self.check_len(bytes.len()).map_err(Error::Decode)?;
                    let record: Record =
                        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))?;
                    if record.id != *id {
                        return Err(Error::Decode(
                            "stored session record names another id than its key".to_owned(),
                        ));
                    }
                    if self
                        .ttl_until(record.expiry_date.unix_timestamp_nanos())
                        .is_none()
                    {
                        return Ok(None);
                    }
                    Ok(Some(record))
                }

                async fn delete(&self, id: &Id) -> Result<()> {
                    self.store.del(&self.key(id)).await.map_err(backend)?;
                    Ok(())
                }
            }
        };
    };
}

#[cfg(feature = "tower-sessions")]
session_store_impl!(tower_sessions_core);
#[cfg(feature = "tower-sessions-014")]
session_store_impl!(tower_sessions_core_014);

impl<S: Clone> Clone for TowerSessionsStore<S> {
    fn clone(&self) -> Self {
        TowerSessionsStore {
            store: self.store.clone(),
            prefix: Arc::clone(&self.prefix),
            max_record_bytes: self.max_record_bytes,
            clock: Arc::clone(&self.clock),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for TowerSessionsStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TowerSessionsStore")
            .field("store", &self.store)
            .field("prefix", &self.prefix)
            .field("max_record_bytes", &self.max_record_bytes)
            .finish_non_exhaustive()
    }
}
