//! Tag purge across replicas: two caches sharing one Redis, each with a near cache; a
//! purge by one is seen at once by the other, whose near cache holds the entry.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use kv_core::RedisStore;
use kv_core::cache::{Cache, Lookup, Outcome};
use kv_test_support as support;

fn request(path: &str) -> http::Request<()> {
    let mut r = http::Request::new(());
    *r.method_mut() = Method::GET;
    *r.uri_mut() = format!("http://example.com{path}").parse().expect("uri");
    r
}

async fn replica(url: &str, prefix: &str) -> Cache<RedisStore> {
    let store = RedisStore::connect(url).await.expect("redis");
    Cache::builder(store)
        .key_prefix(prefix)
        .tag_header(Some(HeaderName::from_static("surrogate-key")))
        .near_cache(100, Duration::from_secs(60))
        .build()
        .expect("cache")
}

/// A lookup; on a miss, the origin answers `body` tagged `tags`. Whether it was a hit.
async fn get(cache: &Cache<RedisStore>, path: &str, tags: &str, body: &'static [u8]) -> bool {
    match cache.lookup(&request(path)).await {
        Lookup::Hit { .. } => true,
        Lookup::Forward(f) => {
            let mut h = HeaderMap::new();
            h.insert("cache-control", HeaderValue::from_static("max-age=600"));
            h.insert("surrogate-key", HeaderValue::from_str(tags).expect("tags"));
            if let Outcome::Record(mut rec) = f.response(StatusCode::OK, &mut h).await {
                rec.push(body);
                rec.finish().await;
            }
            assert!(h.get("surrogate-key").is_none());
            false
        }
    }
}

#[tokio::test]
async fn a_tag_purge_reaches_every_replica_and_its_near_cache() {
    let Some(redis) = support::server("a_tag_purge_reaches_every_replica") else {
        return;
    };
    let prefix = format!("kv-tags-test:{}:", std::process::id());
    let a = replica(&redis.url(), &prefix).await;
    let b = replica(&redis.url(), &prefix).await;

    assert!(!get(&a, "/p1", "product-1 all", b"one").await);
    assert!(!get(&a, "/p2", "product-2 all", b"two").await);
    // B reads them from Redis (into its near cache), then from its near cache.
    assert!(get(&b, "/p1", "", b"").await);
    assert!(get(&b, "/p1", "", b"").await);
    assert!(get(&b, "/p2", "", b"").await);

    // One replica purges; the other sees it at once, near cache and all.
    assert_eq!(a.purge_tag("product-1").await.expect("purge"), 1);
    assert!(
        !get(&b, "/p1", "product-1 all", b"one again").await,
        "purged on B"
    );
    assert!(get(&b, "/p2", "", b"").await, "another tag untouched");
    assert!(get(&a, "/p1", "", b"").await, "A gets B's refill");

    b.purge_tag("all").await.expect("purge");
    assert!(!get(&a, "/p1", "all", b"x").await);
    assert!(!get(&a, "/p2", "all", b"y").await);
}
