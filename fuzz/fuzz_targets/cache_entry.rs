//! Stored cache bytes from a corrupt or hostile store: decoding never panics, and what
//! decodes re-encodes to bytes that decode to the same thing (the re-encoding is a
//! fixed point).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(once) = kv_core::fuzzing::cache_entry_reencode(data) {
        let twice =
            kv_core::fuzzing::cache_entry_reencode(&once).expect("a re-encoded entry decodes");
        assert_eq!(once, twice, "decode(encode(e)) == e");
    }
});
