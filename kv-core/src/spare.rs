//! A string buffer to reuse, per thread, for the store keys a hot path builds and drops
//! within one call (a cache hit's primary key, a rate-limit counter's key on an
//! in-process store): taken empty with its capacity, given back cleared. A key that
//! outlives the call (a cache miss's, which moves into the fill) is simply not given
//! back, and the next one is a new allocation, as without the spare.

use std::cell::Cell;

thread_local! {
    static SPARE: Cell<String> = const { Cell::new(String::new()) };
}

/// The largest buffer kept as the spare (a key is usually under 100 bytes; one for a long
/// URL is not kept alive in every thread).
pub(crate) const SPARE_MAX: usize = 256;

/// This thread's spare buffer (empty; with its capacity), or a new empty string.
pub(crate) fn take() -> String {
    SPARE.with(Cell::take)
}

/// Gives a key no longer needed back as this thread's spare buffer (cleared first).
pub(crate) fn recycle(mut key: String) {
    if key.capacity() <= SPARE_MAX {
        key.clear();
        SPARE.with(|spare| spare.set(key));
    }
}
