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
//! | `redis-sentinel` | `RedisStore` behind Redis Sentinel (`redis+sentinel://`) |
//! | `redis-tls` | `rediss://` for `RedisStore` (rustls; private CA and client certificates) |
//! | `session` | the session engine in `session` |
//! | `test-util` | [`clock::ManualClock`], the conformance suite and the test doubles in `testing` (`CountingStore`, `UnavailableStore`, `RemoteLike`), `rate_limit::parse_rate_limit_header` |
//! | `cache` | the response-cache engine, `cache` (RFC 9111 policy, coalescing, revalidation) |
//! | `near-cache` | an in-process `moka` near cache in front of the cache's store |
//! | `metrics` | counters, gauges and histograms through the `metrics` facade ([`observe`] lists them) |
//!
//! ## Time
//! Every store and engine reads time from a [`Clock`] (`new()` uses the system clock,
//! `with_clock(..)` takes another), so TTL behaviour is testable without sleeping.
//!
//! ## The shape of the crate
//! - [`store`]: the [`Store`] trait (the contract, with Redis semantics), its in-process
//!   face [`LocalStore`] (the fast path: a store that answers in process hands it out
//!   through [`Store::local`], and every engine then decides without a future), the
//!   run-time choice [`AnyStore`], and the backends (`memory/`, `redis.rs`). No engine
//!   names a backend: a wrapper store or a store of yours gets the fast path the same way.
//! - The engines — [`rate_limit`], `session`, `cache` — read one request view,
//!   [`RequestView`], and answer what they decide themselves (a `429`, a cached response,
//!   a session failure) with one [`Answer`]; each adapter converts both in one place.
//! - Every call that can finish at once returns a [`Step`]: `Ready` with the result, or
//!   `Pending` with the work to await (`.await` works on both).
//! - Every `build()` reports a bad configuration as a [`ConfigError`], apart from the
//!   store errors ([`KvError`]).
//!
//! Where to add an algorithm, a backend or a cache rule: see `CONTRIBUTING.md`.
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
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod janitor;
pub mod observe;
pub mod rate_limit;
pub mod request;
#[cfg(feature = "session")]
#[cfg_attr(docsrs, doc(cfg(feature = "session")))]
pub mod session;
mod spare;
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
pub use step::{Step, StepFuture};
pub use store::input::{MAX_HASH_FIELDS, MAX_TTL};
#[cfg(feature = "memory")]
pub use store::memory::{MemoryStats, MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "redis")]
pub use store::redis::{RedisStore, RedisStoreBuilder};
pub use store::{AnyStore, LocalStore, Store, Ttl};
