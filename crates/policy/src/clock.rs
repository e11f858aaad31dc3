//! Wall-clock time: sessions carry creation times in seconds since the Unix
//! epoch, so that a session made on one machine can be judged on another.

use std::sync::Arc;
use std::time::Duration;

use tlscache_core::{Clock, CoarseClock};

/// The system's wall clock, as time since the Unix epoch (zero before it).
/// The default clock of a [`SessionCache`](crate::SessionCache); tests use
/// a [`ManualClock`](tlscache_core::ManualClock) set to a Unix time.
///
/// It reads [`CoarseClock::unix_time`]: on Linux the time the kernel keeps
/// once a tick (1 to 10 ms), read through the vDSO without the CPU's
/// time-stamp counter. Sessions keep their times in seconds, as OpenSSL's
/// do, so the tick costs nothing in precision and the counter read is
/// saved on every lookup. Elsewhere it is `SystemTime`. As a cache's
/// default clock its seconds are read as [`CoarseClock::unix_secs`]
/// (`time()`), the same seconds in one load.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        CoarseClock::unix_time()
    }
}

/// One clock shared by the policy layer and its core caches: the system's
/// (the default), read directly, or one the builder was given, through
/// its trait object. Every lookup and store reads the seconds, and the
/// direct read saves the call through the object and the `Duration`
/// between (callgrind, `fixed tlscache-policy hit 1`: the read had cost a
/// lookup 69 instructions of 443).
#[derive(Clone)]
pub(crate) enum SharedClock {
    System,
    Given(Arc<dyn Clock>),
}

impl Clock for SharedClock {
    fn now(&self) -> Duration {
        match self {
            SharedClock::System => SystemClock.now(),
            SharedClock::Given(clock) => clock.now(),
        }
    }

    fn now_nanos(&self) -> u64 {
        match self {
            SharedClock::System => SystemClock.now_nanos(),
            SharedClock::Given(clock) => clock.now_nanos(),
        }
    }
}

impl SharedClock {
    /// Seconds since the Unix epoch.
    #[inline]
    pub(crate) fn secs(&self) -> u64 {
        match self {
            SharedClock::System => CoarseClock::unix_secs(),
            SharedClock::Given(clock) => clock.now().as_secs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    #[test]
    fn the_shared_system_clock_reads_the_system_clocks_seconds() {
        let before = SystemClock.now().as_secs();
        let read = SharedClock::System.secs();
        let after = SystemClock.now().as_secs();
        assert!(before <= read && read <= after, "{before} {read} {after}");
        let manual = tlscache_core::ManualClock::new();
        manual.set(Duration::from_secs(1_700_000_000));
        let given = SharedClock::Given(Arc::new(manual));
        assert_eq!(given.secs(), 1_700_000_000);
    }

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
