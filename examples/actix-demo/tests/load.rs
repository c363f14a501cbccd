//! The actix demo under 64 connections over real TCP, on memory and on Redis, and with its
//! Redis killed and frozen during the load (issue 19). The runs are in the `loadtest`
//! crate (shared with `axum-demo`'s test and the `loadtest` binary); one at a time, as
//! their timing bounds assume the machine to themselves.

use std::time::Duration;

use loadtest::runs::{self, Fault};

const DEMO: &str = env!("CARGO_BIN_EXE_actix-demo");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actix_demo_under_load_loses_nothing_and_limits_exactly() {
    let _one_at_a_time = loadtest::serial().await;
    let memory = runs::clean(DEMO, None, 64, Duration::from_secs(3))
        .await
        .expect("the run");
    eprintln!(
        "memory: {}\n{}\n{}",
        memory.cache, memory.limited, memory.sessions
    );
    memory.check().expect("clean on memory");

    let Some(redis) = kv_test_support::owned_server("actix_demo_under_load") else {
        return;
    };
    let on_redis = runs::clean(DEMO, Some(&redis.url()), 64, Duration::from_secs(3))
        .await
        .expect("the run");
    eprintln!(
        "redis: {}\n{}\n{}",
        on_redis.cache, on_redis.limited, on_redis.sessions
    );
    on_redis.check().expect("clean on Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actix_demo_rides_out_redis_killed_and_frozen_under_load() {
    if !kv_test_support::available_for("actix_demo_faults") {
        return;
    }
    let _one_at_a_time = loadtest::serial().await;
    for fault in [Fault::Kill, Fault::Freeze] {
        // Frozen longer than /slow's bound, so that a request waiting for the thaw shows.
        let outage = match fault {
            Fault::Kill => Duration::from_secs(2),
            Fault::Freeze => Duration::from_secs(3),
        };
        let run = runs::faulted(DEMO, fault, 64, outage)
            .await
            .expect("the run");
        for report in &run.reports {
            eprintln!("{fault:?}: {report}");
        }
        let figures = run.check().unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        eprintln!("{fault:?}: {figures:?}");
    }
}
