//! Rate limiting for tower and axum: [`RateLimitLayer`] over a kv-core
//! [`RateLimiter`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use axum::{Router, routing::get, body::Body, http::{Request, StatusCode}};
//! use kv_core::MemoryStore;
//! use kv_core::rate_limit::{KeySource, Policy, RateLimiter};
//! use kv_tower::RateLimitLayer;
//! use tower::ServiceExt;
//!
//! let limiter = RateLimiter::builder(MemoryStore::new())
//!     .policy(Policy::fixed_window("burst", 2, Duration::from_secs(1)).key(KeySource::global()))
//!     .build()
//!     .expect("valid policies");
//! let app = Router::new().route("/", get(|| async { "hi" })).layer(RateLimitLayer::new(limiter));
//!
//! for expected in [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
//!     let response = app.clone().oneshot(Request::new(Body::empty())).await.unwrap();
//!     assert_eq!(response.status(), expected);
//!     assert!(response.headers().contains_key("ratelimit"));
//! }
//! # }
//! ```
//!
//! Every decision — algorithms, keys, headers, the `429` body — is kv-core's (see
//! [`kv_core::rate_limit`]); this layer translates. The peer address comes from a
//! [`kv_core::PeerAddr`] extension (it wins: set it to override), with the `axum` feature
//! from `ConnectInfo<SocketAddr>` (serve with `into_make_service_with_connect_info`), or
//! from a `SocketAddr` extension, in that order.
//! Without it, IP-keyed policies answer `500` (a configuration error), never panic.
//!
//! The response body is the service's own body type `B`, which must be `From<Bytes>`
//! (axum's `Body`, `Full<Bytes>`, the cache layer's [`KvBody`](crate::KvBody)): an
//! allowed response passes through untouched (no wrapper, so axum boxes nothing of ours),
//! and the layer's own answers are `B::from` their bytes. Why not a body of our own:
//! axum's `Router::layer` boxes every body type but its own, ~230 instructions a request,
//! more than the rest of a headers-off GCRA check's bookkeeping; tower_governor makes the
//! same choice.
//!
//! With `RateLimiterBuilder::decision_in_extensions(true)` a handler reads the decision
//! (remaining quota) as `Extension<Decision>`. Add a CORS layer *after* this one
//! (`.layer(rate_limit).layer(cors)`: the last layer is the outermost), so that a `429`
//! carries CORS headers; preflights pass uncounted by default
//! (`RateLimiterBuilder::count_preflights`).
//!
//! Denied requests never reach the service. The layer keeps the service's error type;
//! its own failures are responses (`429`, `503` when failing closed, `400`/`500` for a
//! request without a key). On an in-process store (or an in-process GCRA policy) the
//! decision is made without awaiting; on a shared store it is one round trip, whatever
//! the number of policies (GCRA included: its state is in the store there).

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
/// The engine's vocabulary, re-exported so that one `use kv_tower::rate_limit::..` does.
pub use kv_core::rate_limit::{
    Algorithm, Decision, FailureMode, ForwardedHeader, GcraClock, GcraState, HeaderOptions, IpNet,
    KeySource, LimitKey, MissingKey, Policy, PolicyState, RateLimiter, RateLimiterBuilder,
    RejectBody, Verdict,
};
pub use layer::RateLimitLayer;
pub use service::RateLimit;
