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
//! - [`body`]: [`KvBody`] — the cache layer's response body: its own complete answer, or
//!   the inner service's body passed through.
//!
//! Every decision lives in `kv-core`; this crate only translates `http` requests and
//! responses, so the actix-web adapters (`kv-actix`) answer the same way.
//!
//! ## Composing
//! The rate-limit and session layers answer in the inner service's body type `B`, which
//! must be `From<Bytes>` (their own answers are built from bytes; an allowed response
//! passes through untouched, so axum boxes nothing of ours). The cache layer answers
//! `Response<`[`KvBody<B>`]`>` (its hits are complete bodies, a miss streams the inner
//! body through while it is recorded), and `KvBody` is `From<Bytes>`. So the layers stack
//! in any order as plain tower services — `ServiceBuilder`, a hyper server, an axum
//! `Router` — over any body that is `From<Bytes>` (axum's `Body`, `Full<Bytes>`):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use kv_core::cache::Cache;
//! use kv_core::rate_limit::{KeySource, Policy, RateLimiter};
//! use kv_tower::{CacheLayer, MemoryStore, RateLimitLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let store = MemoryStore::new();
//! let limiter = RateLimiter::builder(store.clone())
//!     .policy(Policy::fixed_window("all", 100, Duration::from_secs(60)).key(KeySource::global()))
//!     .build()
//!     .expect("valid policies");
//! let cache = Cache::builder(store).build().expect("valid configuration");
//! let app = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(limiter))
//!     .layer(CacheLayer::new(cache))
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         let mut response = Response::new(Full::new(Bytes::from_static(b"hello")));
//!         response.headers_mut().insert("cache-control", "max-age=60".parse().unwrap());
//!         Ok::<_, Infallible>(response)
//!     });
//! let response = app.oneshot(Request::new(Full::default())).await.unwrap();
//! assert_eq!(response.headers()["x-cache"], "MISS");
//! # }
//! ```
//!
//! ## Features
//! | feature | what it adds |
//! |---|---|
//! | `axum` | the peer address is read from axum's `ConnectInfo<SocketAddr>`; the `Session` extractor |
//! | `session` | the `session` module |
//! | `tower-sessions` | [`TowerSessionsStore`]: kv's stores for the `tower-sessions` middleware |
//! | `tower-sessions-014` | the same store for tower-sessions 0.14, which axum-login 0.18 (its latest release) is built on |
//!
//! Without `axum`, the peer address is read from a `SocketAddr` or
//! [`kv_core::PeerAddr`] request extension.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod body;
pub mod cache;
pub mod rate_limit;
mod request;
mod response;
#[cfg(feature = "session")]
#[cfg_attr(docsrs, doc(cfg(feature = "session")))]
pub mod session;
#[cfg(any(feature = "tower-sessions", feature = "tower-sessions-014"))]
mod tower_sessions_store;

pub use body::KvBody;
pub use cache::{CacheLayer, CacheService};
pub use kv_core::{AnyStore, KvError, MemoryStore, Store};
/// The Redis backend (features `redis`, `redis-cluster`, `redis-sentinel`, `redis-tls`),
/// so that one dependency on this crate is enough.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use kv_core::{RedisStore, RedisStoreBuilder};
pub use rate_limit::{RateLimit, RateLimitLayer};
#[cfg(any(feature = "tower-sessions", feature = "tower-sessions-014"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "tower-sessions", feature = "tower-sessions-014")))
)]
pub use tower_sessions_store::{
    DEFAULT_MAX_RECORD_BYTES, DEFAULT_TOWER_SESSIONS_PREFIX, TowerSessionsStore,
};
