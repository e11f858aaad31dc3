//! Writers free what they replace and evict themselves: a workload of
//! nothing but stores must not leave its old values piling up until some
//! reader's pin collects them. (Alone in its test binary, and one test at
//! a time, so no other test's pins hold the epoch back.)

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use common::Counted;
use tlscache_core::{Arc, Cache, Tailed, Thin};

/// Held by each test: another test's pinned thread would hold the epoch,
/// and so the frees counted here, back.
fn alone() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One shard of `capacity` entries, so every write collects in it.
fn one_shard<V: Thin + ?Sized + Send + Sync + 'static>(capacity: u32) -> Cache<u32, V> {
    Cache::builder()
        .capacity(capacity as usize)
        .shards(1)
        .build()
        .unwrap()
}

#[test]
fn replaced_values_are_freed_by_the_writers_that_replace_them() {
    let _alone = alone();
    const STORES: u64 = 96;
    let drops = std::sync::Arc::new(AtomicU64::new(0));
    let cache: Cache<u32, Counted> = one_shard(16);
    for _ in 0..STORES {
        cache.insert(1, Arc::new(Counted(drops.clone())));
    }
    // Fewer than 128 pins, so the collector's own every-128th-pin
    // collection has not run, and a thread's bag (64 deferred calls) has
    // been sealed at most once: without writer-side collection, almost
    // nothing would be freed yet.
    let freed = drops.load(Ordering::SeqCst);
    assert!(
        freed >= STORES / 2,
        "only {freed} of {} replaced values freed",
        STORES - 1
    );
    drop(cache);
    // The value still stored goes with the cache, at once.
    assert!(drops.load(Ordering::SeqCst) > freed);
}

#[test]
fn evicted_values_are_freed_by_the_writers_that_evict_them() {
    let _alone = alone();
    const CAPACITY: u32 = 16;
    const STORES: u32 = 112;
    let drops = std::sync::Arc::new(AtomicU64::new(0));
    let cache: Cache<u32, Counted> = one_shard(CAPACITY);
    for k in 0..STORES {
        cache.insert(k, Arc::new(Counted(drops.clone())));
    }
    // As above, fewer than 128 pins: the evicted nodes were collected by
    // the writers.
    let evicted = u64::from(STORES - CAPACITY);
    let freed = drops.load(Ordering::SeqCst);
    assert!(
        freed >= evicted / 2,
        "only {freed} of {evicted} evicted values freed"
    );
    drop(cache);
    // The live values go with the cache, at once.
    let at_drop = drops.load(Ordering::SeqCst) - freed;
    assert!(
        at_drop >= u64::from(CAPACITY),
        "{at_drop} dropped with the cache"
    );
}

#[test]
fn a_smaller_collect_every_frees_sooner() {
    let _alone = alone();
    const STORES: u64 = 8;
    let freed_after = |every: u32| {
        let drops = std::sync::Arc::new(AtomicU64::new(0));
        let cache: Cache<u32, Counted> = Cache::builder()
            .capacity(16)
            .shards(1)
            .collect_every(std::num::NonZeroU32::new(every).unwrap())
            .build()
            .unwrap();
        for _ in 0..STORES {
            cache.insert(1, Arc::new(Counted(drops.clone())));
        }
        drops.load(Ordering::SeqCst)
    };
    // Seven values replaced: collecting after each, the writer frees all
    // but the last two or so (the epoch must move past each); at the
    // default of 16, it has not collected yet.
    assert!(freed_after(1) >= STORES / 2, "{}", freed_after(1));
    assert_eq!(freed_after(16), 0);
}

#[test]
fn a_large_shard_collects_half_as_often_by_default() {
    let _alone = alone();
    let drops = std::sync::Arc::new(AtomicU64::new(0));
    let capacity = u32::try_from(tlscache_core::LARGE_SHARD).unwrap();
    let cache: Cache<u32, Counted> = one_shard(capacity);
    let mut stores = 0u64;
    let mut store_until = |n: u64| {
        while stores < n {
            cache.insert(1, Arc::new(Counted(drops.clone())));
            stores += 1;
        }
        drops.load(Ordering::SeqCst)
    };
    // 47 values replaced: a shard of 16 entries would have collected at
    // the 16th, 32nd and 48th retirement and freed the first batch by
    // now (`a_smaller_collect_every_frees_sooner`); this one has
    // collected once, at the 32nd, and the epoch has not moved past it.
    assert_eq!(tlscache_core::LARGE_SHARD_COLLECT_EVERY, 32);
    assert_eq!(store_until(48), 0);
    // Its writers still free what they replace: the collection at the
    // 64th frees the first 32, which the following writes drop two at a
    // time (still fewer than 128 pins, so no reader-side collection).
    let freed = store_until(100);
    assert!(freed >= 32, "only {freed} of 99 replaced values freed");
}

#[test]
fn a_lookup_that_collects_leaves_the_frees_to_its_threads_writes() {
    let _alone = alone();
    let drops = std::sync::Arc::new(AtomicU64::new(0));
    // Writers never collect here, so only pins do.
    let cache: Cache<u32, Counted> = Cache::builder()
        .capacity(16)
        .shards(1)
        .collect_every(std::num::NonZeroU32::new(1000).unwrap())
        .build()
        .unwrap();
    cache.insert(1, Arc::new(Counted(drops.clone())));
    cache.insert(1, Arc::new(Counted(drops.clone())));
    // The replaced value's release, sealed into the collector's queue.
    crossbeam_epoch::pin().flush();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    let seen = std::thread::scope(|s| {
        s.spawn(|| {
            // A thread's every 128th pin collects, the first among them:
            // these lookups move the epoch on and run the release, which
            // goes to this thread's ring instead of a lookup's time.
            for _ in 0..1000 {
                assert!(cache.get(&1).is_some());
            }
            drops.load(Ordering::SeqCst)
        })
        .join()
        .expect("the reader ran")
    });
    assert_eq!(seen, 0, "set aside, not run in a lookup");
    // The reader had it in its ring: its exit ran it.
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "freed when the reader exited"
    );
}

/// A value that counts the cache's handles it gets back through
/// [`Thin::release`], in the counter it carries.
#[repr(transparent)]
struct Released(Tailed<std::sync::Arc<AtomicU64>>);

// SAFETY: `Released` is its record (`repr(transparent)`), whose `Thin`
// gives the whole pointer back.
unsafe impl Thin for Released {
    unsafe fn from_thin(thin: *const u8) -> *const Self {
        // SAFETY: the caller's guarantee, passed on.
        unsafe { <Tailed<std::sync::Arc<AtomicU64>> as Thin>::from_thin(thin) as *const Self }
    }

    fn release(value: Arc<Self>) {
        value.0.head().fetch_add(1, Ordering::SeqCst);
    }
}

fn released(count: &std::sync::Arc<AtomicU64>) -> Arc<Released> {
    let record = Arc::into_raw(Tailed::new(count.clone(), &[b"state"]));
    // SAFETY: the same record behind a `repr(transparent)` wrapper; the
    // count passes from one handle to the other.
    unsafe { Arc::from_raw(record as *const Released) }
}

#[test]
fn every_value_the_cache_lets_go_of_passes_through_release_once() {
    let _alone = alone();
    const CAPACITY: u32 = 16;
    const KEYS: u32 = 64;
    let count = std::sync::Arc::new(AtomicU64::new(0));
    let cache: Cache<u32, Released> = one_shard(CAPACITY);
    // Each key stored twice: the first value replaced, then evicted or
    // taken or kept to the end.
    for k in 0..KEYS {
        cache.insert(k, released(&count));
        cache.insert(k, released(&count));
    }
    let taken = cache.remove(&(KEYS - 1)).expect("the newest key is there");
    // The caller's handle is its own: the cache's is the one released.
    drop(taken);
    let handed = 2 * u64::from(KEYS);
    // The values still stored go with the cache; the rest as they are
    // collected, each once: a second release would overshoot.
    drop(cache);
    assert_eq!(common::await_drops(&count, handed), handed);
}
