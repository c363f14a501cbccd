//! The client address headers: RFC 7239 `Forwarded` (a real parser: quoted strings with
//! escapes, bracketed IPv6 with a port, obfuscated identifiers and `unknown`) and the
//! single-value headers CDNs and proxies set (`CF-Connecting-IP`, `True-Client-IP`,
//! `Fly-Client-IP`, `X-Real-IP`). Only [`KeySource::client_ip`](super::KeySource::client_ip)
//! reads them, and only from a trusted peer.

use std::net::{IpAddr, Ipv6Addr};

/// One hop of a `Forwarded` list: its `for=` address, or `None` when it has none that is
/// an IP address (`unknown`, an obfuscated `_name`, no `for=`, or malformed syntax).
pub(crate) type Hop = Option<IpAddr>;

/// Appends the hops of one `Forwarded` field value to `out`, left to right. An element
/// that does not follow the grammar is one unreadable hop; an unterminated quoted string
/// makes the rest of the value one unreadable hop.
pub(crate) fn forwarded_hops(value: &[u8], out: &mut Vec<Hop>) {
    let mut rest = value;
    loop {
        let (element, next) = split_element(rest);
        out.push(element.and_then(element_for));
        match next {
            Some(next) => rest = next,
            None => return,
        }
    }
}

/// The element before the first comma outside a quoted string, and what follows the
/// comma. `None` as the element: an unterminated quoted string.
fn split_element(value: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    let mut quoted = false;
    let mut i = 0;
    while i < value.len() {
        match (quoted, value[i]) {
            (true, b'\\') => i += 1,
            (_, b'"') => quoted = !quoted,
            (false, b',') => return (Some(&value[..i]), Some(&value[i + 1..])),
            _ => {}
        }
        i += 1;
    }
    if quoted {
        (None, None)
    } else {
        (Some(value), None)
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// The `for=` node of one element (`pair *(";" pair)`), `None` when it is missing, named
/// twice, not an IP address, or the element is malformed.
fn element_for(element: &[u8]) -> Option<IpAddr> {
    let mut found: Option<String> = None;
    let mut seen_for = false;
    let mut rest = element;
    loop {
        // A pair: token "=" (token / quoted-string), up to the next ';' outside quotes.
        let (pair, next) = split_pair(rest)?;
        let pair = trim(pair);
        if !pair.is_empty() {
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (name, value) = (&pair[..eq], &pair[eq + 1..]);
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                return None;
            }
            let value = unquote(value)?;
            if name.eq_ignore_ascii_case(b"for") {
                if seen_for {
                    return None; // `for` twice in one element: which one would be true?
                }
                seen_for = true;
                found = Some(value);
            }
        }
        match next {
            Some(next) => rest = next,
            None => break,
        }
    }
    node_ip(&found?)
}

/// The pair before the first ';' outside quotes, and what follows.
fn split_pair(value: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let mut quoted = false;
    let mut i = 0;
    while i < value.len() {
        match (quoted, value[i]) {
            (true, b'\\') => i += 1,
            (_, b'"') => quoted = !quoted,
            (false, b';') => return Some((&value[..i], Some(&value[i + 1..]))),
            _ => {}
        }
        i += 1;
    }
    (!quoted).then_some((value, None))
}

/// A token as it is, or a quoted-string without its quotes and escapes.
fn unquote(value: &[u8]) -> Option<String> {
    if let Some(inner) = value.strip_prefix(b"\"") {
        let inner = inner.strip_suffix(b"\"")?;
        let mut out = String::with_capacity(inner.len());
        let mut bytes = inner.iter();
        while let Some(&b) = bytes.next() {
            let c = match b {
                b'\\' => *bytes.next()?,
                b'"' => return None, // a bare quote inside
                b => b,
            };
            // qdtext / quoted-pair: visible ASCII, space and tab only.
            if !(c == b' ' || c == b'\t' || c.is_ascii_graphic()) {
                return None;
            }
            out.push(char::from(c));
        }
        Some(out)
    } else if !value.is_empty() && value.iter().all(|&b| is_tchar(b)) {
        // A token (IPv4 without a port fits one; IPv6 must be quoted).
        String::from_utf8(value.to_vec()).ok()
    } else {
        None
    }
}

/// RFC 7239 §6: `nodename [":" node-port]`, nodename = IPv4 / "[" IPv6 "]" / "unknown" /
/// obfnode. Only an address is a hop we can use.
fn node_ip(node: &str) -> Option<IpAddr> {
    let (name, port) = match node.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            return port_ok(port).then(|| v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6))?;
        }
        None => match node.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (node, None),
        },
    };
    if !port_ok(port) {
        return None;
    }
    // IPv4 only: an unbracketed IPv6 is not a valid node (and `unknown` / `_obf` are not IPs).
    name.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// `node-port = port / obfport`: 1-5 digits, or "_" and letters, digits, ".", "_", "-".
fn port_ok(port: Option<&str>) -> bool {
    match port {
        None => true,
        Some(p) if p.starts_with('_') => {
            p.len() > 1
                && p[1..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }
        Some(p) => {
            !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok()
        }
    }
}

/// The address of a single-value header (`CF-Connecting-IP: 203.0.113.7`): one IP
/// address, surrounding spaces allowed; anything else (a list, a port, a name) is `None`.
pub(crate) fn single_ip(value: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(trim(value)).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hops(value: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        forwarded_hops(value.as_bytes(), &mut out);
        out.into_iter()
            .map(|h| h.map(|ip| ip.to_string()))
            .collect()
    }

    fn ips(list: &[&str]) -> Vec<Option<String>> {
        list.iter()
            .map(|s| (!s.is_empty()).then(|| (*s).to_owned()))
            .collect()
    }

    #[test]
    fn the_rfc_examples_parse() {
        assert_eq!(hops(r#"for="_gazonk""#), ips(&[""]));
        assert_eq!(
            hops(r#"For="[2001:db8:cafe::17]:4711""#),
            ips(&["2001:db8:cafe::17"])
        );
        assert_eq!(
            hops("for=192.0.2.60;proto=http;by=203.0.113.43"),
            ips(&["192.0.2.60"])
        );
        assert_eq!(
            hops("for=192.0.2.43, for=198.51.100.17"),
            ips(&["192.0.2.43", "198.51.100.17"])
        );
        assert_eq!(hops(r#"for="192.0.2.43:47011""#), ips(&["192.0.2.43"]));
        assert_eq!(
            hops("for=unknown, for=198.51.100.17"),
            ips(&["", "198.51.100.17"])
        );
        assert_eq!(hops(r#"for="[2001:db8::1]:_port""#), ips(&["2001:db8::1"]));
        assert_eq!(hops(r#"for="[2001:db8::1]""#), ips(&["2001:db8::1"]));
    }

    #[test]
    fn quoted_strings_keep_commas_semicolons_and_escapes_inside() {
        assert_eq!(
            hops(r#"by="a,b;c";for=192.0.2.1, for=198.51.100.2"#),
            ips(&["192.0.2.1", "198.51.100.2"])
        );
        assert_eq!(
            hops(r#"for="192.0.2.\1""#),
            ips(&["192.0.2.1"]),
            "a quoted-pair is its character"
        );
        assert_eq!(hops(r#"host="x\"y";for=192.0.2.9"#), ips(&["192.0.2.9"]));
    }

    #[test]
    fn malformed_input_is_an_unreadable_hop_never_a_panic() {
        for bad in [
            "",
            ",",
            "for",
            "for=",
            "=192.0.2.1",
            "for=2001:db8::1",       // IPv6 must be quoted and bracketed
            r#"for="2001:db8::1""#,  // and bracketed
            r#"for="[2001:db8::1""#, // unterminated bracket
            r#"for="[2001:db8::1]x""#,
            r#"for="192.0.2.1:99999""#, // port out of range
            r#"for="192.0.2.1:""#,
            "for=192.0.2.1;for=198.51.100.1", // for twice in one element
            "for=192.0.2.1 198.51.100.1",
            "fo r=192.0.2.1",
            "for=\"192.0.2.1", // unterminated quoted string
            "for=\u{7f}",
            "for=\"a\u{1}b\"",
            "for=\"\\",
            "for=256.1.1.1",
        ] {
            let parsed = hops(bad);
            assert!(
                parsed.iter().all(Option::is_none),
                "{bad:?} gave {parsed:?}"
            );
        }
        // An unterminated quote swallows the rest: the walk from the right stops there.
        assert_eq!(
            hops(r#"for=192.0.2.1, for="198.51.100.1, for=10.0.0.1"#),
            ips(&["192.0.2.1", ""])
        );
        // Garbage bytes, very long input: bounded work, no panic.
        let long = "for=1.1.1.1;".repeat(10_000);
        assert_eq!(
            hops(&long),
            ips(&[""]),
            "`for` named many times in one element"
        );
        let mut out = Vec::new();
        forwarded_hops(&[0xff, b',', 0xfe, b'"', b'\\'], &mut out);
        assert!(out.iter().all(Option::is_none));
    }

    #[test]
    fn single_value_headers_hold_exactly_one_address() {
        assert_eq!(
            single_ip(b" 203.0.113.7 "),
            Some("203.0.113.7".parse().expect("ip"))
        );
        assert_eq!(
            single_ip(b"2001:db8::7"),
            Some("2001:db8::7".parse().expect("ip"))
        );
        for bad in [
            &b""[..],
            b"203.0.113.7, 10.0.0.1",
            b"203.0.113.7:80",
            b"[2001:db8::7]",
            b"example.com",
            b"\xff",
        ] {
            assert_eq!(single_ip(bad), None, "{bad:?}");
        }
    }
}
