//! Wall-clock time: sessions carry creation times in seconds since the Unix
//! epoch, so that a session made on one machine can be judged on another.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tlscache_core::Clock;

/// The system's wall clock, as time since the Unix epoch (zero before it).
/// The default clock of a [`SessionCache`](crate::SessionCache); tests use
/// a [`ManualClock`](tlscache_core::ManualClock) set to a Unix time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
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
