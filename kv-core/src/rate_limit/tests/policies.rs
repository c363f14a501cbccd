//! Several policies, bodies, shadow mode, failures, bypass and cost, TTLs, pruning, configuration.

use super::*;

#[tokio::test]
async fn two_policies_are_checked_together_and_the_denial_names_its_policy() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let limiter = RateLimiter::builder(store)
        .policy(Policy::fixed_window("per-ip", 100, Duration::from_secs(60)))
        .policy(
            Policy::sliding_window("per-user", 2, Duration::from_secs(3600))
                .key(KeySource::header(http::HeaderName::from_static("x-user"))),
        )
        .clock(clock.clone())
        .header_options(HeaderOptions {
            legacy: true,
            ..HeaderOptions::default()
        })
        .build()
        .expect("limiter");
    let mut req = request("198.51.100.7:1");
    req.headers_mut()
        .insert("x-user", http::HeaderValue::from_static("alice"));
    for _ in 0..2 {
        match limiter.check(&req).await {
            Verdict::Allow { headers, .. } => {
                let policies =
                    parse_rate_limit_header(header(&headers, "ratelimit-policy").expect("policy"));
                let names: Vec<&str> = policies.iter().map(|(n, _)| n.as_str()).collect();
                assert_eq!(names, ["per-ip", "per-user"]);
                assert_eq!(policies[1].1, [("q".to_owned(), 2), ("w".to_owned(), 3600)]);
                let state = parse_rate_limit_header(header(&headers, "ratelimit").expect("state"));
                assert_eq!(state.len(), 2);
                assert!(header(&headers, "x-ratelimit-remaining").is_some());
            }
            other => panic!("{other:?}"),
        }
    }
    match limiter.check(&req).await {
        Verdict::Reject {
            answer: Answer { headers, body, .. },
            decision,
            ..
        } => {
            let d = decision.expect("decision");
            assert_eq!(d.denied_by().map(|p| &*p.name), Some("per-user"));
            assert!(d.policies()[0].allowed(), "per-ip still had room");
            assert!(String::from_utf8_lossy(&body).contains("\"per-user\""));
            let state = parse_rate_limit_header(header(&headers, "ratelimit").expect("state"));
            assert_eq!(state[0].1[0], ("r".to_owned(), 97));
            assert_eq!(state[1].1[0], ("r".to_owned(), 0));
            // Legacy headers describe the most constrained policy.
            assert_eq!(header(&headers, "x-ratelimit-limit"), Some("2"));
            assert_eq!(header(&headers, "x-ratelimit-remaining"), Some("0"));
        }
        other => panic!("{other:?}"),
    }
    // Another user on the same IP is not limited by alice's quota.
    req.headers_mut()
        .insert("x-user", http::HeaderValue::from_static("bob"));
    assert!(limiter.check(&req).await.is_allowed());
}

#[tokio::test]
async fn problem_json_body_lists_the_violated_policies() {
    let limiter = RateLimiter::builder(MemoryStore::new())
        .policy(Policy::fixed_window("a", 1, Duration::from_secs(3600)))
        .policy(Policy::fixed_window("b", 1, Duration::from_secs(3600)))
        .header_options(HeaderOptions {
            body: RejectBody::ProblemJson,
            max_retry_after: Some(Duration::from_secs(5)),
            ..HeaderOptions::default()
        })
        .build()
        .expect("limiter");
    let req = request("198.51.100.8:1");
    assert!(limiter.check(&req).await.is_allowed());
    match limiter.check(&req).await {
        Verdict::Reject {
            answer: Answer { headers, body, .. },
            ..
        } => {
            assert_eq!(
                header(&headers, "content-type"),
                Some("application/problem+json")
            );
            let body = String::from_utf8(body.to_vec()).expect("utf8");
            assert!(
                body.contains(
                    "\"type\":\"https://iana.org/assignments/http-problem-types#quota-exceeded\""
                ),
                "{body}"
            );
            assert!(
                body.contains("\"violated-policies\":[\"a\",\"b\"]"),
                "{body}"
            );
            assert!(body.contains("\"status\":429"));
            let secs: u64 = header(&headers, "retry-after")
                .expect("retry")
                .parse()
                .expect("int");
            assert!((1..=5).contains(&secs), "clamped: {secs}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn shadow_mode_counts_and_reports_but_never_rejects() {
    let limiter = RateLimiter::builder(MemoryStore::new())
        .policy(Policy::fixed_window("w", 1, Duration::from_secs(3600)))
        .shadow(true)
        .build()
        .expect("limiter");
    let req = request("198.51.100.9:1");
    for _ in 0..5 {
        match limiter.check(&req).await {
            Verdict::Allow { decision, headers } => {
                assert!(decision.is_some());
                assert!(header(&headers, "ratelimit").is_some());
            }
            other => panic!("shadow mode rejected: {other:?}"),
        }
    }
    match limiter.check(&req).await {
        Verdict::Allow {
            decision: Some(d),
            headers,
        } => {
            assert!(d.exceeded());
            assert!(header(&headers, "ratelimit").is_some_and(|v| v.starts_with("\"w\";r=0;")));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_failing_store_fails_open_by_default_or_closed_when_asked() {
    let store = crate::testing::UnavailableStore::new();
    let open = RateLimiter::builder(store.clone())
        .policy(Policy::fixed_window("w", 1, Duration::from_secs(60)))
        .build()
        .expect("limiter");
    for _ in 0..3 {
        match open.check(&request("198.51.100.10:1")).await {
            Verdict::Allow { headers, decision } => {
                assert!(headers.is_empty() && decision.is_none());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.calls(), 3, "the store was asked");
    let closed = RateLimiter::builder(store)
        .policy(Policy::sliding_window("w", 1, Duration::from_secs(60)))
        .on_store_error(FailureMode::Closed)
        .build()
        .expect("limiter");
    match closed.check(&request("198.51.100.10:1")).await {
        Verdict::Reject {
            answer: Answer { status, .. },
            ..
        } => assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bypass_cost_and_missing_keys() {
    let store = MemoryStore::new();
    let limiter = RateLimiter::builder(store.clone())
        .policy(Policy::fixed_window("w", 10, Duration::from_secs(3600)))
        .bypass(|req| req.path() == "/healthz")
        .cost(|req| if req.path() == "/expensive" { 4 } else { 1 })
        .build()
        .expect("limiter");
    let mut health = request("198.51.100.11:1");
    *health.uri_mut() = "/healthz".parse().expect("uri");
    for _ in 0..50 {
        assert!(limiter.check(&health).await.is_allowed());
    }
    assert_eq!(store.len(), 0, "bypassed requests are not counted");
    let mut expensive = request("198.51.100.11:1");
    *expensive.uri_mut() = "/expensive".parse().expect("uri");
    assert!(limiter.check(&expensive).await.is_allowed()); // 4
    assert!(limiter.check(&expensive).await.is_allowed()); // 8
    assert!(!limiter.check(&expensive).await.is_allowed()); // 12 > 10
    // Counters carry a TTL: the store reclaims them.
    assert_eq!(store.len(), 1);

    // No peer address (the server did not pass it): 500 by default, never a panic.
    let no_peer = http::Request::new(());
    match limiter.check(&no_peer).await {
        Verdict::Reject {
            answer: Answer { status, .. },
            ..
        } => assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR),
        other => panic!("{other:?}"),
    }
    let by_header = RateLimiter::builder(MemoryStore::new())
        .policy(
            Policy::fixed_window("api", 1, Duration::from_secs(3600)).key(KeySource::header(
                http::HeaderName::from_static("x-api-key"),
            )),
        )
        .build()
        .expect("limiter");
    match by_header.check(&no_peer).await {
        Verdict::Reject {
            answer: Answer { status, .. },
            ..
        } => assert_eq!(status, StatusCode::BAD_REQUEST),
        other => panic!("{other:?}"),
    }
    let fallback = RateLimiter::builder(MemoryStore::new())
        .policy(
            Policy::fixed_window("api", 1, Duration::from_secs(3600))
                .key(KeySource::header(http::HeaderName::from_static(
                    "x-api-key",
                )))
                .on_missing_key(MissingKey::UseKey("anonymous".into())),
        )
        .build()
        .expect("limiter");
    assert!(fallback.check(&no_peer).await.is_allowed());
    assert!(
        !fallback.check(&no_peer).await.is_allowed(),
        "anonymous requests share one key"
    );
}

#[tokio::test]
async fn counters_always_carry_a_ttl() {
    let store = MemoryStore::new();
    let limiter = RateLimiter::builder(store.clone())
        .policy(Policy::fixed_window("f", 5, Duration::from_secs(60)))
        .policy(Policy::sliding_window("s", 5, Duration::from_secs(60)))
        .key_prefix("t:")
        .build()
        .expect("limiter");
    assert!(
        limiter
            .check(&request("198.51.100.12:1"))
            .await
            .is_allowed()
    );
    let now = crate::clock::ClockHandle::System.now_millis();
    let index = now / 60_000;
    for key in [
        format!("t:f:ip:198.51.100.12:{index}"),
        format!("t:s:ip:198.51.100.12:{index}"),
    ] {
        match Store::ttl(&store, &key).await.expect("ttl") {
            Ttl::Expires(left) => assert!(left <= Duration::from_secs(120), "{key}: {left:?}"),
            other => panic!("{key}: {other:?}"),
        }
    }
}

#[test]
fn gcra_state_of_a_key_flood_is_pruned_in_the_background() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(MemoryStore::new())
        .policy(Policy::gcra("g", 10, Duration::from_secs(1)))
        .clock(clock.clone())
        .prune_interval(Duration::from_millis(10))
        .build()
        .expect("limiter");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    rt.block_on(async {
        for i in 0..100_000u32 {
            let [a, b, c, d] = i.to_be_bytes();
            let peer = format!("{}.{b}.{c}.{d}:1", a + 1);
            assert!(limiter.check(&request(&peer)).await.is_allowed());
        }
    });
    assert!(limiter.tracked_keys() > 0);
    // Nobody prunes by hand: after the quota has refilled, the background thread does.
    clock.advance(Duration::from_secs(2));
    let start = std::time::Instant::now();
    while limiter.tracked_keys() > 0 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(limiter.tracked_keys(), 0);
}

#[test]
fn invalid_configuration_is_a_typed_error() {
    let bad = [
        RateLimiter::builder(MemoryStore::new()).build(),
        RateLimiter::builder(MemoryStore::new())
            .policy(Policy::fixed_window("", 1, Duration::from_secs(1)))
            .build(),
        RateLimiter::builder(MemoryStore::new())
            .policy(Policy::fixed_window("a b", 1, Duration::from_secs(1)))
            .build(),
        RateLimiter::builder(MemoryStore::new())
            .policy(Policy::fixed_window("q\"", 1, Duration::from_secs(1)))
            .build(),
        RateLimiter::builder(MemoryStore::new())
            .policy(Policy::fixed_window("a", 0, Duration::from_secs(1)))
            .build(),
        RateLimiter::builder(MemoryStore::new())
            .policy(Policy::fixed_window("a", 1, Duration::ZERO))
            .build(),
        RateLimiter::builder(MemoryStore::new())
            .policy(Policy::gcra("a", 1, Duration::from_secs(1)).burst(0))
            .build(),
        RateLimiter::builder(MemoryStore::new())
            .policy(Policy::fixed_window("a", 1, Duration::from_secs(1)))
            .policy(Policy::fixed_window("a", 2, Duration::from_secs(1)))
            .build(),
    ];
    for (i, r) in bad.into_iter().enumerate() {
        assert!(
            matches!(&r, Err(e) if e.component() == "rate limiter"),
            "case {i}"
        );
    }
}

#[tokio::test]
async fn gcra_advertises_its_rate_not_its_burst_and_windows_fit_in_a_ttl() {
    let (limiter, _) = setup(Policy::gcra("slow", 1, Duration::from_secs(60)).burst(100));
    match limiter.check(&request("198.51.100.13:1")).await {
        Verdict::Allow { headers, .. } => {
            assert_eq!(
                header(&headers, "ratelimit-policy"),
                Some("\"slow\";q=1;w=60")
            );
        }
        other => panic!("{other:?}"),
    }
    let too_long = RateLimiter::builder(MemoryStore::new())
        .policy(Policy::sliding_window(
            "s",
            1,
            crate::MAX_TTL / 2 + Duration::from_secs(1),
        ))
        .build();
    assert!(matches!(&too_long, Err(e) if e.component() == "rate limiter"));
}

#[tokio::test]
async fn a_request_that_can_never_pass_gets_no_retry_after() {
    for policy in [
        Policy::fixed_window("f", 3, Duration::from_secs(60)),
        Policy::sliding_window("s", 3, Duration::from_secs(60)),
        Policy::gcra("g", 3, Duration::from_secs(60)),
    ] {
        let name = policy.name().to_owned();
        let clock = ManualClock::new();
        let limiter = RateLimiter::builder(MemoryStore::with_clock(clock.clone()))
            .policy(policy)
            .clock(clock)
            .cost(|req| if req.path() == "/bulk" { 5 } else { 1 })
            .build()
            .expect("limiter");
        let mut bulk = request("198.51.100.14:1");
        *bulk.uri_mut() = "/bulk".parse().expect("uri");
        match limiter.check(&bulk).await {
            Verdict::Reject {
                answer: Answer {
                    status, headers, ..
                },
                ..
            } => {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{name}");
                assert_eq!(
                    header(&headers, "retry-after"),
                    None,
                    "{name}: retrying cannot help"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
        // An ordinary request still passes (GCRA spent nothing; the windows counted 5 > 3,
        // so for them the client is over quota until the window ends).
        let ok = limiter
            .check(&request("198.51.100.14:1"))
            .await
            .is_allowed();
        assert_eq!(ok, name == "g", "{name}");
    }
}
