//! The `Session` extractor's calls on a user's other sessions (OWASP ASVS V3.3.4: view
//! the active sessions and log out of any): `user_sessions` and `end_user_session`, on
//! the embedded store (loaded in place) and behind `RemoteLike` (every load and save a
//! future, as on Redis).

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, Error, test, web};
use kv_actix::SessionMiddleware;
use kv_actix::session::{MissingSessionMiddleware, Session, SessionFailure};
use kv_core::session::SessionManager;
use kv_core::testing::RemoteLike;
use kv_core::{MemoryStore, Store};

async fn login(s: Session, user: web::Path<String>) -> Result<String, SessionFailure> {
    s.login(&user)?;
    Ok(format!("welcome {user}"))
}

async fn whoami(s: Session) -> Result<String, SessionFailure> {
    Ok(s.user()?.unwrap_or_else(|| "anonymous".into()))
}

/// `handle` for each session, `handle*` for the current one, comma-separated.
async fn devices(s: Session) -> Result<String, SessionFailure> {
    let listed: Vec<String> = s
        .user_sessions()
        .await?
        .into_iter()
        .map(|d| {
            assert!(d.expires > d.created);
            if d.current {
                format!("{}*", d.handle)
            } else {
                d.handle
            }
        })
        .collect();
    Ok(listed.join(","))
}

async fn end(s: Session, handle: web::Path<String>) -> Result<String, SessionFailure> {
    Ok(s.end_user_session(&handle).await?.to_string())
}

async fn app(
    store: impl Store,
) -> impl Service<actix_http::Request, Response = ServiceResponse<impl MessageBody>, Error = Error>
{
    let manager = SessionManager::builder(store).build().expect("config");
    test::init_service(
        App::new()
            .wrap(SessionMiddleware::new(manager))
            .route("/login/{user}", web::post().to(login))
            .route("/whoami", web::get().to(whoami))
            .route("/devices", web::get().to(devices))
            .route("/end/{handle}", web::post().to(end)),
    )
    .await
}

/// The `name=value` pair of a response's `Set-Cookie`.
fn pair<B>(response: &ServiceResponse<B>) -> String {
    let set = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .expect("ascii");
    set.split(';').next().expect("pair").to_owned()
}

async fn call(
    app: &impl Service<actix_http::Request, Response = ServiceResponse<impl MessageBody>, Error = Error>,
    post: bool,
    path: &str,
    cookie: Option<&str>,
) -> String {
    let req = if post {
        test::TestRequest::post()
    } else {
        test::TestRequest::get()
    };
    let req = match cookie {
        Some(cookie) => req.insert_header(("cookie", cookie.to_owned())),
        None => req,
    };
    let response = test::call_service(app, req.uri(path).to_request()).await;
    assert_eq!(response.status(), 200, "{path}");
    String::from_utf8(test::read_body(response).await.to_vec()).expect("utf8")
}

/// Logs in twice as one user, lists two sessions (one marked current), ends the other by
/// its handle, lists one.
async fn list_and_end_by_handle(store: impl Store) {
    let app = app(store).await;
    let mut cookies = Vec::new();
    for _ in 0..2 {
        let response = test::call_service(
            &app,
            test::TestRequest::post().uri("/login/frank").to_request(),
        )
        .await;
        assert_eq!(response.status(), 200);
        cookies.push(pair(&response));
    }
    // An anonymous session has no others to list, and ends none.
    assert_eq!(call(&app, false, "/devices", None).await, "");
    assert_eq!(call(&app, true, "/end/anything", None).await, "false");

    let listed = call(&app, false, "/devices", Some(&cookies[0])).await;
    let handles: Vec<&str> = listed.split(',').collect();
    assert_eq!(handles.len(), 2, "{listed}");
    assert_eq!(handles.iter().filter(|h| h.ends_with('*')).count(), 1);
    // A handle is not (part of) a session id.
    for cookie in &cookies {
        assert!(
            handles
                .iter()
                .all(|h| !cookie.contains(h.trim_end_matches('*')))
        );
    }
    let other = *handles
        .iter()
        .find(|h| !h.ends_with('*'))
        .expect("the other session");

    // Another user cannot end frank's session by its handle.
    let response = test::call_service(
        &app,
        test::TestRequest::post().uri("/login/mallory").to_request(),
    )
    .await;
    let mallory = pair(&response);
    let path = format!("/end/{other}");
    assert_eq!(call(&app, true, &path, Some(&mallory)).await, "false");
    assert_eq!(
        call(&app, false, "/whoami", Some(&cookies[1])).await,
        "frank"
    );

    // Frank ends it from the first session: once.
    assert_eq!(call(&app, true, &path, Some(&cookies[0])).await, "true");
    assert_eq!(call(&app, true, &path, Some(&cookies[0])).await, "false");
    assert_eq!(
        call(&app, false, "/whoami", Some(&cookies[1])).await,
        "anonymous"
    );
    assert_eq!(
        call(&app, false, "/whoami", Some(&cookies[0])).await,
        "frank"
    );
    let listed = call(&app, false, "/devices", Some(&cookies[0])).await;
    assert_eq!(listed.split(',').count(), 1, "{listed}");
    assert!(listed.ends_with('*'), "{listed}");
}

#[actix_web::test]
async fn user_sessions_lists_and_end_user_session_ends_by_handle() {
    list_and_end_by_handle(MemoryStore::new()).await;
}

#[actix_web::test]
async fn user_sessions_and_end_user_session_on_a_remote_store() {
    list_and_end_by_handle(RemoteLike(MemoryStore::new())).await;
}

#[actix_web::test]
async fn a_missing_middleware_is_an_error_with_a_500_naming_it() {
    let err: &dyn std::error::Error = &MissingSessionMiddleware;
    assert!(err.to_string().contains("SessionMiddleware"), "{err}");
    assert!(err.source().is_none());

    let app = test::init_service(App::new().route("/whoami", web::get().to(whoami))).await;
    let response =
        test::call_service(&app, test::TestRequest::get().uri("/whoami").to_request()).await;
    assert_eq!(response.status(), 500);
    let body = test::read_body(response).await;
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("kv_actix::session::SessionMiddleware"),
        "{body}"
    );
}

/// A session whose store failed answers kv-core's one session-failure response.
#[actix_web::test]
async fn a_failed_session_answers_the_engines_500() {
    let manager = SessionManager::builder(kv_core::testing::UnavailableStore::new())
        .build()
        .expect("config");
    let app = test::init_service(
        App::new()
            .wrap(SessionMiddleware::new(manager))
            .route("/whoami", web::get().to(whoami))
            .route("/login/{user}", web::post().to(login)),
    )
    .await;
    let cookie = ("cookie", "__Host-session=AAAAAAAAAAAAAAAAAAAAAA");
    for req in [
        // The load fails in the extractor.
        test::TestRequest::get()
            .uri("/whoami")
            .insert_header(cookie),
        // The save fails after the handler.
        test::TestRequest::post().uri("/login/alice"),
    ] {
        let response = test::call_service(&app, req.to_request()).await;
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers().get("content-type").expect("type"),
            "text/plain; charset=utf-8"
        );
        assert!(response.headers().get("set-cookie").is_none());
        let body = test::read_body(response).await;
        let expected = kv_core::session::SessionError::NotLoaded.answer();
        assert_eq!(body, expected.body);
    }
}
