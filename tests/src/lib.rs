//! Tests across the workspace's crates, kept here so that no published crate needs another
//! framework's adapter as a dev-dependency. The library is empty; the tests are in
//! `tests/`:
//!
//! - `parity.rs`: one behaviour suite run against an axum app (kv-tower) and an actix-web
//!   app (kv-actix) configured the same way; both must answer alike.
//! - `session_parity.rs`: sessions v2 (duplicate cookies, cross-origin protection, flood
//!   resistance, key rotation, per-session lifetimes, token mode, `SessionExt`) through
//!   both frameworks, on `MemoryStore` and a real `redis-server`.
#![deny(missing_docs)]
