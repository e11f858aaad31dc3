//! The one place the engine gets its synchronisation primitives from.
//! Private to the crate; its `Arc` is the one the public API hands out
//! (re-exported at the crate root).
//!
//! Under `cfg(loom)` every atomic, [`Arc`] and mutex is loom's, so the loom
//! models check the engine's real code; otherwise they are `std`'s.
//! crossbeam-epoch follows along through its own `loom` feature and
//! `cfg(crossbeam_loom)`.

#[cfg(loom)]
pub use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicPtr, AtomicU32, AtomicU64},
    Mutex, MutexGuard,
};

#[cfg(not(loom))]
pub(crate) use parking_lot::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub use std::sync::Arc;

pub(crate) use crossbeam_epoch as epoch;

/// Starts loading the cache line at `p` without waiting for it. A hint:
/// it reads nothing into the program, and any address is allowed. Nothing
/// under loom, whose model has no caches.
#[inline]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    // SAFETY: SSE is part of the x86_64 baseline, and a prefetch neither
    // faults nor changes memory, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = p;
}

pub(crate) use std::sync::atomic::Ordering;

/// Locks `mutex`.
///
/// A writer that finds its shard held is almost always waiting for a
/// write on the other core, a few hundred nanoseconds. parking_lot's own
/// slow path spins only 14 pauses (about 0.4 µs here) and then calls
/// `sched_yield` up to seven times before it parks: at two threads of
/// ticket traffic that was 230,000 system calls in 8 million operations,
/// and 7.5% of all samples in the kernel (`perf stat -e
/// 'syscalls:sys_enter_sched_yield'` and `perf record` of `fixed tlscache
/// ticket 2 4000000`). So a contended lock first spins on a read of the
/// lock word for [`SPINS`] pauses, then takes parking_lot's path.
///
/// The mutex has no poisoning: every critical section in this crate
/// leaves the shard consistent before it can unwind (user closures run
/// before the shard is mutated), so a lock released by a panic still
/// guards valid state.
#[cfg(not(loom))]
#[inline]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.try_lock() {
        Some(guard) => guard,
        None => contended(mutex),
    }
}

/// Pauses a contended [`lock`] spins for before it lets parking_lot yield
/// and park: about 3 µs on the 2-vCPU EPYC machine the figures above come
/// from (30 ns a pause), as long as several critical sections, and about
/// what `std`'s mutex spins. With it, the run above made 2,948
/// `sched_yield` calls instead of 230,437.
#[cfg(not(loom))]
const SPINS: usize = 100;

/// The contended half of [`lock`]: spins while the lock is held, tries
/// again when it looks free, and after [`SPINS`] pauses waits as
/// parking_lot does.
#[cfg(not(loom))]
#[cold]
#[inline(never)]
fn contended<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    for _ in 0..SPINS {
        std::hint::spin_loop();
        // A read, not a locked exchange, while the holder still has it:
        // the line stays shared until the holder's release.
        if !mutex.is_locked() {
            if let Some(guard) = mutex.try_lock() {
                return guard;
            }
        }
    }
    mutex.lock()
}

/// Locks `mutex`, ignoring loom's poisoning (see above).
#[cfg(loom)]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn contended_locks_exclude_each_other() {
        const THREADS: usize = 4;
        const ROUNDS: u64 = 20_000;
        // A read, a pause and a write inside each critical section, so the
        // threads meet in `contended`; a lock that let two in at once
        // would lose increments.
        let count = Mutex::new(0u64);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..ROUNDS {
                        let mut held = lock(&count);
                        let seen = *held;
                        std::hint::spin_loop();
                        *held = seen + 1;
                    }
                });
            }
        });
        assert_eq!(*lock(&count), THREADS as u64 * ROUNDS);
    }
}
