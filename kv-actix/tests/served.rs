//! The actix middlewares behind a real `HttpServer` (the h1 dispatcher, not
//! `actix_web::test`): it never polls an empty body, so a cacheable empty response must be
//! stored without waiting for the body's end. Behind `RemoteLike` every lookup and store
//! write is a future (as on Redis): the last chunk then waits for the write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};
use kv_core::cache::Cache;
use kv_core::testing::RemoteLike;
use kv_core::{MemoryStore, Store};

#[actix_web::test]
async fn empty_cacheable_responses_are_stored_behind_a_real_server() {
    served(MemoryStore::new()).await;
}

#[actix_web::test]
async fn responses_are_stored_behind_a_real_server_on_a_remote_store() {
    served(RemoteLike(MemoryStore::new())).await;
}

async fn served(store: impl Store) {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let engine = Cache::builder(store).build().expect("cache");
    let server = HttpServer::new(move || {
        let counter = Arc::clone(&counter);
        App::new()
            .wrap(kv_actix::CacheMiddleware::new(engine.clone()))
            .route(
                "/empty",
                web::get().to(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async {
                        HttpResponse::NoContent()
                            .insert_header(("cache-control", "max-age=60"))
                            .finish()
                    }
                }),
            )
            .route(
                "/full",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .insert_header(("cache-control", "max-age=60"))
                        .body("full body")
                }),
            )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let addr = server.addrs()[0];
    let handle = server.run();
    let server_handle = handle.handle();
    actix_web::rt::spawn(handle);

    let client = reqwest::Client::new();
    for path in ["/empty", "/full"] {
        let mut labels = Vec::new();
        for _ in 0..3 {
            let response = client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .expect("send");
            labels.push(
                response
                    .headers()
                    .get("x-cache")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned(),
            );
            response.bytes().await.expect("body");
        }
        assert_eq!(labels, ["MISS", "HIT", "HIT"], "{path}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    server_handle.stop(true).await;
}
