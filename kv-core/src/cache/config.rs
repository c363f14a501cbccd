//! The cache configuration, as [`CacheBuilder`](super::CacheBuilder) leaves it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use super::CacheRequest;

/// The cache configuration (built by [`CacheBuilder`]).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) prefix: String,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) heuristic_freshness: bool,
    pub(crate) heuristic_max: Duration,
    pub(crate) max_body: usize,
    pub(crate) honor_request_cc: bool,
    /// Bypass HTTP/1.1 requests that name no host ([`CacheBuilder::require_host`]).
    pub(crate) require_host: bool,
    pub(crate) cache_authorized: bool,
    pub(crate) status_header: Option<HeaderName>,
    pub(crate) coalesce: bool,
    pub(crate) lock_timeout: Duration,
    pub(crate) lock_across_replicas: bool,
    pub(crate) revalidation_window: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) stale_on_disconnect: Duration,
    pub(crate) targeted: Option<HeaderName>,
    pub(crate) keys: KeyRules,
    pub(crate) tag_header: Option<HeaderName>,
    pub(crate) keep_tags: bool,
    pub(crate) bypass: Option<Predicate>,
}

/// How requests map to keys (see `key.rs`).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyRules {
    pub(crate) sort_query: bool,
    pub(crate) ignored_query: Vec<QueryParam>,
    /// The origin's content codings, in its order of preference.
    pub(crate) encodings: Option<Vec<String>>,
    pub(crate) custom: Option<KeyFn>,
}

/// An ignored query parameter: an exact name, or a prefix (`utm_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueryParam {
    Exact(String),
    Prefix(String),
}

impl QueryParam {
    pub(crate) fn parse(s: &str) -> QueryParam {
        match s.strip_suffix('*') {
            Some(prefix) => QueryParam::Prefix(prefix.to_owned()),
            None => QueryParam::Exact(s.to_owned()),
        }
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        match self {
            QueryParam::Exact(n) => n == name,
            QueryParam::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

type KeyFnInner = dyn Fn(&CacheRequest<'_>) -> Option<String> + Send + Sync;
type PredicateInner = dyn Fn(&CacheRequest<'_>) -> bool + Send + Sync;

/// A custom key function: its part of the key, or `None` for none.
#[derive(Clone)]
pub(crate) struct KeyFn(pub(crate) Arc<KeyFnInner>);

/// A bypass predicate: `true` leaves the request to the inner service.
#[derive(Clone)]
pub(crate) struct Predicate(pub(crate) Arc<PredicateInner>);

impl fmt::Debug for KeyFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyFn(..)")
    }
}

impl fmt::Debug for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Predicate(..)")
    }
}
