//! `Cache-Control`, `CDN-Cache-Control`, `Pragma`, `Vary` and surrogate-key lines from a
//! response: no panic; `Vary` names come out sorted, lowercase and unique; tags are
//! unique and within the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Lines split at `\n`; each line's first byte picks the header.
    let lines: Vec<(u8, &[u8])> = data
        .split(|&b| b == b'\n')
        .filter_map(|l| l.split_first().map(|(w, rest)| (*w, rest)))
        .collect();
    let (_, vary, tags) = kv_core::fuzzing::cache_headers(&lines);
    if let Some(vary) = vary {
        assert!(
            vary.windows(2).all(|w| w[0] < w[1]),
            "sorted, unique: {vary:?}"
        );
        assert!(
            vary.iter()
                .all(|n| n.bytes().all(|b| !b.is_ascii_uppercase()))
        );
    }
    if let Some(tags) = tags {
        assert!(tags.len() <= 64);
        for (i, t) in tags.iter().enumerate() {
            assert!(!t.is_empty() && t.len() <= 256);
            assert!(!tags[..i].contains(t), "duplicate tag {t:?}");
        }
    }
});
