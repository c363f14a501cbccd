//! `throttle`: GCRA in the store (redis-cell's `CL.THROTTLE`), atomic, its TAT under the
//! key as decimal microseconds with a TTL.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{Keys, is_invalid_input};
use crate::store::{Throttle, ThrottleReply};
use crate::testing::Fixture;
use crate::{KvError, Store, Ttl};

const HOUR: Duration = Duration::from_secs(3600);

fn wall() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn tat_of(value: Option<Bytes>) -> u128 {
    let value = value.expect("the key holds the TAT");
    std::str::from_utf8(&value)
        .expect("decimal text")
        .parse()
        .expect("an integer")
}

pub(super) async fn throttle_admits_a_burst_then_one_per_interval<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("g");
    // The caller's time: exact arithmetic whatever the store's clock says.
    let t0 = wall();
    let at = |after: Duration| Throttle::new(HOUR, 3).at(t0 + after);
    for left in [2, 1, 0] {
        let reply = s
            .throttle(&key, at(Duration::ZERO))
            .await
            .expect("throttle");
        assert!(reply.allowed, "within the burst");
        assert_eq!(reply.remaining, left);
        assert_eq!(reply.retry_after, Duration::ZERO);
        assert_eq!(reply.reset_after, HOUR * (3 - left as u32));
    }
    let tat = tat_of(s.get(&key).await.expect("get"));
    assert_eq!(
        tat,
        (t0 + 3 * HOUR).as_micros(),
        "the TAT in µs since the epoch"
    );
    match s.ttl(&key).await.expect("ttl") {
        Ttl::Expires(left) => assert!(
            left <= 3 * HOUR + Duration::from_secs(1) && left > 3 * HOUR - Duration::from_secs(60),
            "{left:?}"
        ),
        other => panic!("the GCRA key needs a TTL, got {other:?}"),
    }
    let denied = s
        .throttle(&key, at(Duration::from_secs(1)))
        .await
        .expect("throttle");
    assert_eq!(
        denied,
        ThrottleReply {
            allowed: false,
            remaining: 0,
            retry_after: HOUR - Duration::from_secs(1),
            reset_after: 3 * HOUR - Duration::from_secs(1),
        }
    );
    assert_eq!(
        tat_of(s.get(&key).await.expect("get")),
        tat,
        "a denial changes nothing"
    );
    let peeked = s.throttle(&key, at(HOUR).peek()).await.expect("peek");
    assert!(peeked.allowed && peeked.remaining == 0, "{peeked:?}");
    assert_eq!(
        tat_of(s.get(&key).await.expect("get")),
        tat,
        "a peek writes nothing"
    );
    let later = s.throttle(&key, at(HOUR)).await.expect("throttle");
    assert!(later.allowed, "one interval later one more passes");
    assert_eq!(later.remaining, 0);
    // A cost of 2 weighs two intervals; the idle time refills at most the burst.
    let idle = s
        .throttle(&key, at(10 * HOUR).cost(2))
        .await
        .expect("throttle");
    assert!(idle.allowed);
    assert_eq!(idle.remaining, 1);
}

pub(super) async fn throttle_cost_over_the_burst_never_passes_and_changes_nothing<F: Fixture>(
    f: &F,
    k: &Keys,
) {
    let s = f.store();
    let key = k.k("big");
    let reply = s
        .throttle(&key, Throttle::new(HOUR, 3).cost(4).at(wall()))
        .await
        .expect("throttle");
    assert!(!reply.allowed);
    assert_eq!(reply.retry_after, Duration::MAX, "no wait admits it");
    assert_eq!(s.get(&key).await.expect("get"), None, "nothing stored");
}

pub(super) async fn throttle_refuses_bad_input_and_other_kinds<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("bad");
    for bad in [
        Throttle::new(HOUR, 0),
        Throttle::new(HOUR, 1).cost(0),
        Throttle::new(Duration::from_nanos(10), 1),
        Throttle::new(crate::MAX_TTL, 2),
    ] {
        assert!(is_invalid_input(&s.throttle(&key, bad).await), "{bad:?}");
    }
    assert_eq!(s.get(&key).await.expect("get"), None, "nothing created");
    let text = k.k("text");
    s.set(&text, Bytes::from_static(b"abc"), None)
        .await
        .expect("set");
    assert!(matches!(
        s.throttle(&text, Throttle::new(HOUR, 1)).await,
        Err(KvError::NotInteger)
    ));
    assert_eq!(
        s.get(&text).await.expect("get").as_deref(),
        Some(&b"abc"[..])
    );
    let hash = k.k("hash");
    s.hset(&hash, vec![("f".into(), Bytes::from_static(b"1"))], None)
        .await
        .expect("hset");
    assert!(matches!(
        s.throttle(&hash, Throttle::new(HOUR, 1)).await,
        Err(KvError::WrongType)
    ));
}

pub(super) async fn throttle_on_the_stores_clock_expires_with_its_ttl<F: Fixture>(f: &F, k: &Keys) {
    let s = f.store();
    let key = k.k("own-clock");
    let interval = f.short_ttl();
    let first = s
        .throttle(&key, Throttle::new(interval, 1))
        .await
        .expect("throttle");
    assert!(first.allowed);
    let second = s
        .throttle(&key, Throttle::new(interval, 1))
        .await
        .expect("throttle");
    assert!(
        !second.allowed,
        "the store's clock has not moved an interval"
    );
    assert!(second.retry_after <= interval && !second.retry_after.is_zero());
    f.advance(interval + Duration::from_millis(50)).await;
    assert_eq!(
        s.get(&key).await.expect("get"),
        None,
        "the TTL reclaimed the key"
    );
    assert!(
        s.throttle(&key, Throttle::new(interval, 1))
            .await
            .expect("throttle")
            .allowed
    );
}

pub(super) async fn throttle_admits_exactly_the_burst_under_concurrency<F: Fixture>(
    f: &F,
    k: &Keys,
) {
    let key = k.k("race");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let store = f.store().clone();
        let key = key.clone();
        set.spawn(async move {
            store
                .throttle(&key, Throttle::new(HOUR, 10))
                .await
                .expect("throttle")
                .allowed
        });
    }
    let mut allowed = 0;
    while let Some(done) = set.join_next().await {
        allowed += usize::from(done.expect("task"));
    }
    assert_eq!(allowed, 10, "one budget, however the calls interleave");
    if let Some(local) = f.store().local() {
        // The local face decides on the same state.
        assert!(
            !local
                .throttle(&key, Throttle::new(HOUR, 10))
                .expect("local")
                .allowed
        );
    }
}
