//! # kv-actix
//!
//! The kv middlewares for [actix-web](https://docs.rs/actix-web) 4, over any
//! [`kv_core::Store`]:
//!
//! - [`cache`]: [`CacheMiddleware`] — the same RFC 9111 response cache as
//!   `kv_tower::CacheLayer`.
//! - [`rate_limit`]: [`RateLimitMiddleware`] — the same policies, keys, headers and answers
//!   as `kv_tower::RateLimitLayer`.
//! - [`session`] (feature `session`): `SessionMiddleware` and the `Session` extractor,
//!   with the synchronous access actix users expect.
//! - [`ActixSessionStore`] (feature `actix-session`): kv's stores for the actix-session
//!   middleware (and actix-identity, actix-web-flash-messages on it).
//!
//! Each middleware is an actix `Transform` named `…Middleware` whose `Service` is named
//! `…Service`, so none collides with the `kv_core` engine it wraps
//! ([`kv_core::cache::Cache`], [`kv_core::rate_limit::RateLimiter`],
//! `kv_core::session::SessionManager`).
//!
//! They are thin adapters: every decision is made by the `kv-core` engines, which
//! `kv-tower` uses too, so both frameworks answer the same way (a parity suite runs the
//! same requests through an axum and an actix app). This crate converts only what an
//! engine reads or writes — the method, a few headers, the status — between actix-web's
//! `http` 0.2 types and the engines' `http` 1.x types.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "actix-session")]
mod actix_session_store;
mod answer;
pub mod cache;
pub mod rate_limit;
#[cfg(feature = "session")]
#[cfg_attr(docsrs, doc(cfg(feature = "session")))]
pub mod session;
mod view;

#[cfg(feature = "actix-session")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix-session")))]
pub use actix_session_store::{
    ActixSessionStore, DEFAULT_ACTIX_SESSION_PREFIX, DEFAULT_MAX_STATE_BYTES,
};
pub use cache::{CacheMiddleware, CacheService};
pub use kv_core::{AnyStore, KvError, MemoryStore, Store};
/// The Redis backend (features `redis`, `redis-cluster`, `redis-sentinel`, `redis-tls`),
/// so that one dependency on this crate is enough.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use kv_core::{RedisStore, RedisStoreBuilder};
pub use rate_limit::{RateLimitMiddleware, RateLimitService};
#[cfg(feature = "session")]
#[cfg_attr(docsrs, doc(cfg(feature = "session")))]
pub use session::{SessionMiddleware, SessionService};
