//! # kv-actix
//!
//! The kv middlewares for [actix-web](https://docs.rs/actix-web) 4: response caching,
//! sessions and rate limiting over any [`kv_core::Store`].
//!
//! **Status: in development.** This crate compiles and re-exports the store layer it
//! will be built on; the middlewares arrive with their issues: `RateLimiter`,
//! `SessionMiddleware` with a `Session` extractor, and `Cache`, as actix `Transform` +
//! `Service` middleware. They are thin adapters over the same `kv-core` engines as the
//! tower/axum layers in `kv-tower`, so both frameworks answer the same way.
#![deny(missing_docs)]

pub use kv_core::{AnyStore, KvError, MemoryStore, Store};
