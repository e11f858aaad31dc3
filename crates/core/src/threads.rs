//! Thread numbers: the smallest number no live thread holds, given to a
//! thread when it first asks and given back when it exits. Whatever
//! stripes its counters or records over threads picks a stripe by it (the
//! core's access records, the policy layer's counters), so that a thread
//! writes the same stripe every time and threads alive at once rarely
//! share one.

use crate::sync::{AtomicU64, Ordering};

/// The number of a thread that has given its number back (it is exiting):
/// it records through the shared stripes (see `access`). Loom's threads
/// are numbered by loom's own model, which never retires one.
#[cfg_attr(loom, allow(dead_code))]
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

    use super::{RETIRED, UNNUMBERED};
    use crate::sync::{lock, Mutex};

    /// Numbers handed out: the next new one is `next`, and `free` holds
    /// those given back, smallest first.
    struct Numbers {
        next: usize,
        free: BinaryHeap<Reverse<usize>>,
    }

    static NUMBERS: Mutex<Numbers> = Mutex::new(Numbers {
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
    INDEX.with(|index| {
        numbered(index, || {
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        })
    })
}

/// The calling thread's number: the smallest that no live thread held
/// when it first asked (so a pool of `n` threads holds numbers below `n`,
/// plus however many other threads have asked), kept until the thread
/// exits and then given back. A thread that asks while it exits, after
/// its number went back, gets `usize::MAX`.
///
/// For striping per-thread state, as the cache's own access records do:
/// `thread_number() % stripes` picks a stripe that one live thread writes
/// when there are as many stripes as threads. One thread-local read after
/// the first call; the first takes a global lock once.
///
/// A number names one live thread at a time: a thread gives its number
/// back as it exits, under the same lock that hands it out again, so what
/// the thread wrote before it exited happens before the next holder's
/// first call returns. A stripe that only the holder of one number writes
/// may therefore be counted with plain loads and stores.
///
/// ```
/// let mine = tlscache_core::thread_number();
/// assert_eq!(tlscache_core::thread_number(), mine);
/// let other = std::thread::spawn(tlscache_core::thread_number).join().unwrap();
/// assert_ne!(other, mine);
/// ```
#[inline]
pub fn thread_number() -> usize {
    thread_index()
}

/// The calling thread's stripe among `own` *own* stripes (a power of two)
/// followed by as many *shared* ones, and whether it is one of its own:
/// a thread numbered below `own` (see [`thread_number`]) has stripe
/// `number` to itself, every other thread shares stripe `own + number %
/// own` with whoever else lands there. Count on it with
/// [`count_on_stripe`]; the cache's access records and the policy layer's
/// counters are striped this way.
///
/// ```
/// use std::sync::atomic::AtomicU64;
///
/// // Four own stripes and four shared ones.
/// let hits: Vec<AtomicU64> = (0..8).map(|_| AtomicU64::new(0)).collect();
/// let (at, own) = tlscache_core::thread_stripe(4);
/// assert_eq!(own, at < 4);
/// tlscache_core::count_on_stripe(&hits[at], own);
/// let total: u64 = hits.iter().map(|h| h.load(std::sync::atomic::Ordering::Relaxed)).sum();
/// assert_eq!(total, 1);
/// ```
#[inline]
pub fn thread_stripe(own: usize) -> (usize, bool) {
    debug_assert!(own.is_power_of_two());
    let n = thread_index();
    if n < own {
        (n, true)
    } else {
        (own + (n & (own - 1)), false)
    }
}

/// Adds one to `counter`, on a stripe [`thread_stripe`] picked, and
/// returns the new count: on the thread's `own` stripe with a plain load
/// and store (no other live thread writes it, and its number's previous
/// holder exited before the number was handed out again), else with
/// `fetch_add`, as threads may meet on a shared stripe.
#[inline]
pub fn count_on_stripe(counter: &AtomicU64, own: bool) -> u64 {
    if own {
        let n = counter.load(Ordering::Relaxed) + 1;
        counter.store(n, Ordering::Relaxed);
        n
    } else {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
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
