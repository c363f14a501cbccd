//! A one-minute tour of the kv store and rate limiter, no setup.
//!
//! Run with `cargo run -p quickstart` (the embedded store), or
//! `KV_STORE_URL=redis://127.0.0.1:6379 cargo run -p quickstart` (a Redis you run).

use std::net::SocketAddr;
use std::time::Duration;

use kv_core::rate_limit::{KeySource, Policy, RateLimiter, Verdict};
use kv_core::{AnyStore, Store, Ttl};

#[tokio::main(flavor = "current_thread")]
async fn main() -> kv_core::Result<()> {
    let url = std::env::var("KV_STORE_URL").unwrap_or_else(|_| "memory://".to_owned());
    let store = AnyStore::connect(&url).await?;
    println!("store: {}", store.backend_name());

    store
        .set("greeting", "hello".into(), Some(Duration::from_secs(60)))
        .await?;
    let greeting = store.get("greeting").await?;
    println!(
        "GET greeting -> {:?}",
        greeting.as_deref().map(String::from_utf8_lossy)
    );
    if let Ttl::Expires(left) = store.ttl("greeting").await? {
        println!("PTTL greeting -> {} ms", left.as_millis());
    }
    for _ in 0..3 {
        println!(
            "INCRBY visits 1 -> {}",
            store
                .incr_by("visits", 1, Some(Duration::from_secs(60)))
                .await?
        );
    }

    let limiter = RateLimiter::builder(store)
        .policy(Policy::fixed_window("demo", 3, Duration::from_secs(10)).key(KeySource::peer_ip()))
        .build()?;
    let mut request = http::Request::new(());
    request
        .extensions_mut()
        .insert(SocketAddr::from(([127, 0, 0, 1], 5555)));
    for i in 1..=4 {
        match limiter.check(&request).await {
            Verdict::Allow { headers, .. } => println!("request {i}: allowed {headers:?}"),
            Verdict::Reject { answer, .. } => {
                println!("request {i}: {} {:?}", answer.status, answer.headers)
            }
        }
    }
    Ok(())
}
