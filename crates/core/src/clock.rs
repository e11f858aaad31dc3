//! Time sources. A cache reads its [`Clock`] once per operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A monotonic time source.
///
/// `now` returns the time elapsed since an origin of the clock's choosing. It
/// should never go backwards; if it does, nothing breaks: entries simply look
/// younger until the clock catches up.
pub trait Clock: Send + Sync + 'static {
    /// The current time, measured from the clock's origin.
    fn now(&self) -> Duration;

    /// [`now`](Clock::now) in nanoseconds, saturating at `u64::MAX`. The
    /// cache calls this once per operation; override it if the clock can
    /// answer without building a `Duration`.
    fn now_nanos(&self) -> u64 {
        duration_to_nanos(self.now())
    }
}

/// The default clock: the CPU's invariant time-stamp counter through
/// `quanta` (calibrated once per process, about 10 ns a read here against
/// about 25 ns for `std::time::Instant`), falling back to the OS monotonic
/// clock where there is no usable counter. Measured from the clock's
/// creation. (Under `cfg(loom)`, where quanta does not build, it is
/// `std::time::Instant`.)
#[derive(Debug, Clone)]
pub struct MonotonicClock {
    #[cfg(not(loom))]
    clock: quanta::Clock,
    #[cfg(not(loom))]
    origin: u64,
    #[cfg(loom)]
    origin: std::time::Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        #[cfg(not(loom))]
        {
            let clock = quanta::Clock::new();
            let origin = clock.raw();
            Self { clock, origin }
        }
        #[cfg(loom)]
        Self {
            origin: std::time::Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }

    #[inline]
    fn now_nanos(&self) -> u64 {
        #[cfg(not(loom))]
        return self.clock.delta_as_nanos(self.origin, self.clock.raw());
        #[cfg(loom)]
        return duration_to_nanos(self.origin.elapsed());
    }
}

/// A clock that moves only when told to; for tests and simulations.
///
/// Clones share one time, so a test keeps a clone and drives the cache's time
/// by hand.
///
/// ```
/// use std::time::Duration;
/// use tlscache_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` (saturating at the largest time).
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        let mut cur = self.nanos.load(Ordering::Relaxed);
        loop {
            let next = cur.saturating_add(by);
            match self
                .nanos
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Sets the clock to `to`, forwards or backwards.
    pub fn set(&self, to: Duration) {
        self.nanos.store(duration_to_nanos(to), Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

/// `d` in nanoseconds, saturating at `u64::MAX` (about 584 years).
#[inline]
pub(crate) fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
