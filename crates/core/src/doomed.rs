//! Work a writer's collection would run, run a little at a time by that
//! writer's following writes rather than all in the one write that
//! collects.
//!
//! A write that collects garbage (every `collect_every` retirements of its
//! shard, see `CacheBuilder::collect_every`) runs the deferred calls of
//! every retirement whose epoch has passed: often a few dozen at once.
//! Each reclaims a retired node, whose line has gone cold since its write
//! (often to the other core), and releases the node's handle on its value;
//! the last handle's drop may be dear too (a TLS session zeroizes its
//! secret and frees its memory). That one write would pay for them all:
//! in the ticket traffic of `latency --tickets`, two thirds of the writes
//! over 2.5 µs were collections, and a slow one had run 16 reclamations
//! where a fast one had run 4. While a write collects, that work (a node's
//! reclamation, or the drop of a value's last handle) is instead set aside
//! in the thread's own ring (up to [`HELD`] pieces), and every write then
//! runs at most [`PER_WRITE`] of them once it has released its lock: the
//! same work, spread over the thread's writes.
//!
//! A lookup's pin that collects (crossbeam-epoch does on every 128th pin)
//! sets its work aside the same way (see [`pin`]): run at once, it had put
//! a collection's frees on one lookup in a few hundred, and lookups' p99.9
//! went from 1.16× and 1.23× quick_cache's to 0.86× and 0.98× without them
//! (`latency tlscache quick_cache`, medians of 10 and 12 alternated runs).
//! A write's own pin still runs what it collects: set aside, it put a
//! thread's earlier leftovers ahead of what its writes retire, and they
//! were freed late (`a_smaller_collect_every_frees_sooner`).
//!
//! Work set aside waits for its thread's next writes, for the thread to
//! exit, or for a cache to be dropped on it; the ring never holds more
//! than [`HELD`] pieces, and work that does not fit runs at once. So a
//! thread that only looks up holds at most [`HELD`] pieces (values, and
//! retired slots its caches cannot reuse yet) until it exits. Under loom
//! everything runs at once.

use crate::entry::Thin;
use crate::sync::Arc;

/// Pieces of work a thread's ring holds at most: room for several
/// collections' reclamations (a slow one ran 16, and one collection may
/// take several threads' batches), in 6 KB a thread. At 64 the rest ran
/// in the collection, and ticket writes' p99.9 was 1.69× and 1.93×
/// quick_cache's against 1.48× and 1.35× at 256 (`latency --tickets
/// tlscache quick_cache`, medians of two batches of eight runs).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const HELD: usize = 256;

/// Pieces of work a write runs from its thread's ring at most.
pub(crate) const PER_WRITE: usize = 2;

#[cfg(not(loom))]
mod ring {
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;

    use super::HELD;

    /// Work set aside: `run(thin, slot)`, once.
    pub(super) struct Doomed {
        pub(super) thin: *const u8,
        pub(super) slot: u32,
        pub(super) run: unsafe fn(*const u8, u32),
    }

    impl Doomed {
        /// Runs the work.
        pub(super) fn run(self) {
            // SAFETY: `later`'s caller made `run(thin, slot)` sound to
            // call once from this thread; `self` is consumed.
            unsafe { (self.run)(self.thin, self.slot) }
        }
    }

    /// The ring; its work runs when the thread exits.
    pub(super) struct Ring(pub(super) VecDeque<Doomed>);

    impl Drop for Ring {
        fn drop(&mut self) {
            for doomed in self.0.drain(..) {
                doomed.run();
            }
        }
    }

    thread_local! {
        /// Whether this thread's write is collecting now.
        pub(super) static COLLECTING: Cell<bool> = const { Cell::new(false) };
        /// Whether `RING` may hold work: a write that finds it clear
        /// reads nothing else (`RING` is initialised on first use).
        pub(super) static HOLDING: Cell<bool> = const { Cell::new(false) };
        pub(super) static RING: RefCell<Ring> = RefCell::new(Ring(VecDeque::with_capacity(HELD)));
    }
}

/// Drops the handle at `thin`, from `Arc::into_raw` of an `Arc<V>`.
///
/// # Safety
///
/// `thin` holds one count on a live `V`, which this call releases.
#[cfg(not(loom))]
unsafe fn drop_handle<V: ?Sized + Thin>(thin: *const u8, _: u32) {
    // SAFETY: per the contract; `from_thin` makes the pointer whole.
    V::release(unsafe { Arc::from_raw(V::from_thin(thin)) })
}

/// Drops `value`, the cache's handle on a value no reader can reach any
/// more: at once, or, if a write of this thread is collecting and this is
/// the value's last handle, later, from the thread's ring.
#[inline]
pub(crate) fn release<V>(value: Arc<V>)
where
    V: ?Sized + Thin + Send + Sync + 'static,
{
    // A count above one means dropping this handle frees nothing.
    #[cfg(not(loom))]
    if Arc::strong_count(&value) == 1 && ring::COLLECTING.with(|c| c.get()) {
        // SAFETY: the handle is released once, by `drop_handle`, now or
        // later on this thread, and nothing else holds it meanwhile.
        unsafe { set_aside(Arc::into_raw(value).cast::<u8>(), 0, drop_handle::<V>) };
        return;
    }
    V::release(value);
}

/// Runs `run(thin, slot)`: at once, or, if a write of this thread is
/// collecting (see [`collecting`]), later, as [`set_aside`] does.
///
/// # Safety
///
/// `run(thin, slot)` is sound to call once, from this thread, now or at
/// any later time.
#[cfg(not(loom))]
#[inline]
pub(crate) unsafe fn later(thin: *const u8, slot: u32, run: unsafe fn(*const u8, u32)) {
    if ring::COLLECTING.with(|c| c.get()) {
        // SAFETY: the caller's guarantee, passed on.
        unsafe { set_aside(thin, slot, run) }
    } else {
        // SAFETY: the caller's guarantee: once, from this thread, now.
        unsafe { run(thin, slot) }
    }
}

/// Puts `run(thin, slot)` in the thread's ring, to run later, or runs it
/// at once if the ring is full or in use (work from it is running), or
/// the thread is exiting.
///
/// # Safety
///
/// As [`later`]'s.
#[cfg(not(loom))]
unsafe fn set_aside(thin: *const u8, slot: u32, run: unsafe fn(*const u8, u32)) {
    let mut work = Some(ring::Doomed { thin, slot, run });
    let _ = ring::RING.try_with(|r| {
        if let Ok(mut r) = r.try_borrow_mut() {
            if r.0.len() < HELD {
                if let Some(work) = work.take() {
                    r.0.push_back(work);
                    ring::HOLDING.with(|h| h.set(true));
                }
            }
        }
    });
    if let Some(work) = work {
        work.run();
    }
}

/// Runs `collect` (a collection of garbage by one of this thread's writes)
/// with the work it runs set aside.
pub(crate) fn collecting<R>(collect: impl FnOnce() -> R) -> R {
    #[cfg(not(loom))]
    {
        // Restored after, not cleared: work run inside may write to a cache.
        let was = ring::COLLECTING.with(|c| c.replace(true));
        let out = collect();
        ring::COLLECTING.with(|c| c.set(was));
        out
    }
    #[cfg(loom)]
    collect()
}

/// Pins this thread for a lookup, with what the pin's own collection runs
/// (crossbeam-epoch collects on every 128th pin) set aside for the
/// thread's next writes, as a write's collection's is.
#[inline]
pub(crate) fn pin() -> crate::sync::epoch::Guard {
    collecting(crate::sync::epoch::pin)
}

/// Runs up to [`PER_WRITE`] pieces of the work this thread's collections
/// set aside. A write calls it once it has released its lock.
#[inline]
pub(crate) fn drop_some() {
    drop_up_to(PER_WRITE);
}

/// Runs all the work this thread's collections set aside: when a cache is
/// dropped, so that what it removed is not left waiting for writes.
pub(crate) fn drop_all() {
    drop_up_to(usize::MAX);
}

/// Runs up to `n` pieces of the work this thread's collections set aside.
#[inline]
fn drop_up_to(n: usize) {
    #[cfg(not(loom))]
    for _ in 0..n {
        if !ring::HOLDING.with(|h| h.get()) {
            break;
        }
        // Out of the ring before it runs, which may write to a cache.
        let next = ring::RING
            .try_with(|r| {
                let mut r = r.try_borrow_mut().ok()?;
                let next = r.0.pop_front();
                ring::HOLDING.with(|h| h.set(!r.0.is_empty()));
                next
            })
            .ok()
            .flatten();
        match next {
            Some(doomed) => doomed.run(),
            None => break,
        }
    }
    #[cfg(loom)]
    let _ = n;
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Counts its drops.
    struct Counted(std::sync::Arc<AtomicU64>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counted(drops: &std::sync::Arc<AtomicU64>) -> Arc<Counted> {
        Arc::new(Counted(drops.clone()))
    }

    #[test]
    fn last_handles_released_while_collecting_wait_for_the_next_writes() {
        let drops = std::sync::Arc::new(AtomicU64::new(0));
        // Outside a collection: at once.
        release(counted(&drops));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // Not the last handle: only the count goes, at once.
        let shared = counted(&drops);
        collecting(|| release(Arc::clone(&shared)));
        assert_eq!(Arc::strong_count(&shared), 1);
        drop(shared);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        // Last handles while collecting: set aside, up to `HELD`; the rest
        // at once.
        collecting(|| {
            for _ in 0..HELD + 3 {
                release(counted(&drops));
            }
        });
        assert_eq!(drops.load(Ordering::SeqCst), 2 + 3);
        // Each write drops `PER_WRITE` of them.
        drop_some();
        assert_eq!(drops.load(Ordering::SeqCst), (2 + 3 + PER_WRITE) as u64);
        drop_all();
        assert_eq!(drops.load(Ordering::SeqCst), (2 + 3 + HELD) as u64);
        drop_some();
        assert_eq!(drops.load(Ordering::SeqCst), (2 + 3 + HELD) as u64);
    }

    /// Counts its runs in the `AtomicU64` at `thin`, with the slot.
    unsafe fn count_run(thin: *const u8, slot: u32) {
        // SAFETY: the test passes a `static` `AtomicU64`.
        unsafe { &*thin.cast::<AtomicU64>() }.fetch_add(u64::from(slot), Ordering::SeqCst);
    }

    #[test]
    fn work_is_set_aside_only_while_collecting_and_runs_once() {
        // A `static`, so that work left in the ring by a failed assertion
        // still has it when the thread exits.
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let runs = &RUNS;
        let thin = std::ptr::from_ref(runs).cast::<u8>();
        // SAFETY: `RUNS` lives for the whole program; `count_run` is sound
        // to run at any time.
        unsafe { later(thin, 1, count_run) };
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "at once outside a collection"
        );
        collecting(|| {
            for _ in 0..3 {
                // SAFETY: as above.
                unsafe { later(thin, 10, count_run) };
            }
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1, "set aside while collecting");
        drop_some();
        assert_eq!(runs.load(Ordering::SeqCst), 1 + 10 * PER_WRITE as u64);
        drop_all();
        assert_eq!(runs.load(Ordering::SeqCst), 31);
        drop_all();
        assert_eq!(runs.load(Ordering::SeqCst), 31, "each runs once");
    }

    #[test]
    fn a_thread_drops_what_it_set_aside_when_it_exits() {
        let drops = std::sync::Arc::new(AtomicU64::new(0));
        let held = drops.clone();
        std::thread::spawn(move || {
            collecting(|| release(counted(&held)));
            assert_eq!(held.load(Ordering::SeqCst), 0, "set aside");
        })
        .join()
        .expect("the thread ran");
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
