//! `RedisStore` against a real `redis-server`: the conformance suite, interop with
//! `redis-cli`, input limits, and surviving a server kill and restart.

use kv_test_support as support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kv_core::testing::{self, RealTimeFixture};
use kv_core::{AnyStore, KvError, RedisStore, Store, Ttl};
use support::{cli_url, owned_server, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_the_conformance_suite() {
    let Some(redis) = server("redis_store_passes_the_conformance_suite") else {
        return;
    };
    let store = RedisStore::builder(redis.url())
        .key_prefix("conf:")
        .build()
        .await
        .expect("connect");
    testing::run_all(&RealTimeFixture::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_store_over_redis_passes_the_conformance_suite() {
    let Some(redis) = server("any_store_over_redis_passes_the_conformance_suite") else {
        return;
    };
    let store = AnyStore::new(RedisStore::connect(&redis.url()).await.expect("connect"));
    assert_eq!(store.backend_name(), "redis");
    testing::run_all(&RealTimeFixture::new(store)).await;
}

#[tokio::test]
async fn values_are_plain_redis_strings_in_both_directions() {
    let Some(redis) = server("values_are_plain_redis_strings_in_both_directions") else {
        return;
    };
    let url = redis.url();
    let prefix = format!("interop{}:", std::process::id());
    let store = RedisStore::builder(&url)
        .key_prefix(&prefix)
        .build()
        .await
        .expect("connect");
    let k = |name: &str| format!("{prefix}{name}");

    // Written by us, read by redis-cli.
    store
        .set(
            "greeting",
            "hello world".into(),
            Some(Duration::from_secs(60)),
        )
        .await
        .expect("set");
    assert_eq!(cli_url(&url, &["GET", &k("greeting")]), "hello world");
    let pttl: i64 = cli_url(&url, &["PTTL", &k("greeting")])
        .parse()
        .expect("pttl");
    assert!((50_000..=60_000).contains(&pttl), "{pttl}");
    assert_eq!(
        store
            .incr_by("hits", 3, Some(Duration::from_secs(30)))
            .await
            .expect("incr"),
        3
    );
    assert_eq!(cli_url(&url, &["GET", &k("hits")]), "3");
    assert_eq!(cli_url(&url, &["TYPE", &k("hits")]), "string");
    let pttl: i64 = cli_url(&url, &["PTTL", &k("hits")]).parse().expect("pttl");
    assert!(
        (20_000..=30_000).contains(&pttl),
        "counter created without its TTL: {pttl}"
    );
    store.set("forever", "x".into(), None).await.expect("set");
    assert_eq!(cli_url(&url, &["PTTL", &k("forever")]), "-1");

    // Written by redis-cli, read by us.
    cli_url(&url, &["SET", &k("from-cli"), "written by redis-cli"]);
    assert_eq!(
        store.get("from-cli").await.expect("get").as_deref(),
        Some(&b"written by redis-cli"[..])
    );
    cli_url(&url, &["SET", &k("n"), "41"]);
    assert_eq!(
        store
            .incr_by("n", 1, Some(Duration::from_secs(5)))
            .await
            .expect("incr"),
        42
    );
    assert_eq!(
        store.ttl("n").await.expect("ttl"),
        Ttl::Persistent,
        "existing key got a TTL"
    );
    cli_url(&url, &["SET", &k("volatile"), "v", "PX", "30000"]);
    assert!(
        matches!(store.ttl("volatile").await.expect("ttl"), Ttl::Expires(d) if d > Duration::from_secs(20))
    );
    // Keys outside the prefix are not ours.
    cli_url(&url, &["SET", "greeting", "someone else's"]);
    assert_eq!(
        store.get("greeting").await.expect("get").as_deref(),
        Some(&b"hello world"[..])
    );
}

#[tokio::test]
async fn counters_beyond_2_pow_53_stay_exact_through_the_ttl_script() {
    let Some(redis) = server("counters_beyond_2_pow_53_stay_exact_through_the_ttl_script") else {
        return;
    };
    let store = RedisStore::builder(redis.url())
        .key_prefix("big:")
        .build()
        .await
        .expect("connect");
    store
        .set("n", Bytes::from((i64::MAX - 2).to_string()), None)
        .await
        .expect("set");
    assert_eq!(
        store
            .incr_by("n", 1, Some(Duration::from_secs(60)))
            .await
            .expect("incr"),
        i64::MAX - 1
    );
    assert_eq!(
        store
            .incr_by("n", 1, Some(Duration::from_secs(60)))
            .await
            .expect("incr"),
        i64::MAX
    );
    assert!(matches!(
        store.incr_by("n", 1, Some(Duration::from_secs(60))).await,
        Err(KvError::Overflow)
    ));
    store.set("s", "abc".into(), None).await.expect("set");
    assert!(matches!(
        store.incr_by("s", 1, Some(Duration::from_secs(60))).await,
        Err(KvError::NotInteger)
    ));
    assert_eq!(store.ttl("s").await.expect("ttl"), Ttl::Persistent);
}

#[tokio::test]
async fn the_ttl_script_is_reloaded_after_script_flush() {
    let Some(redis) = server("the_ttl_script_is_reloaded_after_script_flush") else {
        return;
    };
    let store = RedisStore::builder(redis.url())
        .key_prefix("flush:")
        .build()
        .await
        .expect("connect");
    assert_eq!(
        store
            .incr_by("n", 1, Some(Duration::from_secs(60)))
            .await
            .expect("incr"),
        1
    );
    cli_url(&redis.url(), &["SCRIPT", "FLUSH"]);
    // EVALSHA now answers NOSCRIPT; the store loads the script again and goes on.
    assert_eq!(
        store
            .incr_by("n", 1, Some(Duration::from_secs(60)))
            .await
            .expect("incr"),
        2
    );
}

#[tokio::test]
async fn oversize_input_is_refused_before_anything_is_sent() {
    let Some(redis) = server("oversize_input_is_refused_before_anything_is_sent") else {
        return;
    };
    let store = RedisStore::builder(redis.url())
        .key_prefix("limits:")
        .max_key_len(64)
        .max_value_len(1024)
        .build()
        .await
        .expect("connect");
    let long_key = "k".repeat(65);
    assert!(matches!(
        store.set(&long_key, "v".into(), None).await,
        Err(KvError::InvalidInput(_))
    ));
    assert!(matches!(
        store.get(&long_key).await,
        Err(KvError::InvalidInput(_))
    ));
    assert!(matches!(
        store.incr_by(&long_key, 1, None).await,
        Err(KvError::InvalidInput(_))
    ));
    store.set("k", "old".into(), None).await.expect("set");
    let r = store.set("k", Bytes::from(vec![0u8; 1025]), None).await;
    assert!(matches!(r, Err(KvError::InvalidInput(_))), "{r:?}");
    assert_eq!(
        store.get("k").await.expect("get").as_deref(),
        Some(&b"old"[..])
    );
    assert_eq!(
        cli_url(&redis.url(), &["EXISTS", &format!("limits:{long_key}")]),
        "0"
    );
}

#[tokio::test]
async fn bad_urls_and_dead_servers_are_typed_errors() {
    let r = RedisStore::connect("not a url").await;
    assert!(matches!(r, Err(KvError::InvalidInput(_))), "{r:?}");
    let r = RedisStore::builder("redis://127.0.0.1:1")
        .command_timeout(Duration::ZERO)
        .build()
        .await;
    assert!(matches!(r, Err(KvError::InvalidInput(_))), "{r:?}");
    let port = support::free_port();
    let start = Instant::now();
    let r = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .await;
    assert!(matches!(r, Err(KvError::Unavailable(_))), "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_while_redis_is_down_and_recover_when_it_is_back() {
    let Some(mut redis) =
        owned_server("calls_fail_fast_while_redis_is_down_and_recover_when_it_is_back")
    else {
        return;
    };
    let timeout = Duration::from_millis(300);
    let store = RedisStore::builder(redis.url())
        .key_prefix("fault:")
        .command_timeout(timeout)
        .build()
        .await
        .expect("connect");
    store.set("k", "v".into(), None).await.expect("set");

    redis.kill();
    // Every method, several rounds: each answers Unavailable within the timeout.
    for round in 0..3 {
        let calls: Vec<(&str, Result<(), KvError>, Duration)> = vec![
            timed("get", store.get("k")).await,
            timed("set", store.set("k", "v2".into(), None)).await,
            timed("set_nx", store.set_nx("k2", "v".into(), None)).await,
            timed("del", store.del("k")).await,
            timed("expire", store.expire("k", Duration::from_secs(5))).await,
            timed("ttl", store.ttl("k")).await,
            timed("incr_by", store.incr_by("n", 1, None)).await,
            timed(
                "incr_by+ttl",
                store.incr_by("n", 1, Some(Duration::from_secs(5))),
            )
            .await,
        ];
        for (name, result, took) in calls {
            assert!(
                matches!(result, Err(KvError::Unavailable(_))),
                "round {round} {name}: {result:?}"
            );
            assert!(
                took <= timeout + Duration::from_millis(200),
                "round {round} {name} took {took:?}"
            );
        }
    }

    redis.restart();
    // Same store, no rebuild: calls succeed again once the connection is re-established.
    let start = Instant::now();
    loop {
        match store.set("k", "back".into(), None).await {
            Ok(()) => break,
            Err(e) => {
                assert!(e.is_retryable(), "{e:?}");
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "store did not recover: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(
        store.get("k").await.expect("get").as_deref(),
        Some(&b"back"[..])
    );
    assert_eq!(
        store
            .incr_by("n", 5, Some(Duration::from_secs(60)))
            .await
            .expect("incr"),
        5
    );
    assert!(matches!(
        store.ttl("n").await.expect("ttl"),
        Ttl::Expires(_)
    ));
}

async fn timed<T>(
    name: &'static str,
    fut: impl std::future::Future<Output = kv_core::Result<T>>,
) -> (&'static str, Result<(), KvError>, Duration) {
    let start = Instant::now();
    let r = fut.await.map(drop);
    (name, r, start.elapsed())
}

#[tokio::test]
async fn debug_output_hides_the_url_password() {
    let Some(redis) = owned_server("debug_output_hides_the_url_password") else {
        return;
    };
    // A builder holding a URL with a password never prints it.
    let builder = RedisStore::builder(format!("redis://:hunter2@127.0.0.1:{}", redis.port));
    assert!(!format!("{builder:?}").contains("hunter2"));
    let store = RedisStore::connect(&redis.url()).await.expect("connect");
    assert!(!format!("{store:?}").contains("127.0.0.1"));
}

#[tokio::test]
async fn any_store_connect_picks_the_backend_from_the_url() {
    let memory = AnyStore::connect("memory://").await.expect("memory");
    assert_eq!(memory.backend_name(), "memory");
    for bad in ["", "postgres://localhost", "memcached://x", "nonsense"] {
        let r = AnyStore::connect(bad).await;
        assert!(matches!(r, Err(KvError::InvalidInput(_))), "{bad:?}: {r:?}");
    }
    let Some(redis) = server("any_store_connect_picks_the_backend_from_the_url") else {
        return;
    };
    let store = AnyStore::connect(&redis.url()).await.expect("redis");
    assert_eq!(store.backend_name(), "redis");
    store
        .set("any-connect", "v".into(), None)
        .await
        .expect("set");
    assert_eq!(cli_url(&redis.url(), &["GET", "any-connect"]), "v");
}

/// A connection that stops answering without being closed (a frozen proxy, a blackholed
/// address after a failover) is replaced: after a few timeouts the store opens a new
/// connection and recovers, while Redis stays reachable on new connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_replaced() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Some(redis) = server("a_silent_connection_is_replaced") else {
        return;
    };
    let target = redis
        .url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // A proxy: connections accepted in generation g go silent (kept open, nothing
    // forwarded) once the generation moves past g.
    let generation = Arc::new(AtomicUsize::new(0));
    let gen_proxy = generation.clone();
    tokio::spawn(async move {
        let mut parked = Vec::new();
        while let Ok((mut client, _)) = listener.accept().await {
            let mine = gen_proxy.load(Ordering::SeqCst);
            let gen_conn = gen_proxy.clone();
            let target = target.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = async {
                        while gen_conn.load(Ordering::SeqCst) == mine {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    } => {}
                }
                let _ = tx.send((client, server));
            });
            parked.push(rx);
        }
    });
    let store = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .key_prefix("silent:")
        .command_timeout(Duration::from_millis(200))
        .build()
        .await
        .expect("connect through the proxy");
    store.set("k", "v".into(), None).await.expect("set");
    generation.fetch_add(1, Ordering::SeqCst); // the connection in use goes silent
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    let mut failures = 0;
    loop {
        match store.get("k").await {
            Ok(v) => {
                assert_eq!(v.as_deref(), Some(&b"v"[..]));
                break;
            }
            Err(e) => {
                assert!(e.is_retryable(), "{e:?}");
                failures += 1;
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "never recovered ({failures} failed calls)"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(failures >= 1, "the silent connection was never used");
}

#[tokio::test]
async fn huge_timeouts_and_retries_are_not_a_panic() {
    let Some(redis) = server("huge_timeouts_and_retries_are_not_a_panic") else {
        return;
    };
    let store = RedisStore::builder(redis.url())
        .connect_timeout(Duration::MAX)
        .reconnect_retries(usize::MAX)
        .build()
        .await;
    assert!(store.is_ok(), "{store:?}");
}
