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
/// parking_lot's mutex spins briefly and then yields before it parks a
/// waiting thread in the kernel, so a writer that finds its shard held by
/// a write on the other core (a few hundred nanoseconds) gets it without a
/// sleep and a wake-up. It has no poisoning: every critical section in this
/// crate leaves the shard consistent before it can unwind (user closures
/// run before the shard is mutated), so a lock released by a panic still
/// guards valid state.
#[cfg(not(loom))]
#[inline]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock()
}

/// Locks `mutex`, ignoring loom's poisoning (see above).
#[cfg(loom)]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
