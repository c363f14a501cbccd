//! Injectable time.
//!
//! Every TTL decision in kv reads the time from a [`Clock`]. Production code uses
//! [`SystemClock`] (the default everywhere); tests, yours included, use
//! [`ManualClock`] (feature `test-util`) and move time with
//! [`advance`](ManualClock::advance) instead of sleeping.
//!
//! ```
//! # #[cfg(feature = "test-util")] {
//! use std::time::Duration;
//! use kv_core::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let before = clock.now();
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(clock.now().duration_since(before).unwrap(), Duration::from_secs(90));
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
///
/// Wall-clock (not monotonic) time because deadlines are absolute, as Redis keeps them:
/// they survive being written to a shared store and read by another process.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}

/// The operating system's wall clock, read cheaply.
///
/// `SystemTime::now()` costs a `clock_gettime` call (about 40 ns on the VMs we measured),
/// and the stores and engines read the time on most operations. So each thread reads the
/// wall clock once, then advances it with the CPU's time-stamp counter (`quanta`, a few
/// ns) and reads the wall clock again every 100 ms: the time never strays from the wall
/// clock by more than the counter's drift over 100 ms (microseconds), and a wall-clock
/// step is followed within 100 ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + system_since_epoch()
    }
}

/// How long a thread's anchor is trusted before the wall clock is read again.
const REANCHOR: Duration = Duration::from_millis(100);

#[derive(Clone, Copy)]
struct Anchor {
    wall: Duration,
    mono: quanta::Instant,
}

thread_local! {
    static ANCHOR: std::cell::Cell<Option<Anchor>> = const { std::cell::Cell::new(None) };
}

/// The time-stamp counter, through a `quanta::Clock` held here: `quanta::Instant::now()`
/// first looks for a per-thread mock clock (a thread-local borrow on every read, which
/// every cache hit and rate-limit check paid twice).
#[inline]
fn mono_now() -> quanta::Instant {
    mono().0.now()
}

/// The time-stamp counter's clock, and its first reading (the origin of [`mono_elapsed`]).
#[inline]
fn mono() -> &'static (quanta::Clock, quanta::Instant) {
    static MONO: std::sync::OnceLock<(quanta::Clock, quanta::Instant)> = std::sync::OnceLock::new();
    MONO.get_or_init(|| {
        let clock = quanta::Clock::new();
        let start = clock.now();
        (clock, start)
    })
}

/// The time since this process first read the time-stamp counter.
#[inline]
fn mono_elapsed() -> Duration {
    let (clock, start) = mono();
    clock.now().saturating_duration_since(*start)
}

/// Now, as the time since the Unix epoch, on the system clock (see [`SystemClock`]).
#[inline]
fn system_since_epoch() -> Duration {
    let mono = mono_now();
    ANCHOR.with(|cell| {
        if let Some(anchor) = cell.get() {
            let elapsed = mono.saturating_duration_since(anchor.mono);
            if elapsed < REANCHOR {
                return anchor.wall + elapsed;
            }
        }
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        cell.set(Some(Anchor { wall, mono }));
        wall
    })
}

/// Milliseconds since the Unix epoch (0 for times before it).
#[inline]
pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The clock a store or engine holds: the system clock without a virtual call, or any
/// user clock behind an `Arc`.
#[derive(Clone, Default)]
pub(crate) enum ClockHandle {
    #[default]
    System,
    Custom(Arc<dyn Clock>),
}

impl ClockHandle {
    pub(crate) fn new(clock: impl Clock) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(clock);
        ClockHandle::Custom(clock)
    }

    /// Now, as the time since the Unix epoch (zero before it).
    #[inline]
    pub(crate) fn now_since_epoch(&self) -> Duration {
        match self {
            ClockHandle::System => system_since_epoch(),
            ClockHandle::Custom(c) => c.now().duration_since(UNIX_EPOCH).unwrap_or_default(),
        }
    }

    /// Now, on a clock for measuring intervals only: the system clock's is the time
    /// since the process first read it (the time-stamp counter alone, without the wall
    /// clock [`now_since_epoch`](Self::now_since_epoch) anchors it to: ~40 instructions
    /// less), a custom clock's its time since the epoch. What in-process GCRA runs on:
    /// its state is never compared with another process's or stored.
    #[inline]
    pub(crate) fn monotonic(&self) -> Duration {
        match self {
            ClockHandle::System => mono_elapsed(),
            ClockHandle::Custom(c) => c.now().duration_since(UNIX_EPOCH).unwrap_or_default(),
        }
    }

    /// Now, in milliseconds since the Unix epoch.
    #[inline]
    pub(crate) fn now_millis(&self) -> u64 {
        match self {
            ClockHandle::System => {
                u64::try_from(system_since_epoch().as_millis()).unwrap_or(u64::MAX)
            }
            ClockHandle::Custom(c) => unix_millis(c.now()),
        }
    }
}

impl fmt::Debug for ClockHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClockHandle::System => f.write_str("SystemClock"),
            ClockHandle::Custom(c) => c.fmt(f),
        }
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// Available with the `test-util` feature, so that applications can test their own
/// TTL-dependent behaviour deterministically.
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// Nanoseconds since the Unix epoch.
    nanos: Arc<std::sync::atomic::AtomicU64>,
}

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    /// 2026-01-01T00:00:00Z: a fixed start, so that tests are reproducible.
    pub const DEFAULT_START: Duration = Duration::from_secs(1_767_225_600);

    /// A clock standing at [`ManualClock::DEFAULT_START`].
    pub fn new() -> Self {
        Self::starting_at(UNIX_EPOCH + Self::DEFAULT_START)
    }

    /// A clock standing at `start` (times before the Unix epoch are clamped to it).
    pub fn starting_at(start: SystemTime) -> Self {
        let nanos = start
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        ManualClock {
            nanos: Arc::new(std::sync::atomic::AtomicU64::new(nanos)),
        }
    }

    /// Moves the clock forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self.nanos.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| Some(n.saturating_add(by)),
        );
    }

    #[cfg(test)]
    pub(crate) fn now_millis_for_tests(&self) -> u64 {
        unix_millis(self.now())
    }

    /// Sets the clock to `to` (it may go backwards, as a wall clock can).
    pub fn set(&self, to: SystemTime) {
        let nanos = to
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.nanos.store(nanos, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.nanos.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = ManualClock::new();
        let other = clock.clone();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        other.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), t0 + Duration::from_millis(1500));
        let handle = ClockHandle::new(clock.clone());
        assert_eq!(handle.now_millis(), unix_millis(t0) + 1500);
        clock.set(UNIX_EPOCH);
        assert_eq!(handle.now_millis(), 0);
    }

    #[test]
    fn system_clock_follows_the_wall_clock() {
        for _ in 0..3 {
            let ours = ClockHandle::System.now_since_epoch();
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let diff = ours.abs_diff(wall);
            assert!(diff < Duration::from_millis(50), "{diff:?}");
            std::thread::sleep(Duration::from_millis(60));
        }
        let a = SystemClock.now();
        let b = SystemClock.now();
        assert!(b >= a);
        assert!(ClockHandle::System.now_millis() > 1_577_836_800_000);
    }
}
