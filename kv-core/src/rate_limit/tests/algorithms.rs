//! The algorithms: exact counts under concurrency, windows, keys, GCRA bursts.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_n_of_4n_concurrent_requests_pass_for_every_algorithm() {
    for policy in [
        Policy::fixed_window("fixed", 25, Duration::from_secs(60)),
        Policy::sliding_window("sliding", 25, Duration::from_secs(60)),
        Policy::gcra("gcra", 25, Duration::from_secs(60)),
    ] {
        let name = policy.name().to_owned();
        let (limiter, _clock) = setup(policy);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let limiter = limiter.clone();
            tasks.spawn(async move {
                limiter
                    .check(&request("198.51.100.1:1000"))
                    .await
                    .is_allowed()
            });
        }
        let mut allowed = 0;
        while let Some(ok) = tasks.join_next().await {
            allowed += usize::from(ok.expect("task"));
        }
        assert_eq!(allowed, 25, "{name}");
    }
}

#[tokio::test]
async fn fixed_windows_reset_on_time_and_say_when() {
    let (limiter, clock) = setup(Policy::fixed_window("w", 3, Duration::from_secs(10)));
    // Start 4 s into a window.
    let now = clock.now_millis_for_tests();
    clock.advance(Duration::from_millis(10_000 - now % 10_000 + 4_000));
    let peer = request("198.51.100.2:1");
    for remaining in [2u64, 1, 0] {
        match limiter.check(&peer).await {
            Verdict::Allow { headers, .. } => {
                assert_eq!(
                    header(&headers, "ratelimit"),
                    Some(&*format!("\"w\";r={remaining};t=6"))
                );
            }
            other => panic!("{other:?}"),
        }
    }
    match limiter.check(&peer).await {
        Verdict::Reject {
            answer:
                Answer {
                    status,
                    headers,
                    body,
                    ..
                },
            decision,
            ..
        } => {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(
                header(&headers, "retry-after"),
                Some("6"),
                "until the window ends, not a whole window"
            );
            assert_eq!(header(&headers, "ratelimit"), Some("\"w\";r=0;t=6"));
            assert_eq!(header(&headers, "ratelimit-policy"), Some("\"w\";q=3;w=10"));
            assert_eq!(
                body,
                Bytes::from_static(b"Too Many Requests: rate limit \"w\" exceeded\n")
            );
            assert_eq!(
                decision
                    .and_then(|d| d.denied_by().map(|p| p.name.to_string()))
                    .as_deref(),
                Some("w")
            );
        }
        other => panic!("{other:?}"),
    }
    clock.advance(Duration::from_millis(5_500));
    match limiter.check(&peer).await {
        Verdict::Reject {
            answer: Answer { headers, .. },
            ..
        } => assert_eq!(
            header(&headers, "retry-after"),
            Some("1"),
            "rounded up, never 0"
        ),
        other => panic!("{other:?}"),
    }
    clock.advance(Duration::from_millis(500));
    assert!(
        limiter.check(&peer).await.is_allowed(),
        "a new window admits again"
    );
}

#[tokio::test]
async fn keys_do_not_interfere() {
    let (limiter, _) = setup(Policy::fixed_window("w", 1, Duration::from_secs(60)));
    assert!(limiter.check(&request("198.51.100.3:1")).await.is_allowed());
    assert!(!limiter.check(&request("198.51.100.3:2")).await.is_allowed());
    assert!(limiter.check(&request("198.51.100.4:1")).await.is_allowed());
    assert!(
        limiter
            .check(&request("[2001:db8:1:1::1]:1"))
            .await
            .is_allowed()
    );
    // Same /64: same client.
    assert!(
        !limiter
            .check(&request("[2001:db8:1:1::2]:1"))
            .await
            .is_allowed()
    );
    assert!(
        limiter
            .check(&request("[2001:db8:1:2::1]:1"))
            .await
            .is_allowed()
    );
}

#[tokio::test]
async fn sliding_window_weighs_the_previous_window() {
    let (limiter, clock) = setup(Policy::sliding_window("s", 10, Duration::from_secs(10)));
    let now = clock.now_millis_for_tests();
    clock.advance(Duration::from_millis(10_000 - now % 10_000)); // a window start
    let peer = request("198.51.100.5:1");
    for _ in 0..10 {
        assert!(limiter.check(&peer).await.is_allowed());
    }
    assert!(!limiter.check(&peer).await.is_allowed()); // the 11th counts too
    // Halfway through the next window the previous one (11 counted) weighs 5.5.
    clock.advance(Duration::from_secs(15));
    let mut allowed = 0;
    for _ in 0..10 {
        allowed += usize::from(limiter.check(&peer).await.is_allowed());
    }
    assert_eq!(allowed, 4, "5.5 + 4 <= 10 < 5.5 + 5");
    match limiter.check(&peer).await {
        Verdict::Reject {
            answer: Answer { headers, .. },
            decision,
            ..
        } => {
            let wait = decision.and_then(|d| d.retry_after()).expect("retry");
            // Current window holds 11 after this request: the wait runs into the next window.
            assert!(
                wait > Duration::from_secs(5) && wait <= Duration::from_secs(15),
                "{wait:?}"
            );
            let secs: u64 = header(&headers, "retry-after")
                .expect("retry-after")
                .parse()
                .expect("int");
            assert!(secs >= wait.as_secs() && secs <= wait.as_secs() + 1);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn gcra_admits_a_burst_then_one_request_per_period() {
    let (limiter, clock) = setup(Policy::gcra("g", 5, Duration::from_secs(1)).burst(2));
    let peer = request("198.51.100.6:1");
    assert!(limiter.check(&peer).await.is_allowed());
    assert!(limiter.check(&peer).await.is_allowed());
    match limiter.check(&peer).await {
        Verdict::Reject {
            answer: Answer { headers, .. },
            decision,
            ..
        } => {
            let wait = decision.and_then(|d| d.retry_after()).expect("retry");
            assert!(
                wait > Duration::ZERO && wait <= Duration::from_millis(200),
                "{wait:?}"
            );
            assert_eq!(header(&headers, "retry-after"), Some("1"));
            assert_eq!(header(&headers, "ratelimit-policy"), Some("\"g\";q=5;w=1"));
        }
        other => panic!("{other:?}"),
    }
    clock.advance(Duration::from_millis(200));
    assert!(limiter.check(&peer).await.is_allowed());
    assert!(!limiter.check(&peer).await.is_allowed());
}
