//! Behaviour of the public API, one rule per test.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::Counted;
use tlscache_core::{
    Arc, BuildError, Cache, Clock, CoarseClock, Expiry, ManualClock, MonotonicClock, RemovalCause,
};

type Log = std::sync::Arc<Mutex<Vec<(u32, u32, RemovalCause)>>>;

/// A one-shard cache with a manual clock and a listener that logs
/// `(key, value, cause)`.
fn logged(capacity: usize) -> (Cache<u32, u32>, ManualClock, Log) {
    let clock = ManualClock::new();
    let log: Log = Default::default();
    let sink = log.clone();
    let cache = Cache::builder()
        .capacity(capacity)
        .shards(1)
        .clock(clock.clone())
        .removal_listener(move |k: &u32, v: &Arc<u32>, cause| {
            sink.lock().unwrap().push((*k, **v, cause));
        })
        .build()
        .unwrap();
    (cache, clock, log)
}

fn taken(log: &Log) -> Vec<(u32, u32, RemovalCause)> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn insert_returns_the_replaced_value_and_reports_it() {
    let (c, _, log) = logged(10);
    assert_eq!(c.insert(1, Arc::new(10)), None);
    assert_eq!(c.insert(1, Arc::new(11)).as_deref(), Some(&10));
    assert_eq!(c.get(&1).as_deref(), Some(&11));
    assert_eq!(taken(&log), vec![(1, 10, RemovalCause::Replaced)]);
    assert_eq!(c.len(), 1);
}

#[test]
fn insert_if_absent_hands_the_value_back() {
    let (c, _, log) = logged(10);
    assert!(c.insert_if_absent(1, Arc::new(10)).is_ok());
    let back = c.insert_if_absent(1, Arc::new(20)).unwrap_err();
    assert_eq!(*back, 20);
    assert_eq!(c.get(&1).as_deref(), Some(&10));
    assert!(taken(&log).is_empty());
}

#[test]
fn insert_if_sees_the_current_value() {
    let (c, _, log) = logged(10);
    let first = Arc::new(1);
    assert_eq!(
        c.insert_if(7, first.clone(), None, |old| old.is_none()),
        Ok(None)
    );
    // The same object again: declined, nothing leaves.
    let same = first.clone();
    let again = c.insert_if(7, first.clone(), None, |old| {
        !old.is_some_and(|o| Arc::ptr_eq(o, &same))
    });
    assert!(again.is_err());
    // A different object: replaces, the old one leaves.
    let other = Arc::new(2);
    let replaced = c
        .insert_if(7, other.clone(), None, |old| {
            !old.is_some_and(|o| Arc::ptr_eq(o, &other))
        })
        .unwrap();
    assert!(Arc::ptr_eq(&replaced.unwrap(), &first));
    assert_eq!(taken(&log), vec![(7, 1, RemovalCause::Replaced)]);
}

#[test]
fn remove_if_removes_only_the_given_object() {
    let (c, _, log) = logged(10);
    let a = Arc::new(1);
    c.insert(5, a.clone());
    let b = Arc::new(1);
    assert!(c.remove_if(&5, |v| Arc::ptr_eq(v, &b)).is_none());
    assert!(c.remove_if(&5, |v| Arc::ptr_eq(v, &a)).is_some());
    assert!(c.get(&5).is_none());
    assert!(c.remove(&5).is_none());
    assert_eq!(taken(&log), vec![(5, 1, RemovalCause::Removed)]);
}

#[test]
fn take_hands_out_once() {
    let (c, _, log) = logged(10);
    c.insert(3, Arc::new(30));
    assert_eq!(c.take(&3).as_deref(), Some(&30));
    assert_eq!(c.take(&3), None);
    assert_eq!(c.get(&3), None);
    assert_eq!(taken(&log), vec![(3, 30, RemovalCause::Taken)]);
}

/// A capacity too small to split over the shards is pooled: any capacity
/// works with any shard count, and the cache fills to its capacity before
/// it evicts, whichever shards the keys land in.
#[test]
fn a_small_capacity_is_shared_by_all_shards() {
    for (capacity, shards) in [(1, 8), (4, 8), (5, 64), (100, 4), (511, 8)] {
        let c: Cache<u32, u32> = Cache::builder()
            .capacity(capacity)
            .shards(shards)
            .build()
            .unwrap();
        for k in 0..capacity as u32 {
            c.insert(k, Arc::new(k));
            assert_eq!(
                c.len(),
                u64::from(k) + 1,
                "{capacity}/{shards}: evicted with room"
            );
        }
        for k in 0..50 {
            c.insert(1000 + k, Arc::new(k));
            assert_eq!(c.len(), capacity as u64, "{capacity}/{shards}");
            assert!(c.get(&(1000 + k)).is_some(), "the newcomer stays");
        }
        assert_eq!(c.stats().evictions, 50);
    }
    // Moving between pooled and split capacities keeps the bound.
    let c: Cache<u32, u32> = Cache::builder().capacity(10_000).shards(4).build().unwrap();
    for k in 0..5000 {
        c.insert(k, Arc::new(k));
    }
    c.set_capacity(Some(3)).unwrap();
    assert_eq!(c.len(), 3);
    for k in 0..10 {
        c.insert(9000 + k, Arc::new(k));
    }
    assert_eq!(c.len(), 3);
    c.set_capacity(Some(1000)).unwrap();
    for k in 0..2000 {
        c.insert(20_000 + k, Arc::new(k));
    }
    assert!(c.len() <= 1000);
}

/// A listener is called holding no lock, so it may write to the cache it
/// listens to, a pooled capacity's evictions included (they would
/// deadlock on the trim's lock otherwise).
#[test]
fn a_listener_may_write_to_its_own_cache() {
    type Shared = std::sync::Arc<std::sync::OnceLock<Cache<u32, u32>>>;
    let cell: Shared = Default::default();
    let inner = cell.clone();
    let cache = Cache::builder()
        .capacity(4)
        .shards(8)
        .removal_listener(move |k: &u32, _: &Arc<u32>, cause| {
            // An evicted key under 100 comes back as key + 1000, once.
            if cause == RemovalCause::Evicted && *k < 100 {
                if let Some(c) = inner.get() {
                    c.insert(k + 1000, Arc::new(0));
                }
            }
        })
        .build()
        .unwrap();
    assert!(cell.set(cache).is_ok());
    let (done, finished) = std::sync::mpsc::channel();
    let writer = cell.clone();
    std::thread::spawn(move || {
        let c = writer.get().unwrap();
        for k in 0..20 {
            c.insert(k, Arc::new(k));
        }
        done.send(c.len()).unwrap();
    });
    let len = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the writer finished: no listener call waited on a lock");
    assert_eq!(len, 4);
}

#[test]
fn take_if_leaves_what_it_refuses() {
    let (c, _, log) = logged(10);
    c.insert(3, Arc::new(30));
    assert_eq!(c.take_if(&3, |v| **v == 31), None);
    assert_eq!(c.get(&3).as_deref(), Some(&30), "a refused value stays");
    assert_eq!(c.take_if(&3, |v| **v == 30).as_deref(), Some(&30));
    assert_eq!(c.take_if(&3, |_| true), None);
    assert_eq!(taken(&log), vec![(3, 30, RemovalCause::Taken)]);
}

#[test]
fn exact_lru_order_single_threaded() {
    let (c, _, log) = logged(4);
    for k in 0..4 {
        c.insert(k, Arc::new(k));
    }
    // Use order now: 0 is freshest, then 2, 3, 1.
    for k in [1, 3, 2, 0] {
        assert!(c.get(&k).is_some());
    }
    c.insert(10, Arc::new(10));
    c.insert(11, Arc::new(11));
    assert_eq!(
        taken(&log),
        vec![(1, 1, RemovalCause::Evicted), (3, 3, RemovalCause::Evicted)]
    );
}

#[test]
fn exact_lru_survives_more_reads_than_the_read_buffer_holds() {
    let (c, _, log) = logged(100);
    for k in 0..100 {
        c.insert(k, Arc::new(k));
    }
    // 1000 reads without a write in between: the buffer overflows many
    // times over. The least recently read key must still go first.
    let order: Vec<u32> = (0..1000).map(|i| (i * 37 + 11) % 100).collect();
    for k in &order {
        assert!(c.get(k).is_some());
    }
    let mut last_use = vec![0usize; 100];
    for (i, k) in order.iter().enumerate() {
        last_use[*k as usize] = i + 1;
    }
    let mut expected: Vec<u32> = (0..100).collect();
    expected.sort_by_key(|k| last_use[*k as usize]);
    for (n, k) in (1000..1010).enumerate() {
        c.insert(k, Arc::new(k));
        assert_eq!(
            taken(&log),
            vec![(expected[n], expected[n], RemovalCause::Evicted)]
        );
    }
}

#[test]
fn put_stores_and_reports_the_replaced_value_without_handing_it_back() {
    let (c, clock, log) = logged(10);
    c.put(1, Arc::new(10));
    c.put(1, Arc::new(11));
    assert_eq!(c.get(&1).as_deref(), Some(&11));
    assert_eq!(taken(&log), vec![(1, 10, RemovalCause::Replaced)]);
    c.put_with_ttl(2, Arc::new(20), Duration::from_secs(5));
    clock.advance(Duration::from_secs(5));
    assert!(c.get(&2).is_none(), "expired at its time-to-live");
    assert_eq!(c.len(), 2);
    assert_eq!(c.stats().inserts, 3);
    // The replaced value is not leaked: it is dropped once no reader can
    // hold it.
    let drops = std::sync::Arc::new(AtomicU64::new(0));
    let t: Cache<u32, Counted> = Cache::builder().capacity(4).shards(1).build().unwrap();
    t.put(1, Arc::new(Counted(drops.clone())));
    t.put(1, Arc::new(Counted(drops.clone())));
    assert_eq!(common::await_drops(&drops, 1), 1);
    drop(t);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn a_handle_outlives_eviction() {
    let drops = std::sync::Arc::new(AtomicU64::new(0));
    let c: Cache<u32, Counted> = Cache::builder().capacity(1).shards(1).build().unwrap();
    c.insert(1, Arc::new(Counted(drops.clone())));
    let held = c.get(&1).unwrap();
    c.insert(2, Arc::new(Counted(drops.clone())));
    assert!(c.get(&1).is_none(), "evicted");
    drop(c);
    assert_eq!(common::await_drops(&drops, 1), 1);
    // Let the collector free the evicted node, which drops its reference
    // to the held value: the value itself must stay.
    for _ in 0..64 {
        crossbeam_epoch::pin().flush();
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "only the unheld value is gone"
    );
    assert_eq!(held.0.load(Ordering::SeqCst), 1);
    drop(held);
    assert_eq!(common::await_drops(&drops, 2), 2);
}

#[test]
fn expired_entries_miss_at_once_and_sweep_later() {
    let (c, clock, log) = logged(10);
    c.insert_with_ttl(1, Arc::new(1), Duration::from_secs(10));
    c.insert_with_ttl(2, Arc::new(2), Duration::from_secs(20));
    clock.advance(Duration::from_secs(10));
    assert!(c.get(&1).is_none(), "a miss the moment the deadline passes");
    assert!(c.get(&2).is_some());
    assert_eq!(c.len(), 2, "not swept yet");
    c.flush_expired();
    assert_eq!(c.len(), 1);
    assert_eq!(taken(&log), vec![(1, 1, RemovalCause::Expired)]);
    assert_eq!(c.stats().expirations, 1);
}

#[test]
fn flush_expired_at_a_later_time() {
    let (c, _, log) = logged(10);
    c.insert_with_ttl(1, Arc::new(1), Duration::from_secs(5));
    c.insert_with_ttl(2, Arc::new(2), Duration::from_secs(50));
    c.flush_expired_at(Duration::from_secs(6));
    assert_eq!(taken(&log), vec![(1, 1, RemovalCause::Expired)]);
    assert!(c.get(&2).is_some());
}

/// A store again keeps the entry's place in the timing wheel when its
/// deadline moves later (the sweep then re-places it): neither the old
/// deadline nor the place's own time expires it; and a store with an
/// earlier deadline moves it, so the sweep at that deadline finds it.
#[test]
fn a_store_again_expires_by_its_new_deadline_later_or_earlier() {
    let (c, clock, log) = logged(10);
    c.insert_with_ttl(1, Arc::new(10), Duration::from_secs(10));
    c.insert_with_ttl(2, Arc::new(20), Duration::from_secs(600));
    clock.advance(Duration::from_secs(5));
    c.insert_with_ttl(1, Arc::new(11), Duration::from_secs(20)); // due at 25
    c.insert_with_ttl(2, Arc::new(21), Duration::from_secs(10)); // due at 15
    assert_eq!(
        taken(&log),
        vec![
            (1, 10, RemovalCause::Replaced),
            (2, 20, RemovalCause::Replaced)
        ]
    );
    clock.set(Duration::from_secs(12));
    c.flush_expired();
    assert!(taken(&log).is_empty(), "the old deadline expired nothing");
    assert_eq!(c.get(&1).as_deref(), Some(&11));
    clock.set(Duration::from_secs(15));
    c.flush_expired();
    assert_eq!(taken(&log), vec![(2, 21, RemovalCause::Expired)]);
    clock.set(Duration::from_secs(25) - Duration::from_nanos(1));
    c.flush_expired();
    assert!(taken(&log).is_empty(), "not before its new deadline");
    clock.set(Duration::from_secs(25));
    c.flush_expired();
    assert_eq!(taken(&log), vec![(1, 11, RemovalCause::Expired)]);
    assert!(c.is_empty());
    // Stored again and again, a little later each time, an entry outlives
    // every deadline but its last.
    c.insert_with_ttl(3, Arc::new(30), Duration::from_secs(1));
    for i in 0..50 {
        clock.advance(Duration::from_millis(500));
        c.insert_with_ttl(3, Arc::new(31 + i), Duration::from_secs(1));
        c.flush_expired();
        assert_eq!(c.get(&3).as_deref(), Some(&(31 + i)), "store {i}");
    }
    clock.advance(Duration::from_secs(1));
    c.flush_expired();
    assert_eq!(c.stats().expirations, 3);
    assert!(c.is_empty());
}

#[test]
fn odd_durations_do_not_panic() {
    let (c, clock, _) = logged(10);
    c.insert_with_ttl(1, Arc::new(1), Duration::ZERO);
    assert!(c.get(&1).is_none(), "zero TTL expires at once");
    c.insert_with_ttl(2, Arc::new(2), Duration::MAX);
    c.insert_with_ttl(
        3,
        Arc::new(3),
        Duration::from_secs(60 * 60 * 24 * 365 * 100),
    );
    clock.advance(Duration::from_secs(60 * 60 * 24 * 365 * 50));
    c.flush_expired();
    assert!(c.get(&2).is_some());
    assert!(c.get(&3).is_some());
    clock.advance(Duration::from_secs(60 * 60 * 24 * 365 * 51));
    c.flush_expired();
    assert!(c.get(&3).is_none());
    assert!(c.get(&2).is_some(), "Duration::MAX never expires");
    clock.set(Duration::MAX);
    c.flush_expired();
    assert!(c.get(&2).is_some());
}

#[test]
fn a_clock_going_backwards_breaks_nothing() {
    let (c, clock, _) = logged(10);
    clock.set(Duration::from_secs(1000));
    c.insert_with_ttl(1, Arc::new(1), Duration::from_secs(10));
    clock.set(Duration::from_secs(5));
    c.insert_with_ttl(2, Arc::new(2), Duration::from_secs(10));
    c.flush_expired();
    assert!(c.get(&1).is_some());
    assert!(c.get(&2).is_some());
    clock.set(Duration::from_secs(16));
    c.flush_expired();
    assert!(c.get(&2).is_none());
    assert!(c.get(&1).is_some());
    clock.set(Duration::from_secs(1010));
    c.flush_expired();
    assert!(c.get(&1).is_none());
    assert!(c.is_empty());
}

#[test]
fn the_real_clocks_follow_time() {
    // The coarse clock moves once a kernel tick (at most 10 ms), so 50 ms
    // of sleep shows as at least 30.
    let clocks: [&dyn Clock; 2] = [&CoarseClock::new(), &MonotonicClock::new()];
    for clock in clocks {
        let before = clock.now_nanos();
        std::thread::sleep(Duration::from_millis(50));
        let after = clock.now_nanos();
        assert!(after >= before + 30_000_000, "{before} then {after}");
    }
}

#[test]
fn the_coarse_wall_clocks_seconds_agree_with_its_time() {
    // Both read the seconds the kernel keeps at its tick; the system's
    // precise clock is never behind them.
    for _ in 0..1000 {
        let before = CoarseClock::unix_time().as_secs();
        let secs = CoarseClock::unix_secs();
        let after = CoarseClock::unix_time().as_secs();
        let precise = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(before <= secs && secs <= after, "{before} {secs} {after}");
        assert!(secs <= precise, "{secs} ahead of {precise}");
    }
}

#[test]
fn entries_expire_on_the_default_clock() {
    // Half a second: the first get must come before the deadline even on a
    // machine busy with the other tests. Room for many entries per shard:
    // with 10 split over the shards, the two keys sometimes shared a shard
    // of capacity one, and the second insert evicted the first.
    let c: Cache<u32, u32> = Cache::new(1000).unwrap();
    c.insert_with_ttl(1, Arc::new(1), Duration::from_millis(500));
    c.insert_with_ttl(2, Arc::new(2), Duration::from_secs(3600));
    assert!(c.get(&1).is_some(), "alive before its deadline");
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        c.get(&1).is_none(),
        "a miss once the clock passes its deadline"
    );
    assert!(c.get(&2).is_some());
}

#[test]
fn default_ttl_applies_to_plain_inserts() {
    let clock = ManualClock::new();
    let c: Cache<u32, u32> = Cache::builder()
        .time_to_live(Duration::from_secs(300))
        .clock(clock.clone())
        .build()
        .unwrap();
    c.insert(1, Arc::new(1));
    clock.advance(Duration::from_secs(299));
    assert!(c.get(&1).is_some());
    clock.advance(Duration::from_secs(1));
    assert!(c.get(&1).is_none());
}

#[test]
fn an_expired_key_counts_as_absent_for_writes() {
    let (c, clock, log) = logged(10);
    c.insert_with_ttl(1, Arc::new(1), Duration::from_secs(1));
    clock.advance(Duration::from_secs(2));
    assert!(c.insert_if_absent(1, Arc::new(2)).is_ok());
    assert_eq!(taken(&log), vec![(1, 1, RemovalCause::Expired)]);
    assert!(c.take(&9).is_none());
}

#[test]
fn clear_reports_every_value() {
    let (c, _, log) = logged(100);
    for k in 0..50 {
        c.insert(k, Arc::new(k));
    }
    c.clear();
    assert!(c.is_empty());
    let mut log = taken(&log);
    log.sort_by_key(|&(k, _, _)| k);
    assert_eq!(
        log,
        (0..50)
            .map(|k| (k, k, RemovalCause::Cleared))
            .collect::<Vec<_>>()
    );
    c.insert(1, Arc::new(1));
    assert!(c.get(&1).is_some());
}

#[test]
fn a_large_clear_runs_in_parallel_and_loses_nothing() {
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let c: Cache<u32, u32> = Cache::builder()
        .capacity(200_000)
        .removal_listener(move |_, _, cause| {
            assert_eq!(cause, RemovalCause::Cleared);
            seen.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    for k in 0..100_000 {
        c.insert(k, Arc::new(k));
    }
    c.clear();
    assert_eq!(count.load(Ordering::Relaxed), 100_000);
    assert!(c.is_empty());
}

#[test]
fn capacity_is_a_hard_bound_and_the_index_grows() {
    let c: Cache<u64, u64> = Cache::builder().capacity(10_000).shards(4).build().unwrap();
    for k in 0..50_000 {
        c.insert(k, Arc::new(k));
        assert!(c.len() <= 10_000);
    }
    assert_eq!(c.len(), 10_000);
    assert_eq!(c.stats().evictions, 40_000);
    // The most recent keys are all there (each shard keeps its newest).
    let present = (40_000..50_000).filter(|k| c.get(k).is_some()).count();
    assert!(present > 9_000, "{present}");
}

#[test]
fn unbounded_keeps_everything() {
    let c: Cache<u64, u64> = Cache::builder().unbounded().build().unwrap();
    for k in 0..30_000 {
        c.insert(k, Arc::new(k * 2));
    }
    assert_eq!(c.len(), 30_000);
    assert!((0..30_000).all(|k| c.get(&k).as_deref() == Some(&(k * 2))));
}

#[test]
fn set_capacity_shrinks_live() {
    let (c, _, log) = logged(100);
    for k in 0..100 {
        c.insert(k, Arc::new(k));
    }
    c.set_capacity(Some(10)).unwrap();
    assert_eq!(c.len(), 10);
    let evicted = taken(&log);
    assert_eq!(evicted.len(), 90);
    assert!(evicted
        .iter()
        .all(|&(k, _, cause)| k < 90 && cause == RemovalCause::Evicted));
    assert_eq!(c.set_capacity(Some(0)), Err(BuildError::ZeroCapacity));
    c.set_capacity(None).unwrap();
    for k in 0..1000 {
        c.insert(k, Arc::new(k));
    }
    assert_eq!(c.len(), 1000);
}

#[test]
fn weigher_bounds_total_weight() {
    let c: Cache<u32, Vec<u8>> = Cache::builder()
        .shards(1)
        .weigher(1000, |_, v: &Vec<u8>| v.len() as u64)
        .build()
        .unwrap();
    for k in 0..20 {
        c.insert(k, Arc::new(vec![0; 100]));
    }
    assert_eq!(c.len(), 10);
    // Heavier than the whole cache: refused by eviction, nothing else goes.
    c.insert(99, Arc::new(vec![0; 5000]));
    assert!(c.get(&99).is_none());
    assert_eq!(c.len(), 10);
}

#[test]
fn stats_count_what_happened() {
    let (c, _, _) = logged(2);
    c.insert(1, Arc::new(1));
    c.insert(2, Arc::new(2));
    c.get(&1);
    c.get(&9);
    c.insert(3, Arc::new(3));
    let s = c.stats();
    assert_eq!(
        (s.hits, s.misses, s.inserts, s.evictions, s.len),
        (1, 1, 3, 1, 2)
    );
    assert_eq!(s.hit_ratio(), 0.5);
}

#[test]
fn borrowed_lookups() {
    let c: Cache<Vec<u8>, u8> = Cache::new(16).unwrap();
    c.insert(b"abc".to_vec(), Arc::new(1));
    assert_eq!(c.get(&b"abc"[..]).as_deref(), Some(&1));
    assert!(c.take(&b"abc"[..]).is_some());
}

#[test]
fn a_listener_may_call_back_into_the_cache() {
    let cache: std::sync::Arc<std::sync::OnceLock<Cache<u32, u32>>> = Default::default();
    let inner = cache.clone();
    let c = Cache::builder()
        .capacity(4)
        .shards(1)
        .removal_listener(move |k: &u32, _: &Arc<u32>, _| {
            if let Some(c) = inner.get() {
                // Re-entrant read and write: no deadlock.
                let _ = c.get(k);
                if *k < 100 {
                    c.insert(k + 100, Arc::new(0));
                }
            }
        })
        .build()
        .unwrap();
    assert!(cache.set(c).is_ok());
    let c = cache.get().unwrap();
    for k in 0..10 {
        c.insert(k, Arc::new(k));
    }
    assert!(c.len() <= 4);
}

#[test]
fn bad_settings_are_typed_errors() {
    let build = |b: tlscache_core::CacheBuilder<u32, u32>| b.build().map(|_| ());
    assert_eq!(
        build(Cache::builder().capacity(0)),
        Err(BuildError::ZeroCapacity)
    );
    assert_eq!(
        build(Cache::builder().shards(3)),
        Err(BuildError::ShardsNotPowerOfTwo(3))
    );
    assert_eq!(
        build(Cache::builder().shards(0)),
        Err(BuildError::ShardsNotPowerOfTwo(0))
    );
    assert!(matches!(
        build(Cache::builder().shards(1 << 20)),
        Err(BuildError::TooManyShards { .. })
    ));
    assert!(matches!(
        build(Cache::builder().capacity(usize::MAX).shards(1)),
        Err(BuildError::CapacityTooLarge { .. })
    ));
    // One past what a shard can address, split over one shard or two.
    let max = tlscache_core::MAX_SHARD_ENTRIES;
    assert_eq!(
        build(Cache::builder().capacity(max + 1).shards(1)),
        Err(BuildError::CapacityTooLarge {
            capacity: max + 1,
            max
        })
    );
    assert!(matches!(
        build(Cache::builder().capacity(2 * max + 1).shards(2)),
        Err(BuildError::CapacityTooLarge { .. })
    ));
    assert!(matches!(
        build(Cache::builder().shards(4).weigher(2, |_, _| 1)),
        Err(BuildError::MaxWeightTooSmall { .. })
    ));
    // Defaults fit a tiny capacity by using fewer shards.
    assert_eq!(Cache::<u32, u32>::new(1).unwrap().shard_count(), 1);
    let msg = BuildError::ShardsNotPowerOfTwo(3).to_string();
    assert!(msg.contains("power of two"), "{msg}");
}

/// An `Expiry::OnFlush` cache of `shards` shards on a manual clock, with
/// its listener's log.
fn on_flush(shards: usize) -> (Cache<u32, u32>, ManualClock, Log) {
    let clock = ManualClock::new();
    let log: Log = Default::default();
    let sink = log.clone();
    let c = Cache::builder()
        .capacity(1000)
        .shards(shards)
        .clock(clock.clone())
        .expiry(Expiry::OnFlush)
        .removal_listener(move |k: &u32, v: &Arc<u32>, cause| {
            sink.lock().unwrap().push((*k, **v, cause));
        })
        .build()
        .unwrap();
    (c, clock, log)
}

#[test]
fn on_flush_expiry_keeps_expired_entries_until_a_flush() {
    let (c, clock, log) = on_flush(1);
    c.insert_with_ttl(1, Arc::new(10), Duration::from_secs(1));
    clock.advance(Duration::from_secs(5));
    // Past its deadline, but no flush yet: reads see it, writes keep it.
    assert_eq!(c.get(&1).as_deref(), Some(&10));
    c.insert(2, Arc::new(20));
    assert_eq!(c.len(), 2);
    assert!(taken(&log).is_empty());
    // Replacing an expired entry is a replacement, not an expiry.
    c.insert_with_ttl(1, Arc::new(11), Duration::from_secs(1));
    assert_eq!(taken(&log), vec![(1, 10, RemovalCause::Replaced)]);
    clock.advance(Duration::from_secs(5));
    c.flush_expired();
    assert_eq!(c.get(&1), None);
    assert_eq!(taken(&log), vec![(1, 11, RemovalCause::Expired)]);
    assert_eq!(c.len(), 1);
}

#[test]
fn a_lazy_flush_hides_at_once_and_sweeps_at_the_next_write() {
    let (c, clock, log) = on_flush(1);
    c.insert_with_ttl(1, Arc::new(10), Duration::from_secs(1));
    c.insert_with_ttl(2, Arc::new(20), Duration::from_secs(100));
    clock.advance(Duration::from_secs(5));
    c.flush_expired_lazily_at(clock.now());
    // Gone for reads at once, though nothing was swept yet.
    assert_eq!(c.get(&1), None);
    assert_eq!(c.get(&2).as_deref(), Some(&20));
    assert!(taken(&log).is_empty(), "the flush itself sweeps nothing");
    // The shard's next write sweeps first: the listener hears an expiry.
    c.insert(3, Arc::new(30));
    assert_eq!(taken(&log), vec![(1, 10, RemovalCause::Expired)]);
    // Stored after the sweep, already expired: stays until the next flush,
    // as after an eager one.
    c.insert_with_ttl(4, Arc::new(40), Duration::ZERO);
    assert_eq!(c.get(&4).as_deref(), Some(&40));
    assert_eq!(c.len(), 3);
    // A second lazy flush at the same time takes it.
    c.flush_expired_lazily_at(clock.now());
    assert_eq!(c.get(&4), None);
    assert_eq!(c.remove(&4), None, "a write treats it as gone");
    assert_eq!(taken(&log), vec![(4, 40, RemovalCause::Expired)]);
    assert_eq!(c.len(), 2);
}

#[test]
fn a_count_sweeps_every_shard_a_lazy_flush_left() {
    let (c, clock, log) = on_flush(8);
    for k in 0..100 {
        c.insert_with_ttl(k, Arc::new(k), Duration::from_secs(1 + u64::from(k % 2)));
    }
    clock.set(Duration::from_secs(1));
    c.flush_expired_lazily_at(clock.now());
    assert!((0..100).all(|k| c.get(&k).is_some() == (k % 2 == 1)));
    assert!(taken(&log).is_empty());
    // `len` counts only what is left: every shard sweeps first.
    assert_eq!(c.len(), 50);
    let mut heard = taken(&log);
    heard.sort_unstable_by_key(|&(k, _, _)| k);
    let want: Vec<_> = (0..100)
        .step_by(2)
        .map(|k| (k, k, RemovalCause::Expired))
        .collect();
    assert_eq!(heard, want);
    assert_eq!(c.stats().expirations, 50);
    // A flush at an earlier time than the lazy one still sweeps by its own.
    c.insert_with_ttl(200, Arc::new(200), Duration::ZERO);
    c.flush_expired_at(Duration::from_nanos(1));
    assert_eq!(c.get(&200).as_deref(), Some(&200));
    c.flush_expired_at(clock.now());
    assert_eq!(c.get(&200), None);
}

#[test]
fn a_lazy_flush_under_eager_expiry_sweeps_at_once() {
    let (c, clock, log) = logged(10);
    c.insert_with_ttl(1, Arc::new(10), Duration::from_secs(1));
    clock.advance(Duration::from_secs(2));
    c.flush_expired_lazily_at(clock.now());
    assert_eq!(taken(&log), vec![(1, 10, RemovalCause::Expired)]);
}

#[test]
fn put_if_until_stores_declines_and_reports_without_handing_back() {
    let (c, clock, log) = logged(10);
    clock.set(Duration::from_secs(100));
    let at = Duration::from_secs(150);
    let first = Arc::new(10);
    let same = |old: Option<&Arc<u32>>| old.is_some_and(|o| Arc::ptr_eq(o, &first));
    assert_eq!(
        c.put_if_until(1, first.clone(), at, |old| !same(old)),
        Ok(())
    );
    // Declined: handed back, nothing changes, the listener hears nothing.
    match c.put_if_until(1, first.clone(), at, |old| !same(old)) {
        Err(back) => assert!(Arc::ptr_eq(&back, &first)),
        Ok(()) => panic!("stored the same object again"),
    }
    assert!(taken(&log).is_empty());
    // Replaced: the listener hears of the old value, which the caller
    // holds the only other count on once the collector has run.
    let second = Arc::new(11);
    let fresh = |old: Option<&Arc<u32>>| !old.is_some_and(|o| Arc::ptr_eq(o, &second));
    assert_eq!(c.put_if_until(1, second.clone(), at, fresh), Ok(()));
    assert_eq!(taken(&log), vec![(1, 10, RemovalCause::Replaced)]);
    assert_eq!(c.get(&1).as_deref(), Some(&11));
    assert_eq!(c.stats().inserts, 2);
    // The exact deadline, as for `insert_if_until`.
    c.flush_expired_at(at - Duration::from_nanos(1));
    assert_eq!(c.get(&1).as_deref(), Some(&11));
    c.flush_expired_at(at);
    assert_eq!(c.get(&1), None);
    // Other tests' pins may hold the epoch back for a while.
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    while Arc::strong_count(&first) > 1 && std::time::Instant::now() < give_up {
        crossbeam_epoch::pin().flush();
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(
        Arc::strong_count(&first),
        1,
        "the replaced count is dropped"
    );
}

#[test]
fn insert_if_until_sets_the_exact_deadline() {
    let (c, clock, log) = logged(10);
    clock.set(Duration::from_secs(100));
    let at = Duration::from_secs(150);
    assert_eq!(c.insert_if_until(1, Arc::new(10), at, |_| true), Ok(None));
    c.insert_if_until(2, Arc::new(20), Duration::MAX, |_| true)
        .unwrap();
    c.flush_expired_at(at - Duration::from_nanos(1));
    assert_eq!(c.get(&1).as_deref(), Some(&10));
    c.flush_expired_at(at);
    assert_eq!(taken(&log), vec![(1, 10, RemovalCause::Expired)]);
    c.flush_expired_at(Duration::MAX);
    assert_eq!(c.get(&2).as_deref(), Some(&20));
    // A deadline already past is a miss at once under eager expiry.
    c.insert_if_until(3, Arc::new(30), Duration::from_secs(1), |_| true)
        .unwrap();
    assert_eq!(c.get(&3), None);
}

/// An unsized value: a counted head, then bytes whose length the head
/// keeps, as the policy crate's sessions are laid out.
struct Record<T: ?Sized> {
    len: usize,
    _counted: Counted,
    bytes: T,
}

// SAFETY: a `Record<[u8]>`'s metadata is its `len`, which `record` sets
// from the array it coerces, and nothing changes after.
unsafe impl tlscache_core::Thin for Record<[u8]> {
    unsafe fn from_thin(thin: *const u8) -> *const Self {
        // SAFETY: the caller's guarantee: a live record at `thin`; its
        // `len` sits at the same offset in every `Record<T>`.
        let len = unsafe { (*thin.cast::<Record<[u8; 0]>>()).len };
        std::ptr::slice_from_raw_parts(thin, len) as *const Self
    }
}

fn record<const N: usize>(byte: u8, drops: &std::sync::Arc<AtomicU64>) -> Arc<Record<[u8]>> {
    Arc::new(Record {
        len: N,
        _counted: Counted(drops.clone()),
        bytes: [byte; N],
    })
}

#[test]
fn unsized_values_are_stored_shared_replaced_and_dropped_whole() {
    let drops = std::sync::Arc::new(AtomicU64::new(0));
    let cache: Cache<u32, Record<[u8]>> = Cache::builder().capacity(64).shards(1).build().unwrap();
    cache.put(1, record::<3>(7, &drops));
    cache.put(2, record::<40>(8, &drops));
    let one = cache.get(&1).expect("stored");
    assert_eq!((one.len, &one.bytes), (3, &[7u8; 3][..]));
    let two = cache.get(&2).expect("stored");
    assert_eq!(&two.bytes, &[8u8; 40][..]);
    // Replaced in place, handed back, taken: each comes back whole.
    let old = cache
        .insert(1, record::<100>(9, &drops))
        .expect("was there");
    assert_eq!(&old.bytes, &[7u8; 3][..]);
    assert_eq!(&cache.get(&1).expect("replaced").bytes, &[9u8; 100][..]);
    let taken = cache.take(&2).expect("present");
    assert!(Arc::ptr_eq(&taken, &two));
    drop((one, two, old, taken));
    // Evicted by a full shard, then the rest dropped with the cache.
    for k in 10..200 {
        cache.put(k, record::<1>(k as u8, &drops));
    }
    drop(cache);
    assert_eq!(common::await_drops(&drops, 193), 193);
}
