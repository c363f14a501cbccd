//! axum-login on kv's store: the app of `axum-login-demo` (`src/main.rs` serves it).
//!
//! axum-login keeps its state in a tower-sessions session; here that session lives in a
//! kv [`MemoryStore`] through [`TowerSessionsStore`] (and would live in Redis with a
//! `RedisStore` instead, unchanged). Routes:
//!
//! - `POST /login` (form `username`, `password`): logs in, `303` to `/protected`; `401`
//!   for wrong credentials;
//! - `GET /protected`: `hello <user>` when logged in, else `401`;
//! - `POST /logout`: logs out (the session record is deleted from the store).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_login::tower_sessions::SessionManagerLayer;
use axum_login::{AuthManagerLayerBuilder, AuthUser, AuthnBackend, UserId, login_required};
use kv_tower::{MemoryStore, Store, TowerSessionsStore};
use serde::Deserialize;

/// A user of the demo.
#[derive(Clone)]
pub struct User {
    name: String,
    /// What axum-login stores in the session to check it is still valid (in an app: a
    /// hash of the password, so that changing it ends the user's sessions).
    auth_hash: Vec<u8>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl AuthUser for User {
    type Id = String;

    fn id(&self) -> String {
        self.name.clone()
    }

    fn session_auth_hash(&self) -> &[u8] {
        &self.auth_hash
    }
}

/// The login form.
#[derive(Clone, Deserialize)]
pub struct Credentials {
    /// The user's name.
    pub username: String,
    /// The user's password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The demo's users: name → password (a real backend compares password hashes).
#[derive(Clone, Debug, Default)]
pub struct Users {
    passwords: Arc<HashMap<String, String>>,
}

impl Users {
    /// One user, `name` with `password`.
    pub fn with(name: &str, password: &str) -> Self {
        let passwords = HashMap::from([(name.to_owned(), password.to_owned())]);
        Users {
            passwords: Arc::new(passwords),
        }
    }

    fn user(&self, name: &str) -> Option<User> {
        let password = self.passwords.get(name)?;
        Some(User {
            name: name.to_owned(),
            auth_hash: password.as_bytes().to_vec(),
        })
    }
}

impl AuthnBackend for Users {
    type User = User;
    type Credentials = Credentials;
    type Error = std::convert::Infallible;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, Self::Error> {
        let ok = self
            .passwords
            .get(&creds.username)
            .is_some_and(|p| *p == creds.password);
        Ok(if ok { self.user(&creds.username) } else { None })
    }

    async fn get_user(&self, name: &UserId<Self>) -> Result<Option<User>, Self::Error> {
        Ok(self.user(name))
    }
}

type AuthSession = axum_login::AuthSession<Users>;

async fn login(mut auth: AuthSession, Form(creds): Form<Credentials>) -> Response {
    match auth.authenticate(creds).await {
        Ok(Some(user)) => match auth.login(&user).await {
            Ok(()) => Redirect::to("/protected").into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn logout(mut auth: AuthSession) -> StatusCode {
    match auth.logout().await {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn protected(auth: AuthSession) -> String {
    match auth.user {
        Some(user) => format!("hello {}", user.name),
        None => "nobody".to_owned(), // not reached: login_required! answers 401 first
    }
}

/// The app: axum-login over tower-sessions over kv's `store`.
///
/// `secure` sets the cookie's `Secure` attribute (on in production; the demo serves
/// plain `http://127.0.0.1`, which browsers treat as a secure context anyway).
pub fn app<S: Store + Clone>(store: S, users: Users, secure: bool) -> Router {
    let sessions = SessionManagerLayer::new(TowerSessionsStore::new(store)).with_secure(secure);
    let auth = AuthManagerLayerBuilder::new(users, sessions).build();
    Router::new()
        .route("/protected", get(protected))
        .route_layer(login_required!(Users))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(auth)
}

/// The app on a fresh [`MemoryStore`].
pub fn memory_app(users: Users) -> Router {
    app(MemoryStore::new(), users, false)
}
