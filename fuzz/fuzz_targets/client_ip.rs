//! `Forwarded`, `X-Forwarded-For` and the CDN client-IP headers from the network: no
//! panic; a trusted proxy's request always has a key; an address a single-value header
//! yields prints and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let _ = kv_core::fuzzing::forwarded_hops(rest);
    if let Some(ip) = kv_core::fuzzing::single_ip(rest) {
        assert_eq!(
            kv_core::fuzzing::single_ip(ip.to_string().as_bytes()),
            Some(ip)
        );
    }
    let lines: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    assert!(
        kv_core::fuzzing::client_ip_key(which, &lines).is_some(),
        "a request from a known peer always has an IP key"
    );
});
