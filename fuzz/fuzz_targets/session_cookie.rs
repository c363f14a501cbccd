//! The session cookie in its plain, signed and private forms, in `Cookie` headers with
//! several lines and values: no panic; at most 3 candidate ids, each once; an id the
//! engine issued is found again ahead of whatever else the header carries.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let lines: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    let (ids, seen) = kv_core::fuzzing::session_cookie_ids(mode, &lines);
    assert!(ids.len() <= 3, "{ids:?}");
    for (i, id) in ids.iter().enumerate() {
        assert!(!ids[..i].contains(id), "duplicate candidate {id}");
    }
    assert!(seen || ids.is_empty());
    // An issued cookie placed first is the first candidate.
    let mut random = [0u8; 16];
    for (d, s) in random.iter_mut().zip(rest) {
        *d = *s;
    }
    let (pair, id) = kv_core::fuzzing::issue_session_cookie(mode, random)
        .expect("an id made of 16 bytes is issued");
    let mut first = pair.into_bytes();
    first.extend_from_slice(b"; ");
    first.extend_from_slice(lines[0]);
    let mut with_ours: Vec<&[u8]> = vec![&first];
    with_ours.extend_from_slice(&lines[1..]);
    if std::str::from_utf8(&first).is_ok_and(|s| http_ok(s)) {
        let (ids, seen) = kv_core::fuzzing::session_cookie_ids(mode, &with_ours);
        assert!(seen);
        assert_eq!(ids.first(), Some(&id), "the issued id is found first");
    }
});

/// Whether the line is a valid header value (what the wrapper keeps): visible ASCII,
/// space and tab.
fn http_ok(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}
