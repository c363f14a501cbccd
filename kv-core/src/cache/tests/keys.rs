//! Keys: unambiguous fields, the hashed long form, Host validation, key control.

use proptest::prelude::*;

use super::key::{KeyFields, primary_key, valid_authority, variant};
use super::*;
use crate::cache::config::{KeyRules, QueryParam};

fn key(host: &str, path: &str, query: Option<&str>) -> String {
    let fields = KeyFields {
        host,
        path,
        query,
        custom: None,
    };
    primary_key("c:", fields, &KeyRules::default())
}

#[test]
fn keys_separate_hosts_paths_and_queries_and_can_sort_the_query() {
    let a = key("Example.com", "/a", Some("y=2&x=1"));
    assert_eq!(a, "c:G:11:example.com2:/a7:y=2&x=1");
    assert_ne!(a, key("other", "/a", Some("y=2&x=1")));
    assert_ne!(a, key("example.com", "/a", None));
    assert_ne!(key("h", "/a", Some("")), key("h", "/a", None));
    let sorted = KeyRules {
        sort_query: true,
        ..KeyRules::default()
    };
    let f = |q| KeyFields {
        host: "h",
        path: "/a",
        query: Some(q),
        custom: None,
    };
    assert_eq!(
        primary_key("c:", f("y=2&x=1"), &sorted),
        primary_key("c:", f("x=1&y=2"), &sorted)
    );
    let long = "/".repeat(5000);
    let k = key("h", &long, None);
    assert!(k.len() < 64, "{k}");
    assert!(k.starts_with("c:G:#"), "{k}");
    assert_ne!(k, key("h", &long[1..], None));
}

#[test]
fn the_host_poisoning_of_issue_13_gets_two_keys() {
    // `Host: h/slow?v=X` + `/` and `Host: h` + `/slow?v=X/slow` joined to one string before.
    assert_ne!(
        key("127.0.0.1:1/slow?v=X", "/slow", None),
        key("127.0.0.1:1", "/slow?v=X/slow", None)
    );
    assert_ne!(key("a", "/b", Some("c")), key("a", "/b?c", None));
    assert_ne!(key("a2:/b", "/", None), key("a", "/b", None));
    // The same split in the hashed form.
    let long = "x".repeat(2000);
    assert_ne!(
        key(&format!("h/{long}"), "/p", None),
        key("h", &format!("/{long}/p"), None)
    );
}

#[test]
fn only_rfc_3986_authorities_are_valid() {
    for ok in [
        "example.com",
        "EXAMPLE.com:8080",
        "127.0.0.1:3000",
        "[::1]:80",
        "[2001:db8::7]",
        "[v1.fe80::a+en1]",
        "xn--bcher-kva.example",
        "a%20b",
        "host:",
    ] {
        assert!(valid_authority(ok), "{ok}");
    }
    for bad in [
        "",
        ":80",
        "not a host/<>\"'",
        "127.0.0.1:1/slow?v=X",
        "h?x",
        "h#f",
        "user@h",
        "h:80:80",
        "h:123456",
        "h:8a",
        "[::1",
        "[zz]",
        "%zz",
        "h\\x",
    ] {
        assert!(!valid_authority(bad), "{bad}");
    }
}

#[test]
fn ignored_query_params_exact_and_by_prefix() {
    let rules = KeyRules {
        ignored_query: ["utm_*", "fbclid", "gclid"]
            .iter()
            .map(|p| QueryParam::parse(p))
            .collect(),
        ..KeyRules::default()
    };
    let k = |q: Option<&str>| {
        let f = KeyFields {
            host: "h",
            path: "/a",
            query: q,
            custom: None,
        };
        primary_key("c:", f, &rules)
    };
    assert_eq!(k(Some("id=1&utm_source=x&utm_medium=y")), k(Some("id=1")));
    assert_eq!(k(Some("fbclid=abc&id=1&gclid=z")), k(Some("id=1")));
    assert_eq!(k(Some("utm_source=x")), k(None));
    assert_ne!(k(Some("fbclid2=1")), k(None), "exact names are exact");
    assert_ne!(k(Some("id=2")), k(Some("id=1")));
}

#[test]
fn accept_encoding_is_normalised() {
    let names = [http::header::ACCEPT_ENCODING];
    let ae = |v: &'static str| headers(&[("accept-encoding", v)]);
    let plain = KeyRules::default();
    let v = |h: &HeaderMap, r: &KeyRules| variant("p", 1, &names, h, r).0;
    assert_eq!(v(&ae("gzip, br"), &plain), v(&ae("br, gzip"), &plain));
    assert_eq!(v(&ae("GZIP,br;q=0.5"), &plain), v(&ae("br, gzip"), &plain));
    assert_ne!(v(&ae("gzip"), &plain), v(&ae("br, gzip"), &plain));
    assert_eq!(v(&ae("gzip, deflate;q=0"), &plain), v(&ae("gzip"), &plain));
    let origin = KeyRules {
        encodings: Some(vec!["br".into(), "gzip".into()]),
        ..KeyRules::default()
    };
    assert_eq!(v(&ae("gzip, br"), &origin), v(&ae("br"), &origin));
    assert_eq!(v(&ae("gzip, deflate"), &origin), v(&ae("gzip"), &origin));
    assert_eq!(v(&ae("deflate"), &origin), v(&ae("identity"), &origin));
    assert_ne!(v(&ae("gzip"), &origin), v(&ae("br"), &origin));
    assert_eq!(v(&ae("*"), &origin), v(&ae("br"), &origin));
}

#[test]
fn accept_language_is_normalised_by_preference() {
    let names = [http::header::ACCEPT_LANGUAGE];
    let rules = KeyRules::default();
    let v =
        |l: &'static str| variant("p", 1, &names, &headers(&[("accept-language", l)]), &rules).0;
    assert_eq!(v("en, de"), v("de, en"));
    assert_eq!(v("en, de"), v("eN, De"));
    assert_eq!(v("fr;q=0.5, de"), v("de, fr;q=0.50"));
    assert_ne!(v("fr;q=0.5, de"), v("fr, de;q=0.5"), "a preference is kept");
    assert_eq!(v("de, xx;q=0"), v("de"));
    assert_ne!(v("de"), v("en"));
}

#[test]
fn variants_differ_by_value_and_by_presence() {
    let names = [HeaderName::from_static("accept-language")];
    let rules = KeyRules::default();
    let fr = headers(&[("accept-language", "fr")]);
    let en = headers(&[("accept-language", "en")]);
    let empty = headers(&[("accept-language", "")]);
    let keys: Vec<String> = [&fr, &en, &empty, &HeaderMap::new()]
        .iter()
        .map(|h| variant("p", 7, &names, h, &rules).0)
        .collect();
    for i in 0..keys.len() {
        for j in i + 1..keys.len() {
            assert_ne!(keys[i], keys[j]);
        }
    }
    assert_ne!(
        variant("p", 7, &names, &fr, &rules).0,
        variant("p", 8, &names, &fr, &rules).0
    );
}

/// A field of arbitrary bytes that the split points of a URL like to hide in.
fn part() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-c:/?&=0-9]{0,6}").expect("regex")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Different (host, path, query, custom part) never share a primary key, short or
    /// hashed; different `Vary` values never share a variant key.
    #[test]
    fn distinct_fields_never_collide(
        a in (part(), part(), proptest::option::of(part()), proptest::option::of(part())),
        b in (part(), part(), proptest::option::of(part()), proptest::option::of(part())),
        va in proptest::option::of("[a-c, ]{0,5}"),
        vb in proptest::option::of("[a-c, ]{0,5}"),
        long in any::<bool>(),
    ) {
        let pad = if long { "p".repeat(1100) } else { String::new() };
        let path_a = format!("{pad}{}", a.1);
        let path_b = format!("{pad}{}", b.1);
        let fa = KeyFields { host: &a.0, path: &path_a, query: a.2.as_deref(), custom: a.3.as_deref() };
        let fb = KeyFields { host: &b.0, path: &path_b, query: b.2.as_deref(), custom: b.3.as_deref() };
        let rules = KeyRules::default();
        let same_url = a.0.eq_ignore_ascii_case(&b.0)
            && (if a.1.is_empty() { "/" } else { &a.1 }) == (if b.1.is_empty() { "/" } else { &b.1 })
            && a.2 == b.2
            && a.3 == b.3;
        let (ka, kb) = (primary_key("c:", fa, &rules), primary_key("c:", fb, &rules));
        prop_assert_eq!(ka == kb, same_url, "{} / {}", ka, kb);

        let names = [HeaderName::from_static("x-v"), HeaderName::from_static("x-w")];
        let mk = |v: &Option<String>| {
            let mut h = HeaderMap::new();
            if let Some(v) = v {
                h.insert("x-v", HeaderValue::from_str(v).expect("value"));
                h.insert("x-w", HeaderValue::from_str(v).expect("value"));
            }
            h
        };
        let (ha, hb) = (mk(&va), mk(&vb));
        let (vka, vals_a) = variant(&ka, 1, &names, &ha, &rules);
        let (vkb, vals_b) = variant(&ka, 1, &names, &hb, &rules);
        prop_assert_eq!(vka == vkb, vals_a == vals_b);
    }
}

/// The one pass over a request's headers finds `Host` (and whether it repeats), the
/// conditionals and `Range` wherever they stand among the other lines, and nothing else.
#[test]
fn marks_find_host_conditionals_and_range_among_other_lines() {
    let mut noise: Vec<(String, String)> = (0..40)
        .map(|i| (format!("x-noise-{i}"), format!("v{i}")))
        .collect();
    noise.push(("accept".into(), "*/*".into()));
    let with = |extra: &[(&str, &str)]| {
        let mut list: Vec<(&str, &str)> = noise
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        list.extend_from_slice(extra);
        list.extend(noise.iter().take(3).map(|(n, v)| (n.as_str(), v.as_str())));
        super::headers(&list)
    };
    let plain = with(&[("host", "a.example")]);
    let m = Marks::of(&plain);
    assert_eq!(m.host.map(|v| v.as_bytes()), Some(&b"a.example"[..]));
    assert!(!m.hosts_repeated && !m.asks.conditional && !m.asks.range);

    let twice = with(&[("host", "a.example"), ("host", "b.example")]);
    let m = Marks::of(&twice);
    assert!(m.hosts_repeated);
    assert_eq!(m.host.map(|v| v.as_bytes()), Some(&b"a.example"[..]));

    for name in ["if-none-match", "if-modified-since"] {
        let map = with(&[(name, "x")]);
        let m = Marks::of(&map);
        assert!(m.asks.conditional && !m.asks.range, "{name}");
        assert!(Asks::of(&map).conditional, "{name}");
    }
    let map = with(&[("range", "bytes=0-1")]);
    let m = Marks::of(&map);
    assert!(m.asks.range && !m.asks.conditional);
    // Look-alikes are not the headers.
    let map = with(&[("x-range", "bytes=0-1"), ("if-match", "*"), ("x-host", "h")]);
    let m = Marks::of(&map);
    assert!(m.host.is_none() && !m.asks.range && !m.asks.conditional);
}

/// A hit's key buffer is reused for the next key on the thread: nothing of the old key
/// shows in the new one, and an oversized buffer is not kept for reuse.
#[test]
fn a_recycled_key_buffer_leaves_nothing_in_the_next_key() {
    use super::key::recycle;
    let rules = KeyRules::default();
    let long_path = format!("/{}", "seg/".repeat(40));
    let long = KeyFields {
        host: "a.example",
        path: &long_path,
        query: Some("x=1&y=2"),
        custom: Some("tenant-7"),
    };
    let short = KeyFields {
        host: "b",
        path: "/",
        query: None,
        custom: None,
    };
    let expected = primary_key("c:", short, &rules);
    let long_key = primary_key("c:", long, &rules);
    let capacity = long_key.capacity();
    assert!(capacity > expected.capacity() && capacity <= 256);
    recycle(long_key);
    let reused = primary_key("c:", short, &rules);
    assert_eq!(reused, expected);
    assert_eq!(
        reused.capacity(),
        capacity,
        "the long key's buffer was reused"
    );

    let mut big = String::with_capacity(4096);
    big.push_str("junk");
    recycle(big);
    let fresh = primary_key("c:", short, &rules);
    assert_eq!(fresh, expected);
    assert!(fresh.capacity() < 4096, "an oversized buffer is not kept");
}

/// A miss keeps its request's lines as a list (`head::Lines`), a hit reads the request's
/// map: both must select the same variant for every `Vary` name, or a stored variant
/// would never be found again (or another's served). Hostile shapes: repeated lines,
/// lines split and spaced oddly, the normalised `Accept-Encoding` / `Accept-Language`,
/// an absent name, and many unrelated lines.
#[test]
fn the_lines_a_miss_keeps_select_the_variant_its_map_selects() {
    use crate::cache::head::Lines;
    use crate::cache::key::vary_values;
    let names: Vec<HeaderName> = [
        "accept-encoding",
        "accept-language",
        "x-tenant",
        "cookie",
        "absent",
    ]
    .iter()
    .map(|n| HeaderName::from_static(n))
    .collect();
    let requests: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("accept-encoding", "gzip, br"), ("x-tenant", "a")],
        vec![
            ("x-tenant", "a"),
            ("accept-encoding", "br;q=0.5"),
            ("x-other", "1"),
            ("accept-encoding", " GZIP ,deflate;q=0"),
            ("x-tenant", "b,  c"),
        ],
        vec![
            ("accept-language", "fr-CH, fr;q=0.9, en;q=0.8"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ],
        (0..40)
            .map(|_| ("x-noise", "n"))
            .chain([("x-tenant", "z")])
            .collect(),
    ];
    for encodings in [None, Some(vec!["br".to_owned(), "gzip".to_owned()])] {
        let rules = KeyRules {
            encodings,
            ..KeyRules::default()
        };
        for list in &requests {
            let map = headers(list);
            let kept = Lines::of(&map);
            assert_eq!(
                vary_values(&names, &kept, &rules),
                vary_values(&names, &map, &rules),
                "{list:?}"
            );
            // The map rebuilt for the rare paths is the request's, line for line.
            let rebuilt = kept.to_map();
            let pairs = |m: &HeaderMap| {
                m.iter()
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(pairs(&rebuilt), pairs(&map), "{list:?}");
        }
    }
}
