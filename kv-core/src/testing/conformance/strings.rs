//! The string commands: `GET`, `SET`, `SET NX`, `DEL`, `PEXPIRE`, `PTTL`, `INCRBY`.

use std::time::Duration;

use bytes::Bytes;

use super::{Keys, is_invalid_input};
use crate::testing::Fixture;
use crate::{KvError, MAX_TTL, Store, Ttl};

pub(super) async fn get_missing_is_none<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    assert_eq!(s.get(&k.k("nope")).await.ok(), Some(None));
    assert_eq!(s.ttl(&k.k("nope")).await.ok(), Some(Ttl::Missing));
}

pub(super) async fn set_then_get_round_trips_any_bytes<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let values: Vec<Bytes> = vec![
        Bytes::from_static(b"hello"),
        Bytes::new(),
        Bytes::from_static(&[0, 255, 10, 13, 0, 128]),
        Bytes::from(vec![7u8; 100_000]),
        Bytes::from_static("κλειδί ✓".as_bytes()),
    ];
    for (i, v) in values.iter().enumerate() {
        let key = k.k(&format!("v{i}"));
        s.set(&key, v.clone(), None).await.expect("set");
        assert_eq!(
            s.get(&key).await.expect("get").as_ref(),
            Some(v),
            "value {i}"
        );
    }
    for name in [
        "with space",
        "with:colons:{tag}",
        "new\nline",
        "ünïcödé",
        "",
    ] {
        let key = k.k(name);
        s.set(&key, Bytes::from(name.to_owned()), None)
            .await
            .expect("set");
        assert_eq!(
            s.get(&key).await.expect("get"),
            Some(Bytes::from(name.to_owned())),
            "{name:?}"
        );
    }
}

pub(super) async fn keys_are_independent<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    s.set(&k.k("a"), "1".into(), None).await.expect("set a");
    s.set(&k.k("b"), "2".into(), None).await.expect("set b");
    assert!(s.del(&k.k("a")).await.expect("del"));
    assert_eq!(
        s.get(&k.k("b")).await.expect("get").as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(s.get(&k.k("a")).await.expect("get"), None);
}

pub(super) async fn set_overwrites_value_and_ttl<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    s.set(&key, "one".into(), Some(Duration::from_secs(100)))
        .await
        .expect("set");
    assert!(matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(_)));
    // SET without a TTL makes the key persistent again (no KEEPTTL).
    s.set(&key, "two".into(), None).await.expect("set");
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
    assert_eq!(
        s.get(&key).await.expect("get").as_deref(),
        Some(&b"two"[..])
    );
    s.set(&key, "three".into(), Some(Duration::from_secs(50)))
        .await
        .expect("set");
    match s.ttl(&key).await.expect("ttl") {
        Ttl::Expires(left) => assert!(
            left <= Duration::from_secs(50) && left > Duration::from_secs(40),
            "{left:?}"
        ),
        other => panic!("expected Expires, got {other:?}"),
    }
    assert_eq!(
        s.get(&key).await.expect("get").as_deref(),
        Some(&b"three"[..])
    );
}

pub(super) async fn set_refuses_zero_and_too_long_ttl_and_keeps_the_old_value<F: Fixture>(
    f: &F,
    k: &Keys,
) {
    let s = f.store();
    let key = k.k("x");
    s.set(&key, "kept".into(), None).await.expect("set");
    assert!(is_invalid_input(
        &s.set(&key, "new".into(), Some(Duration::ZERO)).await
    ));
    assert!(is_invalid_input(
        &s.set(&key, "new".into(), Some(MAX_TTL + Duration::from_secs(1)))
            .await
    ));
    assert!(is_invalid_input(
        &s.set_nx(&k.k("fresh"), "new".into(), Some(Duration::ZERO))
            .await
    ));
    assert_eq!(
        s.get(&key).await.expect("get").as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
    assert_eq!(s.get(&k.k("fresh")).await.expect("get"), None);
}

pub(super) async fn set_with_ttl_expires<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    let ttl = f.short_ttl();
    s.set(&key, "v".into(), Some(ttl)).await.expect("set");
    assert_eq!(s.get(&key).await.expect("get").as_deref(), Some(&b"v"[..]));
    match s.ttl(&key).await.expect("ttl") {
        Ttl::Expires(left) => assert!(left <= ttl && left > Duration::ZERO, "{left:?}"),
        other => panic!("expected Expires, got {other:?}"),
    }
    f.advance(ttl + ttl / 5).await;
    assert_eq!(
        s.get(&key).await.expect("get"),
        None,
        "expired key still visible"
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Missing);
    assert!(
        !s.del(&key).await.expect("del"),
        "DEL of an expired key counts it"
    );
}

pub(super) async fn set_nx_stores_only_without_a_live_key<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    let ttl = f.short_ttl();
    assert!(
        s.set_nx(&key, "first".into(), Some(ttl))
            .await
            .expect("set_nx")
    );
    assert!(!s.set_nx(&key, "second".into(), None).await.expect("set_nx"));
    assert_eq!(
        s.get(&key).await.expect("get").as_deref(),
        Some(&b"first"[..])
    );
    assert!(
        matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(_)),
        "losing SET NX changed the TTL"
    );
    f.advance(ttl + ttl / 5).await;
    assert!(
        s.set_nx(&key, "third".into(), None)
            .await
            .expect("set_nx over expired")
    );
    assert_eq!(
        s.get(&key).await.expect("get").as_deref(),
        Some(&b"third"[..])
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
}

pub(super) async fn del_reports_live_keys_only<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    assert!(!s.del(&key).await.expect("del missing"));
    s.set(&key, "v".into(), None).await.expect("set");
    assert!(s.del(&key).await.expect("del"));
    assert!(!s.del(&key).await.expect("del again"));
    assert_eq!(s.get(&key).await.expect("get"), None);
}

pub(super) async fn expire_sets_ttl_on_live_keys_only<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    let ttl = f.short_ttl();
    assert!(!s.expire(&key, ttl).await.expect("expire missing"));
    assert_eq!(
        s.get(&key).await.expect("get"),
        None,
        "EXPIRE created a key"
    );
    s.set(&key, "v".into(), None).await.expect("set");
    assert!(is_invalid_input(
        &s.expire(&key, MAX_TTL + Duration::from_secs(1)).await
    ));
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
    assert!(s.expire(&key, ttl).await.expect("expire"));
    match s.ttl(&key).await.expect("ttl") {
        Ttl::Expires(left) => assert!(left <= ttl && left > Duration::ZERO, "{left:?}"),
        other => panic!("expected Expires, got {other:?}"),
    }
    assert_eq!(s.get(&key).await.expect("get").as_deref(), Some(&b"v"[..]));
    f.advance(ttl + ttl / 5).await;
    assert_eq!(s.get(&key).await.expect("get"), None);
    assert!(!s.expire(&key, ttl).await.expect("expire expired"));
}

pub(super) async fn expire_zero_deletes<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("x");
    s.set(&key, "v".into(), None).await.expect("set");
    assert!(s.expire(&key, Duration::ZERO).await.expect("expire 0"));
    assert_eq!(s.get(&key).await.expect("get"), None);
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Missing);
    assert!(
        !s.expire(&key, Duration::ZERO)
            .await
            .expect("expire 0 missing")
    );
}

pub(super) async fn ttl_reports_missing_persistent_expires<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    assert_eq!(s.ttl(&k.k("missing")).await.expect("ttl"), Ttl::Missing);
    s.set(&k.k("persistent"), "v".into(), None)
        .await
        .expect("set");
    assert_eq!(
        s.ttl(&k.k("persistent")).await.expect("ttl"),
        Ttl::Persistent
    );
    s.set(&k.k("volatile"), "v".into(), Some(Duration::from_secs(30)))
        .await
        .expect("set");
    match s.ttl(&k.k("volatile")).await.expect("ttl") {
        Ttl::Expires(left) => assert!(
            left <= Duration::from_secs(30) && left > Duration::from_secs(20),
            "{left:?}"
        ),
        other => panic!("expected Expires, got {other:?}"),
    }
    // Millisecond precision: a TTL under one millisecond still leaves a live key.
    s.set(
        &k.k("tiny"),
        "v".into(),
        Some(Duration::from_secs(5) + Duration::from_micros(1)),
    )
    .await
    .expect("set");
    assert!(matches!(
        s.ttl(&k.k("tiny")).await.expect("ttl"),
        Ttl::Expires(_)
    ));
}

pub(super) async fn incr_by_creates_counts_and_renders_decimal<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("n");
    assert_eq!(s.incr_by(&key, 5, None).await.expect("incr"), 5);
    assert_eq!(s.incr_by(&key, 1, None).await.expect("incr"), 6);
    assert_eq!(s.incr_by(&key, -10, None).await.expect("incr"), -4);
    assert_eq!(s.incr_by(&key, 0, None).await.expect("incr"), -4);
    assert_eq!(s.get(&key).await.expect("get").as_deref(), Some(&b"-4"[..]));
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
    assert_eq!(s.incr_by(&k.k("neg"), -3, None).await.expect("incr"), -3);
}

pub(super) async fn incr_by_sets_ttl_only_on_creation<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("n");
    let ttl = f.short_ttl();
    assert_eq!(s.incr_by(&key, 1, Some(ttl)).await.expect("incr"), 1);
    let first = match s.ttl(&key).await.expect("ttl") {
        Ttl::Expires(left) => left,
        other => panic!("counter created without its TTL: {other:?}"),
    };
    assert!(first <= ttl);
    f.advance(ttl / 2).await;
    // An existing key keeps its TTL: a longer ttl_if_new does not extend it.
    assert_eq!(s.incr_by(&key, 1, Some(ttl * 10)).await.expect("incr"), 2);
    match s.ttl(&key).await.expect("ttl") {
        Ttl::Expires(left) => assert!(left < first, "TTL was reset: {left:?} >= {first:?}"),
        other => panic!("expected Expires, got {other:?}"),
    }
    // ... and a persistent key stays persistent.
    s.set(&k.k("p"), "1".into(), None).await.expect("set");
    assert_eq!(s.incr_by(&k.k("p"), 1, Some(ttl)).await.expect("incr"), 2);
    assert_eq!(s.ttl(&k.k("p")).await.expect("ttl"), Ttl::Persistent);
}

pub(super) async fn incr_by_on_expired_key_starts_over<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("n");
    let ttl = f.short_ttl();
    assert_eq!(s.incr_by(&key, 7, Some(ttl)).await.expect("incr"), 7);
    f.advance(ttl + ttl / 5).await;
    assert_eq!(s.incr_by(&key, 1, Some(ttl)).await.expect("incr"), 1);
    assert!(matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(_)));
}

pub(super) async fn incr_by_increments_text_set_by_set<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("n");
    s.set(&key, "10".into(), Some(Duration::from_secs(60)))
        .await
        .expect("set");
    assert_eq!(s.incr_by(&key, 5, None).await.expect("incr"), 15);
    assert_eq!(s.get(&key).await.expect("get").as_deref(), Some(&b"15"[..]));
    assert!(
        matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(_)),
        "INCR dropped the TTL"
    );
    for (text, value) in [
        ("0", 0i64),
        ("-7", -7),
        ("9223372036854775806", i64::MAX - 1),
    ] {
        let key = k.k(&format!("t{text}"));
        s.set(&key, Bytes::from(text.to_owned()), None)
            .await
            .expect("set");
        assert_eq!(
            s.incr_by(&key, 1, None).await.expect("incr"),
            value + 1,
            "{text}"
        );
    }
}

pub(super) async fn incr_by_refuses_non_integers_and_keeps_them<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let bad: [&[u8]; 12] = [
        b"abc",
        b"1.5",
        b" 1",
        b"1 ",
        b"+1",
        b"01",
        b"-0",
        b"",
        b"1e3",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"\xff\x00",
    ];
    for (i, text) in bad.iter().enumerate() {
        let key = k.k(&format!("b{i}"));
        let value = Bytes::copy_from_slice(text);
        s.set(&key, value.clone(), Some(Duration::from_secs(60)))
            .await
            .expect("set");
        let r = s.incr_by(&key, 1, None).await;
        assert!(
            matches!(r, Err(KvError::NotInteger)),
            "{:?}: {r:?}",
            String::from_utf8_lossy(text)
        );
        assert_eq!(
            s.get(&key).await.expect("get"),
            Some(value),
            "value changed by a failed INCR"
        );
        assert!(
            matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(_)),
            "TTL changed by a failed INCR"
        );
    }
}

pub(super) async fn incr_by_overflow_keeps_the_value<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("max");
    assert_eq!(
        s.incr_by(&key, i64::MAX, None).await.expect("incr"),
        i64::MAX
    );
    assert!(matches!(
        s.incr_by(&key, 1, None).await,
        Err(KvError::Overflow)
    ));
    assert_eq!(
        s.get(&key).await.expect("get"),
        Some(Bytes::from(i64::MAX.to_string()))
    );
    let key = k.k("min");
    s.set(&key, Bytes::from(i64::MIN.to_string()), None)
        .await
        .expect("set");
    assert!(matches!(
        s.incr_by(&key, -1, None).await,
        Err(KvError::Overflow)
    ));
    assert_eq!(s.incr_by(&key, 0, None).await.expect("incr"), i64::MIN);
    assert_eq!(
        s.get(&key).await.expect("get"),
        Some(Bytes::from(i64::MIN.to_string()))
    );
}

pub(super) async fn incr_by_refuses_zero_ttl_and_creates_nothing<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("n");
    assert!(is_invalid_input(
        &s.incr_by(&key, 1, Some(Duration::ZERO)).await
    ));
    assert_eq!(s.get(&key).await.expect("get"), None);
}

pub(super) async fn incr_by_is_atomic_under_concurrency<F: Fixture>(f: &F, k: &Keys) {
    const TASKS: i64 = 16;
    const EACH: i64 = 200;
    let key = k.k("n");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let store = f.store().clone();
        let key = key.clone();
        set.spawn(async move {
            let mut seen = Vec::with_capacity(EACH as usize);
            for _ in 0..EACH {
                seen.push(
                    store
                        .incr_by(&key, 1, Some(Duration::from_secs(60)))
                        .await
                        .expect("incr"),
                );
            }
            seen
        });
    }
    let mut all = Vec::new();
    while let Some(done) = set.join_next().await {
        all.extend(done.expect("task"));
    }
    all.sort_unstable();
    // Every increment saw a distinct value: 1..=TASKS*EACH, none lost, none repeated.
    assert_eq!(all, (1..=TASKS * EACH).collect::<Vec<_>>());
    assert_eq!(
        f.store().get(&key).await.expect("get"),
        Some(Bytes::from((TASKS * EACH).to_string()))
    );
}

pub(super) async fn set_nx_has_one_winner_under_concurrency<F: Fixture>(f: &F, k: &Keys) {
    let key = k.k("lock");
    let mut set = tokio::task::JoinSet::new();
    for i in 0..32u32 {
        let store = f.store().clone();
        let key = key.clone();
        set.spawn(async move {
            store
                .set_nx(
                    &key,
                    Bytes::from(i.to_string()),
                    Some(Duration::from_secs(60)),
                )
                .await
                .expect("set_nx")
        });
    }
    let mut winners = 0;
    while let Some(won) = set.join_next().await {
        winners += usize::from(won.expect("task"));
    }
    assert_eq!(winners, 1);
}
