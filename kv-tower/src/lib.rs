//! # kv-tower
//!
//! The kv middlewares for [tower](https://docs.rs/tower) and axum, over any
//! [`kv_core::Store`]:
//!
//! - [`rate_limit`]: [`RateLimitLayer`] — fixed-window, sliding-window and GCRA limits,
//!   keyed by peer IP (trusted-proxy aware), header, user or any function; `429` with
//!   `Retry-After` and the IETF `RateLimit` header fields.
//! - [`cache`]: [`CacheLayer`] — RFC 9111 response caching (freshness, `Vary`, `Age`,
//!   `304`s, revalidation, stale-while-revalidate / stale-if-error, request coalescing,
//!   invalidation), bodies streamed while they are copied.
//! - [`session`] (feature `session`): `SessionLayer` and the axum `Session` extractor —
//!   lazy, store-backed sessions with idle and absolute timeouts, id cycling, signed or
//!   private cookies, and "log out everywhere".
//!
//! Every decision lives in `kv-core`; this crate only translates `http` requests and
//! responses, so the actix-web adapters (`kv-actix`) answer the same way.
//!
//! ## Features
//! | feature | what it adds |
//! |---|---|
//! | `axum` | the peer address is read from axum's `ConnectInfo<SocketAddr>`; the `Session` extractor |
//! | `session` | the `session` module |
//!
//! Without `axum`, the peer address is read from a `SocketAddr` or
//! [`kv_core::PeerAddr`] request extension.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod cache;
pub mod rate_limit;
mod request;
#[cfg(feature = "session")]
#[cfg_attr(docsrs, doc(cfg(feature = "session")))]
pub mod session;

pub use cache::{CacheLayer, CacheService};
pub use kv_core::{AnyStore, KvError, MemoryStore, Store};
pub use rate_limit::{RateLimit, RateLimitLayer};
