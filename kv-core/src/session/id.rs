//! Session ids: 128 random bits from a CSPRNG, written as 22 characters of URL-safe base64.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;

/// Bytes of randomness in an id: 128 bits, twice ASVS' 64-bit floor.
const ID_BYTES: usize = 16;

/// Length of an id's text form (base64 of 16 bytes, no padding).
pub(crate) const ID_LEN: usize = 22;

/// A session id, held inline (no allocation). Its `Debug` never shows it: ids are
/// secrets.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct SessionId([u8; ID_LEN]);

impl SessionId {
    /// A fresh id from the thread-local CSPRNG (ChaCha, seeded and reseeded from the OS).
    pub(crate) fn random() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let mut text = [0u8; ID_LEN];
        // 16 bytes always encode to exactly 22 characters.
        let _written = URL_SAFE_NO_PAD.encode_slice(bytes, &mut text);
        SessionId(text)
    }

    /// Parses an id sent by a client: exactly the text form of 16 bytes, else `None`
    /// (so that no attacker-chosen bytes beyond a well-formed id reach the store).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        // 16 bytes are 21 characters and 2 bits; the last character's other 4 bits are
        // zero in the canonical form, so it is one of `A`, `Q`, `g`, `w`.
        if text.len() != ID_LEN || !matches!(text.as_bytes()[ID_LEN - 1], b'A' | b'Q' | b'g' | b'w')
        {
            return None;
        }
        let mut bytes = [0u8; ID_BYTES + 2];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(ID_BYTES) => text.as_bytes().try_into().ok().map(SessionId),
            _ => None,
        }
    }

    /// The text form (for the cookie and the store key only; never log it).
    pub(crate) fn as_str(&self) -> &str {
        // Always ASCII: built from base64 output or from a checked `&str`.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_22_url_safe_chars_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = SessionId::random();
            assert_eq!(id.as_str().len(), ID_LEN);
            assert!(
                id.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(SessionId::parse(id.as_str()).as_ref(), Some(&id));
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn parse_refuses_anything_but_a_canonical_id() {
        let good = SessionId::random();
        let text = good.as_str();
        assert!(SessionId::parse(&text[1..]).is_none());
        assert!(SessionId::parse(&format!("{text}A")).is_none());
        assert!(SessionId::parse("012345678901234567890Q").is_some());
        assert!(SessionId::parse("01234567890123456789+/").is_none());
        assert!(SessionId::parse("012345678901234567890=").is_none());
        // Same length, but the last char carries bits beyond 128.
        assert!(SessionId::parse("AAAAAAAAAAAAAAAAAAAAAB").is_none());
        assert!(SessionId::parse("").is_none());
        assert!(SessionId::parse("ééééééééééé").is_none());
        assert_eq!(format!("{good:?}"), "SessionId(<redacted>)");
    }
}
