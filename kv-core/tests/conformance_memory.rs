//! The store conformance suite against `MemoryStore`, directly and through `AnyStore`.

use kv_core::clock::ManualClock;
use kv_core::testing::{self, CountingStore, ManualFixture};
use kv_core::{AnyStore, MemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_conformance_suite() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    testing::run_all(&ManualFixture::new(store, clock)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_store_over_memory_passes_the_conformance_suite() {
    let clock = ManualClock::new();
    let store = AnyStore::new(MemoryStore::with_clock(clock.clone()));
    assert_eq!(store.backend_name(), "memory");
    testing::run_all(&ManualFixture::new(store, clock)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_store_over_a_custom_store_passes_the_conformance_suite() {
    let clock = ManualClock::new();
    // A user-defined store (here a counting wrapper) goes through the boxed path.
    let counting = CountingStore::new(MemoryStore::with_clock(clock.clone()));
    let store = AnyStore::new(counting.clone());
    assert_eq!(store.backend_name(), "custom");
    // Wrapping an AnyStore again does not add a layer.
    let store = AnyStore::new(store);
    assert_eq!(store.backend_name(), "custom");
    testing::run_all(&ManualFixture::new(store, clock)).await;
    let calls = counting.calls();
    assert!(calls.hset > 0 && calls.hget_all > 0 && calls.incr_by > 0 && calls.get > 0);
}
