//! # kv-core
//!
//! The framework-neutral core of the kv middleware toolkit: one small [`Store`] trait with
//! Redis semantics, the embedded [`MemoryStore`] (feature `memory`, on by default) and the
//! Redis backend `RedisStore` (feature `redis`). The rate-limit, session and cache engines
//! that the tower/axum (`kv-tower`) and actix-web (`kv-actix`) adapters share are built on
//! it.
//!
//! ```
//! # #[cfg(feature = "memory")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kv_core::Result<()> {
//! use std::time::Duration;
//! use kv_core::{MemoryStore, Store, Ttl};
//!
//! let store = MemoryStore::new();
//! store.set("session:1", "alice".into(), Some(Duration::from_secs(30))).await?;
//! assert_eq!(store.get("session:1").await?.as_deref(), Some(&b"alice"[..]));
//! assert!(store.del("session:1").await?);
//! assert_eq!(store.ttl("session:1").await?, Ttl::Missing);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "memory"))] fn main() {}
//! ```
//!
//! ## Features
//! | feature | what it adds |
//! |---|---|
//! | `memory` (default) | [`MemoryStore`] |
//! | `redis` | `RedisStore` on one Redis / Valkey server |
//! | `redis-cluster` | `RedisStore` on Redis Cluster |
//! | `session` | the session engine in `session` |
//! | `test-util` | [`clock::ManualClock`] and the conformance suite in `testing` |
//! | `cache` | the response-cache engine, `cache` (RFC 9111 policy, coalescing, revalidation) |
//! | `near-cache` | an in-process `moka` near cache in front of the cache's store |
//!
//! ## Time
//! Every store and engine reads time from a [`Clock`] (`new()` uses the system clock,
//! `with_clock(..)` takes another), so TTL behaviour is testable without sleeping.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod answer;
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod cache;
pub mod clock;
mod config;
mod error;
mod janitor;
pub mod rate_limit;
pub mod request;
#[cfg(feature = "session")]
#[cfg_attr(docsrs, doc(cfg(feature = "session")))]
pub mod session;
mod step;
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;

pub use answer::Answer;
#[cfg(feature = "test-util")]
pub use clock::ManualClock;
pub use clock::{Clock, SystemClock};
pub use config::ConfigError;
pub use error::{BoxError, KvError, Result};
pub use request::{PeerAddr, RequestView};
pub use step::Step;
pub use store::input::{MAX_HASH_FIELDS, MAX_TTL};
#[cfg(feature = "memory")]
pub use store::memory::{MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "redis")]
pub use store::redis::{RedisStore, RedisStoreBuilder};
pub use store::{AnyStore, LocalStore, Store, Ttl};
