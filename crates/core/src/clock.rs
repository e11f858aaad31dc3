//! Time sources. A cache reads its [`Clock`] at most once per operation.

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

/// The default clock: the kernel's coarse monotonic clock. On Linux that is
/// `CLOCK_MONOTONIC_COARSE`, read through the vDSO: a few loads of a time
/// the kernel updates once a tick, with no system call and no read of the
/// CPU's time-stamp counter. Elsewhere (or on a kernel without it) it is
/// `std::time::Instant`. Measured from the clock's creation.
///
/// Its resolution is the kernel's tick (1 to 10 ms; `clock_getres` says),
/// so the cache sees an entry's lifetime to within a tick: OpenSSL itself
/// keeps session times in seconds. A clock read is in every lookup of an
/// entry with a deadline and every write, and the time-stamp counter that
/// [`MonotonicClock`] reads is the dearer read: the suite's single-threaded
/// get bench (`baseline`) runs the cache on both. A cache that needs
/// nanoseconds takes a [`MonotonicClock`].
#[derive(Debug, Clone)]
pub struct CoarseClock {
    source: Coarse,
}

#[derive(Debug, Clone)]
enum Coarse {
    /// `CLOCK_MONOTONIC_COARSE` nanoseconds at the clock's creation.
    #[cfg(target_os = "linux")]
    Kernel(u64),
    Std(std::time::Instant),
}

/// The kernel's clock `id` as whole seconds and nanoseconds, or `None` if
/// the kernel has no such clock or it reads before its zero.
#[cfg(target_os = "linux")]
#[inline]
fn kernel_clock(id: libc::clockid_t) -> Option<(u64, u64)> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable `timespec` for the whole call, and
    // `clock_gettime` writes nothing but it.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return None;
    }
    Some((
        u64::try_from(ts.tv_sec).ok()?,
        u64::try_from(ts.tv_nsec).ok()?,
    ))
}

/// The kernel's coarse clock `id` (`CLOCK_MONOTONIC_COARSE` or
/// `CLOCK_REALTIME_COARSE`), or `None` if the kernel has no such clock or
/// it reads before its zero.
#[cfg(target_os = "linux")]
#[inline]
fn kernel_coarse(id: libc::clockid_t) -> Option<Duration> {
    let (secs, nanos) = kernel_clock(id)?;
    Some(Duration::new(secs, u32::try_from(nanos).ok()?))
}

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds: summed as the kernel gives
/// them, without a `Duration` between, whose constructor normalises the
/// nanoseconds (a compare, and a division on the way out), about a third
/// of this read's instructions, for the same sum.
#[cfg(target_os = "linux")]
#[inline]
fn kernel_coarse_nanos() -> Option<u64> {
    let (secs, nanos) = kernel_clock(libc::CLOCK_MONOTONIC_COARSE)?;
    Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

impl CoarseClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        #[cfg(target_os = "linux")]
        if let Some(origin) = kernel_coarse_nanos() {
            return Self {
                source: Coarse::Kernel(origin),
            };
        }
        Self {
            source: Coarse::Std(std::time::Instant::now()),
        }
    }

    /// The coarse wall clock: time since the Unix epoch as the kernel kept
    /// it at its last tick (`CLOCK_REALTIME_COARSE` on Linux, else
    /// `SystemTime`; zero before the epoch). For times kept in seconds, as
    /// OpenSSL keeps a session's; unlike a [`Clock`], it can step back
    /// when the system's time is set.
    pub fn unix_time() -> Duration {
        #[cfg(target_os = "linux")]
        if let Some(now) = kernel_coarse(libc::CLOCK_REALTIME_COARSE) {
            return now;
        }
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }

    /// [`unix_time`](Self::unix_time) in whole seconds. On Linux that is
    /// `time()`: the same seconds the kernel keeps for
    /// `CLOCK_REALTIME_COARSE`, read through the vDSO as one load, without
    /// the nanoseconds or a `Duration` (a C loop here: 3.7 to 3.9 ns a
    /// call, against 7.9 to 9.2 for `clock_gettime` of the coarse clock).
    #[inline]
    pub fn unix_secs() -> u64 {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: `time` with a null pointer writes nothing and only
            // returns the time.
            let secs = unsafe { libc::time(std::ptr::null_mut()) };
            if let Ok(secs) = u64::try_from(secs) {
                return secs;
            }
        }
        Self::unix_time().as_secs()
    }
}

impl Default for CoarseClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for CoarseClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }

    #[inline]
    fn now_nanos(&self) -> u64 {
        match &self.source {
            // The kernel answered at creation, so it answers now; were it
            // ever not to, the clock would read its origin, and a clock
            // that goes back breaks nothing.
            #[cfg(target_os = "linux")]
            Coarse::Kernel(origin) => {
                kernel_coarse_nanos().map_or(0, |t| t.saturating_sub(*origin))
            }
            Coarse::Std(origin) => duration_to_nanos(origin.elapsed()),
        }
    }
}

/// A precise clock: the CPU's invariant time-stamp counter through
/// `quanta` (calibrated once per process), falling back to the OS
/// monotonic clock where there is no usable counter. Nanosecond resolution,
/// for a counter read in every operation. Measured from the clock's
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
