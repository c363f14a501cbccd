//! Session ids: 128 random bits from a CSPRNG, written as 22 characters of URL-safe base64.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;

/// Bytes of randomness in an id: 128 bits, twice ASVS' 64-bit floor.
const ID_BYTES: usize = 16;

/// Length of an id's text form (base64 of 16 bytes, no padding).
pub(crate) const ID_LEN: usize = 22;

/// A session id. Its `Debug` and `Display` never show it: ids are secrets.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct SessionId(String);

impl SessionId {
    /// A fresh id from the thread-local CSPRNG (ChaCha, seeded and reseeded from the OS).
    pub(crate) fn random() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        SessionId(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses an id sent by a client: exactly the text form of 16 bytes, else `None`
    /// (so that no attacker-chosen bytes beyond a well-formed id reach the store).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if text.len() != ID_LEN {
            return None;
        }
        let mut bytes = [0u8; ID_BYTES + 2];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            // Re-encoding must give the same text: refuses non-canonical trailing bits.
            Ok(ID_BYTES) if URL_SAFE_NO_PAD.encode(&bytes[..ID_BYTES]) == text => {
                Some(SessionId(text.to_owned()))
            }
            _ => None,
        }
    }

    /// The text form (for the cookie and the store key only; never log it).
    pub(crate) fn as_str(&self) -> &str {
        &self.0
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
