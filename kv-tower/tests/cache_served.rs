//! `CacheLayer` behind a real HTTP/1 server (axum::serve over TCP): hyper knows a
//! handler's body length from its size hint and stops polling once that many bytes went
//! out, so the entry must be stored without waiting for an end-of-stream poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use kv_core::MemoryStore;
use kv_core::cache::Cache;
use kv_tower::CacheLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_body_served_by_hyper_is_stored_and_hit() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let handler = move || {
        let counter = Arc::clone(&counter);
        async move {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            (
                [("cache-control", "public, max-age=60")],
                format!("run {n}"),
            )
        }
    };
    let cache = Cache::builder(MemoryStore::new()).build().expect("cache");
    let app = Router::new()
        .route("/", get(handler))
        .layer(CacheLayer::new(cache));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let client = reqwest::Client::new();
    let mut labels = Vec::new();
    for _ in 0..3 {
        let response = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .expect("send");
        labels.push(
            response.headers()["x-cache"]
                .to_str()
                .expect("ascii")
                .to_owned(),
        );
        assert_eq!(response.text().await.expect("body"), "run 1");
    }
    assert_eq!(labels, ["MISS", "HIT", "HIT"]);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
