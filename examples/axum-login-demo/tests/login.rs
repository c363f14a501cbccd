//! axum-login on `TowerSessionsStore` over `MemoryStore`: log in, reach the protected
//! route with the session cookie, and not without it (nor with a forged one).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum_login_demo::{Users, app};
use http_body_util::BodyExt;
use kv_tower::{MemoryStore, Store};
use tower::ServiceExt;

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Option<String>, String) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, cookie, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut req = Request::get(path);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    req.body(Body::empty()).expect("request")
}

fn login(form: &'static str) -> Request<Body> {
    Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .expect("request")
}

#[tokio::test]
async fn logs_in_and_reaches_the_protected_route() {
    let store = MemoryStore::new();
    let app = app(store.clone(), Users::with("ada", "lovelace"), false);

    assert_eq!(
        send(&app, get("/protected", None)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, login("username=ada&password=wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(store.is_empty(), "a failed login stored a session");

    let (status, cookie, _) = send(&app, login("username=ada&password=lovelace")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("a session cookie");
    assert_eq!(store.len(), 1, "the session is in kv's store");
    let id = cookie.split_once('=').expect("name=value").1;
    assert!(
        store
            .get(&format!("tower-sessions:{id}"))
            .await
            .expect("get")
            .is_some()
    );

    let (status, _, body) = send(&app, get("/protected", Some(&cookie))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello ada"));

    // A forged session id reaches nothing.
    let forged = "id=AAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        send(&app, get("/protected", Some(forged))).await.0,
        StatusCode::UNAUTHORIZED
    );
}
