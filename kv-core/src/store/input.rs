//! Input rules shared by every backend, so that they refuse the same things the same way.
#![cfg_attr(not(any(feature = "memory", feature = "redis")), allow(dead_code))]

use std::time::Duration;

use crate::{KvError, Result};

/// The longest TTL a store accepts: 100 years. Longer is `InvalidInput` (Redis refuses
/// deadlines that overflow its millisecond clock; we pick a round, documented bound).
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The most fields one `hset` or `hdel` call may name. More is `InvalidInput` (the Redis
/// backend passes them as script arguments, and a record that large belongs elsewhere).
pub const MAX_HASH_FIELDS: usize = 1024;

/// `InvalidInput` unless a hash call names between one and [`MAX_HASH_FIELDS`] fields.
pub(crate) fn check_field_count(count: usize) -> Result<()> {
    if count == 0 {
        return Err(KvError::invalid_input(
            "a hash call needs at least one field",
        ));
    }
    if count > MAX_HASH_FIELDS {
        return Err(KvError::invalid_input(format!(
            "{count} fields in one hash call; the limit is {MAX_HASH_FIELDS}"
        )));
    }
    Ok(())
}

/// The checks of an `hset` call's fields, the same on every backend: 1 to
/// [`MAX_HASH_FIELDS`] fields, names within `max_name`, values within `max_value`.
pub(crate) fn check_fields(
    fields: &[(String, bytes::Bytes)],
    max_name: usize,
    max_value: usize,
) -> Result<()> {
    check_field_count(fields.len())?;
    for (name, value) in fields {
        check_len("field name", name.len(), max_name)?;
        check_len("value", value.len(), max_value)?;
    }
    Ok(())
}

/// A TTL in whole milliseconds, as Redis' `PX` takes it.
///
/// Zero is refused (`SET ... PX 0` is an error in Redis); a sub-millisecond TTL is rounded
/// *up* to one millisecond, so that a positive TTL never means "already expired".
pub(crate) fn ttl_millis(ttl: Duration) -> Result<u64> {
    if ttl.is_zero() {
        return Err(KvError::invalid_input("ttl must be greater than zero"));
    }
    if ttl > MAX_TTL {
        return Err(KvError::invalid_input(
            "ttl is longer than kv_core::MAX_TTL",
        ));
    }
    let millis = ttl.as_millis();
    let millis = if Duration::from_millis(millis as u64) < ttl {
        millis + 1
    } else {
        millis
    };
    // MAX_TTL fits in u64 milliseconds by a wide margin.
    Ok(millis as u64)
}

/// `InvalidInput` when a `what` ("key", "value") of `len` bytes exceeds a store's `max`.
pub(crate) fn check_len(what: &str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(KvError::invalid_input(format!(
            "{what} of {len} bytes is longer than the store's limit of {max} bytes"
        )));
    }
    Ok(())
}

/// Like [`ttl_millis`] for an optional TTL.
pub(crate) fn opt_ttl_millis(ttl: Option<Duration>) -> Result<Option<u64>> {
    ttl.map(ttl_millis).transpose()
}

/// Parses a value by Redis' integer grammar (`string2ll`): an optional `-`, then decimal
/// digits without leading zeros (`0` itself is fine, `-0` is not), no `+`, no spaces,
/// within `i64`.
pub(crate) fn parse_redis_int(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    if digits.len() > 19 {
        return None;
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut acc: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        acc = acc.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    if negative {
        Some(acc)
    } else {
        acc.checked_neg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_integer_grammar() {
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("5", 5),
            ("-5", -5),
            ("10", 10),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ];
        for (s, v) in ok {
            assert_eq!(parse_redis_int(s.as_bytes()), Some(*v), "{s}");
        }
        let bad = [
            "",
            "-",
            "+5",
            " 5",
            "5 ",
            "05",
            "-0",
            "-05",
            "1.0",
            "abc",
            "1e3",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999",
        ];
        for s in bad {
            assert_eq!(parse_redis_int(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn ttl_rules() {
        assert!(matches!(
            ttl_millis(Duration::ZERO),
            Err(KvError::InvalidInput(_))
        ));
        assert_eq!(ttl_millis(Duration::from_micros(1)).ok(), Some(1));
        assert_eq!(ttl_millis(Duration::from_micros(1500)).ok(), Some(2));
        assert_eq!(ttl_millis(Duration::from_millis(250)).ok(), Some(250));
        assert!(ttl_millis(MAX_TTL).is_ok());
        assert!(ttl_millis(MAX_TTL + Duration::from_secs(1)).is_err());
        assert!(ttl_millis(Duration::MAX).is_err());
    }
}
