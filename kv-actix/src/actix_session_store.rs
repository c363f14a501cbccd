//! [`ActixSessionStore`]: an `actix_session::storage::SessionStore` over any kv [`Store`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use actix_session::storage::{
    LoadError, SaveError, SessionKey, SessionStore, UpdateError, generate_session_key,
};
use actix_web::cookie::time::Duration;
use bytes::Bytes;
use kv_core::{MAX_TTL, Store};

/// The key prefix of [`ActixSessionStore::new`]: states live at `actix-session:<key>`.
pub const DEFAULT_ACTIX_SESSION_PREFIX: &str = "actix-session:";

/// The state bound of [`ActixSessionStore::new`]: 64 KiB of serialized state.
pub const DEFAULT_MAX_STATE_BYTES: usize = 64 << 10;

/// The length of the session keys this store generates (and so the only length it looks
/// up): 64 ASCII letters and digits, about 381 bits from a CSPRNG, from
/// [`actix_session::storage::generate_session_key`] as actix-session's own stores do.
const KEY_LEN: usize = 64;

/// How many fresh keys `save` tries before it gives up (a collision of two 381-bit random
/// keys is not expected; the bound only keeps a misbehaving store from looping).
const SAVE_ATTEMPTS: usize = 8;

/// An [`actix_session::storage::SessionStore`] over any kv [`Store`] —
/// [`MemoryStore`](kv_core::MemoryStore), `RedisStore` (single node, Cluster, Sentinel),
/// [`AnyStore`](kv_core::AnyStore) or a store of yours — so that actix-session and what is
/// built on it (actix-identity, actix-web-flash-messages) run on kv's stores.
///
/// Feature `actix-session` of kv-actix.
///
/// | `SessionStore` call | store commands | as actix-session's `RedisSessionStore` |
/// |---|---|---|
/// | `load` | `GET key` | missing or expired: `None`; bytes that are not a state: `LoadError::Deserialization` |
/// | `save` | `SET key state NX PX ttl` | a new random key; a taken key is never overwritten, a new one is drawn |
/// | `update` | `PEXPIRE key ttl`, then `SET key state PX ttl` | a key that no longer exists is not revived: the state is saved under a **new** key, which is returned |
/// | `update_ttl` | `PEXPIRE key ttl` | a missing key is no error; a TTL of zero or less ends the session |
/// | `delete` | `DEL key` | |
///
/// - **TTLs in the store**: the `ttl` argument (millisecond precision) is the key's TTL,
///   so the store forgets a state when actix-session considers it over. A `save` or
///   `update` with a TTL of zero or less is refused (`…::Other`), as Redis refuses `EX 0`.
/// - **States are bounded**: a state whose serialized form (JSON, the format of
///   actix-session's Redis store) is larger than
///   [`max_state_bytes`](Self::max_state_bytes) is refused with
///   `SaveError::Serialization` / `UpdateError::Serialization` and nothing is stored;
///   bytes read back that are larger or not a state are `LoadError::Deserialization`
///   (actix-session then starts an empty state), never a panic.
/// - Store failures are `…::Other` (actix-session answers the request with a 500).
/// - A session key that this store cannot have generated (not 64 ASCII letters and
///   digits) is looked up nowhere: `load` answers `None` without a store call.
/// - Keys are `<prefix><session key>`; the prefix defaults to
///   [`DEFAULT_ACTIX_SESSION_PREFIX`] and is set with [`key_prefix`](Self::key_prefix).
///
/// One difference from Redis' `SET … XX`: `update` is two commands, so a `delete` of the
/// same session that lands exactly between them is undone by the `SET`.
///
/// `Clone` is cheap (the store's handle and an `Arc`).
///
/// ```
/// # #[actix_web::main]
/// # async fn main() {
/// use std::collections::HashMap;
/// use actix_session::storage::SessionStore;
/// use actix_web::cookie::time::Duration;
/// use kv_actix::{ActixSessionStore, MemoryStore};
///
/// let sessions = ActixSessionStore::new(MemoryStore::new()).key_prefix("app:sessions:");
/// let state = HashMap::from([("user".to_owned(), "\"ada\"".to_owned())]);
/// let key = sessions.save(state.clone(), &Duration::minutes(10)).await.unwrap();
/// assert_eq!(sessions.load(&key).await.unwrap(), Some(state));
/// # }
/// ```
///
/// With actix-session: `SessionMiddleware::new(ActixSessionStore::new(store), key)`.
pub struct ActixSessionStore<S> {
    store: S,
    prefix: Arc<str>,
    max_state_bytes: usize,
}

impl<S: Store + Clone> ActixSessionStore<S> {
    /// Sessions in `store`, under [`DEFAULT_ACTIX_SESSION_PREFIX`], states up to
    /// [`DEFAULT_MAX_STATE_BYTES`].
    pub fn new(store: S) -> Self {
        ActixSessionStore {
            store,
            prefix: Arc::from(DEFAULT_ACTIX_SESSION_PREFIX),
            max_state_bytes: DEFAULT_MAX_STATE_BYTES,
        }
    }

    /// Stores states at `<prefix><session key>` instead of `actix-session:<session key>`.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// The largest serialized state stored (and read back), in bytes.
    #[must_use]
    pub fn max_state_bytes(mut self, bytes: usize) -> Self {
        self.max_state_bytes = bytes;
        self
    }

    /// The kv store underneath.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn key(&self, session_key: &SessionKey) -> String {
        format!("{}{}", self.prefix, session_key.as_ref())
    }

    /// The serialized state, within the bound.
    fn encode(&self, state: &HashMap<String, String>) -> Result<Bytes, anyhow::Error> {
        let bytes = serde_json::to_vec(state)?;
        if bytes.len() > self.max_state_bytes {
            anyhow::bail!(
                "session state of {} bytes is larger than the limit of {} bytes",
                bytes.len(),
                self.max_state_bytes
            );
        }
        Ok(Bytes::from(bytes))
    }

    /// A new state under a fresh key, never over a live one.
    async fn insert_new(&self, bytes: Bytes, ttl: StdDuration) -> anyhow::Result<SessionKey> {
        for _ in 0..SAVE_ATTEMPTS {
            let session_key = generate_session_key();
            if self
                .store
                .set_nx(&self.key(&session_key), bytes.clone(), Some(ttl))
                .await?
            {
                return Ok(session_key);
            }
            tracing::warn!("session key collision on save; drawing a new key");
        }
        anyhow::bail!("no free session key after {SAVE_ATTEMPTS} attempts")
    }
}

/// The store TTL for actix-session's `ttl`: `None` when it is zero or negative (capped at
/// [`MAX_TTL`]).
fn positive_ttl(ttl: &Duration) -> Option<StdDuration> {
    let millis = ttl.whole_milliseconds();
    if millis <= 0 {
        return None;
    }
    let millis = u64::try_from(millis).unwrap_or(u64::MAX);
    Some(StdDuration::from_millis(millis).min(MAX_TTL))
}

fn not_positive() -> anyhow::Error {
    anyhow::anyhow!("a session state's ttl must be greater than zero")
}

/// Whether `key` can be one this store generated (64 ASCII letters and digits).
fn is_our_key(key: &SessionKey) -> bool {
    let key = key.as_ref();
    key.len() == KEY_LEN && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl<S: Store + Clone> SessionStore for ActixSessionStore<S> {
    async fn load(
        &self,
        session_key: &SessionKey,
    ) -> Result<Option<HashMap<String, String>>, LoadError> {
        if !is_our_key(session_key) {
            return Ok(None);
        }
        let Some(bytes) = self
            .store
            .get(&self.key(session_key))
            .await
            .map_err(|e| LoadError::Other(e.into()))?
        else {
            return Ok(None);
        };
        if bytes.len() > self.max_state_bytes {
            return Err(LoadError::Deserialization(anyhow::anyhow!(
                "stored session state of {} bytes is larger than the limit of {} bytes",
                bytes.len(),
                self.max_state_bytes
            )));
        }
        let state =
            serde_json::from_slice(&bytes).map_err(|e| LoadError::Deserialization(e.into()))?;
        Ok(Some(state))
    }

    async fn save(
        &self,
        session_state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        let bytes = self
            .encode(&session_state)
            .map_err(SaveError::Serialization)?;
        let ttl = positive_ttl(ttl).ok_or_else(|| SaveError::Other(not_positive()))?;
        self.insert_new(bytes, ttl).await.map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let bytes = self
            .encode(&session_state)
            .map_err(UpdateError::Serialization)?;
        let ttl = positive_ttl(ttl).ok_or_else(|| UpdateError::Other(not_positive()))?;
        let key = self.key(&session_key);
        // `PEXPIRE` answers whether the key is still there; a state that expired (or was
        // deleted) is not revived under the key the client holds.
        let live = is_our_key(&session_key)
            && self
                .store
                .expire(&key, ttl)
                .await
                .map_err(|e| UpdateError::Other(e.into()))?;
        if !live {
            return self
                .insert_new(bytes, ttl)
                .await
                .map_err(UpdateError::Other);
        }
        self.store
            .set(&key, bytes, Some(ttl))
            .await
            .map_err(|e| UpdateError::Other(e.into()))?;
        Ok(session_key)
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        if !is_our_key(session_key) {
            return Ok(());
        }
        let key = self.key(session_key);
        match positive_ttl(ttl) {
            Some(ttl) => self.store.expire(&key, ttl).await?,
            // `EXPIRE key 0` (or less) deletes the key in Redis.
            None => self.store.del(&key).await?,
        };
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        if is_our_key(session_key) {
            self.store.del(&self.key(session_key)).await?;
        }
        Ok(())
    }
}

impl<S: Clone> Clone for ActixSessionStore<S> {
    fn clone(&self) -> Self {
        ActixSessionStore {
            store: self.store.clone(),
            prefix: Arc::clone(&self.prefix),
            max_state_bytes: self.max_state_bytes,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ActixSessionStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActixSessionStore")
            .field("store", &self.store)
            .field("prefix", &self.prefix)
            .field("max_state_bytes", &self.max_state_bytes)
            .finish()
    }
}
