//! loom models of the core's refcount and replacement races.
//!
//! Each model drives tlscache-core's real `Cache` (one shard, capacity 1 or
//! 2, a manual clock) from two or three loom threads. Under `cfg(loom)` the
//! core's atomics, `Arc` and mutex are loom's (through its `sync` shim) and
//! crossbeam-epoch's are too (`cfg(crossbeam_loom)`), so loom explores the
//! interleavings of the code that ships.
//!
//! Run: `tools/loom` (or one model: `tools/loom get_racing_remove`). It
//! bounds LOOM_MAX_PREEMPTIONS at 3: each model then finishes in seconds,
//! while the unbounded search of the insert races did not finish in 15
//! minutes on this 2-core machine.
//!
//! "Dropped exactly once" is checked from both sides: `Tracked` counts its
//! drops (at most once), and loom fails any execution that ends with a
//! loom `Arc` still alive ("Arc leaked"), including handles held by nodes
//! retired to the epoch collector (at least once).
//!
//! The models use a fixed-seed hasher because loom replays executions and a
//! model must not vary between them.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use loom::thread;
use tlscache_core::{Arc, Cache, Clock, Expiry, ManualClock, RemovalCause};

/// What the listener heard: value ids and causes.
type Heard = std::sync::Arc<std::sync::Mutex<Vec<(u32, RemovalCause)>>>;

/// A value that counts its drops and fails on a second one.
struct Tracked {
    id: u32,
    drops: std::sync::Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let before = self.drops.fetch_add(1, Ordering::SeqCst);
        assert!(before < 1_000, "runaway drops");
    }
}

/// A fixed hasher: loom replays executions, so the model must not vary
/// between them (ahash's default seed is random).
type Fixed = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// A one-shard cache on a manual clock whose listener counts removals by
/// value id.
fn cache(capacity: usize, heard: Heard) -> Cache<u8, Tracked, Fixed> {
    cache_on(capacity, heard, ManualClock::new())
}

/// [`cache`] on a clock the model keeps a handle on.
fn cache_on(capacity: usize, heard: Heard, clock: ManualClock) -> Cache<u8, Tracked, Fixed> {
    Cache::builder()
        .hasher(Fixed::default())
        .capacity(capacity)
        .shards(1)
        .clock(clock)
        .removal_listener(move |_, v: &Arc<Tracked>, cause| {
            heard.lock().unwrap().push((v.id, cause))
        })
        .build()
        .expect("valid settings")
}

fn value(id: u32) -> (Arc<Tracked>, std::sync::Arc<AtomicUsize>) {
    let drops = std::sync::Arc::new(AtomicUsize::new(0));
    (
        Arc::new(Tracked {
            id,
            drops: drops.clone(),
        }),
        drops,
    )
}

/// A reader racing a remover sees the value or nothing; a value it got is
/// intact while held; the value is never dropped while a handle lives.
#[test]
fn get_racing_remove() {
    loom::model(|| {
        let heard = Default::default();
        let c = loom::sync::Arc::new(cache(2, heard));
        let (v, drops) = value(7);
        c.insert(1, v);
        let reader = {
            let c = c.clone();
            let drops = drops.clone();
            thread::spawn(move || {
                if let Some(got) = c.get(&1) {
                    assert_eq!(got.id, 7);
                    assert_eq!(drops.load(Ordering::SeqCst), 0, "dropped while held");
                }
            })
        };
        let removed = c.remove(&1).expect("present until removed");
        assert_eq!(removed.id, 7);
        reader.join().unwrap();
        assert!(c.get(&1).is_none());
        drop(removed);
        assert!(drops.load(Ordering::SeqCst) <= 1);
    });
}

/// Two inserts of one key with different values: exactly one value remains,
/// the other leaves once as `Replaced`, and nothing is dropped twice.
#[test]
fn insert_racing_insert() {
    loom::model(|| {
        let heard: Heard = Default::default();
        let c = loom::sync::Arc::new(cache(2, heard.clone()));
        let (a, a_drops) = value(1);
        let (b, b_drops) = value(2);
        let t = {
            let c = c.clone();
            thread::spawn(move || {
                c.insert(9, a);
            })
        };
        c.insert(9, b);
        t.join().unwrap();
        let kept = c.get(&9).expect("one value remains").id;
        let lost = 3 - kept;
        assert_eq!(*heard.lock().unwrap(), vec![(lost, RemovalCause::Replaced)]);
        assert!(a_drops.load(Ordering::SeqCst) + b_drops.load(Ordering::SeqCst) <= 1);
        let kept_drops = if kept == 1 { &a_drops } else { &b_drops };
        assert_eq!(
            kept_drops.load(Ordering::SeqCst),
            0,
            "the kept value is alive"
        );
    });
}

/// Two `insert_if_absent` calls: exactly one wins and the loser gets its own
/// value back, intact.
#[test]
fn insert_if_absent_racing() {
    loom::model(|| {
        let c = loom::sync::Arc::new(cache(2, Default::default()));
        let (a, a_drops) = value(1);
        let (b, _) = value(2);
        let t = {
            let c = c.clone();
            thread::spawn(move || c.insert_if_absent(5, a).map_err(|back| back.id))
        };
        let mine = c.insert_if_absent(5, b).map_err(|back| back.id);
        let theirs = t.join().unwrap();
        match (mine, theirs) {
            (Ok(()), Err(1)) => assert_eq!(c.get(&5).unwrap().id, 2),
            (Err(2), Ok(())) => assert_eq!(c.get(&5).unwrap().id, 1),
            other => panic!("not exactly one winner: {other:?}"),
        }
        assert!(a_drops.load(Ordering::SeqCst) <= 1);
    });
}

/// Two takers: exactly one gets the value.
#[test]
fn take_racing_take() {
    loom::model(|| {
        let heard: Heard = Default::default();
        let c = loom::sync::Arc::new(cache(2, heard.clone()));
        c.insert(3, value(4).0);
        let t = {
            let c = c.clone();
            thread::spawn(move || c.take(&3).map(|v| v.id))
        };
        let mine = c.take(&3).map(|v| v.id);
        let theirs = t.join().unwrap();
        assert_eq!(
            u32::from(mine.is_some()) + u32::from(theirs.is_some()),
            1,
            "exactly one taker wins"
        );
        assert_eq!(mine.or(theirs), Some(4));
        assert_eq!(*heard.lock().unwrap(), vec![(4, RemovalCause::Taken)]);
    });
}

/// A taker and a reader: the taker always wins (nobody else takes); the
/// reader sees the value or nothing, and after the take nothing.
#[test]
fn take_racing_get() {
    loom::model(|| {
        let c = loom::sync::Arc::new(cache(2, Default::default()));
        c.insert(3, value(4).0);
        let t = {
            let c = c.clone();
            thread::spawn(move || {
                if let Some(v) = c.get(&3) {
                    assert_eq!(v.id, 4);
                }
            })
        };
        assert_eq!(c.take(&3).map(|v| v.id), Some(4));
        assert!(c.get(&3).is_none());
        t.join().unwrap();
    });
}

/// A reader racing an eviction in a full shard of capacity 1: the reader
/// sees the old value intact or nothing; exactly one key stays and the
/// other leaves once, as `Evicted`.
#[test]
fn get_racing_eviction() {
    loom::model(|| {
        let heard: Heard = Default::default();
        let c = loom::sync::Arc::new(cache(1, heard.clone()));
        let (old, old_drops) = value(1);
        c.insert(1, old);
        let t = {
            let c = c.clone();
            let old_drops = old_drops.clone();
            thread::spawn(move || {
                if let Some(v) = c.get(&1) {
                    assert_eq!(v.id, 1);
                    assert_eq!(old_drops.load(Ordering::SeqCst), 0, "dropped while held");
                }
            })
        };
        c.insert(2, value(2).0);
        t.join().unwrap();
        // LRU under a race: if the read took its stamp after the insert
        // did, key 1 is the more recent and the new key 2 goes instead.
        let evicted = heard.lock().unwrap().clone();
        let kept: Vec<u8> = [1, 2].into_iter().filter(|k| c.get(k).is_some()).collect();
        match kept.as_slice() {
            [1] => assert_eq!(evicted, vec![(2, RemovalCause::Evicted)]),
            [2] => assert_eq!(evicted, vec![(1, RemovalCause::Evicted)]),
            other => panic!("capacity 1 holds exactly one key, held {other:?}"),
        }
    });
}

/// A reader racing an expiry sweep: an expired entry is a miss at once, a
/// handle taken before expiry stays valid through the sweep, and the value
/// leaves once as `Expired`.
#[test]
fn get_racing_expiry_sweep() {
    loom::model(|| {
        let heard: Heard = Default::default();
        let clock = ManualClock::new();
        let c = cache_on(2, heard.clone(), clock.clone());
        let c = loom::sync::Arc::new(c);
        let (v, drops) = value(6);
        c.insert_with_ttl(1, v, std::time::Duration::from_millis(10));
        let held = c.get(&1).expect("fresh");
        clock.advance(std::time::Duration::from_millis(10));
        let t = {
            let c = c.clone();
            thread::spawn(move || {
                assert!(c.get(&1).is_none(), "expired is a miss at once");
                assert_eq!(held.id, 6);
            })
        };
        c.flush_expired();
        t.join().unwrap();
        assert_eq!(*heard.lock().unwrap(), vec![(6, RemovalCause::Expired)]);
        assert!(drops.load(Ordering::SeqCst) <= 1);
    });
}

/// `remove_if` (remove this object) racing a reader: once the removal has
/// returned and the reader has seen that (through an Acquire load), the
/// reader's lookups miss: a removed session never resumes.
#[test]
fn remove_if_racing_get() {
    use loom::sync::atomic::AtomicBool;
    loom::model(|| {
        let c = loom::sync::Arc::new(cache(2, Default::default()));
        let (v, _) = value(8);
        c.insert(2, v.clone());
        let removed = loom::sync::Arc::new(AtomicBool::new(false));
        let t = {
            let (c, removed) = (c.clone(), removed.clone());
            thread::spawn(move || {
                let before = removed.load(Ordering::Acquire);
                let got = c.get(&2);
                if before {
                    assert!(got.is_none(), "resumed after remove returned");
                }
            })
        };
        assert!(c.remove_if(&2, |cur| Arc::ptr_eq(cur, &v)).is_some());
        removed.store(true, Ordering::Release);
        assert!(c.get(&2).is_none());
        t.join().unwrap();
    });
}

/// A reader of a key whose value is replaced while another key shares its
/// index group always finds the old or the new value, never neither: the
/// replacement swaps the value inside the node and leaves the index alone.
/// (A capacity-2 shard's index is one group, so the two keys always share
/// it.)
#[test]
fn get_racing_replace_in_a_shared_group() {
    loom::model(|| {
        let heard = Heard::default();
        let (a, b) = (0u8, 1u8);
        let c = Arc::new(cache(2, heard.clone()));
        c.insert(a, value(1).0);
        c.insert(b, value(2).0);
        let reader = {
            let c = c.clone();
            thread::spawn(move || c.get(&a).map(|v| v.id))
        };
        c.insert(a, value(3).0);
        let seen = reader.join().unwrap();
        assert!(matches!(seen, Some(1) | Some(3)), "saw {seen:?}");
        assert_eq!(c.get(&a).map(|v| v.id), Some(3));
        assert_eq!(c.get(&b).map(|v| v.id), Some(2));
    });
}

/// A reader of a key in an index group where another key is entered and
/// then removed always finds its key, and finds the other one whole or not
/// at all: the writer stores an entry before its control byte and rewrites
/// the group's control word whole, so a reader that sees a byte finds the
/// entry it stands for, and the bytes of keys the writer leaves alone never
/// change. (A capacity-3 shard's index is one group.)
#[test]
fn get_racing_insert_and_remove_in_a_shared_group() {
    loom::model(|| {
        let heard = Heard::default();
        let (a, b) = (0u8, 1u8);
        let c = Arc::new(cache(3, heard.clone()));
        c.insert(b, value(2).0);
        let reader = {
            let c = c.clone();
            thread::spawn(move || {
                let first = c.get(&b).map(|v| v.id);
                let other = c.get(&a).map(|v| v.id);
                let last = c.get(&b).map(|v| v.id);
                (first, other, last)
            })
        };
        c.insert(a, value(1).0);
        assert_eq!(c.remove(&a).map(|v| v.id), Some(1));
        let (first, other, last) = reader.join().unwrap();
        assert_eq!((first, last), (Some(2), Some(2)));
        assert!(matches!(other, None | Some(1)), "saw {other:?}");
        assert!(c.get(&a).is_none());
    });
}

/// Two readers that share a stripe count their hits exactly. Under loom a
/// shard has one own stripe: the main thread reads (and misses) first, so
/// it owns it (plain loads and stores), and the two readers, which both
/// hit, share the other (`fetch_add`). Every get is counted once, as what
/// it returned.
/// (A write draining an own stripe while its reader counts is explored by
/// the models above whose one reader is the first to read.)
///
/// One preemption is enough to split a count's load from its store; with
/// three threads, the default bound of three ran for minutes.
#[test]
fn readers_count_exactly_on_own_and_shared_stripes() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(1);
    model.check(|| {
        let c = Arc::new(cache(2, Heard::default()));
        c.insert(1, value(1).0);
        let mine = u64::from(c.get(&2).is_some());
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let c = c.clone();
                thread::spawn(move || u64::from(c.get(&1).is_some()))
            })
            .collect();
        let hits: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum::<u64>() + mine;
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (2, 1));
        assert_eq!(s.hits, hits);
    });
}

/// A store to a present key swaps its value and deadline in place, and a
/// reader racing it judges whichever value it gets by a deadline no later
/// than that value's own. Here the old value lives until 20 and the new
/// one expires as it is stored (at 15): the reader may see the old value
/// or nothing, never the new one.
#[test]
fn get_racing_in_place_replace_never_sees_an_expired_value() {
    loom::model(|| {
        let clock = ManualClock::new();
        let c = Arc::new(cache_on(2, Heard::default(), clock.clone()));
        c.insert_with_ttl(1, value(1).0, Duration::from_nanos(20));
        clock.advance(Duration::from_nanos(15));
        let reader = {
            let c = c.clone();
            thread::spawn(move || c.get(&1).map(|v| v.id))
        };
        c.insert_with_ttl(1, value(2).0, Duration::ZERO);
        let seen = reader.join().unwrap();
        assert!(matches!(seen, None | Some(1)), "saw {seen:?}");
        assert!(
            c.get(&1).is_none(),
            "the new value expired as it was stored"
        );
    });
}

/// A slot that one thread's removal retired is reclaimed by whichever
/// thread's collection runs its deferred call, and reused by another
/// thread's insert: the slot passes from the reclaiming thread to the
/// inserting writer through the arena's stack of reclaimed slots, linked
/// through the dead nodes' atomic link fields, whose Release pushes and
/// Acquire take loom checks (a link read without them could be a stale
/// value). Every value is dropped exactly once, and the survivors are
/// intact.
#[test]
fn reclaimed_slots_pass_between_threads() {
    loom::model(|| {
        let heard = Default::default();
        let c = loom::sync::Arc::new(cache(1, heard));
        let (v1, drops1) = value(1);
        c.insert(1, v1);
        let remover = {
            let c = c.clone();
            thread::spawn(move || {
                // Key 2's insert may have evicted key 1 first.
                if let Some(v) = c.take(&1) {
                    assert_eq!(v.id, 1);
                }
                // More collections, so the epoch can move past the take's
                // batch and this thread may run its reclamation.
                c.flush_expired();
                c.flush_expired();
            })
        };
        let (v2, drops2) = value(2);
        let (v3, drops3) = value(3);
        // Each insert needs a slot: a new one, or one reclaimed from the
        // take or an eviction (capacity 1: each insert evicts).
        c.insert(2, v2);
        c.insert(3, v3);
        remover.join().unwrap();
        let got = c.get(&3).expect("the last insert stays");
        assert_eq!(got.id, 3);
        assert_eq!(drops3.load(Ordering::SeqCst), 0, "dropped while held");
        drop(got);
        drop(c);
        // At most once each here; loom fails the model if any handle is
        // never dropped.
        for drops in [drops1, drops2, drops3] {
            assert!(drops.load(Ordering::SeqCst) <= 1);
        }
    });
}

/// A lazy flush racing a writer in the same shard: the flushed entry is a
/// miss for the reader at once; the writer's insert sweeps it first (the
/// listener hears it once, as `Expired`, before that insert returns) and
/// stores an entry already past the flush's time, which then stays, as it
/// would after an eager flush.
#[test]
fn lazy_flush_racing_get_and_insert() {
    loom::model(|| {
        let heard: Heard = Default::default();
        let clock = ManualClock::new();
        let sink = heard.clone();
        let c: Cache<u8, Tracked, Fixed> = Cache::builder()
            .hasher(Fixed::default())
            .capacity(2)
            .shards(1)
            .clock(clock.clone())
            .expiry(Expiry::OnFlush)
            .removal_listener(move |_, v: &Arc<Tracked>, cause| {
                sink.lock().unwrap().push((v.id, cause))
            })
            .build()
            .expect("valid settings");
        let c = loom::sync::Arc::new(c);
        let (old, old_drops) = value(1);
        c.insert_with_ttl(1, old, Duration::from_millis(10));
        clock.advance(Duration::from_millis(20));
        c.flush_expired_lazily_at(clock.now());
        let (late, late_drops) = value(2);
        let writer = {
            let c = c.clone();
            let heard = heard.clone();
            thread::spawn(move || {
                c.insert_with_ttl(2, late, Duration::ZERO);
                assert_eq!(
                    *heard.lock().unwrap(),
                    vec![(1, RemovalCause::Expired)],
                    "the insert swept its shard first"
                );
            })
        };
        assert!(c.get(&1).is_none(), "flushed: a miss at once");
        if let Some(v) = c.get(&2) {
            assert_eq!(v.id, 2);
        }
        writer.join().unwrap();
        assert!(c.get(&1).is_none());
        assert_eq!(c.get(&2).map(|v| v.id), Some(2), "stored after the sweep");
        assert_eq!(c.len(), 1);
        assert_eq!(*heard.lock().unwrap(), vec![(1, RemovalCause::Expired)]);
        drop(c);
        for drops in [old_drops, late_drops] {
            assert!(drops.load(Ordering::SeqCst) <= 1);
        }
    });
}
