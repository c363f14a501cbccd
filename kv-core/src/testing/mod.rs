//! Test support (feature `test-util`): the store conformance suite and fixtures.
//!
//! The suite checks every row of the [`Store`](crate::Store) contract with Redis semantics. Every
//! backend of this crate runs it, and so can yours:
//!
//! ```
//! # #[cfg(feature = "memory")]
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! use kv_core::{clock::ManualClock, testing::{self, ManualFixture}, MemoryStore};
//!
//! let clock = ManualClock::new();
//! let store = MemoryStore::with_clock(clock.clone());
//! testing::run_all(&ManualFixture::new(store, clock)).await;
//! # }
//! # #[cfg(not(feature = "memory"))] fn main() {}
//! ```
//!
//! A failed check panics with the name of its case and what differed, as a test should.
//! Each run writes under a fresh random key prefix, so it can share a server with other
//! data and with concurrent runs.

//!
//! | file | what it holds |
//! |---|---|
//! | `conformance/` | the suite: [`run_all`] and its cases (strings, hashes, the local face) |
//! | `fixtures.rs` | [`Fixture`]: a backend under test and how time passes for it |
//! | `doubles.rs` | [`UnavailableStore`], [`CountingStore`] and [`RemoteLike`] |
//!
//! The `RateLimit` header parser for tests is
//! [`rate_limit::parse_rate_limit_header`](crate::rate_limit::parse_rate_limit_header).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: a failed check panics, as a test should.

mod conformance;
mod doubles;
mod fixtures;

pub use conformance::{CASES, run_all};
pub use doubles::{Calls, CountingStore, RemoteLike, UnavailableStore};
pub use fixtures::{Fixture, ManualFixture, RealTimeFixture};
