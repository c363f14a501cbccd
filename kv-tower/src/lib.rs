//! # kv-tower
//!
//! The kv middlewares for [tower](https://docs.rs/tower) and axum: response caching,
//! sessions and rate limiting over any [`kv_core::Store`].
//!
//! **Status: in development.** This crate compiles and re-exports the store layer it
//! will be built on; the layers themselves arrive with their issues:
//!
//! - `RateLimitLayer`: fixed-window, sliding-window and GCRA limits, keyed by peer IP
//!   (trusted-proxy aware), header, user or any function; `429` with `Retry-After` and the
//!   IETF `RateLimit` header fields.
//! - `SessionLayer` and the `Session` extractor: server-side records behind a signed or
//!   private cookie, lazy loading, idle and absolute expiry.
//! - `CacheLayer`: RFC 9111 shared-cache rules, `Vary`, `Age`, `X-Cache`, request
//!   coalescing and conditional `304`s.
//!
//! Every decision lives in `kv-core`, so the actix-web adapters (`kv-actix`) answer the
//! same way.
#![deny(missing_docs)]

pub use kv_core::{AnyStore, KvError, MemoryStore, Store};
