//! Redis' integer grammar: what parses prints back to the same text (no `+`, no leading
//! zeros, no `-0`), and every `i64` printed parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(n) = kv_core::fuzzing::parse_redis_int(data) {
        assert_eq!(n.to_string().as_bytes(), data, "canonical text only");
    }
    if let Ok(b) = <[u8; 8]>::try_from(&data[..data.len().min(8)]) {
        let n = i64::from_le_bytes(b);
        assert_eq!(
            kv_core::fuzzing::parse_redis_int(n.to_string().as_bytes()),
            Some(n)
        );
    }
});
