//! What a single-threaded lookup hit costs at best under tlscache-core's
//! contract, beside issue 2's floor (an unsynchronised hashbrown map) and
//! the core itself. Every tlscache lookup must pin an epoch guard, read the
//! clock to judge the entry's deadline, record the access for the LRU
//! without a lock, and take a count on the value; these stand-ins do the
//! same steps on plain hashbrown tables, so what separates them is layout:
//!
//! - `hashbrown`: `get` and a clone of the value's `Arc`, nothing else
//!   (the suite's `baseline/get_hit` floor);
//! - `inline_bare`: hashbrown's `get` and clone on the 64-byte entries of
//!   `inline` below, without its other steps: what the larger entry alone
//!   costs;
//! - `inline`: 64-byte entries (key, value, deadline, stamps, as the
//!   core's node) kept in the hash table itself, so a hit loads one entry
//!   after the control bytes, plus every step above: the best a design
//!   that keeps its nodes in the index could do;
//! - `inline_tsc`, `inline_no_clock`, `inline_no_pin`: `inline` with the
//!   time-stamp counter (`MonotonicClock`) instead of the default coarse
//!   clock, without the clock read, and without the pin: what those two
//!   steps cost;
//! - `two_level`: the same steps, but the table maps a key to a slot and
//!   the entry lives in a separate array, one more dependent load: the
//!   shape of the core's index and arena (though hashbrown's buckets hold
//!   the key beside the slot, where the core's entries are 4-byte slots);
//! - `tlscache`: `Cache::get`.
//!
//! Same keys and zipf draws as the suite's baseline (100k resident 32-byte
//! keys, one shared value). Each round times every variant once, in turn,
//! so the machine's drift falls on all alike; the output is each variant's
//! median in Mops/s and its median ratio to hashbrown in the same round.
//!
//! `cargo run --release -p tlscache-benches --example floor [-- ROUNDS OPS]`
//! (defaults: 9 rounds of 5M lookups each).

use std::hash::{Hash, Hasher};
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tlscache_benches::{draws, keys, Dist, TTL};
use tlscache_core::{Arc, Cache, Clock, CoarseClock, MonotonicClock};

type Key = [u8; 32];
type Value = Arc<Vec<u8>>;
/// The table whose buckets are the entries.
type Inline = hashbrown::HashSet<Entry, ahash::RandomState>;

/// Resident keys, as in the suite's baseline.
const SIZE: usize = 100_000;
/// Accesses a stand-in's buffer holds, as a stripe of the core does.
const READS: usize = 20;

/// An entry with the fields of the core's node, one cache line.
#[repr(C, align(64))]
struct Entry {
    stamp: AtomicU32,
    hash: u32,
    key: Key,
    value: Value,
    deadline: AtomicU64,
    placed: AtomicU64,
}

impl Entry {
    fn new(key: Key, value: Value, deadline: u64) -> Self {
        Self {
            stamp: AtomicU32::new(0),
            hash: 0,
            key,
            value,
            deadline: AtomicU64::new(deadline),
            placed: AtomicU64::new(0),
        }
    }
}

// An entry is its key, to the table.
impl Hash for Entry {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.key.hash(h);
    }
}
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Entry {}
impl std::borrow::Borrow<Key> for Entry {
    fn borrow(&self) -> &Key {
        &self.key
    }
}

/// A thread's access record, as the core's own stripe keeps it: a count,
/// the newest stamp and a ring of recent accesses, with plain loads and
/// stores.
struct Stripe {
    hits: AtomicU64,
    last: AtomicU64,
    reads: [AtomicU64; READS],
}

impl Stripe {
    fn hit(&self, slot: u32) {
        let n = self.hits.load(Ordering::Relaxed) + 1;
        self.hits.store(n, Ordering::Relaxed);
        let stamp = self.last.load(Ordering::Relaxed) + 1;
        self.last.store(stamp, Ordering::Relaxed);
        self.reads[n as usize % READS].store(stamp << 32 | u64::from(slot), Ordering::Relaxed);
    }
}

/// The steps of a core lookup once the entry is found: the deadline
/// against the clock (none: skipped), the access record, the count on the
/// value.
#[inline]
fn admit(e: &Entry, slot: u32, clock: Option<&impl Clock>, stripe: &Stripe) -> Option<Value> {
    let deadline = e.deadline.load(Ordering::Acquire);
    if let Some(clock) = clock {
        if deadline != u64::MAX && clock.now_nanos() >= deadline {
            return None;
        }
    }
    stripe.hit(slot);
    Some(Arc::clone(&e.value))
}

/// A lookup of `key` in the inline table, pinned or not, judged by
/// `clock` (none: not judged): whether it hit.
#[inline(always)]
fn on_inline(
    table: &Inline,
    key: &Key,
    pin: bool,
    clock: Option<&impl Clock>,
    stripe: &Stripe,
) -> bool {
    let _guard = pin.then(crossbeam_epoch::pin);
    black_box(table.get(key).and_then(|e| admit(e, 0, clock, stripe))).is_some()
}

fn parse(arg: Option<String>, default: usize) -> Result<usize, String> {
    arg.map_or(Ok(default), |a| {
        a.parse()
            .map_err(|_| format!("not a count: {a}; usage: floor [ROUNDS OPS]"))
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let rounds = parse(args.next(), 9)?.max(1);
    let ops = parse(args.next(), 5_000_000)?.max(1);

    let resident = keys(SIZE, 8);
    let reads = draws(1 << 20, SIZE, Dist::Zipf, 9);
    let value: Value = Arc::new(vec![7u8; 256]);
    let clock = CoarseClock::new();
    let tsc = MonotonicClock::new();
    let no_clock: Option<&CoarseClock> = None;
    let deadline = clock.now_nanos() + TTL.as_nanos() as u64;
    let stripe = Stripe {
        hits: AtomicU64::new(0),
        last: AtomicU64::new(0),
        reads: std::array::from_fn(|_| AtomicU64::new(0)),
    };

    let mut map: hashbrown::HashMap<Key, Value, ahash::RandomState> =
        hashbrown::HashMap::with_capacity_and_hasher(2 * SIZE, ahash::RandomState::new());
    let mut inline: Inline =
        hashbrown::HashSet::with_capacity_and_hasher(2 * SIZE, ahash::RandomState::new());
    let mut slots: hashbrown::HashMap<Key, u32, ahash::RandomState> =
        hashbrown::HashMap::with_capacity_and_hasher(2 * SIZE, ahash::RandomState::new());
    let mut arena: Vec<Entry> = Vec::with_capacity(2 * SIZE);
    // Twice the keys' capacity, so every key stays resident (as the suite).
    let cache: Cache<Key, Vec<u8>> = Cache::new(2 * SIZE).map_err(|e| e.to_string())?;
    for k in &resident {
        map.insert(*k, Arc::clone(&value));
        inline.insert(Entry::new(*k, Arc::clone(&value), deadline));
        slots.insert(*k, arena.len() as u32);
        arena.push(Entry::new(*k, Arc::clone(&value), deadline));
        cache.insert_with_ttl(*k, Arc::clone(&value), TTL);
    }

    // One variant's lookup of key `i` of the draws: whether it hit.
    let key = |i: usize| &resident[reads[i % reads.len()] as usize];
    let variants: [(&str, &dyn Fn(usize) -> bool); 8] = [
        ("hashbrown", &|i| {
            black_box(map.get(key(i)).cloned()).is_some()
        }),
        ("inline_bare", &|i| {
            black_box(inline.get(key(i)).map(|e| Arc::clone(&e.value))).is_some()
        }),
        ("inline", &|i| {
            on_inline(&inline, key(i), true, Some(&clock), &stripe)
        }),
        ("inline_tsc", &|i| {
            on_inline(&inline, key(i), true, Some(&tsc), &stripe)
        }),
        ("inline_no_clock", &|i| {
            on_inline(&inline, key(i), true, no_clock, &stripe)
        }),
        ("inline_no_pin", &|i| {
            on_inline(&inline, key(i), false, Some(&clock), &stripe)
        }),
        ("two_level", &|i| {
            let _guard = crossbeam_epoch::pin();
            let found = slots
                .get(key(i))
                .and_then(|&slot| admit(&arena[slot as usize], slot, Some(&clock), &stripe));
            black_box(found).is_some()
        }),
        ("tlscache", &|i| black_box(cache.get(key(i))).is_some()),
    ];

    let mut speed = vec![Vec::new(); variants.len()];
    let mut ratio = vec![Vec::new(); variants.len()];
    for round in 1..=rounds {
        let mut this = Vec::new();
        for (name, lookup) in &variants {
            let start = Instant::now();
            let mut hits = 0;
            for i in 0..ops {
                hits += usize::from(lookup(i));
            }
            let spent = start.elapsed().max(Duration::from_nanos(1));
            if hits != ops {
                return Err(format!("{name} missed {} resident keys", ops - hits));
            }
            this.push(ops as f64 / spent.as_secs_f64() / 1e6);
        }
        for (v, s) in this.iter().enumerate() {
            speed[v].push(*s);
            ratio[v].push(s / this[0]);
        }
        eprintln!("round {round} of {rounds} done");
    }
    println!("{rounds} rounds of {ops} lookup hits, zipf over {SIZE} resident keys:");
    for (v, (name, _)) in variants.iter().enumerate() {
        println!(
            "{name:<15} median {:6.2} Mops/s   {:.2}x hashbrown",
            median(&mut speed[v]),
            median(&mut ratio[v])
        );
    }
    Ok(())
}
