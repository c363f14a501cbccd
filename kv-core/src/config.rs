//! [`ConfigError`]: what every `build()` of this workspace reports.

use std::borrow::Cow;
use std::fmt;

/// A configuration that cannot work, reported by `build()` before anything runs: a zero
/// limit, two policies with one name, a cookie name that is not a token, ...
///
/// Kept apart from [`KvError`](crate::KvError), which is what a *store call* fails with:
/// a configuration error is a bug to fix at start-up, never retryable and never a reason
/// to fail open.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigError {
    component: &'static str,
    message: Cow<'static, str>,
}

impl ConfigError {
    /// An error of `component` (`"rate limiter"`, `"session manager"`, `"cache"`,
    /// `"memory store"`, ...).
    pub fn new(component: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        ConfigError {
            component,
            message: message.into(),
        }
    }

    /// What was being configured.
    pub fn component(&self) -> &'static str {
        self.component
    }

    /// What is wrong, and usually how to fix it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} configuration: {}",
            self.component, self.message
        )
    }
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigError")
            .field("component", &self.component)
            .field("message", &self.message)
            .finish()
    }
}

impl std::error::Error for ConfigError {}

/// A store builder's bad configuration, where a store error is expected (a `RedisStore`
/// builder also fails to connect): [`KvError::InvalidInput`](crate::KvError::InvalidInput)
/// with the same text.
impl From<ConfigError> for crate::KvError {
    fn from(err: ConfigError) -> Self {
        crate::KvError::InvalidInput(err.to_string())
    }
}
