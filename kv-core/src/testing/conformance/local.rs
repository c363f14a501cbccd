//! The in-process face: a store that gives a [`LocalStore`](crate::LocalStore) must
//! answer through it exactly as through its `async` methods, on the same data.

use std::time::Duration;

use bytes::Bytes;

use super::Keys;
use crate::testing::Fixture;
use crate::{KvError, Store, Ttl};

pub(super) async fn local_face_agrees_with_the_async_one<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let Some(local) = s.local() else {
        return; // a remote store: nothing to compare
    };
    let (a, b, h) = (k.k("a"), k.k("b"), k.k("h"));
    local
        .set(
            &a,
            Bytes::from_static(b"one"),
            Some(Duration::from_secs(60)),
        )
        .expect("local set");
    assert_eq!(
        s.get(&a).await.expect("get").as_deref(),
        Some(&b"one"[..]),
        "local set, async get"
    );
    assert!(
        matches!(s.ttl(&a).await.expect("ttl"), Ttl::Expires(_)),
        "local set keeps its TTL"
    );
    s.set(&b, Bytes::from_static(b"41"), None)
        .await
        .expect("set");
    assert_eq!(
        local.incr_by(&b, 1, None).expect("local incr"),
        42,
        "async set, local incr"
    );
    assert_eq!(
        s.incr_by(&b, 1, None).await.expect("incr"),
        43,
        "both faces count one counter"
    );
    assert_eq!(
        local.get(&b).expect("local get").as_deref(),
        Some(&b"43"[..])
    );
    assert_eq!(local.ttl(&b).expect("local ttl"), Ttl::Persistent);
    assert!(
        !local.set_nx(&b, Bytes::new(), None).expect("local set_nx"),
        "set_nx sees the async write"
    );
    assert!(
        matches!(local.incr_by(&a, 1, None), Err(KvError::NotInteger)),
        "local incr keeps the contract"
    );
    assert!(
        local
            .expire(&b, Duration::from_secs(30))
            .expect("local expire")
    );
    assert!(matches!(s.ttl(&b).await.expect("ttl"), Ttl::Expires(_)));
    assert!(local.del(&a).expect("local del"));
    assert_eq!(s.get(&a).await.expect("get"), None, "local del, async get");

    s.hset(
        &h,
        vec![
            ("x".into(), Bytes::from_static(b"1")),
            ("y".into(), Bytes::from_static(b"2")),
        ],
        Some(Duration::from_secs(60)),
    )
    .await
    .expect("hset");
    let mut seen = Vec::new();
    let ttl = local
        .hget_all_with_ttl(&h, &mut |name, value| {
            seen.push((name.to_owned(), value.clone()))
        })
        .expect("hget_all_with_ttl");
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("x".to_owned(), Bytes::from_static(b"1")),
            ("y".to_owned(), Bytes::from_static(b"2"))
        ],
        "hget_all_with_ttl lends every field"
    );
    assert!(
        matches!(ttl, Ttl::Expires(_)),
        "hget_all_with_ttl gives the TTL"
    );
    assert_eq!(local.hdel(&h, vec!["x".into()]).expect("local hdel"), 1);
    local
        .hset(&h, vec![("z".into(), Bytes::from_static(b"3"))], None)
        .expect("local hset");
    let mut fields = s.hget_all(&h).await.expect("hget_all");
    fields.sort();
    assert_eq!(
        fields,
        vec![
            ("y".to_owned(), Bytes::from_static(b"2")),
            ("z".to_owned(), Bytes::from_static(b"3"))
        ]
    );
    assert_eq!(local.hget_all(&h).expect("local hget_all").len(), 2);
    let missing = local
        .hget_all_with_ttl(&k.k("none"), &mut |_, _| {
            panic!("a missing key has no field")
        })
        .expect("missing hash");
    assert_eq!(missing, Ttl::Missing);
    assert!(matches!(
        local.hget_all_with_ttl(&b, &mut |_, _| {}),
        Err(KvError::WrongType)
    ));
}
