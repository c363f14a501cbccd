//! The actix-web middlewares on a real `redis-server`: the paths that wait on the store
//! (the boxed futures), which the in-process memory store never takes.

use kv_test_support as support;

use std::time::Duration;

use actix_web::{App, test, web};
use kv_actix::SessionMiddleware;
use kv_actix::session::{Session, SessionFailure};
use kv_core::RedisStore;
use kv_core::rate_limit::{KeySource, Policy, RateLimiter};
use kv_core::session::SessionManager;

async fn store(test: &str) -> Option<(support::Target, RedisStore)> {
    let redis = support::server(test)?;
    let store = RedisStore::builder(redis.url())
        .key_prefix(format!("{test}:{}:", std::process::id()))
        .build()
        .await
        .expect("connect");
    Some((redis, store))
}

#[actix_web::test]
async fn a_store_backed_limit_counts_exactly_on_redis() {
    let Some((_redis, store)) = store("actix_rate_limit_redis").await else {
        return;
    };
    let limiter = RateLimiter::builder(store)
        .policy(
            Policy::fixed_window("per-hour", 3, Duration::from_secs(3600)).key(KeySource::global()),
        )
        .build()
        .expect("limiter");
    let app = test::init_service(
        App::new()
            .wrap(kv_actix::RateLimitMiddleware::new(limiter))
            .route("/", web::get().to(|| async { "ok" })),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}

async fn whoami(s: Session) -> Result<String, SessionFailure> {
    Ok(s.user()?.unwrap_or_else(|| "anonymous".into()))
}

async fn login(s: Session) -> Result<&'static str, SessionFailure> {
    s.login("alice")?;
    Ok("welcome")
}

async fn logout(s: Session) -> Result<&'static str, SessionFailure> {
    s.purge()?;
    Ok("bye")
}

#[actix_web::test]
async fn a_session_lives_in_redis_across_requests() {
    let Some((_redis, store)) = store("actix_session_redis").await else {
        return;
    };
    let manager = SessionManager::builder(store).build().expect("config");
    let app = test::init_service(
        App::new()
            .wrap(SessionMiddleware::new(manager))
            .route("/whoami", web::get().to(whoami))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout)),
    )
    .await;
    let response =
        test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
    let set = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .expect("ascii")
        .to_owned();
    let cookie = set.split(';').next().expect("pair").to_owned();
    let ask = |path: &str, post: bool| {
        let r = if post {
            test::TestRequest::post()
        } else {
            test::TestRequest::get()
        };
        r.uri(path)
            .insert_header(("cookie", cookie.clone()))
            .to_request()
    };
    let body = test::call_and_read_body(&app, ask("/whoami", false)).await;
    assert_eq!(&body[..], b"alice");
    let body = test::call_and_read_body(&app, ask("/logout", true)).await;
    assert_eq!(&body[..], b"bye");
    let body = test::call_and_read_body(&app, ask("/whoami", false)).await;
    assert_eq!(&body[..], b"anonymous");
}

#[actix_web::test]
async fn responses_are_cached_in_redis() {
    let Some((_redis, store)) = store("actix_cache_redis").await else {
        return;
    };
    let engine = kv_core::cache::Cache::builder(store)
        .build()
        .expect("cache");
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = runs.clone();
    let app = test::init_service(
        App::new()
            .wrap(kv_actix::CacheMiddleware::new(engine))
            .route(
                "/",
                web::get().to(move || {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    async move {
                        actix_web::HttpResponse::Ok()
                            .insert_header(("cache-control", "max-age=60"))
                            .body(format!("run {n}"))
                    }
                }),
            ),
    )
    .await;
    for expected in ["MISS", "HIT", "HIT"] {
        let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
        assert_eq!(
            response
                .headers()
                .get("x-cache")
                .and_then(|v| v.to_str().ok()),
            Some(expected)
        );
        assert_eq!(test::read_body(response).await, "run 1");
    }
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
}
