//! `RateLimiter::admit`, the adapters' entry point: in the lean configurations (one
//! policy: GCRA in process, or a window on the memory store) it skips the decision of an
//! allowed request, and must otherwise say exactly what `check` says.

use super::*;

/// A limiter of one GCRA policy (3 per second, burst 3) on a manual clock, plus `tune`.
fn gcra_limiter(
    tune: impl Fn(RateLimiterBuilder<MemoryStore>) -> RateLimiterBuilder<MemoryStore>,
) -> (RateLimiter<MemoryStore>, ManualClock) {
    limiter_of(Policy::gcra("g", 3, Duration::from_secs(1)), tune)
}

/// A limiter of `policy` on a manual clock (the store's too), plus `tune`.
fn limiter_of(
    policy: Policy,
    tune: impl Fn(RateLimiterBuilder<MemoryStore>) -> RateLimiterBuilder<MemoryStore>,
) -> (RateLimiter<MemoryStore>, ManualClock) {
    let clock = ManualClock::new();
    let builder = RateLimiter::builder(MemoryStore::with_clock(clock.clone()))
        .policy(policy)
        .clock(clock.clone());
    (tune(builder).build().expect("limiter"), clock)
}

/// What a verdict tells the client: allowed or not, every header, and a refusal's status
/// and body.
type Seen = (bool, Vec<(String, String)>, Option<(StatusCode, Bytes)>);

fn seen(verdict: &Verdict) -> Seen {
    let pairs = |it: &mut dyn Iterator<Item = (&http::HeaderName, &http::HeaderValue)>| {
        it.map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_owned()))
            .collect::<Vec<_>>()
    };
    match verdict {
        Verdict::Allow { headers, .. } => {
            (true, pairs(&mut headers.iter().map(|(n, v)| (n, v))), None)
        }
        Verdict::Reject { answer, .. } => (
            false,
            pairs(&mut answer.headers.iter()),
            Some((answer.status, answer.body.clone())),
        ),
    }
}

#[tokio::test]
async fn admit_answers_as_check_does_request_for_request() {
    for headers in [
        HeaderOptions::default(),
        HeaderOptions {
            ietf: false,
            ..HeaderOptions::default()
        },
        HeaderOptions {
            on_allowed: false,
            ..HeaderOptions::default()
        },
    ] {
        for policy in [
            Policy::gcra("g", 3, Duration::from_secs(1)),
            Policy::fixed_window("g", 3, Duration::from_secs(1)),
            Policy::sliding_window("g", 3, Duration::from_secs(1)),
        ] {
            let tune = |b: RateLimiterBuilder<MemoryStore>| b.header_options(headers.clone());
            let (lean, lean_clock) = limiter_of(policy.clone(), tune);
            let (full, full_clock) = limiter_of(policy.clone(), tune);
            let what = format!("{:?} {headers:?}", policy.algorithm);
            assert!(
                lean.inner.lean,
                "one policy on the memory store is lean: {what}"
            );
            let (mut allowed, mut denied) = (0, 0);
            // Two clients, bursts and pauses: allowed, denied, and allowed again.
            for step in 0..40u64 {
                let peer = if step % 3 == 0 {
                    "198.51.100.1:1"
                } else {
                    "198.51.100.2:1"
                };
                let a = lean.admit(&request(peer)).await;
                let b = full.check(&request(peer)).await;
                assert_eq!(seen(&a), seen(&b), "{what}, step {step}");
                match (&a, &b) {
                    (
                        Verdict::Allow { decision, .. },
                        Verdict::Allow {
                            decision: checked, ..
                        },
                    ) => {
                        allowed += 1;
                        assert!(decision.is_none(), "nobody reads an allowed decision here");
                        assert!(checked.is_some(), "check keeps its decision");
                    }
                    (Verdict::Reject { decision, .. }, _) => {
                        denied += 1;
                        assert_eq!(
                            decision
                                .as_ref()
                                .and_then(|d| d.denied_by())
                                .map(|p| &*p.name),
                            Some("g")
                        );
                    }
                    _ => unreachable!("compared above"),
                }
                let pause = Duration::from_millis(if step % 7 == 6 { 900 } else { 40 });
                lean_clock.advance(pause);
                full_clock.advance(pause);
            }
            assert!(
                allowed > 10 && denied > 5,
                "both paths met ({what}): {allowed} allowed, {denied} denied"
            );
        }
    }
}

#[tokio::test]
async fn admit_keeps_the_decision_wherever_something_reads_it() {
    // The handler reads it, or shadow mode reports an exceeded policy: not lean.
    for tune in [
        (|b: RateLimiterBuilder<MemoryStore>| b.decision_in_extensions(true)) as fn(_) -> _,
        |b| b.shadow(true),
        |b| {
            b.header_options(HeaderOptions {
                legacy: true,
                ..HeaderOptions::default()
            })
        },
        |b| b.cost(|_| 2),
        |b| b.bypass(|r| r.path() == "/health"),
    ] {
        let (limiter, _) = gcra_limiter(tune);
        assert!(!limiter.inner.lean);
        match limiter.admit(&request("198.51.100.1:1")).await {
            Verdict::Allow { decision, .. } => assert!(decision.is_some()),
            other => panic!("{other:?}"),
        }
    }
    // Two policies, or a quota per request: not lean. A window counted on a store
    // without an in-process face is, but its `admit` goes the general way each time.
    let two = RateLimiter::builder(MemoryStore::new())
        .policy(Policy::gcra("a", 3, Duration::from_secs(1)))
        .policy(Policy::gcra("b", 30, Duration::from_secs(60)))
        .build()
        .expect("limiter");
    assert!(!two.inner.lean);
    let quota = RateLimiter::builder(MemoryStore::new())
        .policy(
            Policy::fixed_window("w", 3, Duration::from_secs(1))
                .quota_by(|_, _| Some(Quota::new(5, Duration::from_secs(1)))),
        )
        .build()
        .expect("limiter");
    assert!(!quota.inner.lean);
    let remote = RateLimiter::builder(crate::testing::RemoteLike(MemoryStore::new()))
        .policy(Policy::fixed_window("w", 3, Duration::from_secs(1)))
        .build()
        .expect("limiter");
    for _ in 0..3 {
        match remote.admit(&request("198.51.100.1:1")).await {
            Verdict::Allow { decision, .. } => assert!(decision.is_some(), "checked"),
            other => panic!("{other:?}"),
        }
    }
    assert!(!remote.admit(&request("198.51.100.1:1")).await.is_allowed());
}

#[tokio::test]
async fn admit_passes_preflights_and_keyless_requests_the_general_way() {
    let (limiter, _) = gcra_limiter(|b| b);
    // A preflight is not counted: the budget is whole after any number of them.
    let mut preflight = request("198.51.100.1:1");
    *preflight.method_mut() = http::Method::OPTIONS;
    preflight.headers_mut().insert(
        http::header::ACCESS_CONTROL_REQUEST_METHOD,
        http::HeaderValue::from_static("POST"),
    );
    for _ in 0..10 {
        match limiter.admit(&preflight).await {
            Verdict::Allow { headers, .. } => {
                assert!(headers.is_empty(), "uncounted: no quota headers")
            }
            other => panic!("{other:?}"),
        }
    }
    for _ in 0..3 {
        assert!(limiter.admit(&request("198.51.100.1:1")).await.is_allowed());
    }
    assert!(!limiter.admit(&request("198.51.100.1:1")).await.is_allowed());
    // No peer address: the missing-key answer (500 by default for a peer-IP key).
    let keyless = http::Request::builder()
        .uri("/api")
        .body(())
        .expect("request");
    match limiter.admit(&keyless).await {
        Verdict::Reject { answer, .. } => {
            assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR)
        }
        other => panic!("{other:?}"),
    }
}

/// An attacker on the lean path: rotating `X-Forwarded-For` values buys no fresh budget
/// (the key is the TCP peer), and a flood of distinct peers gets one state each, every
/// one of them counted (a burst of 3 each, the 4th refused), in process as in the store.
#[tokio::test]
async fn admit_spends_the_peer_budget_whatever_the_client_claims() {
    for policy in [
        Policy::gcra("g", 3, Duration::from_secs(60)),
        Policy::fixed_window("g", 3, Duration::from_secs(60)),
    ] {
        let (limiter, _) = limiter_of(policy.clone(), |b| b);
        let spoofed = |i: u32| {
            let mut r = request("198.51.100.9:1");
            r.headers_mut().insert(
                "x-forwarded-for",
                http::HeaderValue::from_str(&format!("10.0.{}.{}", i / 256, i % 256))
                    .expect("value"),
            );
            r
        };
        let (limiter, spoofed) = (&limiter, &spoofed);
        let allowed = futures_util::future::join_all(
            (0..50).map(|i| async move { limiter.admit(&spoofed(i)).await.is_allowed() }),
        )
        .await;
        assert_eq!(
            allowed.iter().filter(|a| **a).count(),
            3,
            "{:?}",
            policy.algorithm
        );

        for peer in 0..2_000u32 {
            let addr = format!("203.0.{}.{}:1", peer / 256, peer % 256);
            for _ in 0..3 {
                assert!(limiter.admit(&request(&addr)).await.is_allowed());
            }
            assert!(!limiter.admit(&request(&addr)).await.is_allowed(), "{addr}");
        }
        if policy.algorithm == Algorithm::Gcra {
            assert_eq!(limiter.tracked_keys(), 2_001);
        }
    }
}

/// A window counter's key is built in the thread's reused buffer: what a previous key
/// (or anything recycled) left there never reaches the next one. The store holds
/// exactly `rl:w:ip:<peer>:<slot>` for each peer, with the counts of that peer only.
#[tokio::test]
async fn window_keys_built_in_the_reused_buffer_are_exactly_their_own() {
    let (limiter, clock) = limiter_of(Policy::fixed_window("w", 5, Duration::from_secs(60)), |b| b);
    let mut junk = String::with_capacity(200);
    junk.push_str("rl:w:ip:203.0.113.250:0:left-over");
    crate::spare::recycle(junk);
    for _ in 0..3 {
        assert!(limiter.admit(&request("198.51.100.1:1")).await.is_allowed());
    }
    match limiter.admit(&request("198.51.100.22:1")).await {
        Verdict::Allow { headers, .. } => {
            let value = header(&headers, "ratelimit").expect("ratelimit");
            assert!(value.starts_with("\"w\";r=4;t="), "{value}");
        }
        other => panic!("{other:?}"),
    }
    let slot = clock.now_millis_for_tests() / 60_000;
    let store = limiter.store();
    assert_eq!(store.len(), 2, "one counter per peer");
    for (peer, count) in [("198.51.100.1", "3"), ("198.51.100.22", "1")] {
        let key = format!("rl:w:ip:{peer}:{slot}");
        let value = Store::get(store, &key).await.expect("get").expect(&key);
        assert_eq!(&value[..], count.as_bytes(), "{key}");
    }
}

/// Corrupt bytes from the store on the lean path: a counter that is not an integer (the
/// current window's, so `incr_by` fails; or, sliding, the previous window's, which is
/// read) gets `check`'s answer — the store's failure mode, or the garbage read as 0 —
/// never a panic, and the garbage is left as it was.
#[tokio::test]
async fn admit_meets_corrupt_counters_as_check_does() {
    for (policy, slot_offset) in [
        (Policy::fixed_window("w", 3, Duration::from_secs(60)), 0),
        (Policy::sliding_window("w", 3, Duration::from_secs(60)), 0),
        (Policy::sliding_window("w", 3, Duration::from_secs(60)), 1),
    ] {
        let (lean, lean_clock) = limiter_of(policy.clone(), |b| b);
        let (full, _) = limiter_of(policy.clone(), |b| b);
        let slot = lean_clock.now_millis_for_tests() / 60_000 - slot_offset;
        let key = format!("rl:w:ip:198.51.100.1:{slot}");
        let garbage = Bytes::from_static(b"\xff not a number \x00");
        for limiter in [&lean, &full] {
            Store::set(limiter.store(), &key, garbage.clone(), None)
                .await
                .expect("set");
        }
        let what = format!("{:?}, slot -{slot_offset}", policy.algorithm);
        for step in 0..5 {
            let a = lean.admit(&request("198.51.100.1:1")).await;
            let b = full.check(&request("198.51.100.1:1")).await;
            assert_eq!(seen(&a), seen(&b), "{what}, step {step}");
            let (allowed, headers, _) = seen(&a);
            if slot_offset == 0 {
                // The counter cannot be counted: fail-open (the default), no quota shown.
                assert!(
                    allowed && headers.is_empty(),
                    "{what}, step {step}: {headers:?}"
                );
            } else {
                // The unreadable previous window counts as empty: 3 pass, then 429s.
                assert_eq!(allowed, step < 3, "{what}, step {step}");
            }
        }
        for limiter in [&lean, &full] {
            let kept = Store::get(limiter.store(), &key).await.expect("get");
            assert_eq!(
                kept.as_ref(),
                Some(&garbage),
                "{what}: the garbage is not rewritten"
            );
        }
    }
}

/// `admit_into`, as the adapters call it: an allowed lean request appends its headers
/// after whatever the list held, and returns nothing; a denied one, a preflight, or a
/// configuration off the shortcut returns the verdict and leaves the list as it was.
#[tokio::test]
async fn admit_into_appends_only_what_an_allowed_request_sends() {
    let marker = || {
        let mut headers = Headers::new();
        headers.push((
            http::HeaderName::from_static("x-before"),
            http::HeaderValue::from_static("1"),
        ));
        headers
    };
    let names = |headers: &Headers| {
        headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().expect("ascii")))
            .collect::<Vec<_>>()
    };
    for policy in [
        Policy::gcra("g", 3, Duration::from_secs(1)),
        Policy::fixed_window("g", 3, Duration::from_secs(1)),
    ] {
        let (lean, _clock) = limiter_of(policy.clone(), |b| b);
        let (twin, _twin_clock) = limiter_of(policy.clone(), |b| b);
        for n in 1..=4 {
            let mut headers = marker();
            let step = lean.admit_into(&request("198.51.100.1:1"), &mut headers);
            let checked = twin.check(&request("198.51.100.1:1")).await;
            match (step, &checked) {
                (
                    None,
                    Verdict::Allow {
                        headers: expected, ..
                    },
                ) => {
                    let mut want = names(&marker());
                    want.extend(names(expected));
                    assert_eq!(names(&headers), want, "request {n}");
                    assert_eq!(headers.len(), 3, "the marker, then the two IETF fields");
                }
                (Some(step), Verdict::Reject { .. }) => {
                    assert_eq!(n, 4, "the burst of 3 passes");
                    assert_eq!(seen(&step.await), seen(&checked));
                    assert_eq!(names(&headers), names(&marker()), "untouched on a denial");
                }
                (step, _) => panic!("request {n}: admit_into {:?}", step.is_some()),
            }
        }
    }
    // Off the shortcut (a decision the handler reads): the verdict comes back whole, the
    // list untouched.
    let (exposed, _clock) = gcra_limiter(|b| b.decision_in_extensions(true));
    let mut headers = marker();
    let step = exposed.admit_into(&request("198.51.100.1:1"), &mut headers);
    match step.expect("a verdict").await {
        Verdict::Allow {
            decision,
            headers: own,
        } => {
            assert!(decision.is_some());
            assert_eq!(own.len(), 2);
        }
        Verdict::Reject { .. } => panic!("the first request passes"),
    }
    assert_eq!(names(&headers), names(&marker()));
}

/// A GCRA policy's `RateLimit` values for the top `LEAN_STATES_MAX` counts left are
/// formatted once, the ones below per request: either way, request for request, what
/// `check` sends, down to the last of the burst and the refusal after it.
#[tokio::test]
async fn gcra_values_formatted_ahead_are_the_ones_check_formats() {
    use crate::rate_limit::builder::LEAN_STATES_MAX;
    for burst in [
        1,
        LEAN_STATES_MAX - 1,
        LEAN_STATES_MAX,
        LEAN_STATES_MAX + 40,
    ] {
        let policy = Policy::gcra("paced", 10, Duration::from_secs(60)).burst(burst);
        let (lean, _clock) = limiter_of(policy.clone(), |b| b);
        let (full, _full_clock) = limiter_of(policy, |b| b);
        let ahead = lean.inner.lean_states.len();
        assert_eq!(
            ahead,
            (burst + 1).min(LEAN_STATES_MAX) as usize,
            "burst {burst}"
        );
        assert_eq!(
            lean.inner.lean_states_from,
            u64::from((burst + 1).saturating_sub(LEAN_STATES_MAX)),
            "burst {burst}"
        );
        for n in 1..=burst + 1 {
            let a = lean.admit(&request("198.51.100.9:1")).await;
            let b = full.check(&request("198.51.100.9:1")).await;
            assert_eq!(seen(&a), seen(&b), "burst {burst}, request {n}");
            assert_eq!(a.is_allowed(), n <= burst, "burst {burst}, request {n}");
        }
    }
}
