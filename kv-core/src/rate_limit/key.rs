//! Whom a request counts against: key extraction.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use compact_str::{CompactString, format_compact};
use http::{HeaderName, StatusCode};
use ipnet::IpNet;

use super::forwarded;
use crate::request::RequestView;

/// Where a policy's key comes from. Build one with the constructors; chain a fallback with
/// [`or`](KeySource::or).
///
/// Keys are written into store keys, so a header or custom value longer than 256 bytes,
/// or with bytes outside printable ASCII, counts as *no key*.
#[derive(Clone)]
pub struct KeySource {
    kind: Kind,
    fallback: Option<Box<KeySource>>,
}

type KeyFn = Arc<dyn Fn(&dyn RequestView) -> Option<String> + Send + Sync>;

#[derive(Clone)]
enum Kind {
    Peer {
        v6_prefix: u8,
    },
    Client {
        proxies: Arc<[IpNet]>,
        v6_prefix: u8,
        header: ForwardedHeader,
    },
    Header(HeaderName),
    Custom(KeyFn),
    Global,
}

/// Which proxy header [`KeySource::client_ip`] reads. Every one is believed only when
/// the TCP peer is a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:443";proto=https`, read by a
    /// parser of its grammar: quoted strings with escapes, bracketed IPv6 with a port,
    /// `unknown` and obfuscated (`_name`) nodes, which are hops without an address.
    Forwarded,
    /// Cloudflare's `CF-Connecting-IP` (trust Cloudflare's published ranges).
    CfConnectingIp,
    /// `True-Client-IP` (Akamai, Cloudflare Enterprise).
    TrueClientIp,
    /// Fly.io's `Fly-Client-IP`.
    FlyClientIp,
    /// `X-Real-IP` (nginx's `real_ip` / `proxy_set_header X-Real-IP $remote_addr`).
    XRealIp,
}

impl ForwardedHeader {
    /// The name of a single-value header, `None` for the two lists.
    fn single(self) -> Option<HeaderName> {
        // Constants: `from_static` outside one parses the name on each call (~120
        // instructions), and this is asked on every request.
        const CF_CONNECTING_IP: HeaderName = HeaderName::from_static("cf-connecting-ip");
        const TRUE_CLIENT_IP: HeaderName = HeaderName::from_static("true-client-ip");
        const FLY_CLIENT_IP: HeaderName = HeaderName::from_static("fly-client-ip");
        const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
        match self {
            ForwardedHeader::XForwardedFor | ForwardedHeader::Forwarded => None,
            ForwardedHeader::CfConnectingIp => Some(CF_CONNECTING_IP),
            ForwardedHeader::TrueClientIp => Some(TRUE_CLIENT_IP),
            ForwardedHeader::FlyClientIp => Some(FLY_CLIENT_IP),
            ForwardedHeader::XRealIp => Some(X_REAL_IP),
        }
    }
}

/// What happens to a request whose key cannot be extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingKey {
    /// Answer with this status (400 or 500, say) and a short plain-text body.
    Reject(StatusCode),
    /// Count the request against this fixed key (all such requests share it).
    UseKey(String),
}

const MAX_KEY_LEN: usize = 256;

impl KeySource {
    fn new(kind: Kind) -> Self {
        KeySource {
            kind,
            fallback: None,
        }
    }

    /// The TCP peer's IP address. IPv6 addresses are grouped by their /64 (see
    /// [`ipv6_prefix`](KeySource::ipv6_prefix)) so that a client cannot rotate addresses
    /// inside its own block. Behind a proxy this is the proxy: use
    /// [`client_ip`](KeySource::client_ip) there.
    pub fn peer_ip() -> Self {
        Self::new(Kind::Peer { v6_prefix: 64 })
    }

    /// The client's IP address behind trusted proxies.
    ///
    /// `X-Forwarded-For` (or another header, see [`forwarded_header`](KeySource::forwarded_header))
    /// is believed **only** when the TCP peer is in `trusted_proxies`; then the hops are
    /// read from the right and the first address that is not a trusted proxy is the
    /// client (a client can prepend anything to the header, but cannot forge what the
    /// proxies appended). A hop that does not parse stops the walk at the last trusted
    /// address. From an untrusted peer the header is ignored and the peer is the client.
    /// A single-value header (`CF-Connecting-IP`, `True-Client-IP`, `Fly-Client-IP`,
    /// `X-Real-IP`) from a trusted peer is the client when it holds exactly one IP
    /// address in exactly one field line; otherwise (missing, repeated, a list, a port,
    /// garbage) the peer is.
    pub fn client_ip<I: IntoIterator<Item = IpNet>>(trusted_proxies: I) -> Self {
        Self::new(Kind::Client {
            proxies: trusted_proxies.into_iter().collect(),
            v6_prefix: 64,
            header: ForwardedHeader::XForwardedFor,
        })
    }

    /// The value of a request header (an API key, say). Note that it is written into the
    /// store key as it is.
    pub fn header(name: HeaderName) -> Self {
        Self::new(Kind::Header(name))
    }

    /// A value of type `T` in the request extensions (the authenticated user, say), mapped
    /// to a key by `f`.
    pub fn extension<T, F>(f: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> String + Send + Sync + 'static,
    {
        Self::custom(move |req| req.extensions().and_then(|e| e.get::<T>()).map(&f))
    }

    /// Any function of the request; `None` means "no key".
    pub fn custom<F>(f: F) -> Self
    where
        F: Fn(&dyn RequestView) -> Option<String> + Send + Sync + 'static,
    {
        Self::new(Kind::Custom(Arc::new(f)))
    }

    /// One key for every request: a global limit.
    pub fn global() -> Self {
        Self::new(Kind::Global)
    }

    /// When this source yields no key, try `other` (e.g. per user when logged in, per IP
    /// otherwise).
    #[must_use]
    pub fn or(mut self, other: KeySource) -> Self {
        match &mut self.fallback {
            Some(f) => **f = f.as_ref().clone().or(other),
            None => self.fallback = Some(Box::new(other)),
        }
        self
    }

    /// The prefix length IPv6 addresses are grouped by (default 64; 128 = no grouping).
    /// Only for the IP sources; clamped to 1..=128.
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        let bits = bits.clamp(1, 128);
        match &mut self.kind {
            Kind::Peer { v6_prefix } | Kind::Client { v6_prefix, .. } => *v6_prefix = bits,
            _ => {}
        }
        self
    }

    /// Which header [`client_ip`](KeySource::client_ip) reads (default `X-Forwarded-For`).
    #[must_use]
    pub fn forwarded_header(mut self, which: ForwardedHeader) -> Self {
        if let Kind::Client { header, .. } = &mut self.kind {
            *header = which;
        }
        self
    }

    /// Whether this source reads IP addresses (a missing key is then a server
    /// misconfiguration rather than a bad request).
    pub(crate) fn is_ip(&self) -> bool {
        matches!(self.kind, Kind::Peer { .. } | Kind::Client { .. })
    }

    /// The key of `req`, or `None` when it has none.
    pub(crate) fn extract(&self, req: &dyn RequestView) -> Option<RateKey> {
        let own = match &self.kind {
            Kind::Peer { v6_prefix } => req.peer_addr().map(|a| ip_key(a.ip(), *v6_prefix)),
            Kind::Client {
                proxies,
                v6_prefix,
                header,
            } => client_ip(req, proxies, *header).map(|ip| ip_key(ip, *v6_prefix)),
            Kind::Header(name) => req
                .header(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .filter(|v| is_key_safe(v))
                .map(|v| RateKey::Text(format_compact!("h:{v}"))),
            Kind::Custom(f) => f(req)
                .filter(|v| is_key_safe(v))
                .map(|v| RateKey::Text(format_compact!("x:{v}"))),
            Kind::Global => Some(RateKey::Text(CompactString::const_new("global"))),
        };
        own.or_else(|| self.fallback.as_ref().and_then(|f| f.extract(req)))
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("KeySource");
        match &self.kind {
            Kind::Peer { v6_prefix } => d.field("peer_ip", &format_args!("/{v6_prefix}")),
            Kind::Client {
                proxies,
                v6_prefix,
                header,
            } => d
                .field("client_ip", &format_args!("/{v6_prefix}"))
                .field("trusted_proxies", &proxies.len())
                .field("header", header),
            Kind::Header(h) => d.field("header", h),
            Kind::Custom(_) => d.field("custom", &"fn"),
            Kind::Global => d.field("global", &true),
        };
        d.field("fallback", &self.fallback).finish()
    }
}

fn is_key_safe(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_KEY_LEN && v.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

/// Whom a request counts against: an IP (kept as a number, so that the in-process
/// limiter hashes it without formatting) or text. `Display` gives the form written into
/// store keys: `ip:1.2.3.4`, `ip:2001:db8:1:2::/64`, `h:<header value>`, `x:<custom>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RateKey {
    V4(Ipv4Addr),
    V6 { net: Ipv6Addr, prefix: u8 },
    Text(CompactString),
}

/// One write per address instead of the derived discriminant, length prefix and bytes
/// (the in-process limiter hashes the key of every request). Keys of different kinds
/// may share a hash; `Eq` still tells them apart.
impl std::hash::Hash for RateKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            RateKey::V4(v4) => state.write_u32(v4.to_bits()),
            RateKey::V6 { net, prefix } => {
                state.write_u128(net.to_bits());
                state.write_u8(*prefix);
            }
            RateKey::Text(text) => state.write(text.as_bytes()),
        }
    }
}

impl RateKey {
    /// Appends the `Display` form to `out`, without the formatting machinery.
    pub(crate) fn write_to(&self, out: &mut String) {
        match self {
            RateKey::V4(v4) => {
                out.push_str("ip:");
                let mut buf = itoa::Buffer::new();
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push('.');
                    }
                    out.push_str(buf.format(octet));
                }
            }
            RateKey::Text(text) => out.push_str(text),
            other => {
                use std::fmt::Write as _;
                let _ = write!(out, "{other}");
            }
        }
    }
}

impl fmt::Display for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateKey::V4(v4) => {
                // By hand: `Display for Ipv4Addr` is several times slower.
                let mut buf = [0u8; 18];
                buf[..3].copy_from_slice(b"ip:");
                let mut len = 3;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        buf[len] = b'.';
                        len += 1;
                    }
                    if octet >= 100 {
                        buf[len] = b'0' + octet / 100;
                        len += 1;
                    }
                    if octet >= 10 {
                        buf[len] = b'0' + octet / 10 % 10;
                        len += 1;
                    }
                    buf[len] = b'0' + octet % 10;
                    len += 1;
                }
                f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?)
            }
            RateKey::V6 { net, prefix: 128 } => write!(f, "ip:{net}"),
            RateKey::V6 { net, prefix } => write!(f, "ip:{net}/{prefix}"),
            RateKey::Text(text) => f.write_str(text),
        }
    }
}

pub(crate) fn ip_key(ip: IpAddr, v6_prefix: u8) -> RateKey {
    match ip.to_canonical() {
        IpAddr::V4(v4) => RateKey::V4(v4),
        IpAddr::V6(v6) => {
            let net = ipnet::Ipv6Net::new(v6, v6_prefix).map_or(v6, |n| n.trunc().addr());
            RateKey::V6 {
                net,
                prefix: v6_prefix.min(128),
            }
        }
    }
}

fn trusted(proxies: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    proxies.iter().any(|net| net.contains(&ip))
}

fn client_ip(req: &dyn RequestView, proxies: &[IpNet], header: ForwardedHeader) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    if !trusted(proxies, peer) {
        return Some(peer);
    }
    if let Some(name) = header.single() {
        let (mut lines, mut ip) = (0, None);
        req.for_each_header(&name, &mut |v| {
            lines += 1;
            ip = forwarded::single_ip(v);
        });
        return Some(match (lines, ip) {
            (1, Some(ip)) => ip.to_canonical(),
            _ => peer,
        });
    }
    let mut hops: Vec<forwarded::Hop> = Vec::new();
    match header {
        ForwardedHeader::Forwarded => {
            req.for_each_header(&http::header::FORWARDED, &mut |v| {
                forwarded::forwarded_hops(v, &mut hops);
            });
        }
        _ => {
            // A constant, as in `single`.
            const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
            req.for_each_header(&X_FORWARDED_FOR, &mut |v| {
                let text = String::from_utf8_lossy(v);
                hops.extend(text.split(',').map(|h| parse_hop(h.trim())));
            });
        }
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop else {
            return Some(client);
        };
        let ip = ip.to_canonical();
        client = ip;
        if !trusted(proxies, ip) {
            return Some(ip);
        }
    }
    Some(client)
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    hop.parse::<std::net::SocketAddrV4>()
        .ok()
        .map(|s| IpAddr::V4(*s.ip()))
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
