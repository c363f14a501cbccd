//! The actix demo under 64 connections over real TCP, on memory and on Redis, and with its
//! Redis killed and frozen during the load (issue 19). The runs and their properties are
//! in the `loadtest` crate (`loadtest::runs`), shared with the other demo's test and the
//! `loadtest` binary.

const DEMO: &str = env!("CARGO_BIN_EXE_actix-demo");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actix_demo_under_load_loses_nothing_and_limits_exactly() {
    loadtest::runs::assert_clean_under_load(DEMO, "actix_demo_under_load").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actix_demo_rides_out_redis_killed_and_frozen_under_load() {
    loadtest::runs::assert_rides_out_faults(DEMO, "actix_demo_faults").await;
}
