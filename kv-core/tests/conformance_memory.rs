//! The store conformance suite against `MemoryStore`, directly and through `AnyStore`.

use kv_core::clock::ManualClock;
use kv_core::testing::{self, ManualFixture};
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

/// A user-defined store (here a thin wrapper) goes through the boxed path of `AnyStore`.
#[derive(Debug, Clone)]
struct Wrapper(MemoryStore);

impl kv_core::Store for Wrapper {
    async fn get(&self, key: &str) -> kv_core::Result<Option<bytes::Bytes>> {
        self.0.get(key).await
    }
    async fn set(
        &self,
        key: &str,
        value: bytes::Bytes,
        ttl: Option<std::time::Duration>,
    ) -> kv_core::Result<()> {
        self.0.set(key, value, ttl).await
    }
    async fn set_nx(
        &self,
        key: &str,
        value: bytes::Bytes,
        ttl: Option<std::time::Duration>,
    ) -> kv_core::Result<bool> {
        self.0.set_nx(key, value, ttl).await
    }
    async fn del(&self, key: &str) -> kv_core::Result<bool> {
        self.0.del(key).await
    }
    async fn expire(&self, key: &str, ttl: std::time::Duration) -> kv_core::Result<bool> {
        self.0.expire(key, ttl).await
    }
    async fn ttl(&self, key: &str) -> kv_core::Result<kv_core::Ttl> {
        self.0.ttl(key).await
    }
    async fn incr_by(
        &self,
        key: &str,
        delta: i64,
        ttl_if_new: Option<std::time::Duration>,
    ) -> kv_core::Result<i64> {
        self.0.incr_by(key, delta, ttl_if_new).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_store_over_a_custom_store_passes_the_conformance_suite() {
    let clock = ManualClock::new();
    let store = AnyStore::new(Wrapper(MemoryStore::with_clock(clock.clone())));
    assert_eq!(store.backend_name(), "custom");
    // Wrapping an AnyStore again does not add a layer.
    let store = AnyStore::new(store);
    assert_eq!(store.backend_name(), "custom");
    testing::run_all(&ManualFixture::new(store, clock)).await;
}
