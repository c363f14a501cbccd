//! Session ids: 128 random bits from a CSPRNG, written as 22 characters of URL-safe base64.
//! A logged-in session's id carries the class tag `u.` in front (24 characters), so that
//! its record lives under `<prefix>u.<id>`: a key prefix a store can protect from eviction
//! (see `MemoryStoreBuilder::protect_prefix`). The tag is routing, not a secret: changing
//! it names another record, which does not exist.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;

/// Bytes of randomness in an id: 128 bits, twice ASVS' 64-bit floor.
const ID_BYTES: usize = 16;

/// Length of an id's random part (base64 of 16 bytes, no padding).
const RANDOM_LEN: usize = 22;

/// The class tag of a logged-in session's id.
pub(crate) const USER_TAG: &str = "u.";

/// Longest text form of an id (tag + random part).
pub(crate) const ID_LEN: usize = RANDOM_LEN + USER_TAG.len();

/// A session id, held inline (no allocation). Its `Debug` never shows it: ids are
/// secrets.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct SessionId {
    text: [u8; ID_LEN],
    /// Logged in: the text starts with [`USER_TAG`].
    user: bool,
}

impl SessionId {
    /// A fresh id from the thread-local CSPRNG (ChaCha, seeded and reseeded from the OS).
    pub(crate) fn random() -> Self {
        Self::random_of(false)
    }

    /// A fresh id of a logged-in session (`user`) or an anonymous one.
    pub(crate) fn random_of(user: bool) -> Self {
        let mut bytes = [0u8; ID_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let mut text = [0u8; ID_LEN];
        let start = if user {
            text[..USER_TAG.len()].copy_from_slice(USER_TAG.as_bytes());
            USER_TAG.len()
        } else {
            0
        };
        // 16 bytes always encode to exactly 22 characters.
        let _written = URL_SAFE_NO_PAD.encode_slice(bytes, &mut text[start..]);
        SessionId { text, user }
    }

    /// Whether this is a logged-in session's id (tagged `u.`).
    #[cfg(test)]
    pub(crate) fn is_user(&self) -> bool {
        self.user
    }

    /// Parses an id sent by a client: exactly the text form of 16 bytes, else `None`
    /// (so that no attacker-chosen bytes beyond a well-formed id reach the store).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (user, random) = match text.strip_prefix(USER_TAG) {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        // 16 bytes are 21 characters and 2 bits; the last character's other 4 bits are
        // zero in the canonical form, so it is one of `A`, `Q`, `g`, `w`.
        if random.len() != RANDOM_LEN
            || !matches!(random.as_bytes()[RANDOM_LEN - 1], b'A' | b'Q' | b'g' | b'w')
        {
            return None;
        }
        let mut bytes = [0u8; ID_BYTES + 2];
        match URL_SAFE_NO_PAD.decode_slice(random, &mut bytes) {
            Ok(ID_BYTES) => {
                let mut buf = [0u8; ID_LEN];
                buf[..text.len()].copy_from_slice(text.as_bytes());
                Some(SessionId { text: buf, user })
            }
            _ => None,
        }
    }

    /// The text form (for the cookie and the store key only; never log it).
    pub(crate) fn as_str(&self) -> &str {
        let len = if self.user { ID_LEN } else { RANDOM_LEN };
        // Always ASCII: built from base64 output or from a checked `&str`.
        std::str::from_utf8(&self.text[..len]).unwrap_or_default()
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
            assert_eq!(id.as_str().len(), RANDOM_LEN);
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
        // The logged-in class: tagged, same randomness, parsed back with its class.
        let user = SessionId::random_of(true);
        assert!(user.as_str().starts_with(USER_TAG) && user.as_str().len() == ID_LEN);
        assert!(SessionId::parse(user.as_str()).is_some_and(|id| id.is_user() && id == user));
        assert!(!good.is_user());
        assert!(SessionId::parse(&format!("u.{}", &text[1..])).is_none());
        assert!(SessionId::parse("x.012345678901234567890Q").is_none());
        assert_eq!(format!("{good:?}"), "SessionId(<redacted>)");
    }
}
