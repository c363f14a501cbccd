//! The fields of a session hash from a corrupt or hostile store: decoding never panics,
//! and a decoded record encodes to fields that decode to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Fields from the input: `\n` separates fields, the first `=` a name from its value;
/// names with a leading `!` become the engine's reserved fields (`__kv.`).
fn fields(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    data.split(|&b| b == b'\n')
        .filter_map(|f| {
            let at = f.iter().position(|&b| b == b'=')?;
            let name = String::from_utf8_lossy(&f[..at]).into_owned();
            let name = match name.strip_prefix('!') {
                Some(rest) => format!("__kv.{rest}"),
                None => name,
            };
            Some((name, f[at + 1..].to_vec()))
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flag, rest)) = data.split_first() else {
        return;
    };
    let persistent = flag & 1 == 1;
    if let Some((record, again)) = kv_core::fuzzing::session_record(&fields(rest), persistent) {
        let (back, _) = kv_core::fuzzing::session_record(&again, persistent)
            .expect("an encoded record decodes");
        assert_eq!(record, back, "decode(encode(r)) == r");
    }
});
