//! Session ids: 128 random bits from a CSPRNG, written as 22 characters of URL-safe base64.
//! A logged-in session's id carries the class tag `u.` in front (24 characters), so that
//! its record lives under `<prefix>u.<id>`: a key prefix a store can protect from eviction
//! (see `MemoryStoreBuilder::protect_prefix`). The tag is routing, not a secret: changing
//! it names another record, which does not exist.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use compact_str::CompactString;
use rand::Rng as _;

/// Bytes of randomness in an id: 128 bits, twice ASVS' 64-bit floor.
const ID_BYTES: usize = 16;

/// Length of an id's random part (base64 of 16 bytes, no padding).
const RANDOM_LEN: usize = 22;

/// The class tag of a logged-in session's id.
pub(crate) const USER_TAG: &str = "u.";

/// Longest text form of an id (tag + random part).
pub(crate) const ID_LEN: usize = RANDOM_LEN + USER_TAG.len();

/// The URL-safe base64 alphabet (`A-Z a-z 0-9 - _`), as a table: one load a character
/// where the three range tests cost ~8 instructions.
const URL_SAFE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        c += 1;
    }
    t
};

/// A session id, held inline (no allocation: at most 24 bytes, `CompactString`'s inline
/// capacity). Its `Debug` never shows it: ids are secrets. Kept as text, not bytes, so
/// that `as_str` (every store key, every cookie) validates nothing: the UTF-8 check of
/// the 22 bytes was ~110 instructions a key (callgrind).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct SessionId {
    text: CompactString,
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
        // 16 bytes always encode to exactly 22 characters, all ASCII.
        let _written = URL_SAFE_NO_PAD.encode_slice(bytes, &mut text[start..]);
        let text = CompactString::from_utf8(&text[..start + RANDOM_LEN]).unwrap_or_default();
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
        // zero in the canonical form, so it is one of `A`, `Q`, `g`, `w`. With every
        // other character in the URL-safe alphabet, that is exactly what decodes to 16
        // bytes (checked against the base64 decoder in the tests); decoding them cost
        // ~2.5 times this check, and the bytes are never used.
        let b = random.as_bytes();
        if b.len() != RANDOM_LEN
            || !matches!(b[RANDOM_LEN - 1], b'A' | b'Q' | b'g' | b'w')
            || !b.iter().all(|&c| URL_SAFE[usize::from(c)])
        {
            return None;
        }
        Some(SessionId {
            text: CompactString::new(text),
            user,
        })
    }

    /// The text form (for the cookie and the store key only; never log it).
    pub(crate) fn as_str(&self) -> &str {
        &self.text
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

    /// What the base64 decoder accepts as 16 bytes, the way `parse` decided it before
    /// it checked the alphabet itself: the oracle of the next test.
    fn decodes_to_16_bytes(random: &str) -> bool {
        let mut bytes = [0u8; ID_BYTES + 2];
        random.len() == RANDOM_LEN
            && matches!(random.as_bytes()[RANDOM_LEN - 1], b'A' | b'Q' | b'g' | b'w')
            && matches!(
                URL_SAFE_NO_PAD.decode_slice(random, &mut bytes),
                Ok(ID_BYTES)
            )
    }

    /// An attacker's cookie values: every byte in every position of real ids (and of a
    /// logged-in one after its tag), and lengths around 22. `parse` accepts exactly
    /// what decodes to 16 bytes, and what it accepts reads back as the same text.
    #[test]
    fn parse_accepts_exactly_what_decodes_to_sixteen_bytes() {
        let mut cases: Vec<String> = Vec::new();
        for _ in 0..4 {
            let id = SessionId::random();
            let text = id.as_str().as_bytes().to_vec();
            for i in 0..text.len() {
                for b in 0..=255u8 {
                    let mut m = text.clone();
                    m[i] = b;
                    if let Ok(s) = String::from_utf8(m) {
                        cases.push(s);
                    }
                }
            }
            let t = id.as_str();
            cases.push(t[..21].to_owned());
            cases.push(format!("{t}A"));
            cases.push(format!("{}é", &t[..20]));
        }
        let mut accepted = 0;
        for case in &cases {
            let parsed = SessionId::parse(case);
            assert_eq!(parsed.is_some(), decodes_to_16_bytes(case), "{case:?}");
            if let Some(id) = parsed {
                assert_eq!(id.as_str(), case);
                accepted += 1;
            }
            let tagged = format!("{USER_TAG}{case}");
            let parsed = SessionId::parse(&tagged);
            assert_eq!(parsed.is_some(), decodes_to_16_bytes(case), "{tagged:?}");
            if let Some(id) = parsed {
                assert!(id.is_user());
                assert_eq!(id.as_str(), tagged);
            }
        }
        // Some of each kind: the alphabet's 64 characters in most positions pass.
        assert!(accepted > 1000 && accepted < cases.len() / 2, "{accepted}");
    }
}
