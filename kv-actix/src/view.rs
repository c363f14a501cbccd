//! actix-web's request types as kv-core's [`RequestView`], and the header conversions
//! between actix-web's `http` 0.2 types and the `http` 1.x types the engines speak.

use std::borrow::Cow;
use std::net::SocketAddr;

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{
    HeaderMap as ActixHeaders, HeaderName as ActixName, HeaderValue as ActixValue,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use kv_core::RequestView;

/// A request as the engines read it: only the method is converted up front (once);
/// headers are looked up by name when an engine asks, and converted as a whole only for
/// the response cache.
pub(crate) struct View<'a> {
    req: &'a actix_web::HttpRequest,
    method: Method,
}

impl<'a> View<'a> {
    pub(crate) fn new(req: &'a ServiceRequest) -> Self {
        View {
            req: req.request(),
            method: method(req.method()),
        }
    }
}

/// The `http` 1.x twin of an actix-web method.
pub(crate) fn method(m: &actix_web::http::Method) -> Method {
    match m.as_str() {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "DELETE" => Method::DELETE,
        "PATCH" => Method::PATCH,
        "OPTIONS" => Method::OPTIONS,
        // Both crates accept the same method tokens, so this never fails; if it did, a
        // method the cache bypasses and that invalidates nothing is the safe reading.
        other => Method::from_bytes(other.as_bytes()).unwrap_or(Method::OPTIONS),
    }
}

impl RequestView for View<'_> {
    fn method(&self) -> &Method {
        &self.method
    }
    fn path(&self) -> &str {
        self.req.path()
    }
    fn query(&self) -> Option<&str> {
        self.req.uri().query()
    }
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.req
            .headers()
            .get(&actix_name(name)?)
            .map(ActixValue::as_bytes)
    }
    fn for_each_header(&self, name: &HeaderName, f: &mut dyn FnMut(&[u8])) {
        let Some(name) = actix_name(name) else {
            return;
        };
        for value in self.req.headers().get_all(&name) {
            f(value.as_bytes());
        }
    }
    /// The TCP peer (never a header): the engines apply their trusted-proxy rules to
    /// `X-Forwarded-For` / `Forwarded` themselves, as for tower.
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.req.peer_addr()
    }
    /// Set for an absolute-form request target (as a proxy gets it).
    fn authority(&self) -> Option<&str> {
        self.req.uri().authority().map(|a| a.as_str())
    }
    /// actix-web's `http` 0.2 version, as `http` 1.x's.
    fn version(&self) -> Option<http::Version> {
        use actix_web::http::Version as V;
        Some(match self.req.version() {
            V::HTTP_09 => http::Version::HTTP_09,
            V::HTTP_10 => http::Version::HTTP_10,
            V::HTTP_11 => http::Version::HTTP_11,
            V::HTTP_2 => http::Version::HTTP_2,
            V::HTTP_3 => http::Version::HTTP_3,
            _ => return None,
        })
    }
    /// Converted: actix-web's headers are `http` 0.2 types.
    fn headers(&self) -> Cow<'_, HeaderMap> {
        Cow::Owned(to_http(self.req.headers()))
    }
}

/// actix-web's headers as `http` 1.x's.
pub(crate) fn to_http(headers: &ActixHeaders) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.as_str();
        let name =
            known_http_name(name).map_or_else(|| HeaderName::from_bytes(name.as_bytes()), Ok);
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_bytes(value.as_bytes())) {
            map.append(name, value);
        }
    }
    map
}

/// `http` 1.x headers as actix-web's (a header actix refuses is left out: none should be,
/// both validate the same grammar).
pub(crate) fn to_actix(headers: &HeaderMap) -> ActixHeaders {
    let mut map = ActixHeaders::with_capacity(headers.keys_len());
    for (name, value) in headers {
        if let Some((name, value)) = header(name, value) {
            map.append(name, value);
        }
    }
    map
}

/// The names the engines read and write most, as actix-web's constants: a string match
/// instead of parsing the name again (`HeaderName::from_bytes` validates and looks it up
/// byte by byte: ~150 instructions per header, on every header of every response).
macro_rules! known_names {
    ($($name:literal),* $(,)?) => {
        #[cfg(test)]
        const KNOWN: &[&str] = &[$($name),*];

        fn known_name(name: &str) -> Option<ActixName> {
            match name {
                $($name => {
                    const NAME: ActixName = ActixName::from_static($name);
                    Some(NAME)
                })*
                _ => None,
            }
        }

        /// The reverse: an actix-web name as `http` 1.x's constant.
        fn known_http_name(name: &str) -> Option<HeaderName> {
            match name {
                $($name => {
                    const NAME: HeaderName = HeaderName::from_static($name);
                    Some(NAME)
                })*
                _ => None,
            }
        }
    };
}

known_names!(
    "accept",
    "accept-encoding",
    "accept-ranges",
    "access-control-request-method",
    "age",
    "authorization",
    "cache-control",
    "content-encoding",
    "content-length",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expires",
    "forwarded",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "origin",
    "pragma",
    "range",
    "ratelimit",
    "ratelimit-policy",
    "retry-after",
    "sec-fetch-site",
    "set-cookie",
    "surrogate-key",
    "vary",
    "x-cache",
    "x-forwarded-for",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
);

/// An `http` 1.x header name as actix-web's (`None` if actix refuses it: it never
/// should, both validate the same grammar).
pub(crate) fn actix_name(name: &HeaderName) -> Option<ActixName> {
    let name = name.as_str();
    known_name(name).or_else(|| ActixName::from_bytes(name.as_bytes()).ok())
}

/// An `http` 1.x header as actix-web's; `None` if actix refuses it (it never should:
/// both validate the same grammar).
pub(crate) fn header(
    name: &HeaderName,
    value: &http::HeaderValue,
) -> Option<(ActixName, ActixValue)> {
    let name = actix_name(name)?;
    let value = ActixValue::from_bytes(value.as_bytes()).ok()?;
    Some((name, value))
}

/// An actix-web status as `http` 1.x's.
pub(crate) fn status(s: actix_web::http::StatusCode) -> http::StatusCode {
    http::StatusCode::from_u16(s.as_u16()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// An `http` 1.x status as actix-web's.
pub(crate) fn actix_status(s: http::StatusCode) -> actix_web::http::StatusCode {
    actix_web::http::StatusCode::from_u16(s.as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path gives the names parsing would, both ways, and leaves others to it.
    #[test]
    fn known_names_match_parsed_names() {
        for name in KNOWN {
            let parsed = ActixName::from_bytes(name.as_bytes()).expect("valid");
            assert_eq!(known_name(name), Some(parsed), "{name}");
            let parsed = HeaderName::from_bytes(name.as_bytes()).expect("valid");
            assert_eq!(known_http_name(name), Some(parsed), "{name}");
        }
        assert_eq!(known_name("x-custom"), None);
        let custom = HeaderName::from_static("x-custom");
        assert_eq!(
            actix_name(&custom),
            Some(ActixName::from_static("x-custom"))
        );
    }
}
