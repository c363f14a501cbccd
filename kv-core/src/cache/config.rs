//! The cache configuration, as [`CacheBuilder`](super::CacheBuilder) leaves it.

use std::time::Duration;

use http::HeaderName;

/// The cache configuration (built by [`CacheBuilder`]).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) prefix: String,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) heuristic_freshness: bool,
    pub(crate) heuristic_max: Duration,
    pub(crate) max_body: usize,
    pub(crate) sort_query: bool,
    pub(crate) honor_request_cc: bool,
    pub(crate) cache_authorized: bool,
    pub(crate) status_header: Option<HeaderName>,
    pub(crate) coalesce: bool,
    pub(crate) lock_timeout: Duration,
    pub(crate) lock_across_replicas: bool,
    pub(crate) revalidation_window: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) targeted: Option<HeaderName>,
}
