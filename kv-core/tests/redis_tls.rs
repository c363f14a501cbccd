//! `RedisStore` over TLS (`rediss://`, feature `redis-tls`) against a TLS-only
//! `redis-server` whose certificates a CA generated for the test signed.

use kv_test_support as support;

use std::time::{Duration, Instant};

use kv_core::store::redis::driver;
use kv_core::{KvError, RedisStore, Store};
use support::{RedisServer, TlsFiles, available_for, free_port};

fn tls_server(test: &str, verify_clients: bool) -> Option<(TlsFiles, RedisServer)> {
    if !available_for(test) {
        return None;
    }
    let files = TlsFiles::generate(test)?;
    let server = RedisServer::start_tls(free_port(), &files, verify_clients, &[]);
    Some((files, server))
}

#[tokio::test]
async fn rediss_with_the_private_ca_works_and_plain_text_is_refused() {
    let Some((files, redis)) = tls_server(
        "rediss_with_the_private_ca_works_and_plain_text_is_refused",
        false,
    ) else {
        return;
    };
    let store = RedisStore::builder(format!("rediss://127.0.0.1:{}", redis.port))
        .ca_certificate_pem(TlsFiles::read(&files.ca))
        .key_prefix("tls:")
        .build()
        .await
        .expect("TLS connect with the private CA");
    store
        .set("k", "over tls".into(), Some(Duration::from_secs(60)))
        .await
        .expect("set");
    assert_eq!(
        store.get("k").await.expect("get").as_deref(),
        Some(&b"over tls"[..])
    );
    assert_eq!(
        store
            .incr_by("n", 2, Some(Duration::from_secs(5)))
            .await
            .expect("incr"),
        2
    );

    // The port speaks TLS only: a plain-text client gets nowhere (and no hang).
    let started = Instant::now();
    let plain = RedisStore::builder(format!("redis://127.0.0.1:{}", redis.port))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .await;
    assert!(plain.is_err(), "plain text must not work on a TLS port");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_wrong_ca_is_a_clear_error_at_connect_not_a_hang() {
    let Some((files, redis)) =
        tls_server("a_wrong_ca_is_a_clear_error_at_connect_not_a_hang", false)
    else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let attempts = [
        (
            "an unrelated CA",
            RedisStore::builder(&url).ca_certificate_pem(TlsFiles::read(&files.other_ca)),
        ),
        ("the system roots", RedisStore::builder(&url)),
    ];
    for (what, builder) in attempts {
        let started = Instant::now();
        let err = builder
            .connect_timeout(Duration::from_millis(500))
            .build()
            .await
            .expect_err(what);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{what}: no hang"
        );
        let text = err.to_string().to_lowercase();
        eprintln!("{what}: {err}");
        assert!(
            text.contains("certificate") || text.contains("issuer"),
            "{what}: the error names the certificate problem: {text}"
        );
    }
    // Garbage instead of a PEM certificate is refused as bad input, before connecting.
    let err = RedisStore::builder(&url)
        .ca_certificate_pem(b"-----BEGIN CERTIFICATE-----\nnot base64\n".to_vec())
        .build()
        .await
        .expect_err("bad PEM");
    assert!(
        !matches!(err, KvError::NotInteger | KvError::Overflow),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_the_server_checks_clients() {
    let Some((files, redis)) = tls_server(
        "a_client_certificate_is_presented_when_the_server_checks_clients",
        true,
    ) else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let without = RedisStore::builder(&url)
        .ca_certificate_pem(TlsFiles::read(&files.ca))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .await;
    // The server closes the handshake of a client without a certificate: either the
    // connect or the first call fails.
    if let Ok(store) = without {
        assert!(
            store.get("k").await.is_err(),
            "no client certificate, no access"
        );
    }

    let store = RedisStore::builder(&url)
        .ca_certificate_pem(TlsFiles::read(&files.ca))
        .client_certificate_pem(
            TlsFiles::read(&files.client_cert),
            TlsFiles::read(&files.client_key),
        )
        .build()
        .await
        .expect("mutual TLS");
    store.set("k", "mtls".into(), None).await.expect("set");
    assert_eq!(
        store.get("k").await.expect("get").as_deref(),
        Some(&b"mtls"[..])
    );
    let printed = format!("{store:?}");
    assert!(!printed.contains("PRIVATE KEY"), "{printed}");
}

#[tokio::test]
async fn a_ready_client_can_be_handed_in() {
    let Some((files, redis)) = tls_server("a_ready_client_can_be_handed_in", false) else {
        return;
    };
    let client = driver::Client::build_with_tls(
        format!("rediss://127.0.0.1:{}", redis.port),
        driver::TlsCertificates {
            client_tls: None,
            root_cert: Some(TlsFiles::read(&files.ca)),
        },
    )
    .expect("client");
    let store = RedisStore::builder_from_client(client)
        .key_prefix("own:")
        .build()
        .await
        .expect("connect through the caller's client");
    store.set("k", "v".into(), None).await.expect("set");
    assert_eq!(
        store.get("k").await.expect("get").as_deref(),
        Some(&b"v"[..])
    );
}
