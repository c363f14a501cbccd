//! The axum demo against the attacks of issue 21 (each check is in
//! `demo_common::hardening`; the actix demo passes the same ones).

use kv_test_support as support;

const BIN: &str = env!("CARGO_BIN_EXE_axum-demo");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_and_idle_connections_are_dropped() {
    demo_common::hardening::check_slow_clients(BIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_20_requests_per_window_and_logins_are_limited() {
    demo_common::hardening::check_address_ceiling(BIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_user_header_neither_spends_a_victims_quota_nor_resets_its_own() {
    demo_common::hardening::check_forged_user_header(BIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_to_login_and_logout_are_refused() {
    demo_common::hardening::check_cross_origin(BIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_request_limits_and_security_headers() {
    demo_common::hardening::check_head_limits_and_headers(BIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_friendly_html_for_browsers_and_json_for_clients() {
    demo_common::hardening::check_friendly_errors(BIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_startup_errors_and_one_log_line_per_request() {
    demo_common::hardening::check_startup_and_logs(BIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_session_key_survives_a_redis_restart() {
    let Some(mut redis) = support::owned_server("axum_key_survives_restart") else {
        return;
    };
    let url = redis.url();
    demo_common::hardening::check_key_survives_redis_restart(BIN, &url, || redis.restart()).await;
}
