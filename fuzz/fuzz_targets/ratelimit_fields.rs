//! The `RateLimit-Policy` and `RateLimit` fields we emit, re-parsed with `sfv` (RFC 9651):
//! each is a valid List whose items carry exactly the name, quota, window, remaining and
//! reset we emitted (clamped to the Structured Field integer range, windows in whole
//! seconds rounded up, at least 1).
#![no_main]

use libfuzzer_sys::fuzz_target;

const SF_MAX: u64 = 999_999_999_999_999;

/// The builder's rule for policy names.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
}

fn u64_at(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    for (d, s) in a.iter_mut().zip(b) {
        *d = *s;
    }
    u64::from_le_bytes(a)
}

fn ceil_secs(ms: u64) -> u64 {
    (ms / 1000 + u64::from(ms % 1000 > 0)).min(SF_MAX)
}

fn params(item: &sfv::Item) -> Vec<(String, i64)> {
    item.params
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_integer().map_or(-1, i64::from)))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    // Each policy: a name length byte, the name, then four 8-byte numbers.
    let mut policies = Vec::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len % 70).min(tail.len());
        let name = String::from_utf8_lossy(&tail[..len]).into_owned();
        let nums = &tail[len..];
        let n = |i: usize| u64_at(nums.get(i * 8..).unwrap_or(&[]));
        if valid_name(&name) {
            policies.push((name, n(0), n(1), n(2), n(3)));
        }
        rest = nums.get(32..).unwrap_or(&[]);
        if policies.len() == 8 {
            break;
        }
    }
    if policies.is_empty() {
        return;
    }
    let (policy, state) = kv_core::fuzzing::ratelimit_fields(&policies);
    let policy_list = sfv::Parser::new(&policy)
        .parse::<sfv::List>()
        .expect("RateLimit-Policy is a Structured Field List");
    let state_list = sfv::Parser::new(&state)
        .parse::<sfv::List>()
        .expect("RateLimit is a Structured Field List");
    assert_eq!(policy_list.len(), policies.len());
    assert_eq!(state_list.len(), policies.len());
    for ((p, s), (name, limit, window, remaining, reset)) in
        policy_list.iter().zip(&state_list).zip(&policies)
    {
        let (sfv::ListEntry::Item(p), sfv::ListEntry::Item(s)) = (p, s) else {
            panic!("an inner list in {policy:?} / {state:?}");
        };
        assert_eq!(
            p.bare_item.as_string().map(|s| s.as_str()),
            Some(name.as_str())
        );
        assert_eq!(
            s.bare_item.as_string().map(|s| s.as_str()),
            Some(name.as_str())
        );
        let q = (*limit).min(SF_MAX) as i64;
        let w = ceil_secs(*window).max(1) as i64;
        assert_eq!(params(p), vec![("q".to_owned(), q), ("w".to_owned(), w)]);
        let r = (*remaining).min(SF_MAX) as i64;
        let t = ceil_secs(*reset) as i64;
        assert_eq!(params(s), vec![("r".to_owned(), r), ("t".to_owned(), t)]);
    }
});
