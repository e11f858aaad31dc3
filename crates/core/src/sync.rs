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
pub(crate) use parking_lot::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub use std::sync::Arc;

pub(crate) use crossbeam_epoch as epoch;

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// A cell whose contents are reached through a raw pointer in a closure,
/// as loom's `UnsafeCell` is, so that loom checks every access to memory
/// that threads hand to one another outside a lock.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a pointer to the contents; the caller makes sure no
    /// other thread reaches them meanwhile.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

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

/// The number of a thread that has given its number back (it is exiting):
/// it records through the shared stripes (see `access`).
pub(crate) const RETIRED: usize = usize::MAX;

/// The number in `index`, which `next` gives it if it has none yet.
#[inline]
fn numbered(index: &std::cell::Cell<usize>, next: impl FnOnce() -> usize) -> usize {
    let mut i = index.get();
    if i == UNNUMBERED {
        i = next();
        index.set(i);
    }
    i
}

/// A thread that has not asked for its number yet.
const UNNUMBERED: usize = usize::MAX - 1;

/// The calling thread's number: the smallest that no live thread holds
/// when it first asks. A thread gives its number back when it exits, so
/// a number names one live thread at a time, and a pool of `n` threads
/// holds numbers below `n` plus however many other threads read caches.
/// Stripes of access records are picked by it (see `access`): a thread
/// whose number has a stripe of its own writes it without atomic
/// read-modify-writes.
///
/// A thread that asks while it exits (from another thread-local's
/// destructor, after its number went back) gets [`RETIRED`].
#[cfg(not(loom))]
#[inline]
pub(crate) fn thread_index() -> usize {
    numbers::INDEX.with(|index| numbered(index, numbers::take))
}

#[cfg(not(loom))]
mod numbers {
    use std::cell::Cell;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use super::{lock, RETIRED, UNNUMBERED};

    /// Numbers handed out: the next new one is `next`, and `free` holds
    /// those given back, smallest first.
    struct Numbers {
        next: usize,
        free: BinaryHeap<Reverse<usize>>,
    }

    static NUMBERS: super::Mutex<Numbers> = super::Mutex::new(Numbers {
        next: 0,
        free: BinaryHeap::new(),
    });

    /// Gives the thread's number back when the thread exits.
    struct GiveBack;

    impl Drop for GiveBack {
        fn drop(&mut self) {
            // `INDEX` has no destructor, so it outlives every one that
            // runs at thread exit, this one included.
            let n = INDEX.with(|index| index.replace(RETIRED));
            if n < UNNUMBERED {
                lock(&NUMBERS).free.push(Reverse(n));
            }
        }
    }

    thread_local! {
        pub(super) static INDEX: Cell<usize> = const { Cell::new(UNNUMBERED) };
        static GIVE_BACK: GiveBack = const { GiveBack };
    }

    /// A number for the calling thread: the smallest free one.
    #[cold]
    pub(super) fn take() -> usize {
        // Arms the give-back first: a thread already past its thread-local
        // destructors could never give a number back, so it gets none.
        if GIVE_BACK.try_with(|_| ()).is_err() {
            return RETIRED;
        }
        let mut numbers = lock(&NUMBERS);
        match numbers.free.pop() {
            Some(Reverse(n)) => n,
            None => {
                let n = numbers.next;
                // Reaches `UNNUMBERED` only after 2^64 threads.
                numbers.next = n.saturating_add(1).min(UNNUMBERED - 1);
                n
            }
        }
    }
}

/// The calling thread's number, as above, on loom's threads: numbered
/// afresh in every execution (and never given back: a model's threads
/// are few), so each execution explores the same stripes.
#[cfg(loom)]
pub(crate) fn thread_index() -> usize {
    use std::cell::Cell;

    loom::lazy_static! {
        static ref NEXT: loom::sync::atomic::AtomicUsize = loom::sync::atomic::AtomicUsize::new(0);
    }
    loom::thread_local! {
        static INDEX: Cell<usize> = Cell::new(UNNUMBERED);
    }
    INDEX.with(|index| numbered(index, || NEXT.fetch_add(1, Ordering::Relaxed)))
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::thread_index;

    #[test]
    fn live_threads_hold_distinct_numbers() {
        let threads = 8;
        let barrier = std::sync::Barrier::new(threads);
        let mut numbers: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let n = thread_index();
                        // All alive at once before any gives its number back.
                        barrier.wait();
                        assert_eq!(thread_index(), n, "a thread's number is stable");
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), threads);
    }

    #[test]
    fn an_exited_threads_number_is_reused() {
        // One thread after another: each gives its number back on exit, so
        // the numbers stay below the count of threads alive at once in
        // this test binary (a few dozen at most), not the 1000 made here.
        let most = (0..1000)
            .map(|_| std::thread::spawn(thread_index).join().unwrap())
            .max();
        assert!(most.is_some_and(|n| n < 100), "{most:?}");
    }
}
