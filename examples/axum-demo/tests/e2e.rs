//! The axum demo binary over real HTTP: page, cache, session flow, rate limit; and two
//! replicas sharing one Redis.

use kv_test_support as support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_demo_works_end_to_end() {
    demo_common::e2e::check_demo(env!("CARGO_BIN_EXE_axum-demo")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_axum_replicas_share_sessions_and_limits_through_redis() {
    // A server of our own: the replicas need one without other runs' keys.
    let Some(redis) = support::owned_server("two_axum_replicas") else {
        return;
    };
    demo_common::e2e::check_replicas(env!("CARGO_BIN_EXE_axum-demo"), &redis.url()).await;
}
