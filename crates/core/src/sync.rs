//! The one place the engine gets its synchronisation primitives from.
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
pub use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicPtr, AtomicU32, AtomicU64},
    Mutex, MutexGuard,
};

pub(crate) use crossbeam_epoch as epoch;

/// The number in `index`, which `next` gives it if it has none yet.
#[inline]
fn numbered(index: &std::cell::Cell<usize>, next: impl FnOnce() -> usize) -> usize {
    let mut i = index.get();
    if i == usize::MAX {
        i = next();
        index.set(i);
    }
    i
}

/// The calling thread's number: threads are numbered from zero in the order
/// they first ask. Stripes of access records are picked by it (see
/// `access`).
#[cfg(not(loom))]
#[inline]
pub(crate) fn thread_index() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;

    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| numbered(index, || NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// The calling thread's number, as above, on loom's threads: numbered
/// afresh in every execution, so each explores the same stripes.
#[cfg(loom)]
pub(crate) fn thread_index() -> usize {
    use std::cell::Cell;

    loom::lazy_static! {
        static ref NEXT: loom::sync::atomic::AtomicUsize = loom::sync::atomic::AtomicUsize::new(0);
    }
    loom::thread_local! {
        static INDEX: Cell<usize> = Cell::new(usize::MAX);
    }
    INDEX.with(|index| numbered(index, || NEXT.fetch_add(1, Ordering::Relaxed)))
}

pub(crate) use std::sync::atomic::Ordering;

/// Locks `mutex`, ignoring poisoning.
///
/// Every critical section in this crate leaves the shard consistent before it
/// can unwind (user closures run before the shard is mutated), so a poisoned
/// lock still guards valid state.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
