//! `MemoryStore` against dashmap, moka and quick_cache doing the same work, same run.
//!
//! 100k keys of 16 B with 64 B values; `get` hit, `set` with a TTL, `incr_by`; on 1 and 2
//! threads (per-op time seen by one thread). Run: `cargo bench -p kv-benches --bench store`.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use kv_benches::{KEYS, Walk, keys, ready, timed_on_threads, value};
use kv_core::testing::RemoteLike;
use kv_core::{AnyStore, MemoryStore, Store};

const TTL: Duration = Duration::from_secs(3600);

fn big_store() -> MemoryStore {
    MemoryStore::builder()
        .max_bytes(1 << 30)
        .build()
        .expect("store")
}

/// Every contender, loaded with the same 100k keys (with a TTL where it has one).
struct Contenders {
    keys: Vec<String>,
    memory: MemoryStore,
    any: AnyStore,
    /// A user-defined store (a counting wrapper): `AnyStore` holds it behind `Arc<dyn ..>`.
    custom: AnyStore,
    dashmap: dashmap::DashMap<String, Bytes>,
    moka: moka::sync::Cache<String, Bytes>,
    quick: quick_cache::sync::Cache<String, Bytes>,
    dash_counters: dashmap::DashMap<String, i64>,
    moka_counters: moka::sync::Cache<String, i64>,
}

impl Contenders {
    fn load() -> Self {
        let keys = keys();
        let v = value();
        let memory = big_store();
        let custom_inner = big_store();
        let dashmap = dashmap::DashMap::new();
        let moka = moka::sync::Cache::builder()
            .max_capacity(2 * KEYS as u64)
            .time_to_live(TTL)
            .build();
        let quick = quick_cache::sync::Cache::new(2 * KEYS);
        let dash_counters = dashmap::DashMap::new();
        let moka_counters = moka::sync::Cache::builder()
            .max_capacity(2 * KEYS as u64)
            .time_to_live(TTL)
            .build();
        for k in &keys {
            ready(memory.set(k, v.clone(), Some(TTL))).expect("set");
            ready(custom_inner.set(k, v.clone(), Some(TTL))).expect("set");
            ready(memory.incr_by(&format!("c{k}"), 1, Some(TTL))).expect("incr");
            ready(custom_inner.incr_by(&format!("c{k}"), 1, Some(TTL))).expect("incr");
            dashmap.insert(k.clone(), v.clone());
            moka.insert(k.clone(), v.clone());
            quick.insert(k.clone(), v.clone());
            dash_counters.insert(format!("c{k}"), 1);
            moka_counters.insert(format!("c{k}"), 1);
        }
        moka.run_pending_tasks();
        moka_counters.run_pending_tasks();
        Contenders {
            keys,
            any: AnyStore::new(memory.clone()),
            custom: AnyStore::new(RemoteLike(custom_inner)),
            memory,
            dashmap,
            moka,
            quick,
            dash_counters,
            moka_counters,
        }
    }
}

macro_rules! on_threads {
    ($group:expr, $name:expr, $threads:expr, $c:ident, |$key:ident, $ckey:ident| $op:expr) => {
        $group.bench_function(format!("{}/{}t", $name, $threads), |b| {
            b.iter_custom(|iters| {
                timed_on_threads($threads, iters, |t, iters| {
                    let mut walk = Walk::new(t * 50_000 + 13);
                    for _ in 0..iters {
                        let i = walk.next_index();
                        let $key: &str = &$c.keys[i];
                        let $ckey: &str = &$c.counter_keys[i];
                        black_box($op);
                    }
                })
            })
        });
    };
}

struct WithCounters<'a> {
    keys: &'a [String],
    counter_keys: Vec<String>,
}

fn benches(c: &mut Criterion) {
    let all = Contenders::load();
    let v = value();
    let ck = WithCounters {
        keys: &all.keys,
        counter_keys: all.keys.iter().map(|k| format!("c{k}")).collect(),
    };

    for threads in [1usize, 2] {
        let mut g = c.benchmark_group("get_hit");
        on_threads!(g, "kv_memory", threads, ck, |k, _c| ready(
            all.memory.get(k)
        )
        .expect("get"));
        on_threads!(g, "kv_any_store", threads, ck, |k, _c| ready(
            all.any.get(k)
        )
        .expect("get"));
        on_threads!(g, "kv_any_store_boxed", threads, ck, |k, _c| ready(
            all.custom.get(k)
        )
        .expect("get"));
        on_threads!(g, "dashmap", threads, ck, |k, _c| all
            .dashmap
            .get(k)
            .map(|r| r.value().clone()));
        on_threads!(g, "moka", threads, ck, |k, _c| all.moka.get(k));
        on_threads!(g, "quick_cache", threads, ck, |k, _c| all.quick.get(k));
        g.finish();

        let mut g = c.benchmark_group("set_ttl");
        on_threads!(g, "kv_memory", threads, ck, |k, _c| ready(all.memory.set(
            k,
            v.clone(),
            Some(TTL)
        ))
        .expect("set"));
        on_threads!(g, "kv_any_store", threads, ck, |k, _c| ready(all.any.set(
            k,
            v.clone(),
            Some(TTL)
        ))
        .expect("set"));
        on_threads!(g, "kv_any_store_boxed", threads, ck, |k, _c| ready(
            all.custom.set(k, v.clone(), Some(TTL))
        )
        .expect("set"));
        on_threads!(g, "dashmap", threads, ck, |k, _c| all
            .dashmap
            .insert(k.to_owned(), v.clone()));
        on_threads!(g, "moka", threads, ck, |k, _c| all
            .moka
            .insert(k.to_owned(), v.clone()));
        on_threads!(g, "quick_cache", threads, ck, |k, _c| all
            .quick
            .insert(k.to_owned(), v.clone()));
        g.finish();

        let mut g = c.benchmark_group("incr_by");
        on_threads!(g, "kv_memory", threads, ck, |_k, c| ready(
            all.memory.incr_by(c, 1, Some(TTL))
        )
        .expect("incr"));
        on_threads!(g, "kv_any_store", threads, ck, |_k, c| ready(
            all.any.incr_by(c, 1, Some(TTL))
        )
        .expect("incr"));
        on_threads!(g, "kv_any_store_boxed", threads, ck, |_k, c| ready(
            all.custom.incr_by(c, 1, Some(TTL))
        )
        .expect("incr"));
        on_threads!(g, "dashmap", threads, ck, |_k, c| {
            let mut e = all.dash_counters.entry(c.to_owned()).or_insert(0);
            *e += 1;
            *e
        });
        on_threads!(g, "moka", threads, ck, |_k, c| {
            all.moka_counters.entry_by_ref(c).and_compute_with(|e| {
                let next = e.map_or(0, |e| *e.value()) + 1;
                moka::ops::compute::Op::Put(next)
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = store;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(store);
