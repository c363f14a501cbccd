//! `RedisStore` metrics (feature `metrics`) against a real `redis-server`: every call is
//! timed under its store method, failures are counted by kind, and a replacement
//! connection shows up as a reconnect. The binary holds this one test: the recorder is
//! process-wide.

use kv_test_support as support;

use std::time::{Duration, Instant};

use kv_core::{RedisStore, Store};
use support::metrics_capture::{self, value};
use support::{RedisServer, available_for, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_errors_and_reconnects_show_up_in_the_store_metrics() {
    if !available_for("calls_errors_and_reconnects_show_up_in_the_store_metrics") {
        return;
    }
    metrics_capture::install();
    let mut redis = RedisServer::start(free_port(), &["--requirepass", "first-pw"]);
    let store = RedisStore::builder(format!("redis://:first-pw@127.0.0.1:{}", redis.port))
        .command_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("connect");

    store.set("k", "v".into(), None).await.expect("set");
    for _ in 0..3 {
        store.get("k").await.expect("get");
    }
    store
        .incr_by("n", 1, Some(Duration::from_secs(5)))
        .await
        .expect("incr");
    let m = metrics_capture::snapshot();
    let calls = |op: &str| {
        value(
            &m,
            "kv_store_operation_duration_seconds",
            &[("backend", "redis"), ("operation", op)],
        )
    };
    assert_eq!(
        (calls("set"), calls("get"), calls("incr_by")),
        (1.0, 3.0, 1.0)
    );

    // A type error is counted as such.
    let before = metrics_capture::snapshot();
    store
        .incr_by("k", 1, None)
        .await
        .expect_err("not an integer");
    let after = metrics_capture::snapshot();
    let errors = |m: &[_], kind: &str| {
        value(
            m,
            "kv_store_errors_total",
            &[("backend", "redis"), ("kind", kind)],
        )
    };
    assert_eq!(
        errors(&after, "not_integer") - errors(&before, "not_integer"),
        1.0
    );

    // A refused reconnect (rotated password) and the replacement that works once the
    // password is rolled back.
    let admin = |pw: &str, args: &[&str]| {
        let mut all = vec!["--no-auth-warning", "-a", pw];
        all.extend_from_slice(args);
        redis.cli(&all)
    };
    admin("first-pw", &["CONFIG", "SET", "requirepass", "second-pw"]);
    admin("second-pw", &["CLIENT", "KILL", "TYPE", "normal"]);
    for _ in 0..5 {
        let _ = store.get("k").await;
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    admin("second-pw", &["CONFIG", "SET", "requirepass", "first-pw"]);
    let started = Instant::now();
    while store.get("k").await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(5), "no recovery");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let m = metrics_capture::snapshot();
    let reconnects = |outcome: &str| {
        value(
            &m,
            "kv_store_reconnects_total",
            &[("backend", "redis"), ("outcome", outcome)],
        )
    };
    assert!(
        reconnects("failed") >= 1.0,
        "the refused reconnect is counted"
    );
    assert!(
        reconnects("ok") >= 1.0,
        "the replacement connection is counted"
    );
    assert!(errors(&m, "backend") + errors(&m, "unavailable") >= 1.0);

    // A dead server: calls fail `unavailable` (or time out), and are counted.
    let before = metrics_capture::snapshot();
    redis.kill();
    for _ in 0..3 {
        store.get("k").await.expect_err("down");
    }
    let after = metrics_capture::snapshot();
    let down = (errors(&after, "unavailable") + errors(&after, "timeout"))
        - (errors(&before, "unavailable") + errors(&before, "timeout"));
    assert_eq!(down, 3.0);
    // No label carries a key or a password.
    for metric in &after {
        for (_, v) in &metric.labels {
            assert!(v != "k" && v != "n" && !v.contains("pw"), "{metric:?}");
        }
    }
}
