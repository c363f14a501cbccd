//! Key extraction: peers, trusted proxies, forwarded headers, header and custom keys.

use super::*;
use std::net::SocketAddr;

fn req(peer: &str, xff: &[&str]) -> http::Request<()> {
    let mut b = http::Request::builder().uri("/x");
    for v in xff {
        b = b.header("x-forwarded-for", *v);
    }
    let mut r = b.body(()).expect("request");
    r.extensions_mut()
        .insert(peer.parse::<SocketAddr>().expect("addr"));
    r
}

impl KeySource {
    fn extract_text(&self, req: &dyn RequestView) -> Option<String> {
        self.extract(req).map(|k| k.to_string())
    }
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|n| n.parse().expect("net")).collect()
}

#[test]
fn ipv6_peers_are_grouped_by_their_64() {
    let k = KeySource::peer_ip();
    let a = k.extract_text(&req("[2001:db8:1:2:aaaa::1]:5000", &[]));
    let b = k.extract_text(&req("[2001:db8:1:2:bbbb::9]:5001", &[]));
    let c = k.extract_text(&req("[2001:db8:1:3::1]:5001", &[]));
    assert_eq!(a.as_deref(), Some("ip:2001:db8:1:2::/64"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let full = KeySource::peer_ip()
        .ipv6_prefix(128)
        .extract_text(&req("[2001:db8::1]:1", &[]));
    assert_eq!(full.as_deref(), Some("ip:2001:db8::1"));
    // IPv4-mapped IPv6 is the IPv4 address.
    let mapped = k.extract_text(&req("[::ffff:10.0.0.1]:1", &[]));
    assert_eq!(mapped.as_deref(), Some("ip:10.0.0.1"));
    for ip in [
        "0.0.0.0",
        "1.2.3.4",
        "10.20.30.40",
        "100.200.255.9",
        "255.255.255.255",
    ] {
        let key = k.extract_text(&req(&format!("{ip}:1"), &[]));
        assert_eq!(key.as_deref(), Some(&*format!("ip:{ip}")));
    }
}

#[test]
fn forwarded_for_is_ignored_from_untrusted_peers() {
    let k = KeySource::client_ip(nets(&["10.0.0.0/8"]));
    // The attacker talks to us directly and claims to be someone else.
    let key = k.extract_text(&req("203.0.113.7:4000", &["198.51.100.1"]));
    assert_eq!(key.as_deref(), Some("ip:203.0.113.7"));
}

#[test]
fn the_right_most_untrusted_hop_is_the_client() {
    let k = KeySource::client_ip(nets(&["10.0.0.0/8", "192.168.0.0/16"]));
    // Client 198.51.100.9 prepended a forged address; two trusted proxies appended.
    let key = k.extract_text(&req(
        "10.0.0.2:80",
        &["1.1.1.1, 198.51.100.9", "192.168.1.1"],
    ));
    assert_eq!(key.as_deref(), Some("ip:198.51.100.9"));
    // All hops trusted: the left-most one.
    let key = k.extract_text(&req("10.0.0.2:80", &["192.168.3.3, 10.1.1.1"]));
    assert_eq!(key.as_deref(), Some("ip:192.168.3.3"));
    // Garbage stops the walk at the last trusted address.
    let key = k.extract_text(&req("10.0.0.2:80", &["198.51.100.9, not-an-ip, 10.9.9.9"]));
    assert_eq!(key.as_deref(), Some("ip:10.9.9.9"));
    // No header: the peer itself.
    let key = k.extract_text(&req("10.0.0.2:80", &[]));
    assert_eq!(key.as_deref(), Some("ip:10.0.0.2"));
    // Ports and brackets are tolerated.
    let key = k.extract_text(&req("10.0.0.2:80", &["[2001:db8::5]:443"]));
    assert_eq!(key.as_deref(), Some("ip:2001:db8::/64"));
}

#[test]
fn rfc7239_forwarded_is_read_when_chosen() {
    let k =
        KeySource::client_ip(nets(&["10.0.0.0/8"])).forwarded_header(ForwardedHeader::Forwarded);
    let mut r = req("10.0.0.2:80", &["6.6.6.6"]);
    r.headers_mut().insert(
        http::header::FORWARDED,
        http::HeaderValue::from_static(
            "for=1.1.1.1, for=\"[2001:db8::7]:80\";proto=https, For=10.0.0.3",
        ),
    );
    assert_eq!(k.extract_text(&r).as_deref(), Some("ip:2001:db8::/64"));
}

#[test]
fn single_value_cdn_headers_are_believed_from_trusted_peers_only() {
    for (which, name) in [
        (ForwardedHeader::CfConnectingIp, "cf-connecting-ip"),
        (ForwardedHeader::TrueClientIp, "true-client-ip"),
        (ForwardedHeader::FlyClientIp, "fly-client-ip"),
        (ForwardedHeader::XRealIp, "x-real-ip"),
    ] {
        let k = KeySource::client_ip(nets(&["10.0.0.0/8"])).forwarded_header(which);
        let with = |peer: &str, values: &[&str]| {
            let mut r = req(peer, &["6.6.6.6"]);
            for v in values {
                r.headers_mut()
                    .append(name, http::HeaderValue::from_str(v).expect("value"));
            }
            k.extract_text(&r)
        };
        // The attacker talks to us directly and names a victim: ignored.
        assert_eq!(
            with("203.0.113.7:1", &["198.51.100.1"]).as_deref(),
            Some("ip:203.0.113.7"),
            "{name}"
        );
        // Through the trusted proxy: the header is the client (X-Forwarded-For unused).
        assert_eq!(
            with("10.0.0.2:1", &["198.51.100.1"]).as_deref(),
            Some("ip:198.51.100.1"),
            "{name}"
        );
        // Repeated, a list, a port or garbage: the proxy itself, never a guess.
        for bad in [
            &["198.51.100.1", "198.51.100.2"][..],
            &["198.51.100.1, 1.1.1.1"],
            &["198.51.100.1:80"],
            &["nope"],
            &[],
        ] {
            assert_eq!(
                with("10.0.0.2:1", bad).as_deref(),
                Some("ip:10.0.0.2"),
                "{name} {bad:?}"
            );
        }
    }
}

#[test]
fn a_malformed_forwarded_element_stops_the_walk() {
    let k =
        KeySource::client_ip(nets(&["10.0.0.0/8"])).forwarded_header(ForwardedHeader::Forwarded);
    let with = |value: &str| {
        let mut r = req("10.0.0.2:80", &[]);
        r.headers_mut().insert(
            http::header::FORWARDED,
            http::HeaderValue::from_str(value).expect("value"),
        );
        k.extract_text(&r)
    };
    assert_eq!(
        with(r#"for=1.1.1.1, for="_hidden", for=10.0.0.3"#).as_deref(),
        Some("ip:10.0.0.3")
    );
    assert_eq!(
        with(r#"for=1.1.1.1, for="198.51.100.4:8080";by="a,b""#).as_deref(),
        Some("ip:198.51.100.4")
    );
    assert_eq!(
        with("for=1.1.1.1, for=10.0.0.3;for=2.2.2.2").as_deref(),
        Some("ip:10.0.0.2")
    );
}

#[test]
fn header_extension_custom_global_and_fallback() {
    #[derive(Clone)]
    struct User(u32);
    let api = KeySource::header(HeaderName::from_static("x-api-key"));
    let mut r = req("1.2.3.4:1", &[]);
    assert_eq!(api.extract_text(&r), None);
    r.headers_mut()
        .insert("x-api-key", http::HeaderValue::from_static("k-123"));
    assert_eq!(api.extract_text(&r).as_deref(), Some("h:k-123"));
    r.headers_mut().insert(
        "x-api-key",
        http::HeaderValue::from_bytes(&[b'a'; 300]).expect("value"),
    );
    assert_eq!(
        api.extract_text(&r),
        None,
        "oversize header values are not keys"
    );

    let per_user = KeySource::extension::<User, _>(|u| u.0.to_string()).or(KeySource::peer_ip());
    assert_eq!(per_user.extract_text(&r).as_deref(), Some("ip:1.2.3.4"));
    r.extensions_mut().insert(User(42));
    assert_eq!(per_user.extract_text(&r).as_deref(), Some("x:42"));
    assert_eq!(
        KeySource::global().extract_text(&r).as_deref(),
        Some("global")
    );
    let custom = KeySource::custom(|req| Some(req.path().to_owned()));
    assert_eq!(custom.extract_text(&r).as_deref(), Some("x:/x"));
}
