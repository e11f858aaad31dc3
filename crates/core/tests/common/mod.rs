//! Helpers shared by the integration tests. Each test binary uses a part
//! of them.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Waits until `drops` reaches `want` or 30 s pass, nudging the epoch
/// collector meanwhile, and returns the final count.
///
/// Removed entries are freed by crossbeam-epoch's global collector once no
/// thread is pinned in an older epoch. Other tests in this process pin
/// too, so reclamation is prompt but not immediate; the caller asserts on
/// the exact count this returns.
pub fn await_drops(drops: &AtomicU64, want: u64) -> u64 {
    let give_up = Instant::now() + Duration::from_secs(30);
    while drops.load(Ordering::SeqCst) < want && Instant::now() < give_up {
        crossbeam_epoch::pin().flush();
        std::thread::sleep(Duration::from_micros(200));
    }
    // A double drop would overshoot: give it a moment to show.
    crossbeam_epoch::pin().flush();
    drops.load(Ordering::SeqCst)
}

/// A value that counts its drops in a shared counter.
pub struct Counted(pub std::sync::Arc<AtomicU64>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
