//! Hash fields: `HSET`, `HGETALL`, `HDEL` on one entry per hash.

use std::time::Duration;

use bytes::Bytes;
use compact_str::CompactString;

use super::MemoryStore;
use super::shard::{self, Entry, Fields, Value, fields_len};
use crate::store::input::{check_field_count, check_fields, check_len, opt_ttl_millis};
use crate::{KvError, Result};

/// The accounted size of `hash` (now `old_len`) once `fields` are set in it.
fn merged_len(hash: &Fields, fields: &[(String, Bytes)], old_len: usize) -> usize {
    let mut len = old_len;
    for (i, (name, value)) in fields.iter().enumerate() {
        // A name set earlier in this same call counts as present.
        let earlier = fields[..i].iter().rev().find(|(n, _)| n == name);
        let present = match earlier {
            Some((_, v)) => Some(v.len()),
            None => hash
                .iter()
                .find(|(n, _)| n == name.as_str())
                .map(|(_, v)| v.len()),
        };
        len = match present {
            Some(old) => len - old + value.len(),
            None => len + name.len() + value.len() + shard::FIELD_OVERHEAD,
        };
    }
    len
}

/// Hash fields.
impl MemoryStore {
    pub(super) fn hget_all_sync(&self, key: &str) -> Result<Vec<(String, Bytes)>> {
        self.check_key(key)?;
        let shard = self.shard(key).read();
        let Some(entry) = shard.map.get(key) else {
            return Ok(Vec::new());
        };
        if entry.is_expired(self.inner.clock.now_millis()) {
            return Ok(Vec::new());
        }
        let Value::Hash(fields) = &entry.value else {
            return Err(KvError::WrongType);
        };
        entry.touch(self.tick());
        Ok(fields
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect())
    }

    pub(super) fn hset_sync(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        self.check_key(key)?;
        check_fields(&fields, self.inner.max_key_len, self.inner.max_value_len)?;
        let ttl_ms = opt_ttl_millis(ttl)?;
        let tick = self.tick();
        let limits = self.inner.limits;
        let mut shard = self.shard(key).write();
        let now = self.inner.clock.now_millis();
        let live = shard
            .map
            .get_full(key)
            .filter(|(_, _, e)| !e.is_expired(now));
        let (index, old_deadline, old_len) = match live {
            Some((index, _, entry)) => match &entry.value {
                Value::Hash(old) => (Some(index), entry.expires_at, fields_len(old)),
                _ => return Err(KvError::WrongType),
            },
            None => (None, 0, 0),
        };
        let expires_at = match ttl_ms {
            Some(ms) => now.saturating_add(ms),
            None => old_deadline,
        };
        // The common case (a session save): update the live hash in place.
        if let Some(index) = index {
            let used = shard.used;
            if let Some((_, entry)) = shard.map.get_index_mut(index)
                && let Value::Hash(hash) = &mut entry.value
            {
                let new_len = merged_len(hash, &fields, old_len);
                check_len("hash", new_len, self.inner.max_value_len)?;
                if new_len <= old_len || used + (new_len - old_len) <= limits.max_bytes {
                    for (name, value) in fields {
                        match hash.iter_mut().find(|(n, _)| *n == name) {
                            Some(slot) => slot.1 = value,
                            None => hash.push((CompactString::from(name), value)),
                        }
                    }
                    entry.touch(tick);
                    shard.used = used + new_len - old_len;
                    shard.set_deadline(index, expires_at);
                    return Ok(());
                }
            }
        }
        // A new hash, or one that needs room made: build it and insert (evicting).
        let mut merged: Fields = match index.and_then(|i| shard.map.get_index(i)) {
            Some((
                _,
                Entry {
                    value: Value::Hash(old),
                    ..
                },
            )) => (**old).clone(),
            _ => Vec::with_capacity(fields.len()),
        };
        for (name, value) in fields {
            match merged.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => merged.push((CompactString::from(name), value)),
            }
        }
        // A hash is one entry: as a whole it obeys the value limit (and so always fits
        // in a shard).
        check_len("hash", fields_len(&merged), self.inner.max_value_len)?;
        let value = Value::Hash(Box::new(merged));
        match shard.map.get_index_of(key) {
            Some(index) => shard.replace(index, key, value, expires_at, &limits, now, tick),
            None => shard.insert_new(key, Entry::new(value, expires_at, tick), &limits, now, tick),
        }
        Ok(())
    }

    pub(super) fn hdel_sync(&self, key: &str, fields: Vec<String>) -> Result<usize> {
        self.check_key(key)?;
        check_field_count(fields.len())?;
        let tick = self.tick();
        let limits = self.inner.limits;
        let mut shard = self.shard(key).write();
        let now = self.inner.clock.now_millis();
        let Some((index, _, entry)) = shard.map.get_full(key) else {
            return Ok(0);
        };
        if entry.is_expired(now) {
            return Ok(0);
        }
        let Value::Hash(old) = &entry.value else {
            return Err(KvError::WrongType);
        };
        let mut kept: Fields = (**old).clone();
        let before = kept.len();
        kept.retain(|(name, _)| !fields.iter().any(|f| f == name.as_str()));
        let removed = before - kept.len();
        if kept.is_empty() {
            shard.remove_index(index);
        } else if removed > 0 {
            let expires_at = entry.expires_at;
            shard.replace(
                index,
                key,
                Value::Hash(Box::new(kept)),
                expires_at,
                &limits,
                now,
                tick,
            );
        }
        Ok(removed)
    }
}
