//! Wall-clock time: sessions carry creation times in seconds since the Unix
//! epoch, so that a session made on one machine can be judged on another.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tlscache_core::Clock;

/// The system's wall clock, as time since the Unix epoch (zero before it).
/// The default clock of a [`SessionCache`](crate::SessionCache); tests use
/// a [`ManualClock`](tlscache_core::ManualClock) set to a Unix time.
///
/// On Linux it reads `CLOCK_REALTIME_COARSE`: the time the kernel keeps
/// once a tick (1 to 10 ms), read through the vDSO without the CPU's
/// time-stamp counter. Sessions keep their times in seconds, as OpenSSL's
/// do, so the tick costs nothing in precision and the counter read is
/// saved on every lookup. Elsewhere it is `SystemTime`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// `CLOCK_REALTIME_COARSE`, or `None` if the kernel has no such clock or
/// the time is before the Unix epoch.
#[cfg(target_os = "linux")]
fn coarse_realtime() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable `timespec` for the whole call, and
    // `clock_gettime` writes nothing but it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok()?;
    Some(Duration::new(secs, nanos))
}

#[cfg(not(target_os = "linux"))]
fn coarse_realtime() -> Option<Duration> {
    None
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        coarse_realtime().unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
        })
    }
}

/// One clock shared by the policy layer and its core caches.
#[derive(Clone)]
pub(crate) struct SharedClock(pub(crate) Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> Duration {
        self.0.now()
    }

    fn now_nanos(&self) -> u64 {
        self.0.now_nanos()
    }
}

impl SharedClock {
    /// Seconds since the Unix epoch.
    pub(crate) fn secs(&self) -> u64 {
        self.0.now().as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_the_wall_clock() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let read = SystemClock.now();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        // The coarse clock lags the precise one by at most one tick (10 ms
        // at most), and is never ahead of it.
        assert!(
            read + Duration::from_millis(20) >= before,
            "{read:?} < {before:?}"
        );
        assert!(read <= after, "{read:?} > {after:?}");
    }
}
