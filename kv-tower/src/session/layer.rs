use kv_core::session::SessionManager;
use tower_layer::Layer;

use super::SessionService;

/// Gives every request a lazy [`Session`](kv_core::session::Session): see the
/// [module docs](crate::session).
#[derive(Debug, Clone)]
pub struct SessionLayer {
    manager: SessionManager,
}

impl SessionLayer {
    /// A layer over `manager` (its store, cookie and timeouts).
    pub fn new(manager: SessionManager) -> Self {
        SessionLayer { manager }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, self.manager.clone())
    }
}
