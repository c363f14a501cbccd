//! `RedisStore` against a password-protected and an ACL-protected `redis-server`: the
//! credentials work, wrong ones are a clear error, the password never shows in `Debug`
//! or in logs, and a reconnect refused by AUTH is retried until the server takes it.

use kv_test_support as support;

use std::time::{Duration, Instant};

use kv_core::{KvError, RedisStore, Store};
use support::{RedisServer, available_for, free_port};

const PASSWORD: &str = "s3cret-Pa55word";

/// A `redis-server` whose default user needs `PASSWORD` and with an ACL user
/// `alice` (password `wonderland-pw`) allowed every command on `app:*` keys only.
fn protected_server(test: &str) -> Option<RedisServer> {
    available_for(test).then(|| {
        RedisServer::start(
            free_port(),
            &[
                "--requirepass",
                PASSWORD,
                "--user",
                "alice",
                "on",
                ">wonderland-pw",
                "~app:*",
                "+@all",
            ],
        )
    })
}

fn cli_as_admin(server: &RedisServer, password: &str, args: &[&str]) -> String {
    let mut all = vec!["--no-auth-warning", "-a", password];
    all.extend_from_slice(args);
    server.cli(&all)
}

#[tokio::test]
async fn password_and_acl_user_in_the_url_connect() {
    let Some(redis) = protected_server("password_and_acl_user_in_the_url_connect") else {
        return;
    };
    let port = redis.port;

    let admin = RedisStore::connect(&format!("redis://:{PASSWORD}@127.0.0.1:{port}"))
        .await
        .expect("default user with its password");
    admin.set("k", "v".into(), None).await.expect("set");
    assert_eq!(
        admin.get("k").await.expect("get").as_deref(),
        Some(&b"v"[..])
    );

    let alice = RedisStore::builder(format!("redis://alice:wonderland-pw@127.0.0.1:{port}"))
        .key_prefix("app:")
        .build()
        .await
        .expect("ACL user");
    alice.set("k", "alice's".into(), None).await.expect("set");
    assert_eq!(
        cli_as_admin(&redis, PASSWORD, &["GET", "app:k"]),
        "alice's",
        "alice's writes land under her prefix"
    );

    // The ACL holds: outside `app:*` alice is refused, as a typed error, not a panic.
    let outside = RedisStore::connect(&format!("redis://alice:wonderland-pw@127.0.0.1:{port}"))
        .await
        .expect("connect");
    let err = outside.get("other").await.expect_err("NOPERM");
    assert!(matches!(err, KvError::Backend(_)), "{err:?}");
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_a_clear_error_at_connect() {
    let Some(redis) = protected_server("wrong_or_missing_credentials_are_a_clear_error_at_connect")
    else {
        return;
    };
    let port = redis.port;
    for url in [
        format!("redis://:not-the-password@127.0.0.1:{port}"),
        format!("redis://alice:guess@127.0.0.1:{port}"),
    ] {
        let started = Instant::now();
        let err = RedisStore::connect(&url).await.expect_err("refused");
        assert!(started.elapsed() < Duration::from_secs(3), "no hang");
        let text = err.to_string();
        assert!(
            text.to_lowercase().contains("auth") || text.contains("WRONGPASS"),
            "names the cause: {text}"
        );
        assert!(
            !text.contains("not-the-password") && !text.contains("guess"),
            "{text}"
        );
    }
    // No password at all: the connection opens (Redis accepts it), every call is refused
    // with a typed error.
    let anonymous = RedisStore::connect(&format!("redis://127.0.0.1:{port}")).await;
    if let Ok(store) = anonymous {
        let err = store.get("k").await.expect_err("NOAUTH");
        assert!(
            !matches!(err, KvError::NotInteger | KvError::Overflow),
            "{err:?}"
        );
    }
}

/// The reconnect after a dropped connection is refused by AUTH (the password was rotated
/// on the server): the `redis` crate's connection manager never retries after a non-IO
/// failure, so without our own retry the store would fail forever. It recovers once the
/// server takes the password again; nothing it logs or prints holds the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_refused_by_auth_is_retried_until_it_succeeds() {
    let Some(redis) = protected_server("a_reconnect_refused_by_auth_is_retried_until_it_succeeds")
    else {
        return;
    };
    let logs = support::CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", redis.port);
    let store = RedisStore::builder(&url)
        .command_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("connect");
    store.set("k", "1".into(), None).await.expect("set");

    // Rotate the password on the server and drop every client connection: our
    // reconnect now presents a password the server refuses.
    cli_as_admin(
        &redis,
        PASSWORD,
        &["CONFIG", "SET", "requirepass", "rotated-pw"],
    );
    cli_as_admin(&redis, "rotated-pw", &["CLIENT", "KILL", "TYPE", "normal"]);
    let mut refused = 0;
    for _ in 0..5 {
        if store.get("k").await.is_err() {
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused > 0, "the rotated password must be refused");

    // The old password is valid again (a rollback): the store recovers by itself.
    cli_as_admin(
        &redis,
        "rotated-pw",
        &["CONFIG", "SET", "requirepass", PASSWORD],
    );
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(5) {
        match store.get("k").await {
            Ok(v) => {
                last = Some(v);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    assert_eq!(
        last.flatten().as_deref(),
        Some(&b"1"[..]),
        "recovered within 5 s (took {:?})",
        started.elapsed()
    );

    let printed = format!("{store:?} {:?}", RedisStore::builder(&url));
    let logged = logs.text();
    for text in [&printed, &logged] {
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
        assert!(!text.contains("rotated-pw"), "password leaked: {text}");
    }
    assert!(
        logged.contains("RedisStore"),
        "the failed reconnect is logged: {logged}"
    );
}
