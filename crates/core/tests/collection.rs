//! Writers free what they replace and evict themselves: a workload of
//! nothing but stores must not leave its old values piling up until some
//! reader's pin collects them. (Alone in its test binary, so no other
//! test's pins hold the epoch back.)

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::Counted;
use tlscache_core::{Arc, Cache};

#[test]
fn replaced_values_are_freed_by_the_writers_that_replace_them() {
    const STORES: u64 = 96;
    let drops = std::sync::Arc::new(AtomicU64::new(0));
    let cache: Cache<u32, Counted> = Cache::builder().capacity(16).shards(1).build().unwrap();
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
    const CAPACITY: u32 = 16;
    const STORES: u32 = 112;
    let drops = std::sync::Arc::new(AtomicU64::new(0));
    let cache: Cache<u32, Counted> = Cache::builder()
        .capacity(CAPACITY as usize)
        .shards(1)
        .build()
        .unwrap();
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
