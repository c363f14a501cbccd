//! The active-expiry thread ends with the last handle. Its own test binary, so that no
//! other test's store adds threads while this one counts them.

use std::time::{Duration, Instant};

use kv_core::MemoryStore;

fn expiry_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim_end().starts_with("kv-memory-expir"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn wait_for(count: usize) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if expiry_threads() == count {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn expiry_thread_ends_when_the_last_handle_is_dropped() {
    if std::fs::metadata("/proc/self/task").is_err() {
        eprintln!("skipped: no /proc on this platform");
        return;
    }
    assert_eq!(expiry_threads(), 0);
    let store = MemoryStore::builder()
        .expiry_interval(Duration::from_secs(3600))
        .build()
        .expect("store");
    assert!(wait_for(1), "no expiry thread started");
    let clone = store.clone();
    drop(store);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(expiry_threads(), 1, "thread ended while a clone is alive");
    // Even with an hour-long interval, dropping the last handle wakes and ends the thread.
    drop(clone);
    assert!(wait_for(0), "expiry thread outlived the store");
    let no_thread = MemoryStore::builder()
        .without_active_expiry()
        .build()
        .expect("store");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(expiry_threads(), 0);
    drop(no_thread);
}
