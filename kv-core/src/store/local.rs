//! The in-process face of a store: the same commands, answered before they return.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Throttle, ThrottleReply, Ttl};
use crate::Result;

/// A reader's decoded form of a stored string value, kept beside it by
/// [`LocalStore::get_decoded`].
pub type Decoded = Arc<dyn Any + Send + Sync>;

/// What [`LocalStore::get_decoded`] is given to decode a value: the decoded form and how
/// many bytes to account for it, or `None` when the bytes do not decode.
pub type Decoder<'a> = &'a dyn Fn(&Bytes) -> Option<(Decoded, usize)>;

/// The synchronous face of a [`Store`](super::Store) whose data lives in this process.
///
/// A backend that can answer without waiting (the embedded
/// [`MemoryStore`](crate::MemoryStore), or any store of your own that keeps its data in
/// memory) implements `LocalStore` and returns itself from
/// [`Store::local`](super::Store::local). The engines then decide a request in place —
/// a rate-limit count, a cache hit, a session load or save — with no future and no
/// allocation for one, and fall back to the `async` methods when `local()` is `None`
/// (a remote store such as Redis). Wrapper stores forward `local()` (see
/// [`AnyStore`](super::AnyStore) and `kv_core::testing::CountingStore`), so they keep the
/// fast path of what they wrap.
///
/// Every method has the contract of its [`Store`](super::Store) twin, and a store's two
/// faces must agree: a value written through one is read through the other.
///
/// Giving this face also says: **the data lives in this process only**. No other process
/// (replica) sees it, so the engines skip what only matters to a shared store — the
/// response cache takes no cross-replica lock on it, for instance. A store whose data is
/// shared with other processes (a client of a server, even one with a local cache in
/// front) must not give this face. The methods
/// are named like the `Store` ones; call them through `store.local()` (a `&dyn
/// LocalStore`), so that the two traits never meet in one method call.
pub trait LocalStore: Send + Sync {
    /// [`Store::get`](super::Store::get), answered now.
    fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// [`get`](LocalStore::get), decoded: `decode` turns the value's bytes into the form
    /// the caller works with, and a store that can keeps that form beside the value, so
    /// that the next reads of the same stored value return it without decoding again.
    /// `None` when the key is missing or its bytes do not decode.
    ///
    /// The kept form lives exactly as long as the value it was made from: writing,
    /// deleting, expiring or evicting the key drops it, and a store must never return a
    /// form made from other bytes than the key holds. It is accounted in the store's
    /// memory bound with the size `decode` gives (`MemoryStore` keeps it only when it
    /// fits). One decoder per key: the form is type-erased, so a caller checks its type
    /// (`Arc::downcast`) and, should another reader have attached something else, decodes
    /// [`get`](LocalStore::get)'s bytes itself.
    ///
    /// The default decodes on every read (nothing kept); `MemoryStore` keeps the form.
    /// The response cache reads entries through this on an in-process store.
    ///
    /// # Errors
    /// As [`get`](LocalStore::get).
    fn get_decoded(&self, key: &str, decode: Decoder<'_>) -> Result<Option<Decoded>> {
        Ok(self
            .get(key)?
            .and_then(|bytes| decode(&bytes))
            .map(|(d, _)| d))
    }
    /// [`Store::set`](super::Store::set), answered now.
    fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()>;
    /// [`Store::set_nx`](super::Store::set_nx), answered now.
    fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool>;
    /// [`Store::del`](super::Store::del), answered now.
    fn del(&self, key: &str) -> Result<bool>;
    /// [`Store::expire`](super::Store::expire), answered now.
    fn expire(&self, key: &str, ttl: Duration) -> Result<bool>;
    /// [`Store::ttl`](super::Store::ttl), answered now.
    fn ttl(&self, key: &str) -> Result<Ttl>;
    /// [`Store::incr_by`](super::Store::incr_by), answered now.
    fn incr_by(&self, key: &str, delta: i64, ttl_if_new: Option<Duration>) -> Result<i64>;
    /// [`Store::hget_all`](super::Store::hget_all), answered now.
    fn hget_all(&self, key: &str) -> Result<Vec<(String, Bytes)>>;
    /// [`Store::hset`](super::Store::hset), answered now.
    fn hset(&self, key: &str, fields: Vec<(String, Bytes)>, ttl: Option<Duration>) -> Result<()>;
    /// [`Store::hdel`](super::Store::hdel), answered now.
    fn hdel(&self, key: &str, fields: Vec<String>) -> Result<usize>;
    /// [`Store::throttle`](super::Store::throttle), answered now. The default is the
    /// "does not implement `throttle`" error (a store of yours written before the
    /// command); `MemoryStore` implements it.
    fn throttle(&self, key: &str, request: Throttle) -> Result<ThrottleReply> {
        let _ = (key, request);
        Err(super::throttle::unsupported())
    }

    /// `HGETALL` and `PTTL` of one key read together: each field is lent to `visit`
    /// (no copy of names or values is needed), then the key's TTL is returned
    /// ([`Ttl::Missing`] and no field for a missing key).
    ///
    /// The default calls [`hget_all`](LocalStore::hget_all) then [`ttl`](LocalStore::ttl);
    /// a store that can read both under one lock should override it (`MemoryStore` does).
    ///
    /// # Errors
    /// [`KvError::WrongType`](crate::KvError::WrongType) when the key holds a string.
    fn hget_all_with_ttl(&self, key: &str, visit: &mut dyn FnMut(&str, &Bytes)) -> Result<Ttl> {
        let fields = self.hget_all(key)?;
        let ttl = self.ttl(key)?;
        if ttl == Ttl::Missing {
            return Ok(Ttl::Missing);
        }
        for (name, value) in &fields {
            visit(name, value);
        }
        Ok(ttl)
    }
}

impl dyn LocalStore + '_ {
    /// [`get_decoded`](LocalStore::get_decoded) with a typed form: `decode` makes a `T`
    /// (and its accounted size) from the value's bytes, and the kept `T` is handed back as
    /// an `Arc<T>`. Should the key carry another reader's form (of another type), the
    /// bytes are read and decoded here, once, without keeping the result.
    ///
    /// # Errors
    /// As [`get`](LocalStore::get).
    pub fn get_kept<T: Any + Send + Sync>(
        &self,
        key: &str,
        decode: impl Fn(&Bytes) -> Option<(T, usize)>,
    ) -> Result<Option<Arc<T>>> {
        let erased = |bytes: &Bytes| decode(bytes).map(|(t, cost)| (Arc::new(t) as Decoded, cost));
        let Some(kept) = self.get_decoded(key, &erased)? else {
            return Ok(None);
        };
        match kept.downcast::<T>() {
            Ok(kept) => Ok(Some(kept)),
            Err(_) => Ok(self
                .get(key)?
                .and_then(|bytes| decode(&bytes))
                .map(|(t, _)| Arc::new(t))),
        }
    }
}
