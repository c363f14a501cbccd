//! The store conformance suite: every row of the [`Store`](crate::Store) contract, as
//! Redis behaves, and the agreement of a store's [`LocalStore`](crate::LocalStore) face
//! with its `async` one.

mod hashes;
mod local;
mod strings;
mod throttle;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::Fixture;

/// Keys of one case: `<run prefix>:<case>:<name>`.
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn k(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }
}

fn unique_prefix() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    format!("kvct:{:x}.{nanos:x}.{run}", std::process::id())
}

macro_rules! cases {
    ($($module:ident::$name:ident),* $(,)?) => {
        /// The names of the suite's cases, in the order [`run_all`] runs them.
        pub const CASES: &[&str] = &[$(stringify!($name)),*];

        /// Runs every case of the suite against `fixture`; panics on the first failure,
        /// naming the case.
        pub async fn run_all<F: Fixture>(fixture: &F) {
            let run = unique_prefix();
            $(
                let keys = Keys { prefix: format!("{run}:{}", stringify!($name)) };
                tracing::info!(case = stringify!($name), "kv conformance");
                eprintln!("kv conformance: {}", stringify!($name));
                $module::$name(fixture, &keys).await;
            )*
        }
    };
}

cases!(
    strings::get_missing_is_none,
    strings::set_then_get_round_trips_any_bytes,
    strings::keys_are_independent,
    strings::set_overwrites_value_and_ttl,
    strings::set_refuses_zero_and_too_long_ttl_and_keeps_the_old_value,
    strings::set_with_ttl_expires,
    strings::set_nx_stores_only_without_a_live_key,
    strings::del_reports_live_keys_only,
    strings::expire_sets_ttl_on_live_keys_only,
    strings::expire_zero_deletes,
    strings::ttl_reports_missing_persistent_expires,
    strings::incr_by_creates_counts_and_renders_decimal,
    strings::incr_by_sets_ttl_only_on_creation,
    strings::incr_by_on_expired_key_starts_over,
    strings::incr_by_increments_text_set_by_set,
    strings::incr_by_refuses_non_integers_and_keeps_them,
    strings::incr_by_overflow_keeps_the_value,
    strings::incr_by_refuses_zero_ttl_and_creates_nothing,
    strings::incr_by_is_atomic_under_concurrency,
    strings::set_nx_has_one_winner_under_concurrency,
    hashes::hset_then_hget_all_round_trips,
    hashes::hset_with_ttl_sets_it_and_without_keeps_it,
    hashes::hash_expires_with_its_ttl,
    hashes::hdel_removes_fields_and_an_empty_hash,
    hashes::hash_and_string_commands_refuse_the_other_kind,
    hashes::hash_calls_refuse_bad_input_and_change_nothing,
    hashes::hset_of_different_fields_under_concurrency_loses_none,
    local::local_face_agrees_with_the_async_one,
    throttle::throttle_admits_a_burst_then_one_per_interval,
    throttle::throttle_cost_over_the_burst_never_passes_and_changes_nothing,
    throttle::throttle_refuses_bad_input_and_other_kinds,
    throttle::throttle_on_the_stores_clock_expires_with_its_ttl,
    throttle::throttle_admits_exactly_the_burst_under_concurrency,
);

pub(super) fn is_invalid_input<T: std::fmt::Debug>(r: &Result<T, crate::KvError>) -> bool {
    matches!(r, Err(crate::KvError::InvalidInput(_)))
}
