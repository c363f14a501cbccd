//! The one error type of every store and engine.

use std::error::Error as StdError;
use std::sync::Arc;

/// A shareable, type-erased error cause.
///
/// `Arc` rather than `Box` so that [`KvError`] is `Clone`: an engine that coalesces
/// concurrent requests can hand the same failure to every waiter.
pub type BoxError = Arc<dyn StdError + Send + Sync + 'static>;

/// `Result` with [`KvError`] as the error.
pub type Result<T, E = KvError> = std::result::Result<T, E>;

/// Everything a store call can fail with.
///
/// The variants mirror Redis' own answers where there is one (`NotInteger`, `Overflow`),
/// and separate *retryable* failures ([`KvError::Unavailable`]: backend down, timed out)
/// from everything else, so that middleware can apply its fail-open / fail-closed policy.
///
/// The `Display` output never contains keys or values: keys can carry session ids.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The stored value is not an integer by Redis' grammar (optional `-`, decimal digits,
    /// no `+`, spaces or leading zeros, within `i64`). The stored value was not changed.
    #[error("value is not an integer or out of range")]
    NotInteger,
    /// The increment would overflow `i64`. The stored value was not changed.
    #[error("increment or decrement would overflow")]
    Overflow,
    /// The key holds another kind of value than the command works on (a hash read with
    /// `get`, a string read with `hget_all`, ...): Redis' `WRONGTYPE`. Nothing was changed.
    #[error("operation against a key holding the wrong kind of value")]
    WrongType,
    /// The caller passed something the store refuses (empty or oversize key, oversize
    /// value, zero or too long TTL, ...). Nothing was stored.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The backend cannot be reached or did not answer in time. Retryable.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Any other backend failure (protocol error, unexpected reply, server-side error).
    #[error("store backend error: {0}")]
    Backend(#[source] BoxError),
}

impl KvError {
    /// Builds [`KvError::InvalidInput`] from a message.
    pub fn invalid_input(msg: impl Into<String>) -> Self {
        KvError::InvalidInput(msg.into())
    }

    /// Builds [`KvError::Unavailable`] from any error.
    pub fn unavailable(err: impl StdError + Send + Sync + 'static) -> Self {
        KvError::Unavailable(Arc::new(err))
    }

    /// Builds [`KvError::Backend`] from any error.
    pub fn backend(err: impl StdError + Send + Sync + 'static) -> Self {
        KvError::Backend(Arc::new(err))
    }

    /// Whether retrying the same call later may succeed (the backend was unavailable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, KvError::Unavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_keeps_its_source_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = KvError::unavailable(io);
        assert!(err.is_retryable());
        let source = err.source().map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("refused"));
        assert!(!KvError::NotInteger.is_retryable());
    }
}
