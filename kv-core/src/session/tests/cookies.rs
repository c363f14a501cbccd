//! Signed and private cookies, attributes, typed values, configuration, redaction.

use super::*;

#[tokio::test]
async fn signed_cookies_refuse_tampering() {
    let key = Key::generate();
    let f = fixture_with(|b| b.signed(key.clone()));
    let cookie = f.new_session("a", "1").await;
    assert_eq!(f.read(&cookie, "a").await.as_deref(), Some("1"));
    let value = cookie_value(&cookie_header_as_set(&cookie));
    assert!(value.len() > 22, "tag + id");
    // Flip one character of the tag, then of the id.
    for at in [0, value.len() - 1] {
        let mut bytes = value.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).expect("ascii");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::try_from(format!("__Host-session={forged}")).expect("value"),
        );
        f.store.reset();
        assert_eq!(f.read(&headers, "a").await, None);
        assert_eq!(
            f.store.calls().total(),
            0,
            "no store call for a forged cookie"
        );
    }
    // The bare id (signature stripped) is refused too.
    let id = &value[value.len() - 22..];
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::try_from(format!("__Host-session={id}")).expect("value"),
    );
    assert_eq!(f.read(&headers, "a").await, None);
    // A cookie signed with another key is refused.
    let other = fixture_with(|b| b.signed(Key::generate()));
    assert_eq!(other.read(&cookie, "a").await, None);
}

#[tokio::test]
async fn private_cookies_hide_the_id_and_refuse_tampering() {
    let key = Key::generate();
    let f = fixture_with(|b| b.private(key.clone()));
    let cookie = f.new_session("a", "1").await;
    assert_eq!(f.read(&cookie, "a").await.as_deref(), Some("1"));
    let value = cookie_value(&cookie_header_as_set(&cookie));
    // The id is not in the cookie: no record key ends with any 22-char window of it.
    let keys_hold_value = (0..value.len().saturating_sub(22)).any(|i| {
        let window = &value[i..i + 22];
        futures_util::FutureExt::now_or_never(
            f.store.inner().hget_all(&format!("session:{window}")),
        )
        .and_then(Result::ok)
        .is_some_and(|fields| !fields.is_empty())
    });
    assert!(!keys_hold_value);
    let mut bytes = value.into_bytes();
    bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::try_from(format!(
            "__Host-session={}",
            String::from_utf8(bytes).expect("ascii")
        ))
        .expect("value"),
    );
    assert_eq!(f.read(&headers, "a").await, None);
}

#[tokio::test]
async fn cookie_attributes_follow_the_configuration() {
    let f = fixture_with(|b| {
        b.cookie_name("sid")
            .cookie_path("/app")
            .cookie_domain("example.com")
            .secure(false)
            .http_only(false)
            .same_site(SameSite::Strict)
            .browser_session_cookie()
    });
    let s = f.sessions.start(&with_headers(&HeaderMap::new()));
    s.insert("a", 1).await.expect("insert");
    let set = s
        .end(StatusCode::OK)
        .await
        .expect("finish")
        .expect("cookie");
    let value = cookie_value(&set);
    assert_eq!(
        set.to_str().expect("ascii"),
        format!("sid={value}; SameSite=Strict; Path=/app; Domain=example.com")
    );
}

#[tokio::test]
async fn a_garbage_cookie_before_the_valid_one_is_skipped() {
    let f = fixture();
    let cookie = f.new_session("a", "1").await;
    let good = cookie_value(&cookie_header_as_set(&cookie));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::try_from(format!(
            "other=x; __Host-session=garbage; __Host-session={good}"
        ))
        .expect("value"),
    );
    assert_eq!(f.read(&headers, "a").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn typed_values_round_trip_and_type_errors_are_typed() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Cart {
        items: Vec<u32>,
        note: Option<String>,
    }
    let f = fixture();
    let s = f.sessions.start(&with_headers(&HeaderMap::new()));
    let cart = Cart {
        items: vec![1, 2],
        note: Some("gift".into()),
    };
    s.insert("cart", &cart).await.expect("insert");
    let cookie = cookie_from(&s.end(StatusCode::OK).await.expect("f").expect("cookie"));
    let s = f.sessions.start(&with_headers(&cookie));
    assert_eq!(s.get::<Cart>("cart").await.expect("get"), Some(cart));
    assert!(matches!(
        s.get::<u64>("cart").await,
        Err(SessionError::Deserialize { .. })
    ));
    assert!(matches!(
        s.insert("__kv.created", 1).await,
        Err(SessionError::ReservedKey(_))
    ));
    assert!(matches!(
        f.sessions
            .start(&with_headers(&cookie))
            .data()
            .get::<u8>("cart"),
        Err(SessionError::NotLoaded)
    ));
}

#[test]
fn invalid_configurations_are_typed_errors() {
    let build = |f: fn(SessionManagerBuilder) -> SessionManagerBuilder| {
        f(SessionManager::builder(MemoryStore::new())).build()
    };
    for bad in [
        (|b| b.secure(false)) as fn(SessionManagerBuilder) -> SessionManagerBuilder,
        |b| b.cookie_domain("example.com"),
        |b| b.cookie_path("/app"),
        |b| b.cookie_name(""),
        |b| b.cookie_name("a;b"),
        |b| b.cookie_name("sid").cookie_path("no-slash"),
        |b| b.cookie_name("sid").cookie_domain("a.com; HttpOnly"),
        |b| b.cookie_name("__Secure-sid").secure(false),
        |b| b.cookie_name("sid").secure(false).same_site(SameSite::None),
        |b| b.idle_timeout(Duration::ZERO),
        |b| b.absolute_timeout(Duration::MAX),
        |b| b.refresh_fraction(0.0),
        |b| b.refresh_fraction(f64::NAN),
    ] {
        assert!(matches!(build(bad), Err(e) if e.component() == "session manager"));
    }
    assert!(build(|b| b.cookie_name("sid").secure(false)).is_ok());
}

#[tokio::test]
async fn debug_output_shows_no_id_or_key() {
    let key = Key::generate();
    let f = fixture_with(|b| b.signed(key));
    let cookie = f.new_session("secret-key", "secret-value").await;
    let id = cookie_value(&cookie_header_as_set(&cookie));
    let s = f.sessions.start(&with_headers(&cookie));
    s.load().await.expect("load");
    let shown = format!("{s:?} {:?}", f.sessions);
    assert!(!shown.contains(&id) && !shown.contains("secret"), "{shown}");
    assert!(shown.contains("<key redacted>"));
    // Nor does the `Set-Cookie` value an adapter gets (it is marked sensitive).
    let fresh = f.sessions.start(&with_headers(&HeaderMap::new()));
    fresh.insert("a", 1).await.expect("insert");
    let finish = fresh.end(StatusCode::OK);
    let shown = format!("{finish:?}");
    let set_cookie = match finish {
        Step::Ready(done) => done.expect("saved").expect("a cookie"),
        Step::Pending(save) => save.await.expect("saved").expect("a cookie"),
    };
    let value = cookie_value(&set_cookie);
    let id = &value[value.len() - 22..];
    let shown = format!("{shown} {set_cookie:?}");
    assert!(!shown.contains(id), "{shown}");
}
