//! The framework-neutral view of an HTTP request that the engines read.
//!
//! The tower and actix-web adapters implement [`RequestView`] over their own request
//! types, exposing only what an engine reads (method, path, a few headers, the peer
//! address), so that no engine depends on a web framework.

use std::borrow::Cow;
use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, Method};

/// What an engine may read of a request.
pub trait RequestView {
    /// The request method.
    fn method(&self) -> &Method;
    /// The request path (without the query).
    fn path(&self) -> &str;
    /// The query string, without `?`.
    fn query(&self) -> Option<&str>;
    /// The first value of header `name`.
    fn header(&self, name: &HeaderName) -> Option<&[u8]>;
    /// Calls `f` with every value of header `name`, in order.
    fn for_each_header(&self, name: &HeaderName, f: &mut dyn FnMut(&[u8]));
    /// The address of the TCP peer (the client, or the last proxy), if the server gave it.
    fn peer_addr(&self) -> Option<SocketAddr>;
    /// The request extensions, where the adapter has them as `http::Extensions`.
    fn extensions(&self) -> Option<&http::Extensions> {
        None
    }
    /// The authority of the request target (`host[:port]`) when the request line carries
    /// one (absolute-form, as a proxy gets it); `None` for the usual origin-form.
    fn authority(&self) -> Option<&str> {
        None
    }
    /// The HTTP version of the request, when the adapter knows it (`None`: unknown). The
    /// response cache bypasses an HTTP/1.1 request that names no host at all (RFC 9112
    /// section 3.2 requires `Host` there).
    fn version(&self) -> Option<http::Version> {
        None
    }
    /// Every header as `http` 1.x types: borrowed where the adapter holds them so,
    /// converted otherwise. Only the response cache asks (it keeps the request headers
    /// for `Vary` and revalidation); the other engines read single headers by name.
    fn headers(&self) -> Cow<'_, HeaderMap>;
}

/// For `http` requests: the peer address is read from a [`SocketAddr`] or
/// [`PeerAddr`] extension (adapters insert one from their connection info).
impl<B> RequestView for http::Request<B> {
    fn method(&self) -> &Method {
        self.method()
    }
    fn path(&self) -> &str {
        self.uri().path()
    }
    fn query(&self) -> Option<&str> {
        self.uri().query()
    }
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.headers().get(name).map(http::HeaderValue::as_bytes)
    }
    fn for_each_header(&self, name: &HeaderName, f: &mut dyn FnMut(&[u8])) {
        for value in self.headers().get_all(name) {
            f(value.as_bytes());
        }
    }
    fn peer_addr(&self) -> Option<SocketAddr> {
        let ext = self.extensions();
        ext.get::<PeerAddr>()
            .map(|p| p.0)
            .or_else(|| ext.get::<SocketAddr>().copied())
    }
    fn extensions(&self) -> Option<&http::Extensions> {
        Some(self.extensions())
    }
    fn authority(&self) -> Option<&str> {
        self.uri().authority().map(http::uri::Authority::as_str)
    }
    fn version(&self) -> Option<http::Version> {
        Some(self.version())
    }
    fn headers(&self) -> Cow<'_, HeaderMap> {
        Cow::Borrowed(self.headers())
    }
}

/// The TCP peer of a request, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);
