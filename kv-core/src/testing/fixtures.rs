//! How the conformance suite drives a backend: the store, and how time passes for it.

use std::time::Duration;

use crate::Store;
use crate::clock::ManualClock;

/// A backend under test, and how to let time pass for it.
pub trait Fixture: Send + Sync {
    /// The store type.
    type Store: Store + Clone;
    /// The store under test.
    fn store(&self) -> &Self::Store;
    /// Lets `by` pass for the store: advance a manual clock, or sleep for a real server.
    fn advance(&self, by: Duration) -> impl Future<Output = ()> + Send;
    /// The TTL the suite uses for keys it lets expire. It must be long enough that a few
    /// calls finish before it runs out (a real server needs some hundreds of ms).
    fn short_ttl(&self) -> Duration {
        Duration::from_millis(500)
    }
}

/// A fixture whose time is a [`ManualClock`]: expiry is checked without waiting.
#[derive(Debug, Clone)]
pub struct ManualFixture<S> {
    store: S,
    clock: ManualClock,
}

impl<S> ManualFixture<S> {
    /// `store` must read its time from `clock`.
    pub fn new(store: S, clock: ManualClock) -> Self {
        ManualFixture { store, clock }
    }
}

impl<S: Store + Clone> Fixture for ManualFixture<S> {
    type Store = S;
    fn store(&self) -> &S {
        &self.store
    }
    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
    fn short_ttl(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// A fixture on real time (a Redis server, say): `advance` sleeps.
#[derive(Debug, Clone)]
pub struct RealTimeFixture<S> {
    store: S,
}

impl<S> RealTimeFixture<S> {
    /// Wraps a store that keeps real time.
    pub fn new(store: S) -> Self {
        RealTimeFixture { store }
    }
}

impl<S: Store + Clone> Fixture for RealTimeFixture<S> {
    type Store = S;
    fn store(&self) -> &S {
        &self.store
    }
    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
}
