//! The two faces of the memory store: [`LocalStore`] (answered now) and [`Store`].

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use super::MemoryStore;
use super::shard::Value;
use crate::store::{Decoded, Decoder, LocalStore, Store, Throttle, ThrottleReply, Ttl};
use crate::{KvError, Result};

/// The memory store answers in process: this is the face the engines call.
impl LocalStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.get_sync(key)
    }
    /// The decoded form is kept beside the value (and accounted in the memory bound, when
    /// it fits), until the key is written, deleted, expired or evicted.
    fn get_decoded(&self, key: &str, decode: Decoder<'_>) -> Result<Option<Decoded>> {
        self.get_decoded_sync(key, decode)
    }
    fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.set_sync(key, value, ttl, false).map(drop)
    }
    fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.set_sync(key, value, ttl, true)
    }
    fn del(&self, key: &str) -> Result<bool> {
        self.check_key(key)?;
        Ok(self.del_sync(key))
    }
    fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.check_key(key)?;
        self.expire_sync(key, ttl)
    }
    fn ttl(&self, key: &str) -> Result<Ttl> {
        self.check_key(key)?;
        Ok(self.ttl_sync(key))
    }
    fn incr_by(&self, key: &str, delta: i64, ttl_if_new: Option<Duration>) -> Result<i64> {
        self.incr_by_sync(key, delta, ttl_if_new)
    }
    fn hget_all(&self, key: &str) -> Result<Vec<(String, Bytes)>> {
        self.hget_all_sync(key)
    }
    fn hset(&self, key: &str, fields: Vec<(String, Bytes)>, ttl: Option<Duration>) -> Result<()> {
        self.hset_sync(key, fields, ttl)
    }
    fn hdel(&self, key: &str, fields: Vec<String>) -> Result<usize> {
        self.hdel_sync(key, fields)
    }
    fn throttle(&self, key: &str, request: Throttle) -> Result<ThrottleReply> {
        self.throttle_sync(key, request)
    }
    /// Both reads under one shard lock, the fields lent without copies.
    fn hget_all_with_ttl(&self, key: &str, visit: &mut dyn FnMut(&str, &Bytes)) -> Result<Ttl> {
        self.check_key(key)?;
        let shard = self.shard(key).read();
        let now = self.inner.clock.now_millis();
        let Some(entry) = shard.map.get(key).filter(|e| !e.is_expired(now)) else {
            return Ok(Ttl::Missing);
        };
        let Value::Hash(fields) = &entry.value else {
            return Err(KvError::WrongType);
        };
        entry.touch(self.tick());
        for (name, value) in fields.iter() {
            visit(name.as_str(), value);
        }
        Ok(match entry.expires_at {
            0 => Ttl::Persistent,
            at => Ttl::Expires(Duration::from_millis(at - now)),
        })
    }
}

/// Every call is answered on its future's first poll (through the local face).
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        LocalStore::get(self, key)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        LocalStore::set(self, key, value, ttl)
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        LocalStore::set_nx(self, key, value, ttl)
    }

    async fn del(&self, key: &str) -> Result<bool> {
        LocalStore::del(self, key)
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        LocalStore::expire(self, key, ttl)
    }

    async fn ttl(&self, key: &str) -> Result<Ttl> {
        LocalStore::ttl(self, key)
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl_if_new: Option<Duration>) -> Result<i64> {
        LocalStore::incr_by(self, key, delta, ttl_if_new)
    }

    async fn hget_all(&self, key: &str) -> Result<Vec<(String, Bytes)>> {
        LocalStore::hget_all(self, key)
    }

    async fn hset(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        LocalStore::hset(self, key, fields, ttl)
    }

    async fn hdel(&self, key: &str, fields: Vec<String>) -> Result<usize> {
        LocalStore::hdel(self, key, fields)
    }

    async fn throttle(&self, key: &str, request: Throttle) -> Result<ThrottleReply> {
        LocalStore::throttle(self, key, request)
    }

    fn local(&self) -> Option<&dyn LocalStore> {
        Some(self)
    }
}

impl fmt::Debug for MemoryStore {
    /// Shows the configuration and the size, never keys or values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("used_bytes", &self.used_bytes())
            .field("config", &self.inner.config)
            .finish()
    }
}
