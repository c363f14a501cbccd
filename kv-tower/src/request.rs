//! `http::Request` as kv-core's [`RequestView`].

use std::borrow::Cow;
use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, Method, Request};
use kv_core::{PeerAddr, RequestView};

/// A request as the engines read it. The peer address is looked up in the extensions
/// only when an engine asks for it (the cache and the sessions never do).
pub(crate) struct View<'a, B> {
    req: &'a Request<B>,
}

impl<'a, B> View<'a, B> {
    pub(crate) fn new(req: &'a Request<B>) -> Self {
        View { req }
    }
}

impl<B> RequestView for View<'_, B> {
    fn method(&self) -> &Method {
        self.req.method()
    }
    fn path(&self) -> &str {
        self.req.uri().path()
    }
    fn query(&self) -> Option<&str> {
        self.req.uri().query()
    }
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.req
            .headers()
            .get(name)
            .map(http::HeaderValue::as_bytes)
    }
    fn for_each_header(&self, name: &HeaderName, f: &mut dyn FnMut(&[u8])) {
        for value in self.req.headers().get_all(name) {
            f(value.as_bytes());
        }
    }
    /// [`PeerAddr`] first (set on purpose, it wins), then axum's `ConnectInfo` (what an
    /// axum server has: found at the second look-up), then a bare `SocketAddr`.
    fn peer_addr(&self) -> Option<SocketAddr> {
        let ext = self.req.extensions();
        let peer = ext.get::<PeerAddr>().map(|p| p.0);
        #[cfg(feature = "axum")]
        let peer = peer.or_else(|| {
            ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0)
        });
        peer.or_else(|| ext.get::<SocketAddr>().copied())
    }
    fn extensions(&self) -> Option<&http::Extensions> {
        Some(self.req.extensions())
    }
    fn authority(&self) -> Option<&str> {
        self.req.uri().authority().map(http::uri::Authority::as_str)
    }
    fn version(&self) -> Option<http::Version> {
        Some(self.req.version())
    }
    fn headers(&self) -> Cow<'_, HeaderMap> {
        Cow::Borrowed(self.req.headers())
    }
}
