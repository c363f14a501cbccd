//! Internal invariants of the shards: byte accounting and the count of keys with a TTL
//! stay exact through every kind of write (strings, counters and hashes), expiry and
//! eviction.

use std::time::Duration;

use bytes::Bytes;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::MemoryStore;
use super::shard::cost;
use crate::clock::ManualClock;
use crate::store::Decoded;

type LocalStore = dyn crate::store::LocalStore;
use crate::{KvError, Store};

fn check_invariants(store: &MemoryStore) {
    for shard in store.inner.shards.iter() {
        let shard = shard.0.read();
        let used: usize = shard
            .map
            .iter()
            .map(|(k, e)| cost(k.len(), e.value.len()))
            .sum();
        let volatile = shard.map.values().filter(|e| e.expires_at != 0).count();
        assert_eq!(shard.used, used, "byte accounting drifted");
        assert_eq!(shard.volatile, volatile, "volatile count drifted");
        assert!(shard.used <= store.inner.limits.max_bytes);
        assert!(shard.map.len() <= store.inner.limits.max_entries);
    }
}

#[test]
fn accounting_stays_exact_through_random_operations() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .clock(clock.clone())
        .shards(4)
        .max_bytes(64 << 10)
        .max_value_len(2048)
        .max_key_len(64)
        .max_entries(200)
        .without_active_expiry()
        .build()
        .expect("store");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    rt.block_on(async {
        for step in 0..20_000 {
            let key = format!("k{}", next() % 300);
            let ttl = match next() % 3 {
                0 => None,
                1 => Some(Duration::from_millis(1 + next() % 500)),
                _ => Some(Duration::from_secs(3600)),
            };
            let value = Bytes::from(vec![b'1'; (next() % 2048) as usize]);
            match next() % 11 {
                0 => drop(store.set(&key, value, ttl).await),
                1 => drop(store.set_nx(&key, value, ttl).await),
                2 => drop(store.incr_by(&key, 1, ttl).await),
                3 => drop(store.del(&key).await),
                4 => drop(
                    store
                        .expire(&key, Duration::from_millis(next() % 300))
                        .await,
                ),
                5 => drop(store.get(&key).await),
                7 => drop((&store as &LocalStore).get_decoded(&key, &|b: &Bytes| {
                    Some((Arc::new(b.len()) as Decoded, b.len() % 700))
                })),
                8 => {
                    let field = format!("f{}", next() % 8);
                    let len = (next() % 600) as usize;
                    drop(
                        store
                            .hset(
                                &key,
                                vec![(field, value.slice(..len.min(value.len())))],
                                ttl,
                            )
                            .await,
                    )
                }
                9 => drop(store.hdel(&key, vec![format!("f{}", next() % 8)]).await),
                10 => drop(store.hget_all(&key).await),
                6 => clock.advance(Duration::from_millis(next() % 100)),
                _ => {
                    if step % 500 == 0 {
                        store.purge_expired();
                    }
                }
            }
            if step % 97 == 0 {
                check_invariants(&store);
            }
        }
    });
    check_invariants(&store);
    store.purge_expired();
    check_invariants(&store);
}

/// A decoder that counts its calls and decodes a value to its length, accounted `cost`.
fn counting(calls: &AtomicUsize, cost: usize) -> impl Fn(&Bytes) -> Option<(Decoded, usize)> {
    move |b: &Bytes| {
        calls.fetch_add(1, Ordering::Relaxed);
        std::str::from_utf8(b)
            .ok()
            .map(|s| (Arc::new(s.to_owned()) as Decoded, cost))
    }
}

fn text(d: Option<Decoded>) -> Option<String> {
    d.map(|d| {
        d.downcast::<String>()
            .expect("a String")
            .as_str()
            .to_owned()
    })
}

#[test]
fn a_decoded_form_is_kept_until_the_value_changes() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let calls = AtomicUsize::new(0);
    let decode = counting(&calls, 300);
    let local: &LocalStore = &store;
    local
        .set(
            "k",
            Bytes::from_static(b"one"),
            Some(Duration::from_secs(10)),
        )
        .expect("set");
    let before = store.used_bytes();
    let first = local
        .get_decoded("k", &decode)
        .expect("read")
        .expect("decoded");
    let second = local
        .get_decoded("k", &decode)
        .expect("read")
        .expect("decoded");
    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "the second read decodes nothing"
    );
    assert!(Arc::ptr_eq(&first, &second), "the same form is handed out");
    assert_eq!(store.used_bytes(), before + 300, "the form is accounted");
    // The value still reads as its bytes, through both faces.
    assert_eq!(local.get("k").expect("get").as_deref(), Some(&b"one"[..]));
    check_invariants(&store);

    // A write drops the form (and its accounting): the next read decodes the new bytes.
    local
        .set(
            "k",
            Bytes::from_static(b"two"),
            Some(Duration::from_secs(10)),
        )
        .expect("set");
    assert_eq!(store.used_bytes(), before);
    assert_eq!(
        text(local.get_decoded("k", &decode).expect("read")).as_deref(),
        Some("two")
    );
    assert_eq!(calls.load(Ordering::Relaxed), 2);

    // Expiry hides it with the value; a delete removes both.
    clock.advance(Duration::from_secs(10));
    assert!(local.get_decoded("k", &decode).expect("read").is_none());
    local
        .set("k", Bytes::from_static(b"three"), None)
        .expect("set");
    assert!(local.get_decoded("k", &decode).expect("read").is_some());
    assert!(local.del("k").expect("del"));
    assert!(local.get_decoded("k", &decode).expect("read").is_none());
    assert_eq!(store.used_bytes(), 0);
    check_invariants(&store);
}

#[test]
fn undecodable_counter_and_hash_values_keep_nothing() {
    let store = MemoryStore::new();
    let local: &LocalStore = &store;
    let calls = AtomicUsize::new(0);
    let decode = counting(&calls, 100);
    // Bytes that do not decode (not UTF-8 here): `None`, nothing kept, asked again.
    local
        .set("bad", Bytes::from_static(b"\xff\xfe"), None)
        .expect("set");
    assert!(local.get_decoded("bad", &decode).expect("read").is_none());
    assert!(local.get_decoded("bad", &decode).expect("read").is_none());
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    // A counter is rendered on every read: decoded each time, never kept (its text is
    // not the bytes the store holds), and counting goes on.
    local.incr_by("n", 5, None).expect("incr");
    assert_eq!(
        text(local.get_decoded("n", &decode).expect("read")).as_deref(),
        Some("5")
    );
    assert_eq!(local.incr_by("n", 1, None).expect("incr"), 6);
    assert_eq!(
        text(local.get_decoded("n", &decode).expect("read")).as_deref(),
        Some("6")
    );
    // A hash is the wrong type, as for `get`.
    local
        .hset("h", vec![("f".into(), Bytes::from_static(b"v"))], None)
        .expect("hset");
    assert!(matches!(
        local.get_decoded("h", &decode),
        Err(KvError::WrongType)
    ));
    check_invariants(&store);
}

#[test]
fn a_string_with_a_decoded_form_still_counts_and_throttles() {
    let store = MemoryStore::new();
    let local: &LocalStore = &store;
    let calls = AtomicUsize::new(0);
    local
        .set("n", Bytes::from_static(b"41"), None)
        .expect("set");
    assert!(
        local
            .get_decoded("n", &counting(&calls, 50))
            .expect("read")
            .is_some()
    );
    assert_eq!(local.incr_by("n", 1, None).expect("incr"), 42);
    assert_eq!(local.get("n").expect("get").as_deref(), Some(&b"42"[..]));
    local
        .set("s", Bytes::from_static(b"text"), None)
        .expect("set");
    assert!(
        local
            .get_decoded("s", &counting(&calls, 50))
            .expect("read")
            .is_some()
    );
    assert!(matches!(
        local.incr_by("s", 1, None),
        Err(KvError::NotInteger)
    ));
    check_invariants(&store);
}

#[test]
fn a_full_shard_keeps_no_decoded_form() {
    let store = MemoryStore::builder()
        .shards(1)
        .max_bytes(4096)
        .max_key_len(16)
        .max_value_len(2048)
        .without_active_expiry()
        .build()
        .expect("store");
    let local: &LocalStore = &store;
    local
        .set("k", Bytes::from(vec![b'a'; 1000]), None)
        .expect("set");
    let calls = AtomicUsize::new(0);
    // A form larger than the room left is handed out but not kept: no eviction for it.
    let huge = counting(&calls, 8192);
    assert!(local.get_decoded("k", &huge).expect("read").is_some());
    assert!(local.get_decoded("k", &huge).expect("read").is_some());
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    assert_eq!(store.stats().evictions, 0);
    assert!(store.used_bytes() <= 4096);
    check_invariants(&store);
}

#[test]
fn concurrent_readers_and_writers_never_see_a_form_of_other_bytes() {
    let store = MemoryStore::new();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let local: &LocalStore = &store;
                let calls = AtomicUsize::new(0);
                let decode = counting(&calls, 64);
                while !stop.load(Ordering::Relaxed) {
                    if let Some(form) = text(local.get_decoded("k", &decode).expect("read")) {
                        // Every value written is `v<n>:<n>`: a form made from other bytes
                        // than a value written would not match itself.
                        let (a, b) = form.trim_start_matches('v').split_once(':').expect("form");
                        assert_eq!(a, b, "a decoded form of bytes never written");
                    }
                }
            });
        }
        // Stops the readers however the writer ends (a failed assertion included).
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        let local: &LocalStore = &store;
        let calls = AtomicUsize::new(0);
        let decode = counting(&calls, 64);
        for n in 0..20_000u32 {
            let value = format!("v{n}:{n}");
            local
                .set("k", Bytes::from(value.clone()), None)
                .expect("set");
            // The only writer reads its own write: a reader that decoded the previous
            // value and attached that form to this one would show here.
            let form = text(local.get_decoded("k", &decode).expect("read"));
            assert_eq!(
                form.as_deref(),
                Some(value.as_str()),
                "a stale form was attached"
            );
        }
    });
    // After the last write settles, a read returns that write's form.
    let calls = AtomicUsize::new(0);
    let decode = counting(&calls, 64);
    assert_eq!(
        text(
            (&store as &LocalStore)
                .get_decoded("k", &decode)
                .expect("read")
        )
        .as_deref(),
        Some("v19999:19999")
    );
    check_invariants(&store);
}

#[test]
fn a_typed_read_of_another_readers_form_decodes_its_own() {
    let store = MemoryStore::new();
    let local: &LocalStore = &store;
    local
        .set("k", Bytes::from_static(b"12"), None)
        .expect("set");
    let as_text = |b: &Bytes| std::str::from_utf8(b).ok().map(|s| (s.to_owned(), 10));
    let as_number = |b: &Bytes| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .map(|n| (n, 10))
    };
    let first = local.get_kept("k", as_text).expect("read").expect("text");
    assert_eq!(first.as_str(), "12");
    // The kept form is a `String`: a `u32` reader gets its own decoding, every time, and
    // the `String` stays kept for its reader.
    assert_eq!(
        local.get_kept("k", as_number).expect("read").as_deref(),
        Some(&12)
    );
    let again = local.get_kept("k", as_text).expect("read").expect("text");
    assert!(Arc::ptr_eq(&first, &again));
    assert!(
        local
            .get_kept("missing", as_number)
            .expect("read")
            .is_none()
    );
    check_invariants(&store);
}
