//! The hash commands: `HSET`, `HGETALL`, `HDEL`.

use std::time::Duration;

use bytes::Bytes;

use super::{Keys, is_invalid_input};
use crate::testing::Fixture;
use crate::{KvError, Store, Ttl};

fn sorted(mut fields: Vec<(String, Bytes)>) -> Vec<(String, Bytes)> {
    fields.sort();
    fields
}

fn field(name: &str, value: &'static [u8]) -> (String, Bytes) {
    (name.to_owned(), Bytes::from_static(value))
}

pub(super) async fn hset_then_hget_all_round_trips<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("h");
    assert_eq!(s.hget_all(&key).await.expect("hget_all"), vec![]);
    s.hset(&key, vec![field("a", b"1"), field("b", b"\x00\xff")], None)
        .await
        .expect("hset");
    // Fields not named keep their values; a field named twice takes the last value.
    s.hset(
        &key,
        vec![field("c", b""), field("a", b"x"), field("a", b"2")],
        None,
    )
    .await
    .expect("hset");
    assert_eq!(
        sorted(s.hget_all(&key).await.expect("hget_all")),
        vec![field("a", b"2"), field("b", b"\x00\xff"), field("c", b"")]
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
    assert!(s.del(&key).await.expect("del"));
    assert_eq!(s.hget_all(&key).await.expect("hget_all"), vec![]);
}

pub(super) async fn hset_with_ttl_sets_it_and_without_keeps_it<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("h");
    s.hset(&key, vec![field("a", b"1")], Some(Duration::from_secs(100)))
        .await
        .expect("hset");
    let Ttl::Expires(left) = s.ttl(&key).await.expect("ttl") else {
        panic!("hset with a ttl must set it");
    };
    assert!(left > Duration::from_secs(90) && left <= Duration::from_secs(100));
    s.hset(&key, vec![field("b", b"2")], None)
        .await
        .expect("hset");
    let Ttl::Expires(kept) = s.ttl(&key).await.expect("ttl") else {
        panic!("hset without a ttl must keep it");
    };
    assert!(kept > Duration::from_secs(90) && kept <= left);
    s.hset(
        &key,
        vec![field("c", b"3")],
        Some(Duration::from_secs(1000)),
    )
    .await
    .expect("hset");
    let Ttl::Expires(longer) = s.ttl(&key).await.expect("ttl") else {
        panic!("ttl");
    };
    assert!(longer > Duration::from_secs(990));
    assert_eq!(s.hget_all(&key).await.expect("hget_all").len(), 3);
    // `expire` works on a hash as on any key.
    assert!(
        s.expire(&key, Duration::from_secs(50))
            .await
            .expect("expire")
    );
    assert!(
        matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(d) if d <= Duration::from_secs(50))
    );
}

pub(super) async fn hash_expires_with_its_ttl<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("h");
    let ttl = f.short_ttl();
    s.hset(&key, vec![field("a", b"1")], Some(ttl))
        .await
        .expect("hset");
    assert_eq!(s.hget_all(&key).await.expect("hget_all").len(), 1);
    f.advance(ttl + Duration::from_millis(50)).await;
    assert_eq!(s.hget_all(&key).await.expect("hget_all"), vec![]);
    assert_eq!(s.hdel(&key, vec!["a".into()]).await.expect("hdel"), 0);
    // A write after expiry starts a new hash: the old fields are gone, no TTL unless given.
    s.hset(&key, vec![field("b", b"2")], None)
        .await
        .expect("hset");
    assert_eq!(
        s.hget_all(&key).await.expect("hget_all"),
        vec![field("b", b"2")]
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
}

pub(super) async fn hdel_removes_fields_and_an_empty_hash<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("h");
    assert_eq!(s.hdel(&key, vec!["a".into()]).await.expect("hdel"), 0);
    s.hset(
        &key,
        vec![field("a", b"1"), field("b", b"2"), field("c", b"3")],
        Some(Duration::from_secs(100)),
    )
    .await
    .expect("hset");
    assert_eq!(
        s.hdel(&key, vec!["a".into(), "zz".into()])
            .await
            .expect("hdel"),
        1
    );
    assert_eq!(
        sorted(s.hget_all(&key).await.expect("hget_all")),
        vec![field("b", b"2"), field("c", b"3")]
    );
    // The TTL survives a partial removal.
    assert!(matches!(s.ttl(&key).await.expect("ttl"), Ttl::Expires(_)));
    assert_eq!(
        s.hdel(&key, vec!["b".into(), "c".into()])
            .await
            .expect("hdel"),
        2
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Missing);
    assert!(!s.del(&key).await.expect("del"));
}

pub(super) async fn hash_and_string_commands_refuse_the_other_kind<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let (text, hash) = (k.k("text"), k.k("hash"));
    s.set(
        &text,
        Bytes::from_static(b"7"),
        Some(Duration::from_secs(100)),
    )
    .await
    .expect("set");
    s.hset(&hash, vec![field("a", b"1")], None)
        .await
        .expect("hset");
    let wrong = |r: &Result<_, KvError>| matches!(r, Err(KvError::WrongType));
    assert!(wrong(&s.hget_all(&text).await.map(drop)));
    assert!(wrong(
        &s.hset(&text, vec![field("a", b"1")], Some(Duration::from_secs(5)))
            .await
    ));
    assert!(wrong(&s.hdel(&text, vec!["a".into()]).await.map(drop)));
    assert!(wrong(&s.get(&hash).await.map(drop)));
    assert!(wrong(&s.incr_by(&hash, 1, None).await.map(drop)));
    // Nothing changed: not the string, not its TTL, not the hash.
    assert_eq!(s.get(&text).await.expect("get").as_deref(), Some(&b"7"[..]));
    assert!(
        matches!(s.ttl(&text).await.expect("ttl"), Ttl::Expires(d) if d > Duration::from_secs(90))
    );
    assert_eq!(
        s.hget_all(&hash).await.expect("hget_all"),
        vec![field("a", b"1")]
    );
    // `set` replaces a hash (as Redis' SET does), and `set_nx` sees it as a live key.
    assert!(
        !s.set_nx(&hash, Bytes::from_static(b"v"), None)
            .await
            .expect("set_nx")
    );
    s.set(&hash, Bytes::from_static(b"v"), None)
        .await
        .expect("set");
    assert_eq!(s.get(&hash).await.expect("get").as_deref(), Some(&b"v"[..]));
}

pub(super) async fn hash_calls_refuse_bad_input_and_change_nothing<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("h");
    s.hset(&key, vec![field("a", b"1")], None)
        .await
        .expect("hset");
    assert!(is_invalid_input(&s.hset(&key, vec![], None).await));
    assert!(is_invalid_input(&s.hdel(&key, vec![]).await));
    assert!(is_invalid_input(
        &s.hset(&key, vec![field("a", b"2")], Some(Duration::ZERO))
            .await
    ));
    let too_many: Vec<(String, Bytes)> = (0..=crate::MAX_HASH_FIELDS)
        .map(|i| (format!("f{i}"), Bytes::new()))
        .collect();
    assert!(is_invalid_input(&s.hset(&key, too_many, None).await));
    assert_eq!(
        s.hget_all(&key).await.expect("hget_all"),
        vec![field("a", b"1")]
    );
    assert_eq!(s.ttl(&key).await.expect("ttl"), Ttl::Persistent);
}

pub(super) async fn hset_of_different_fields_under_concurrency_loses_none<F: Fixture>(
    f: &F,
    k: &Keys,
) {
    const TASKS: usize = 16;
    const EACH: usize = 25;
    let key = k.k("h");
    let mut set = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let store = f.store().clone();
        let key = key.clone();
        set.spawn(async move {
            for i in 0..EACH {
                store
                    .hset(
                        &key,
                        vec![(format!("t{t}.{i}"), Bytes::from(format!("{t}:{i}")))],
                        Some(Duration::from_secs(60)),
                    )
                    .await
                    .expect("hset");
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.expect("task");
    }
    let fields = f.store().hget_all(&key).await.expect("hget_all");
    assert_eq!(fields.len(), TASKS * EACH);
    for (name, value) in fields {
        let (t, i) = name[1..].split_once('.').expect("field name");
        assert_eq!(value, Bytes::from(format!("{t}:{i}")));
    }
}
