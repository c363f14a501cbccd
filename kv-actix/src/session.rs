//! Sessions for actix-web (feature `session`): [`SessionMiddleware`] and the [`Session`]
//! extractor over the same engine as `kv_tower`'s `SessionLayer`
//! ([`kv_core::session`]): same records, cookies, timeouts, lifecycle and failures.
//!
//! ```
//! # #[actix_web::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use actix_web::{App, HttpResponse, test, web};
//! use kv_actix::session::{Session, SessionFailure, SessionMiddleware};
//! use kv_core::{MemoryStore, session::SessionManager};
//!
//! async fn visit(session: Session) -> Result<String, SessionFailure> {
//!     let n: u32 = session.get("visits")?.unwrap_or(0) + 1; // loaded by the extractor
//!     session.insert("visits", n)?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! let sessions = SessionManager::builder(MemoryStore::new()).build()?;
//! let app = test::init_service(
//!     App::new().wrap(SessionMiddleware::new(sessions)).route("/", web::get().to(visit)),
//! )
//! .await;
//! let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
//! assert!(response.headers().get("set-cookie").is_some());
//! # Ok(())
//! # }
//! ```
//!
//! As in actix-session, the extractor loads the session before the handler runs, so its
//! methods are synchronous; a handler that does not take a `Session` costs no store call
//! and no cookie check. [`Session::renew`] is the engine's `cycle_id` and
//! [`Session::purge`] its `flush`. The calls on the user's other sessions ask the store,
//! so they are `async`: [`Session::user_sessions`] and [`Session::end_user_session`] (a
//! "your devices" page), [`Session::end_other_sessions`]. Using the extractor without the
//! middleware is a `500` naming `SessionMiddleware` ([`MissingSessionMiddleware`];
//! actix-session silently hands out an empty session). A session that fails (its store
//! does) answers the engine's opaque `500` (`SessionError::answer`), as under tower.
//!
//! Before the handler, the engine's cross-origin check ([`CrossOriginProtection`], on by
//! default for cookie sessions) may answer `403`; in token mode the new token goes in the
//! token header instead of `Set-Cookie`. [`SessionExt`] reaches the session from other
//! middleware and guards.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready as ready_poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::guard::GuardContext;
use actix_web::http::header::{HeaderName as ActixName, HeaderValue as ActixValue};
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::future::Either;
use kv_core::Step;
use kv_core::session::{Save, SessionError, SessionManager};
use pin_project_lite::pin_project;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::answer::to_response;
use crate::view::{View, actix_status, status};

pub use kv_core::session::{
    CrossOriginProtection, Key, SameSite, SessionExpiry, SessionManagerBuilder, UserSession,
};

/// The session middleware: `App::wrap(SessionMiddleware::new(manager))`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionMiddleware {
    manager: SessionManager,
}

impl SessionMiddleware {
    /// A middleware over `manager` (its store, cookie and timeouts).
    pub fn new(manager: SessionManager) -> Self {
        SessionMiddleware { manager }
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = SessionService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionService {
            service: Rc::new(service),
            manager: self.manager.clone(),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around the inner one.
pub struct SessionService<S> {
    service: Rc<S>,
    manager: SessionManager,
}

impl<S> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for SessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = SessionFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // Cross-origin protection: refused before the handler runs (no store call).
        if let Some(refusal) = self.manager.check_cross_origin(&View::new(&req)) {
            let response = req.into_response(to_response(refusal));
            return SessionFuture {
                state: State::Refused {
                    response: Some(response.map_into_right_body()),
                },
            };
        }
        // No store call and no cookie check here (the `Cookie` headers are only copied):
        // the extractor loads the session.
        let session = self.manager.start(&View::new(&req));
        req.extensions_mut().insert(session.clone());
        SessionFuture {
            state: State::Calling {
                fut: self.service.call(req),
                session: Some(session),
            },
        }
    }
}

pin_project! {
    /// The response future of [`SessionService`].
    pub struct SessionFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = Proj]
    enum State<F, B> {
        Calling { #[pin] fut: F, session: Option<kv_core::session::Session> },
        // Refused by the cross-origin check; the inner service was not called.
        Refused { response: Option<ServiceResponse<EitherBody<B>>> },
        // Only for a save that waits on the store.
        Saving { saving: Save, response: Option<ServiceResponse<B>>, header: http::HeaderName },
    }
}

impl<F, B> Future for SessionFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                Proj::Calling { fut, session } => {
                    let response = ready_poll!(fut.poll(cx))?;
                    let Some(session) = session.take().filter(|s| s.is_touched()) else {
                        return Poll::Ready(Ok(response.map_into_left_body()));
                    };
                    let header = session.response_header();
                    match session.end(status(response.status())) {
                        Step::Ready(outcome) => {
                            return Poll::Ready(Ok(apply(outcome, response, &header)));
                        }
                        Step::Pending(saving) => this.state.set(State::Saving {
                            saving,
                            response: Some(response),
                            header,
                        }),
                    }
                }
                Proj::Refused { response } => {
                    return match response.take() {
                        Some(response) => Poll::Ready(Ok(response)),
                        None => Poll::Pending,
                    };
                }
                Proj::Saving {
                    saving,
                    response,
                    header,
                } => {
                    let outcome = ready_poll!(Pin::new(saving).poll(cx));
                    return match response.take() {
                        Some(response) => Poll::Ready(Ok(apply(outcome, response, header))),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}

/// The response once the session is finished: with its `Set-Cookie` (or token header),
/// or a 500.
fn apply<B>(
    outcome: Result<Option<http::HeaderValue>, SessionError>,
    mut response: ServiceResponse<B>,
    header: &http::HeaderName,
) -> ServiceResponse<EitherBody<B>> {
    match outcome {
        Ok(None) => response.map_into_left_body(),
        Ok(Some(cookie)) => {
            if let (Ok(name), Ok(mut value)) = (
                ActixName::from_bytes(header.as_str().as_bytes()),
                ActixValue::from_bytes(cookie.as_bytes()),
            ) {
                value.set_sensitive(true);
                response.headers_mut().append(name, value);
            }
            response.map_into_left_body()
        }
        // Logged by the engine, without the session id.
        Err(err) => response
            .into_response(to_response(err.answer()))
            .map_into_right_body(),
    }
}

/// The request's session, loaded: the actix-web extractor (synchronous methods, as in
/// actix-session). A cheap clone of the handle [`SessionMiddleware`] put in the request;
/// [`inner`](Session::inner) gives the engine's handle for its async methods.
#[derive(Debug, Clone)]
pub struct Session {
    session: kv_core::session::Session,
}

impl Session {
    /// The value under `key`, deserialized as `T`; `None` when absent.
    ///
    /// # Errors
    /// A `T` that does not match the stored value (answers 500 through `?`).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionFailure> {
        Ok(self.session.data().get(key)?)
    }

    /// Stores `value` under `key`; written when the request ends.
    ///
    /// # Errors
    /// A reserved key (`__kv.…`) or a value that cannot be serialized.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionFailure> {
        Ok(self.session.data().insert(key, value)?)
    }

    /// Replaces the value under `key` with `f(value)`; whether it was present (nothing is
    /// stored when it was not).
    ///
    /// # Errors
    /// A stored value that is not a `T`, or a `T` that cannot be serialized.
    pub fn update<T, F>(&self, key: &str, f: F) -> Result<bool, SessionFailure>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(T) -> T,
    {
        Ok(self.session.data().update(key, f)?)
    }

    /// Replaces the value under `key` with `f(value)`, or stores `default` when absent.
    ///
    /// # Errors
    /// A stored value that is not a `T`, or a `T` that cannot be serialized.
    pub fn update_or<T, F>(&self, key: &str, default: T, f: F) -> Result<(), SessionFailure>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(T) -> T,
    {
        Ok(self.session.data().update_or(key, default, f)?)
    }

    /// This session's synchronizer token (created and stored on first use); see
    /// [`kv_core::session::Session::csrf_token`].
    ///
    /// # Errors
    /// None in practice (the session is loaded by the extractor).
    pub fn csrf_token(&self) -> Result<String, SessionFailure> {
        Ok(self.session.data().csrf_token()?)
    }

    /// Whether `candidate` is this session's synchronizer token (constant-time).
    ///
    /// # Errors
    /// None in practice (the session is loaded by the extractor).
    pub fn verify_csrf_token(&self, candidate: &str) -> Result<bool, SessionFailure> {
        Ok(self.session.data().verify_csrf_token(candidate)?)
    }

    /// Gives this session its own idle and absolute timeouts ("remember me"), within the
    /// manager's maxima; see [`kv_core::session::Session::set_lifetime`].
    ///
    /// # Errors
    /// A zero timeout.
    pub fn set_lifetime(
        &self,
        idle: std::time::Duration,
        absolute: std::time::Duration,
    ) -> Result<(), SessionFailure> {
        Ok(self.session.data().set_lifetime(idle, absolute)?)
    }

    /// When this session ends; `None` when the request has no session and makes none.
    ///
    /// # Errors
    /// None in practice (the session is loaded by the extractor).
    pub fn expiry(&self) -> Result<Option<SessionExpiry>, SessionFailure> {
        Ok(self.session.data().expiry()?)
    }

    /// Removes `key`; whether it was present.
    ///
    /// # Errors
    /// None in practice (the session is loaded by the extractor).
    pub fn remove(&self, key: &str) -> Result<bool, SessionFailure> {
        Ok(self.session.data().remove(key)?)
    }

    /// The keys present.
    ///
    /// # Errors
    /// None in practice (the session is loaded by the extractor).
    pub fn keys(&self) -> Result<Vec<String>, SessionFailure> {
        Ok(self.session.data().keys()?)
    }

    /// Removes every key; the session and its id stay.
    ///
    /// # Errors
    /// None in practice (the session is loaded by the extractor).
    pub fn clear(&self) -> Result<(), SessionFailure> {
        Ok(self.session.data().clear()?)
    }

    /// A new id at the end of the request, same data, old record deleted (the engine's
    /// `cycle_id`; actix-session's `renew`).
    ///
    /// # Errors
    /// None in practice (the session is loaded by the extractor).
    pub fn renew(&self) -> Result<(), SessionFailure> {
        Ok(self.session.data().cycle_id()?)
    }

    /// Logs out: record deleted, cookie expired (the engine's `flush`; actix-session's
    /// `purge`).
    ///
    /// # Errors
    /// None in practice (the session is loaded by the extractor).
    pub fn purge(&self) -> Result<(), SessionFailure> {
        Ok(self.session.data().flush()?)
    }

    /// Logs in as `user`: new id, new absolute lifetime, per-user index entry.
    ///
    /// # Errors
    /// None in practice (the session is loaded by the extractor).
    pub fn login(&self, user: &str) -> Result<(), SessionFailure> {
        Ok(self.session.data().login(user)?)
    }

    /// The user logged in, if any.
    ///
    /// # Errors
    /// None in practice (the session is loaded by the extractor).
    pub fn user(&self) -> Result<Option<String>, SessionFailure> {
        Ok(self.session.data().user()?)
    }

    /// Ends every other session of this session's user now; how many were live.
    ///
    /// # Errors
    /// The store failed.
    pub async fn end_other_sessions(&self) -> Result<usize, SessionFailure> {
        Ok(self.session.end_other_sessions().await?)
    }

    /// The live sessions of this session's user, oldest first, this one marked
    /// [`current`](UserSession::current): login time, absolute deadline and an opaque
    /// [`handle`](UserSession::handle) (not the session id) for
    /// [`end_user_session`](Session::end_user_session). For a "your devices" page (OWASP
    /// ASVS V3.3.4). Empty for an anonymous session.
    ///
    /// # Errors
    /// The store failed.
    pub async fn user_sessions(&self) -> Result<Vec<UserSession>, SessionFailure> {
        Ok(self.session.user_sessions().await?)
    }

    /// Ends the session of this session's user whose [`UserSession::handle`] is `handle`
    /// (as listed by [`user_sessions`](Session::user_sessions)); whether it was live.
    /// Only this user's sessions can be ended this way; `Ok(false)` for an anonymous
    /// session.
    ///
    /// # Errors
    /// The store failed.
    pub async fn end_user_session(&self, handle: &str) -> Result<bool, SessionFailure> {
        Ok(self.session.end_user_session(handle).await?)
    }

    /// The engine's handle.
    pub fn inner(&self) -> &kv_core::session::Session {
        &self.session
    }
}

impl FromRequest for Session {
    type Error = Error;
    type Future = Either<
        Ready<Result<Session, Error>>,
        Pin<Box<dyn Future<Output = Result<Session, Error>>>>,
    >;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(session) = req.extensions().get::<kv_core::session::Session>().cloned() else {
            return Either::Left(ready(Err(MissingSessionMiddleware.into())));
        };
        // Loaded without a future when it can be (no cookie, the embedded store).
        match session.load() {
            Step::Ready(Ok(())) => Either::Left(ready(Ok(Session { session }))),
            Step::Ready(Err(err)) => Either::Left(ready(Err(SessionFailure(err).into()))),
            Step::Pending(loading) => Either::Right(Box::pin(async move {
                loading.await.map_err(SessionFailure)?;
                Ok(Session { session })
            })),
        }
    }
}

/// The request's session from outside a handler — other middleware, guards, a
/// `ResponseError` — as actix-session's `SessionExt`: the engine's handle that
/// [`SessionMiddleware`] put in the request, `None` without it. Its `async` methods load
/// on first use; in a (synchronous) guard, call `load()` — [`Step::Ready`] on an
/// in-process store — and then its `data()` methods.
///
/// ```
/// # #[actix_web::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use actix_web::{App, HttpResponse, guard, test, web};
/// use kv_actix::session::{SessionExt, SessionMiddleware};
/// use kv_core::{MemoryStore, Step, session::SessionManager};
///
/// // A guard that lets only logged-in sessions through.
/// let logged_in = guard::fn_guard(|ctx| {
///     let Some(session) = ctx.get_session() else { return false };
///     matches!(session.load(), Step::Ready(Ok(())))
///         && session.data().user().ok().flatten().is_some()
/// });
/// let sessions = SessionManager::builder(MemoryStore::new()).build()?;
/// let app = test::init_service(
///     App::new()
///         .wrap(SessionMiddleware::new(sessions))
///         .route("/admin", web::get().guard(logged_in).to(HttpResponse::Ok))
///         .default_service(web::to(HttpResponse::Forbidden)),
/// )
/// .await;
/// let response = test::call_service(&app, test::TestRequest::get().uri("/admin").to_request()).await;
/// assert_eq!(response.status(), 403);
/// # Ok(())
/// # }
/// ```
pub trait SessionExt {
    /// The request's session handle; `None` when [`SessionMiddleware`] is not installed.
    fn get_session(&self) -> Option<kv_core::session::Session>;
}

impl SessionExt for HttpRequest {
    fn get_session(&self) -> Option<kv_core::session::Session> {
        self.extensions()
            .get::<kv_core::session::Session>()
            .cloned()
    }
}

impl SessionExt for ServiceRequest {
    fn get_session(&self) -> Option<kv_core::session::Session> {
        self.extensions()
            .get::<kv_core::session::Session>()
            .cloned()
    }
}

impl SessionExt for GuardContext<'_> {
    fn get_session(&self) -> Option<kv_core::session::Session> {
        self.req_data().get::<kv_core::session::Session>().cloned()
    }
}

/// The error of [`Session`] on a route without [`SessionMiddleware`]: a 500 naming it.
#[derive(Debug, Clone, Copy)]
pub struct MissingSessionMiddleware;

impl MissingSessionMiddleware {
    const MESSAGE: &'static str = "Missing request extension: kv_core::session::Session. Is \
         `kv_actix::session::SessionMiddleware` installed on this route? Perhaps you \
         forgot to add it.";
}

impl fmt::Display for MissingSessionMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MESSAGE)
    }
}

impl std::error::Error for MissingSessionMiddleware {}

impl ResponseError for MissingSessionMiddleware {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        tracing::error!("kv session: the Session extractor was used without SessionMiddleware");
        crate::answer::to_response(kv_core::Answer::text(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            Self::MESSAGE,
        ))
    }
}

/// A session error in a handler: `?` answers an opaque 500 (the cause is logged).
#[derive(Debug)]
pub struct SessionFailure(pub SessionError);

impl From<SessionError> for SessionFailure {
    fn from(err: SessionError) -> Self {
        SessionFailure(err)
    }
}

impl fmt::Display for SessionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl ResponseError for SessionFailure {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_status(self.0.status())
    }

    fn error_response(&self) -> HttpResponse {
        tracing::error!(error = %self.0, "kv session: the handler gave up on a session error");
        to_response(self.0.answer())
    }
}
