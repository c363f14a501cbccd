use std::fmt;

use kv_core::Store;
use kv_core::rate_limit::RateLimiter;
use tower_layer::Layer;

use super::RateLimit;

/// Applies a [`RateLimiter`] to a service: see the [module docs](crate::rate_limit).
pub struct RateLimitLayer<St> {
    limiter: RateLimiter<St>,
}

impl<St: Store> RateLimitLayer<St> {
    /// A layer enforcing `limiter`'s policies.
    pub fn new(limiter: RateLimiter<St>) -> Self {
        RateLimitLayer { limiter }
    }
}

impl<St> Clone for RateLimitLayer<St> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: self.limiter.clone(),
        }
    }
}

impl<St: Store> fmt::Debug for RateLimitLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S, St: Store> Layer<S> for RateLimitLayer<St> {
    type Service = RateLimit<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.limiter.clone())
    }
}

/// Kept beside the layer, so that the service does not depend on it.
impl<S, St: Store> RateLimit<S, St> {
    /// A [`RateLimitLayer`] with `limiter`.
    pub fn layer(limiter: RateLimiter<St>) -> RateLimitLayer<St> {
        RateLimitLayer::new(limiter)
    }
}
