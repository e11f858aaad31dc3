//! Many threads, a bounded number of mixed operations, then invariants:
//! the capacity held, no value was taken twice, every value that entered
//! the cache left it exactly once (listener) or is still there, and every
//! value is dropped exactly once after the cache is gone.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

mod common;

use rand::{Rng, SeedableRng};
use tlscache_core::{Arc, Cache, ManualClock, RemovalCause};

const THREADS: usize = 8;
const OPS_PER_THREAD: usize = 150_000; // 1.2 million in all
const KEYS: u64 = 4_096;
const CAPACITY: usize = 1_000;

struct Value {
    key: u64,
    id: u64,
    drops: std::sync::Arc<AtomicU64>,
}

impl Drop for Value {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Tally {
    created: AtomicU64,
    rejected: AtomicU64,
    left: AtomicU64,
    taken_by_listener: AtomicU64,
}

#[test]
fn mixed_operations_on_eight_threads() {
    mixed_operations(CAPACITY, true);
}

/// The same on a capacity the shards pool (see `POOLED_PER_SHARD`). While
/// writers run, the count passes the capacity by the inserts not yet
/// trimmed, and `len`, a sum over shards read one after another, is no
/// snapshot of them; so the bound is checked once the writers stop.
#[test]
fn mixed_operations_on_a_pooled_capacity() {
    mixed_operations(8 * tlscache_core::POOLED_PER_SHARD / 3, false);
}

/// `while_running`: check the bound during the run too (a split capacity
/// bounds every shard, so any sum of their counts is within it).
fn mixed_operations(capacity: usize, while_running: bool) {
    let drops = std::sync::Arc::new(AtomicU64::new(0));
    let tally = std::sync::Arc::new(Tally::default());
    let clock = ManualClock::new();
    let t = tally.clone();
    let cache: Cache<u64, Value> = Cache::builder()
        .capacity(capacity)
        .shards(8)
        .clock(clock.clone())
        .removal_listener(move |k, v: &Arc<Value>, cause| {
            assert_eq!(*k, v.key, "listener got a value under another key");
            t.left.fetch_add(1, Ordering::Relaxed);
            if cause == RemovalCause::Taken {
                t.taken_by_listener.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .unwrap();
    let taken_ids = Mutex::new(Vec::new());
    let next_id = AtomicU64::new(0);

    std::thread::scope(|s| {
        for thread in 0..THREADS {
            let (cache, tally, drops, clock, taken_ids, next_id) =
                (&cache, &tally, &drops, &clock, &taken_ids, &next_id);
            s.spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(thread as u64);
                let mut my_takes = Vec::new();
                let new_value = |key| {
                    tally.created.fetch_add(1, Ordering::Relaxed);
                    Arc::new(Value {
                        key,
                        id: next_id.fetch_add(1, Ordering::Relaxed),
                        drops: drops.clone(),
                    })
                };
                for i in 0..OPS_PER_THREAD {
                    let key = rng.gen_range(0..KEYS);
                    match rng.gen_range(0..100) {
                        0..60 => {
                            if let Some(v) = cache.get(&key) {
                                assert_eq!(v.key, key, "get returned another key's value");
                            }
                        }
                        60..75 => {
                            let ttl = Duration::from_millis(rng.gen_range(1..500));
                            cache.insert_with_ttl(key, new_value(key), ttl);
                        }
                        75..80 => {
                            if cache.insert_if_absent(key, new_value(key)).is_err() {
                                tally.rejected.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        80..86 => {
                            if let Some(v) = cache.take(&key) {
                                assert_eq!(v.key, key);
                                my_takes.push(v.id);
                            }
                        }
                        86..92 => {
                            cache.remove(&key);
                        }
                        92..96 => {
                            if let Some(v) = cache.get(&key) {
                                cache.remove_if(&key, |cur| Arc::ptr_eq(cur, &v));
                            }
                        }
                        96..98 => clock.advance(Duration::from_millis(5)),
                        _ => cache.flush_expired(),
                    }
                    if while_running && i % 1024 == 0 {
                        assert!(
                            cache.len() <= capacity as u64,
                            "len {} over capacity",
                            cache.len()
                        );
                    }
                }
                taken_ids.lock().unwrap().extend(my_takes);
            });
        }
    });

    let taken = taken_ids.into_inner().unwrap();
    let unique: HashSet<u64> = taken.iter().copied().collect();
    assert_eq!(unique.len(), taken.len(), "a value was taken twice");
    assert_eq!(
        tally.taken_by_listener.load(Ordering::Relaxed),
        taken.len() as u64
    );

    let created = tally.created.load(Ordering::Relaxed);
    let rejected = tally.rejected.load(Ordering::Relaxed);
    let left = tally.left.load(Ordering::Relaxed);
    let remaining = cache.len();
    assert!(remaining <= capacity as u64);
    assert_eq!(
        created,
        rejected + left + remaining,
        "every value that entered is accounted for"
    );
    assert!(created > 150_000, "the mix really inserted ({created})");

    drop(cache);
    assert_eq!(
        common::await_drops(&drops, created),
        created,
        "every value dropped exactly once"
    );
}

/// Readers hammering one shard while a writer replaces its keys. Two races
/// this caught: a reader may take its access stamp after the writer read
/// the newest stamps and write a buffer entry the writer is draining (the
/// drain must not wrap that stamp around, which overflowed in debug
/// builds); and a reader already past a chain's head must still find a key
/// whose node is being replaced (every get here must hit).
#[test]
fn reads_racing_the_buffer_drain_keep_their_stamps() {
    let cache: Cache<u64, u64> = Cache::builder().capacity(64).shards(1).build().unwrap();
    for k in 0..8 {
        cache.insert(k, Arc::new(k));
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for t in 0..3u64 {
            let cache = &cache;
            let stop = &stop;
            scope.spawn(move || {
                let mut k = t;
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(cache.get(&(k % 8)).as_deref(), Some(&(k % 8)));
                    k += 1;
                }
            });
        }
        for round in 0..200_000u64 {
            cache.insert(round % 8, Arc::new(round % 8));
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(cache.len(), 8);
}

/// An unbounded cache whose index doubles again and again while readers
/// look up keys that are always present and writers add, replace and take
/// others: every growth copies the nodes into new slots, so the readers
/// check that a copy never loses a key or shows another key's value, and
/// the drop count checks that the copies and the slots they leave behind
/// drop each value exactly once.
#[test]
fn an_unbounded_index_grows_under_readers_and_loses_nothing() {
    const PINNED: u64 = 64;
    const PER_WRITER: u64 = 60_000;
    let drops = std::sync::Arc::new(AtomicU64::new(0));
    let created = AtomicU64::new(0);
    let cache: Cache<u64, Value> = Cache::builder().unbounded().shards(2).build().unwrap();
    let value = |key| {
        created.fetch_add(1, Ordering::Relaxed);
        Arc::new(Value {
            key,
            id: key,
            drops: drops.clone(),
        })
    };
    for key in 0..PINNED {
        cache.insert(key, value(key));
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (cache, stop) = (&cache, &stop);
            s.spawn(move || {
                let mut k = t;
                while !stop.load(Ordering::Relaxed) {
                    let key = k % PINNED;
                    let got = cache.get(&key).expect("a pinned key is always present");
                    assert_eq!(got.key, key, "get returned another key's value");
                    k += 1;
                }
            });
        }
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let (cache, value) = (&cache, &value);
                s.spawn(move || {
                    let base = PINNED + w * PER_WRITER;
                    for i in 0..PER_WRITER {
                        let key = base + i;
                        cache.insert(key, value(key));
                        match i % 8 {
                            0 => {
                                let pinned = i % PINNED;
                                cache.insert(pinned, value(pinned));
                            }
                            1 => assert!(cache.take(&key).is_some()),
                            2 => assert!(cache.remove(&(key - 2)).is_some()),
                            _ => {}
                        }
                    }
                })
            })
            .collect();
        let joined: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        // The readers stop even if a writer failed, so the failure shows.
        stop.store(true, Ordering::Relaxed);
        for writer in joined {
            writer.unwrap();
        }
    });
    // Per writer, keys with i % 8 of 1 were taken and those of 0 removed.
    let kept = 2 * (PER_WRITER - PER_WRITER / 8 * 2);
    assert_eq!(cache.len(), PINNED + kept);
    let created = created.load(Ordering::Relaxed);
    drop(cache);
    assert_eq!(
        common::await_drops(&drops, created),
        created,
        "every value dropped exactly once"
    );
}

/// Hits and misses are counted in per-thread stripes, and more threads than
/// stripes share them: every get still counts once, as what it returned.
#[test]
fn hit_and_miss_counts_are_exact_across_threads() {
    let cache: Cache<u64, u64> = Cache::builder().capacity(1024).shards(2).build().unwrap();
    for k in 0..512 {
        cache.insert(k, Arc::new(k));
    }
    let found = AtomicU64::new(0);
    let gets_per_thread = 50_000u64;
    std::thread::scope(|scope| {
        for t in 0..THREADS as u64 {
            let (cache, found) = (&cache, &found);
            scope.spawn(move || {
                let mut hits = 0;
                for i in 0..gets_per_thread {
                    // Keys 0..1024: half present, half never inserted.
                    hits += u64::from(cache.get(&((i * 7 + t) % 1024)).is_some());
                }
                found.fetch_add(hits, Ordering::Relaxed);
            });
        }
    });
    let s = cache.stats();
    let gets = THREADS as u64 * gets_per_thread;
    assert_eq!(s.hits, found.load(Ordering::Relaxed));
    assert_eq!(s.hits + s.misses, gets);
    assert!(s.hits > gets / 3 && s.misses > gets / 3, "{s:?}");
}
