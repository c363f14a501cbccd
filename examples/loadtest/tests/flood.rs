//! Floods of distinct keys over TCP against each middleware, on axum and on actix-web
//! (issue 19): the store stays within its bound, resident memory with it, the in-process
//! GCRA state is pruned. A shorter flood than the `loadtest flood` runs the docs report
//! (1 M keys, release build), with a bound small enough that it is crossed many times.

use loadtest::flood::Target;
use loadtest::runs;

const SERVER: &str = env!("CARGO_BIN_EXE_flood-server");
const KEYS: u64 = 30_000;
const MAX_BYTES: u64 = 2 << 20;

async fn flood_all(framework: &str) {
    let _one_at_a_time = loadtest::serial().await;
    for target in Target::ALL {
        let f = runs::flood(SERVER, framework, target, KEYS, MAX_BYTES, 64)
            .await
            .expect("the flood");
        eprintln!(
            "{framework} {}: {} — RSS {} → peak {} KiB, store ≤ {} B, evictions {}, GCRA ≤ {} then {}",
            target.name(),
            f.report,
            f.rss_before_kib,
            f.rss_peak_kib,
            f.max_store_bytes,
            f.after.evictions,
            f.max_gcra_keys,
            f.gcra_keys_settled
        );
        // The bound on resident memory: what the process held before, plus the store's
        // bound three times over (allocator slack, the index, in-flight buffers).
        let rss_bound = f.rss_before_kib + 3 * MAX_BYTES / 1024 + 16 * 1024;
        runs::check_flood(&f, KEYS, MAX_BYTES, rss_bound)
            .unwrap_or_else(|e| panic!("{framework} {}: {e}", target.name()));
        if matches!(target, Target::Cache | Target::Session) {
            assert!(
                f.after.evictions > 0,
                "the flood crossed the bound: {:?}",
                f.after
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_keys_stays_within_bounds_on_axum() {
    flood_all("axum").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_keys_stays_within_bounds_on_actix() {
    flood_all("actix").await;
}
