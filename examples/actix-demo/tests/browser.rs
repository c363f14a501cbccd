//! The actix demo in headless Chromium (skipped without it unless `KV_REQUIRE_BROWSER=1`);
//! screenshots in `target/e2e-screenshots/actix-*.png`.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_actix_dashboard_in_chromium() {
    demo_common::browser::check_in_browser(env!("CARGO_BIN_EXE_actix-demo"), "actix").await;
}
