//! Response caching for tower and axum: [`CacheLayer`] over a kv-core
//! [`Cache`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use axum::{Router, routing::get, body::Body, http::Request};
//! use kv_core::MemoryStore;
//! use kv_core::cache::Cache;
//! use kv_tower::CacheLayer;
//! use tower::ServiceExt;
//!
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counter = calls.clone();
//! let handler = move || async move {
//!     counter.fetch_add(1, Ordering::SeqCst);
//!     ([("cache-control", "max-age=60")], "hello")
//! };
//! let cache = Cache::builder(MemoryStore::new()).build().expect("valid configuration");
//! let app = Router::new().route("/", get(handler)).layer(CacheLayer::new(cache));
//!
//! for expected in ["MISS", "HIT"] {
//!     let response = app.clone().oneshot(Request::new(Body::empty())).await.unwrap();
//!     assert_eq!(response.headers()["x-cache"], expected);
//!     // the entry is stored when the body has been read to its end
//!     let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
//!     assert_eq!(body, "hello");
//! }
//! assert_eq!(calls.load(Ordering::SeqCst), 1); // the second request never reached it
//! # }
//! ```
//!
//! Every decision — storability, freshness, keys, `Vary`, `Age`, `304`s, revalidation,
//! coalescing, invalidation — is kv-core's (see [`kv_core::cache`]); this layer only moves
//! requests and bodies. It works on an axum `Router`, a single route
//! (`get(handler).layer(..)`), or any tower service whose response body yields `Bytes`,
//! a `hyper` client included (the `cache-proxy` example is a caching reverse proxy).
//!
//! **Bodies.** A cacheable response streams to the client as it arrives while it is copied
//! (no added time to first byte); the entry is written when the body ends (or when the
//! `Content-Length` bytes have all been read, since servers stop polling there). A body larger
//! than [`max_body_bytes`](kv_core::cache::CacheBuilder::max_body_bytes), a body error, or a
//! client that goes away mid-body (the body is dropped) stores nothing. Hits are answered
//! with the stored bytes, without calling the inner service. The response body is
//! [`CacheBody<B>`], the shared [`KvBody`](crate::KvBody) over a [`RecordingBody<B>`]
//! (see [`crate::body`]).
//!
//! **Background refresh.** `stale-while-revalidate` refreshes run on the current tokio
//! runtime with a clone of the inner service. The refresh request is the request answered
//! stale, as a `GET` with the cache's validators, with its own body (normally empty for a
//! `GET` or `HEAD`) and without its extensions: no request body has to be made, so any
//! request body type works (hyper's `Incoming` included).
//!
//! The service keeps the inner service's error type. When the inner service fails and a
//! stale entry allows `stale-if-error`, the stale entry is served instead.

mod body;
mod future;
mod layer;
mod outcome;
mod service;

pub use body::{CacheBody, RecordingBody};
pub use future::ResponseFuture;
/// The engine's vocabulary, re-exported so that one `use kv_tower::cache::..` does.
pub use kv_core::cache::{Cache, CacheBuilder, CacheStats};
pub use layer::CacheLayer;
pub use service::CacheService;
