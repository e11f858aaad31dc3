//! Random operation sequences against a plain reference model.
//!
//! Single-threaded, on a manual clock, so the cache must match the model
//! exactly: every return value, every removal the listener hears of (with
//! its cause), the length after every step, and, with one shard, exact LRU
//! eviction order. With several shards a write sweeps only its own shard,
//! so there both sides sweep everything after each step.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use proptest::prelude::*;
use tlscache_core::{Arc, Cache, ManualClock, RemovalCause};

#[derive(Debug, Clone)]
enum Op {
    Get(u8),
    Insert(u8, Option<u16>),
    /// `put`/`put_with_ttl`: an insert that hands nothing back.
    Put(u8, Option<u16>),
    InsertIfAbsent(u8),
    /// `insert_if` with the cached object itself: declined when present.
    AddSame(u8),
    Remove(u8),
    RemoveSame(u8),
    Take(u8),
    Advance(u16),
    Flush,
    Clear,
    SetCapacity(Option<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..24;
    prop_oneof![
        8 => key.clone().prop_map(Op::Get),
        6 => (key.clone(), proptest::option::of(0u16..50)).prop_map(|(k, t)| Op::Insert(k, t)),
        2 => (key.clone(), proptest::option::of(0u16..50)).prop_map(|(k, t)| Op::Put(k, t)),
        2 => key.clone().prop_map(Op::InsertIfAbsent),
        2 => key.clone().prop_map(Op::AddSame),
        2 => key.clone().prop_map(Op::Remove),
        1 => key.clone().prop_map(Op::RemoveSame),
        2 => key.prop_map(Op::Take),
        3 => (0u16..30).prop_map(Op::Advance),
        1 => Just(Op::Flush),
        1 => Just(Op::Clear),
        1 => proptest::option::of(1u8..16).prop_map(Op::SetCapacity),
    ]
}

type Event = (u8, u64, RemovalCause);

struct Entry {
    value: u64,
    deadline: Option<u64>,
    last_use: u64,
}

/// The reference: a map, a use counter and a clock in milliseconds.
struct Model {
    map: HashMap<u8, Entry>,
    now: u64,
    uses: u64,
    capacity: Option<usize>,
    events: Vec<Event>,
}

impl Model {
    fn live(&self, k: u8) -> Option<u64> {
        let e = self.map.get(&k)?;
        (e.deadline.is_none_or(|d| self.now < d)).then_some(e.value)
    }

    fn remove(&mut self, k: u8, cause: RemovalCause) -> u64 {
        let e = self.map.remove(&k).expect("present");
        self.events.push((k, e.value, cause));
        e.value
    }

    /// What every write does first: sweep everything expired.
    fn sweep(&mut self) {
        let now = self.now;
        let due: Vec<u8> = self
            .map
            .iter()
            .filter(|(_, e)| e.deadline.is_some_and(|d| d <= now))
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            self.remove(k, RemovalCause::Expired);
        }
    }

    fn evict(&mut self) {
        while self.capacity.is_some_and(|c| self.map.len() > c) {
            let (&k, _) = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.last_use)
                .expect("non-empty");
            self.remove(k, RemovalCause::Evicted);
        }
    }

    fn insert(&mut self, k: u8, value: u64, ttl: Option<u16>) -> Option<u64> {
        let old = self.live(k);
        if old.is_some() {
            self.remove(k, RemovalCause::Replaced);
        }
        self.uses += 1;
        let deadline = ttl.map(|t| self.now + u64::from(t));
        self.map.insert(
            k,
            Entry {
                value,
                deadline,
                last_use: self.uses,
            },
        );
        self.evict();
        old
    }
}

fn run(ops: Vec<Op>, shards: usize, capacity: Option<usize>) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let log: std::sync::Arc<Mutex<Vec<Event>>> = Default::default();
    let sink = log.clone();
    let builder = Cache::builder()
        .shards(shards)
        .clock(clock.clone())
        .removal_listener(move |k: &u8, v: &Arc<u64>, cause| {
            sink.lock().unwrap().push((*k, **v, cause))
        });
    let cache: Cache<u8, u64> = match capacity {
        Some(c) => builder.capacity(c),
        None => builder.unbounded(),
    }
    .build()
    .unwrap();
    let mut model = Model {
        map: HashMap::new(),
        now: 0,
        uses: 0,
        capacity,
        events: Vec::new(),
    };
    let mut objects: HashMap<u8, Arc<u64>> = HashMap::new();
    let mut next_value = 0u64;
    let ms = Duration::from_millis;

    for (step, op) in ops.into_iter().enumerate() {
        let got: Option<u64>;
        let want: Option<u64>;
        match op.clone() {
            Op::Get(k) => {
                got = cache.get(&k).map(|v| *v);
                want = model.live(k);
                if want.is_some() {
                    model.uses += 1;
                    model.map.get_mut(&k).unwrap().last_use = model.uses;
                }
            }
            Op::Insert(k, ttl) => {
                next_value += 1;
                let v = Arc::new(next_value);
                objects.insert(k, v.clone());
                got = match ttl {
                    Some(t) => cache.insert_with_ttl(k, v, ms(t.into())),
                    None => cache.insert(k, v),
                }
                .map(|v| *v);
                model.sweep();
                want = model.insert(k, next_value, ttl);
            }
            Op::Put(k, ttl) => {
                next_value += 1;
                let v = Arc::new(next_value);
                objects.insert(k, v.clone());
                match ttl {
                    Some(t) => cache.put_with_ttl(k, v, ms(t.into())),
                    None => cache.put(k, v),
                }
                got = None;
                model.sweep();
                model.insert(k, next_value, ttl);
                want = None;
            }
            Op::InsertIfAbsent(k) => {
                next_value += 1;
                let v = Arc::new(next_value);
                let ok = cache.insert_if_absent(k, v.clone()).is_ok();
                got = ok.then_some(1);
                model.sweep();
                want = if model.live(k).is_none() {
                    objects.insert(k, v);
                    model.insert(k, next_value, None);
                    Some(1)
                } else {
                    None
                };
            }
            Op::AddSame(k) => {
                // Offer the object we last stored under k: declined while
                // it is still the cached one; stored (replacing) otherwise.
                let Some(v) = objects.get(&k).cloned() else {
                    continue;
                };
                let mine = v.clone();
                let res = cache.insert_if(k, v, None, |old| {
                    !old.is_some_and(|o| Arc::ptr_eq(o, &mine))
                });
                got = res.ok().map(|_| 1);
                model.sweep();
                want = if model.live(k) == Some(*mine) {
                    None
                } else {
                    model.insert(k, *mine, None);
                    Some(1)
                };
            }
            Op::Remove(k) | Op::Take(k) | Op::RemoveSame(k) => {
                let cause = match op {
                    Op::Take(_) => RemovalCause::Taken,
                    _ => RemovalCause::Removed,
                };
                got = match op {
                    Op::Take(_) => cache.take(&k),
                    Op::Remove(_) => cache.remove(&k),
                    _ => {
                        let Some(mine) = objects.get(&k).cloned() else {
                            continue;
                        };
                        cache.remove_if(&k, |v| Arc::ptr_eq(v, &mine))
                    }
                }
                .map(|v| *v);
                model.sweep();
                want = match op {
                    Op::RemoveSame(_) if model.live(k) != objects.get(&k).map(|v| **v) => None,
                    _ => model.live(k).map(|_| model.remove(k, cause)),
                };
            }
            Op::Advance(t) => {
                clock.advance(ms(t.into()));
                model.now += u64::from(t);
                got = None;
                want = None;
            }
            Op::Flush => {
                cache.flush_expired();
                model.sweep();
                got = None;
                want = None;
            }
            Op::Clear => {
                cache.clear();
                let keys: Vec<u8> = model.map.keys().copied().collect();
                for k in keys {
                    model.remove(k, RemovalCause::Cleared);
                }
                got = None;
                want = None;
            }
            Op::SetCapacity(c) => {
                let c = c
                    .map(usize::from)
                    .filter(|_| capacity.is_some())
                    .map(|c| c.max(shards));
                cache.set_capacity(c).unwrap();
                model.capacity = c;
                model.evict();
                got = None;
                want = None;
            }
        }
        prop_assert_eq!(got, want, "step {} {:?}", step, op);
        if shards > 1 {
            // A write sweeps only its own shard, which the model cannot
            // know; sweep both everywhere so they stay in step.
            cache.flush_expired();
            model.sweep();
        }
        let mut heard = std::mem::take(&mut *log.lock().unwrap());
        let mut expected = std::mem::take(&mut model.events);
        heard.sort_by_key(|e| (e.0, e.1));
        expected.sort_by_key(|e| (e.0, e.1));
        prop_assert_eq!(heard, expected, "removals at step {} {:?}", step, op);
        prop_assert_eq!(
            cache.len(),
            model.map.len() as u64,
            "len at step {} {:?}",
            step,
            op
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// One shard, small capacity: exact LRU eviction order.
    #[test]
    fn one_shard_matches_the_model(ops in proptest::collection::vec(op(), 1..200), cap in 1usize..12) {
        run(ops, 1, Some(cap))?;
    }

    /// Several shards, no bound: every key-level answer matches.
    #[test]
    fn many_shards_match_the_model(ops in proptest::collection::vec(op(), 1..200)) {
        run(ops, 4, None)?;
    }
}
