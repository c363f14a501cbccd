//! The synchronizer token pattern (OWASP CSRF cheat sheet): one random token per session,
//! kept in its record, put by the application in its forms, checked in constant time.

use super::SessionError;
use super::data::SessionData;
use super::handle::Session;
use super::id::SessionId;

/// The synchronizer token: for applications that want tokens on top of (or instead of)
/// [`CrossOriginProtection`](super::CrossOriginProtection).
impl Session {
    /// This session's synchronizer token (128 random bits, 22 URL-safe characters),
    /// created and stored on first use (a new visitor gets a session for it). Put it in
    /// a hidden form field or a header, and check it with
    /// [`verify_csrf_token`](Session::verify_csrf_token). A login gives a new one.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn csrf_token(&self) -> Result<String, SessionError> {
        self.load().await?;
        self.data().csrf_token()
    }

    /// Whether `candidate` is this session's synchronizer token (constant-time
    /// comparison). `false` when the session has none: a request cannot bring its own.
    ///
    /// # Errors
    /// [`SessionError::Store`] when loading failed.
    pub async fn verify_csrf_token(&self, candidate: &str) -> Result<bool, SessionError> {
        self.load().await?;
        self.data().verify_csrf_token(candidate)
    }
}

impl SessionData<'_> {
    /// [`Session::csrf_token`] in place.
    ///
    /// # Errors
    /// [`SessionError::NotLoaded`] before the session was loaded;
    /// [`SessionError::Store`] when loading failed.
    pub fn csrf_token(&self) -> Result<String, SessionError> {
        self.0.with_loaded(|state| {
            let Some(loaded) = state.loaded.as_mut() else {
                return Err(SessionError::NotLoaded);
            };
            if let Some(token) = &loaded.meta.csrf {
                return Ok(token.clone());
            }
            let token = SessionId::random().as_str().to_owned();
            loaded.meta.csrf = Some(token.clone());
            loaded.meta_dirty = true;
            Ok(token)
        })
    }

    /// [`Session::verify_csrf_token`] in place.
    ///
    /// # Errors
    /// [`SessionError::NotLoaded`] before the session was loaded;
    /// [`SessionError::Store`] when loading failed.
    pub fn verify_csrf_token(&self, candidate: &str) -> Result<bool, SessionError> {
        self.0.with_loaded(|state| {
            let token = state.loaded.as_ref().and_then(|l| l.meta.csrf.as_deref());
            Ok(token.is_some_and(|t| constant_time_eq(t.as_bytes(), candidate.as_bytes())))
        })
    }
}

/// Compares two byte strings in time that depends only on their lengths (tokens have a
/// fixed, public length), never on where they first differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"xbc"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
