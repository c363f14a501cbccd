use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use kv_core::session::SessionError;

/// The axum extractor for the request's session (feature `axum`): a cheap clone of the
/// handle [`SessionLayer`](super::SessionLayer) put in the request. Every method of
/// [`kv_core::session::Session`] is available through `Deref`.
///
/// Extracting it costs nothing; the first method call loads the session.
#[derive(Debug, Clone)]
pub struct Session(pub kv_core::session::Session);

impl Deref for Session {
    type Target = kv_core::session::Session;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<kv_core::session::Session>()
            .cloned()
            .map(Session)
            .ok_or(MissingSessionLayer)
    }
}

/// The rejection of [`Session`] on a route without [`SessionLayer`](super::SessionLayer):
/// a 500 that names the missing layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingSessionLayer;

impl MissingSessionLayer {
    /// The status it answers with: 500 (a configuration error of the application).
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The text of its body.
    pub fn body_text(&self) -> &'static str {
        "Missing request extension: kv_core::session::Session. \
         Is `kv_tower::session::SessionLayer` installed on this route? \
         Perhaps you forgot to add it."
    }
}

impl std::fmt::Display for MissingSessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.body_text())
    }
}

impl std::error::Error for MissingSessionLayer {}

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        tracing::error!("kv session: the Session extractor was used without SessionLayer");
        let answer = kv_core::Answer::text(self.status(), self.body_text());
        crate::response::answer::<axum::body::Body>(answer).into_response()
    }
}

/// A handler's error for session calls (feature `axum`): `?` on a
/// [`SessionError`] in a handler returning `Result<_, SessionFailure>` answers an opaque
/// 500 (the cause is logged; store failures are also logged by the engine).
#[derive(Debug)]
pub struct SessionFailure(pub SessionError);

impl From<SessionError> for SessionFailure {
    fn from(err: SessionError) -> Self {
        SessionFailure(err)
    }
}

impl IntoResponse for SessionFailure {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "kv session: the handler gave up on a session error");
        crate::response::answer::<axum::body::Body>(self.0.answer()).into_response()
    }
}
