//! Values a writer's collection frees, dropped a few at a time by that
//! writer's following writes rather than all in the one write that
//! collects.
//!
//! A write that collects garbage (every `collect_every` retirements of its
//! shard, see `CacheBuilder::collect_every`) runs the deferred calls of
//! every retirement whose epoch has passed: often a few dozen at once.
//! When each of those drops the last handle on its value, and a value is
//! dear to drop (a TLS session zeroizes its secret and frees its memory,
//! and the allocator then sorts a burst of frees), that one write pays for
//! them all. While a write collects, a value whose last handle the cache
//! holds is instead set aside in the thread's own ring (up to [`HELD`]),
//! and every write then drops at most [`PER_WRITE`] of them once it has
//! released its lock: the same drops, spread over the thread's writes.
//!
//! A value set aside stays alive until its thread's next writes, or until
//! the thread exits; the ring never holds more than [`HELD`] values, and a
//! value that does not fit is dropped at once. Under loom every value is
//! dropped at once.

use crate::entry::Thin;
use crate::sync::Arc;

/// Values a thread's ring holds at most.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const HELD: usize = 64;

/// Values a write drops from its thread's ring at most.
pub(crate) const PER_WRITE: usize = 2;

#[cfg(not(loom))]
mod ring {
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;

    use super::HELD;

    /// A value's address (`Arc::into_raw`) and how to drop its handle.
    pub(super) struct Doomed {
        pub(super) thin: *const u8,
        pub(super) drop: unsafe fn(*const u8),
    }

    /// The ring; its values are dropped when the thread exits.
    pub(super) struct Ring(pub(super) VecDeque<Doomed>);

    impl Drop for Ring {
        fn drop(&mut self) {
            for doomed in self.0.drain(..) {
                // SAFETY: each entry holds one handle, released once.
                unsafe { (doomed.drop)(doomed.thin) }
            }
        }
    }

    thread_local! {
        /// Whether this thread's write is collecting now.
        pub(super) static COLLECTING: Cell<bool> = const { Cell::new(false) };
        /// Whether `RING` may hold values: a write that finds it clear
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
unsafe fn drop_handle<V: ?Sized + Thin>(thin: *const u8) {
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
    #[cfg(not(loom))]
    {
        // A count above one means dropping this handle frees nothing; and
        // a reader's pin that collects (crossbeam-epoch does on every
        // 128th) frees at once, for no write of its thread may follow.
        let spread = Arc::strong_count(&value) == 1 && ring::COLLECTING.with(|c| c.get());
        if spread {
            let mut held = Some(value);
            // Set aside unless the ring is full or in use (a drop from it
            // is running), or the thread is exiting.
            let _ = ring::RING.try_with(|r| {
                if let Ok(mut r) = r.try_borrow_mut() {
                    if r.0.len() < HELD {
                        if let Some(value) = held.take() {
                            r.0.push_back(ring::Doomed {
                                thin: Arc::into_raw(value).cast::<u8>(),
                                drop: drop_handle::<V>,
                            });
                            ring::HOLDING.with(|h| h.set(true));
                        }
                    }
                }
            });
            if let Some(value) = held {
                V::release(value);
            }
            return;
        }
    }
    V::release(value);
}

/// Runs `collect` (a collection of garbage by one of this thread's writes)
/// with last handles set aside rather than dropped.
pub(crate) fn collecting(collect: impl FnOnce()) {
    #[cfg(not(loom))]
    {
        // Restored after, not cleared: a drop inside may write to a cache.
        let was = ring::COLLECTING.with(|c| c.replace(true));
        collect();
        ring::COLLECTING.with(|c| c.set(was));
    }
    #[cfg(loom)]
    collect();
}

/// Drops up to [`PER_WRITE`] of the values this thread's collections set
/// aside. A write calls it once it has released its lock.
#[inline]
pub(crate) fn drop_some() {
    drop_up_to(PER_WRITE);
}

/// Drops every value this thread's collections set aside: when a cache
/// is dropped, so that what it removed is not left waiting for writes.
pub(crate) fn drop_all() {
    drop_up_to(usize::MAX);
}

/// Drops up to `n` of the values this thread's collections set aside.
#[inline]
fn drop_up_to(n: usize) {
    #[cfg(not(loom))]
    for _ in 0..n {
        if !ring::HOLDING.with(|h| h.get()) {
            break;
        }
        // Out of the ring before the drop, which may write to a cache.
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
            // SAFETY: each entry holds one handle, released once.
            Some(doomed) => unsafe { (doomed.drop)(doomed.thin) },
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
