//! Sessions for tower and axum (feature `session`): [`SessionLayer`] gives every request a
//! lazy session backed by any [`Store`](kv_core::Store), and the axum [`Session`] extractor
//! (feature `axum`) hands it to handlers.
//!
//! ```
//! # #[cfg(feature = "axum")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use kv_core::{MemoryStore, session::SessionManager};
//! use kv_tower::session::{Session, SessionFailure, SessionLayer};
//! use tower::ServiceExt;
//!
//! async fn visit(session: Session) -> Result<String, SessionFailure> {
//!     let n: u32 = session.get("visits").await?.unwrap_or(0) + 1;
//!     session.insert("visits", n).await?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! let sessions = SessionManager::builder(MemoryStore::new()).build()?;
//! let app = Router::new().route("/", get(visit)).layer(SessionLayer::new(sessions));
//!
//! let response = app.oneshot(http::Request::new(axum::body::Body::empty())).await?;
//! assert!(response.headers()["set-cookie"].to_str()?.starts_with("__Host-session="));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "axum"))] fn main() {}
//! ```
//!
//! All the semantics (laziness, expiry, cookie, lifecycle, concurrency, failures) are the
//! engine's: see [`kv_core::session`]. This layer adds only the translation:
//! - the request's `Cookie` headers go to [`SessionManager::start`](kv_core::session::SessionManager::start)
//!   (no store call, no crypto), and the session handle into the request extensions;
//! - after the inner service answered, a session the handler used is finished: a
//!   `Set-Cookie` is appended when the engine gives one; a store failure replaces the
//!   response with an opaque `500` (logged by the engine, without the session id);
//! - a session the handler did not use costs nothing more;
//! - before the inner service is called, the engine's cross-origin check
//!   ([`CrossOriginProtection`], on by default for cookie sessions) may answer `403`;
//! - in token mode the engine's value goes in its token header instead of `Set-Cookie`.
//!
//! The response body is the inner service's own body type `B`, which must be
//! `From<Bytes>` (axum's `Body`, `Full<Bytes>`, the cache layer's
//! [`KvBody`](crate::KvBody)): passed through untouched, or `B::from` the bytes of the
//! `403` / `500`. No wrapper, so axum does not box a body of ours per response (an
//! untouched session costs ~390 instructions less than with one).
//! Outside axum, the handle is the request extension `kv_core::session::Session`.

#[cfg(feature = "axum")]
mod extract;
mod future;
mod layer;
mod service;

#[cfg(feature = "axum")]
pub use extract::{MissingSessionLayer, Session, SessionFailure};
pub use future::ResponseFuture;
pub use kv_core::session::{
    CrossOriginProtection, Key, SameSite, SessionError, SessionExpiry, SessionManager,
    SessionManagerBuilder,
};
pub use layer::SessionLayer;
pub use service::SessionService;
