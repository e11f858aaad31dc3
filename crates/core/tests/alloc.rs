//! `get` allocates nothing: hits, misses and expired entries alike, on the
//! manual clock and on the default one. A counting allocator tallies the
//! calling thread's allocations. (Alone in its test binary, with one test,
//! so no other test's threads come and go in crossbeam-epoch's list of
//! participants meanwhile.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use tlscache_core::{Arc, Cache, ManualClock};

/// `System`, counting each thread's allocations.
struct Counting;

thread_local! {
    // Const-initialised and without a destructor, so reading it from
    // inside the allocator allocates nothing itself.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn count() {
    // `try_with`: a thread being torn down may allocate after its
    // thread-locals are gone; those go uncounted.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call goes straight to `System`, which upholds
// `GlobalAlloc`'s contract; the counting around it touches only this
// thread's counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as in `alloc`; `ptr` came from this allocator, which is
        // `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Keys stored, each half with a deadline.
const KEYS: u32 = 512;
/// Lookups counted, past crossbeam-epoch's collection on every 128th pin
/// many times over.
const GETS: u32 = 100_000;

/// Runs `GETS` lookups over keys `0..2 * KEYS` (the upper half never
/// stored) and returns (hits, misses, allocations during them).
fn lookups(cache: &Cache<u32, u64>) -> (u32, u32, u64) {
    let (mut hits, mut misses) = (0, 0);
    let before = allocations();
    for i in 0..GETS {
        let key = i.wrapping_mul(2_654_435_761) % (2 * KEYS);
        match cache.get(&key) {
            Some(v) => {
                assert_eq!(*v, u64::from(key));
                hits += 1;
            }
            None => misses += 1,
        }
    }
    (hits, misses, allocations() - before)
}

/// Stores, replaces and removes, so that values and nodes were retired
/// and the index holds tombstones, then lets the epoch collector free what
/// was retired:
/// the lookups that follow find no garbage pending (collecting it would
/// have crossbeam-epoch seal a bag of its own, an allocation that is not
/// the lookup's).
fn filled(cache: &Cache<u32, u64>, ttl: Duration) {
    for k in 0..KEYS {
        let value = Arc::new(u64::from(k));
        if k % 2 == 0 {
            cache.insert_with_ttl(k, value, ttl);
        } else {
            cache.insert(k, value);
        }
    }
    for k in (0..KEYS).step_by(7) {
        cache.insert(k, Arc::new(u64::from(k)));
    }
    for k in (0..KEYS).step_by(31) {
        cache.remove(&k);
    }
    for _ in 0..64 {
        crossbeam_epoch::pin().flush();
    }
}

#[test]
fn lookups_allocate_nothing() {
    let clock = ManualClock::new();
    let manual: Cache<u32, u64> = Cache::builder()
        .capacity(4 * KEYS as usize)
        .clock(clock.clone())
        .build()
        .unwrap();
    filled(&manual, Duration::from_secs(10));
    // This thread's first lookup takes its thread number and registers it
    // with crossbeam-epoch, once for the thread's life: not counted.
    assert!(manual.get(&1).is_some());

    let (hits, misses, allocated) = lookups(&manual);
    assert_eq!(allocated, 0, "{allocated} allocations in {GETS} lookups");
    assert!(
        hits > GETS / 4 && misses > GETS / 4,
        "{hits} hits, {misses} misses"
    );

    // Past the deadlines, half the stored keys are expired but not swept:
    // lookups find them in the index and call them misses.
    clock.advance(Duration::from_secs(11));
    let (late_hits, late_misses, allocated) = lookups(&manual);
    assert_eq!(
        allocated, 0,
        "{allocated} allocations in {GETS} expired lookups"
    );
    assert!(late_hits < hits && late_misses > misses);
    assert!(
        late_hits > GETS / 8,
        "{late_hits} hits on keys without deadline"
    );

    // The default clock, read for every hit on an entry with a deadline.
    let default: Cache<u32, u64> = Cache::new(4 * KEYS as usize).unwrap();
    filled(&default, Duration::from_secs(3600));
    let (hits, misses, allocated) = lookups(&default);
    assert_eq!(allocated, 0, "{allocated} allocations on the default clock");
    assert!(
        hits > GETS / 4 && misses > GETS / 4,
        "{hits} hits, {misses} misses"
    );
}
