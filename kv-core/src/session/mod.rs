//! Sessions: server-side records in any [`Store`](crate::Store) behind a random id in a
//! cookie (feature `session`). Framework-neutral: the tower/axum and actix-web adapters
//! translate their request and response types and call this engine.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use http::{Request, StatusCode, header};
//! use kv_core::MemoryStore;
//! use kv_core::session::SessionManager;
//!
//! let sessions = SessionManager::builder(MemoryStore::new()).build()?;
//!
//! // Request 1: no cookie; the handler stores something.
//! let session = sessions.start(&Request::get("/cart").body(())?);
//! session.insert("cart", vec![17, 42]).await?;
//! let set_cookie = session.end(StatusCode::OK).await?.expect("a new session");
//! assert!(set_cookie.to_str()?.starts_with("__Host-session="));
//!
//! // Request 2: the browser sends the cookie back.
//! let pair = set_cookie.to_str()?.split(';').next().unwrap().to_owned();
//! let request = Request::get("/cart").header(header::COOKIE, pair).body(())?;
//! let session = sessions.start(&request);
//! assert_eq!(session.get::<Vec<u32>>("cart").await?, Some(vec![17, 42]));
//! assert_eq!(session.end(StatusCode::OK).await?, None); // read only: nothing to send
//! # Ok(())
//! # }
//! ```
//!
//! # What the engine guarantees
//! - **Ids**: 128 bits from the OS-seeded thread CSPRNG, 22 URL-safe base64 characters.
//!   An id the store does not know is **never adopted**: writing to such a session issues
//!   a new id. A cookie with a bad signature, a failed decryption or a malformed id is
//!   treated as no cookie: no error page, and no store call with its bytes.
//! - **Lazy**: a request whose handler does not use the session makes no store call and
//!   sets no cookie (the cookie is not even checked). A read-only request reads once
//!   (`HGETALL` + `PTTL`, one round trip) and writes nothing, except the TTL refresh below.
//!   A changed session is written once, after the handler (one round trip).
//! - **Expiry**: an idle timeout **and** an absolute timeout. The record's TTL is the idle
//!   timeout cut at the absolute deadline, so the store drops it by itself. Every use,
//!   reads included, counts as activity: the TTL is refreshed with one `expire` (never a
//!   rewrite), at most once per [`refresh_fraction`](SessionManagerBuilder::refresh_fraction)
//!   of the idle timeout. A session dies at its absolute deadline however active. The
//!   cookie's `Max-Age` is the absolute timeout (or none: a browser-session cookie).
//! - **Lifecycle**: [`Session::cycle_id`] (fixation defence), [`Session::login`] (cycle +
//!   new absolute lifetime + per-user index), [`Session::flush`] (logout: record deleted,
//!   cookie expired), [`Session::clear`], [`SessionManager::end_user_sessions`] and
//!   [`Session::end_other_sessions`] (end a user's sessions, e.g. after a password change;
//!   the per-user index is only touched by logins and these calls, never by ordinary
//!   requests).
//! - **Concurrency**: per-key storage, so concurrent writers of different keys lose
//!   nothing; see [`Session`] for the exact semantics.
//! - **Failures**: a store error fails the request (the adapter answers 500), is logged
//!   without the session id, and saves nothing. A handler that answers 5xx saves nothing
//!   either: half-done changes are discarded.
//!
//! The stored format is documented in the `record` module source: one hash per session,
//! one field per key holding the value as JSON text, readable with `redis-cli HGETALL`.

//! # Where things are
//! `manager.rs` ([`SessionManager`] and its builder), `handle.rs` ([`Session`]: loading
//! and the `async` calls), `data.rs` ([`SessionData`], the same calls in place),
//! `state.rs` (what a request loaded and changed), `save.rs` (planning and making the
//! writes at the end of a request), `index.rs` (the per-user index), `record.rs` (the
//! stored layout), `cookie.rs` and `id.rs`, `shared.rs` (what every request shares).

pub(crate) mod cookie;
mod csrf;
mod data;
mod handle;
pub(crate) mod id;
mod index;
mod lifetime;
mod manager;
mod origin;
pub(crate) mod record;
mod save;
mod shared;
mod state;
#[cfg(test)]
mod tests;

pub use ::cookie::{Key, SameSite};
pub use data::SessionData;
pub use handle::{Loading, Session};
pub use index::{MAX_USER_SESSIONS, UserSession};
pub use lifetime::SessionExpiry;
pub use manager::{SessionManager, SessionManagerBuilder};
pub use origin::CrossOriginProtection;
pub use save::Save;

use crate::KvError;

/// What a session call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed (logged; the adapter answers 500).
    #[error("session store failed: {0}")]
    Store(#[from] KvError),
    /// A value given to `insert` could not be serialized to JSON.
    #[error("session value for key {key:?} could not be serialized")]
    Serialize {
        /// The session key.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The stored value is not of the type asked for.
    #[error("session value for key {key:?} is not of the requested type")]
    Deserialize {
        /// The session key.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Keys starting with `__kv.` are the engine's own.
    #[error("session key {0:?} is reserved (keys starting with `__kv.` are)")]
    ReservedKey(String),
    /// [`Session::set_lifetime`] was given a zero timeout.
    #[error("a session's idle and absolute timeouts must be positive")]
    InvalidLifetime,
    /// A [`SessionData`] call was made before the session was loaded.
    #[error("the session was not loaded yet: call `load().await` first")]
    NotLoaded,
}

impl SessionError {
    /// The HTTP status an adapter answers with when a handler gives up on this error:
    /// 500 for everything (a store failure, or a programming error in the handler).
    pub fn status(&self) -> http::StatusCode {
        http::StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The response both adapters send for it: [`status`](SessionError::status) with an
    /// opaque `text/plain` body (the cause is logged, never shown).
    pub fn answer(&self) -> crate::Answer {
        crate::Answer::text(self.status(), "Internal Server Error")
    }
}
