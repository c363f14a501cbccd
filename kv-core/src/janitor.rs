//! Background upkeep threads (active expiry, pruning of in-process rate-limit state) that
//! hold only a weak reference to what they maintain and end with its last handle.

use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;

/// Owned by the maintained value: dropping it (with the value) wakes the thread so that it
/// sees the value gone and ends at once, whatever its interval.
#[derive(Debug, Default)]
pub(crate) struct Janitor(Mutex<Option<thread::Thread>>);

impl Drop for Janitor {
    fn drop(&mut self) {
        if let Some(t) = self.0.get_mut().take() {
            t.unpark();
        }
    }
}

impl Janitor {
    /// Starts a thread named `name` that runs `work` on `target` every `interval` for as
    /// long as `target` has a strong handle elsewhere. `janitor` must live inside `target`.
    pub(crate) fn start<T: Send + Sync + 'static>(
        target: &Arc<T>,
        janitor: impl Fn(&T) -> &Janitor,
        name: &str,
        interval: Duration,
        work: fn(&T),
    ) {
        let weak: Weak<T> = Arc::downgrade(target);
        let spawned = thread::Builder::new().name(name.to_owned()).spawn(move || {
            loop {
                thread::park_timeout(interval);
                let Some(target) = weak.upgrade() else {
                    return;
                };
                work(&target);
            }
        });
        match spawned {
            Ok(handle) => *janitor(target).0.lock() = Some(handle.thread().clone()),
            // Without the thread the owner stays correct, only its upkeep is lazier.
            Err(err) => {
                tracing::warn!(error = %err, thread = name, "kv: could not start a background thread")
            }
        }
    }
}
