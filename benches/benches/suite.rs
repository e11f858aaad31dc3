//! The benchmark suite: tlscache-core against quick_cache, moka and one
//! `Mutex<LruCache>`, every engine through tlscache-engines' `Engine`
//! trait; the cost of expiry sweeps; and the policy layer's overhead
//! against the core and against OpenSSL's own cache (`policy/…`: lookups,
//! single-use lookups each followed by a store, and new sessions).
//!
//! `cargo bench -p tlscache-benches --bench suite` runs everything
//! (`tools/bench` does, and tabulates it); with `TLSCACHE_BENCH_QUICK=1`
//! (`tools/bench --quick`) it runs a minutes-long subset: 100k entries,
//! 1 and 2 threads, zipf ids.
//!
//! Groups are named `op/ids/size`, benchmarks `engine/threads`:
//! - `get_hit`: lookups of resident keys (capacity twice the key count);
//! - `get_miss`: lookups of keys never stored, in a full cache;
//! - `insert`: stores over twice as many keys as the capacity (steady
//!   eviction);
//! - `take`: a take of a resident key and the store that puts it back;
//! - `ticket`: TLS 1.3 stateful tickets, each connection a take and two
//!   stores, every id drawn over twice as many keys as the capacity;
//! - `mix`: 90% lookups, 9% stores, 1% takes over twice as many keys as
//!   the capacity.
//!
//! `baseline` sets a single-threaded get of tlscache-core, called
//! directly, against an unsynchronised hashbrown map (issue 2's floor).

#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tlscache_benches::{
    draws, fill, keys, label, ops, quick, state, ticket_ops, timed, Dist, EngineKind, Key, Mix, Op,
    ENGINES, TTL,
};
use tlscache_core::{Cache, ManualClock, MonotonicClock};

/// Operations per thread's stream (runs wrap around it).
const STREAM: usize = 1 << 18;
/// Bytes of the shared session state.
const STATE: usize = 256;

fn sizes() -> Vec<(usize, &'static str)> {
    if quick() {
        vec![(100_000, "100k")]
    } else {
        vec![(1_000, "1k"), (100_000, "100k"), (1_000_000, "1M")]
    }
}

fn threads() -> Vec<usize> {
    if quick() {
        vec![1, 2]
    } else {
        vec![1, 2, 4, 8]
    }
}

fn dists() -> Vec<Dist> {
    if quick() {
        vec![Dist::Zipf]
    } else {
        vec![Dist::Zipf, Dist::Uniform]
    }
}

/// One workload: how to size and fill each engine, and each thread's
/// stream.
struct Workload {
    name: &'static str,
    capacity: usize,
    /// Keys stored before timing.
    prefill: Vec<Key>,
    /// The keys the streams index.
    keys: Vec<Key>,
    streams: Vec<Vec<Op>>,
}

fn workloads(size: usize, dist: Dist, max_threads: usize) -> Vec<Workload> {
    let resident = keys(size, 1);
    let stored: std::collections::HashSet<&Key> = resident.iter().collect();
    let mut absent = keys(2 * size, 2);
    absent.retain(|k| !stored.contains(k));
    absent.truncate(size);
    let space = keys(2 * size, 3);
    let streams = |n: usize, make: &dyn Fn(u64) -> Vec<Op>| -> Vec<Vec<Op>> {
        (0..n as u64).map(|t| make(100 + t)).collect()
    };
    let over = |n: usize, wrap: fn(u32) -> Op| {
        move |seed: u64| {
            draws(STREAM, n, dist, seed)
                .into_iter()
                .map(wrap)
                .collect::<Vec<_>>()
        }
    };
    vec![
        Workload {
            name: "get_hit",
            capacity: 2 * size,
            prefill: resident.clone(),
            keys: resident.clone(),
            streams: streams(max_threads, &over(size, Op::Get)),
        },
        Workload {
            name: "get_miss",
            capacity: size,
            prefill: resident.clone(),
            keys: absent,
            streams: streams(max_threads, &over(size, Op::Get)),
        },
        Workload {
            name: "insert",
            capacity: size,
            prefill: space.clone(),
            keys: space.clone(),
            streams: streams(max_threads, &over(2 * size, Op::Store)),
        },
        Workload {
            name: "take",
            capacity: 2 * size,
            prefill: resident.clone(),
            keys: resident,
            streams: streams(max_threads, &over(size, Op::TakeStore)),
        },
        Workload {
            name: "ticket",
            capacity: size,
            prefill: space.clone(),
            keys: space.clone(),
            streams: streams(max_threads, &|seed| {
                ticket_ops(STREAM, 2 * size, dist, seed)
            }),
        },
        Workload {
            name: "mix",
            capacity: size,
            prefill: space.clone(),
            keys: space,
            streams: streams(max_threads, &|seed| {
                ops(STREAM, 2 * size, dist, Mix { get: 90, store: 9 }, seed)
            }),
        },
    ]
}

fn throughput(c: &mut Criterion) {
    let state = state(STATE);
    let threads = threads();
    let max_threads = threads.iter().copied().max().unwrap_or(1);
    for (size, size_name) in sizes() {
        for dist in dists() {
            for w in workloads(size, dist, max_threads) {
                let mut group =
                    c.benchmark_group(format!("{}/{}/{size_name}", w.name, dist.name()));
                for kind in ENGINES {
                    let engine = kind.build(w.capacity, TTL).expect("a valid engine");
                    fill(&*engine, &w.prefill, &state);
                    for &t in &threads {
                        group.throughput(Throughput::Elements(t as u64));
                        let id = BenchmarkId::new(label(kind), format!("{t}t"));
                        group.bench_function(id, |b| {
                            b.iter_custom(|iters| {
                                timed(&*engine, &w.keys, &w.streams[..t], &state, iters)
                            })
                        });
                    }
                }
                group.finish();
            }
        }
    }
}

/// Entries in the expiry benchmarks' cache.
const EXPIRY_ENTRIES: usize = 1_000_000;
/// Far enough ahead that the long-lived entries never come due in a run.
const LONG: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A cache of 1M entries on a manual clock, none of them due.
fn expiry_cache(keys: &[Key]) -> (Cache<Key, Vec<u8>>, ManualClock) {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .capacity(2 * EXPIRY_ENTRIES)
        .clock(clock.clone())
        .build()
        .expect("a valid cache");
    let value = Arc::new(vec![7u8; 64]);
    for k in keys {
        cache.insert_with_ttl(*k, Arc::clone(&value), LONG);
    }
    (cache, clock)
}

/// One sweep of 1M entries of which a share is due: the cost must follow
/// the number due (throughput is in expired entries), not the 1M.
fn expiry_sweep(c: &mut Criterion) {
    let keys = keys(EXPIRY_ENTRIES, 4);
    let value = Arc::new(vec![7u8; 64]);
    let mut group = c.benchmark_group("expiry/sweep/1M");
    for (due, name) in [(1_000, "0.1%"), (10_000, "1%"), (500_000, "50%")] {
        let (cache, clock) = expiry_cache(&keys);
        group.throughput(Throughput::Elements(due as u64));
        group.bench_function(BenchmarkId::new("tlscache", name), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    // Untimed: make `due` entries expire 1 ms from now.
                    for k in &keys[..due] {
                        cache.insert_with_ttl(*k, Arc::clone(&value), Duration::from_millis(1));
                    }
                    clock.advance(Duration::from_millis(2));
                    let t0 = Instant::now();
                    cache.flush_expired();
                    spent += t0.elapsed();
                }
                assert_eq!(
                    cache.len(),
                    (EXPIRY_ENTRIES - due) as u64,
                    "the sweep took them"
                );
                spent
            })
        });
    }
    group.finish();
}

/// Lookups of long-lived entries, alone and while another thread sweeps
/// 10% of the cache over and over: reads take no lock, so a sweep should
/// cost them only the shared cache lines.
fn expiry_get_during_sweep(c: &mut Criterion) {
    let keys = keys(EXPIRY_ENTRIES, 5);
    let (cache, clock) = expiry_cache(&keys);
    let swept = EXPIRY_ENTRIES / 10;
    let reads: Vec<u32> = draws(STREAM, EXPIRY_ENTRIES - swept, Dist::Zipf, 6)
        .into_iter()
        .map(|i| i + swept as u32)
        .collect();
    let value = Arc::new(vec![7u8; 64]);
    let get = |iters: u64| {
        let t0 = Instant::now();
        let mut hits = 0u64;
        for i in 0..iters as usize {
            hits += u64::from(cache.get(&keys[reads[i % reads.len()] as usize]).is_some());
        }
        let spent = t0.elapsed();
        assert_eq!(hits, iters, "long-lived entries stay");
        spent
    };
    let mut group = c.benchmark_group("expiry/get/1M");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("tlscache", "idle"), |b| {
        b.iter_custom(|iters| black_box(get(iters)))
    });
    group.bench_function(BenchmarkId::new("tlscache", "during_sweeps"), |b| {
        b.iter_custom(|iters| {
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        for k in &keys[..swept] {
                            cache.insert_with_ttl(*k, Arc::clone(&value), Duration::from_millis(1));
                        }
                        clock.advance(Duration::from_millis(2));
                        cache.flush_expired();
                    }
                });
                let spent = get(iters);
                stop.store(true, Ordering::Relaxed);
                spent
            })
        })
    });
    group.finish();
}

/// Issue 2's floor: a single-threaded get hit on tlscache-core (called
/// directly) against an unsynchronised hashbrown map with the same hasher
/// on the same keys, both handing out a clone of the value's `Arc`. The
/// core runs on its default clock (the kernel's coarse one) and, as
/// `tlscache_tsc`, on the time-stamp counter, to show what a clock read
/// costs in a lookup.
fn baseline(c: &mut Criterion) {
    let size = 100_000;
    let resident = keys(size, 8);
    let reads = draws(STREAM, size, Dist::Zipf, 9);
    let value = Arc::new(vec![7u8; STATE]);
    let mut map: hashbrown::HashMap<Key, Arc<Vec<u8>>, ahash::RandomState> =
        hashbrown::HashMap::with_hasher(ahash::RandomState::new());
    // Twice the keys' capacity, so every key stays resident.
    let cache: Cache<Key, Vec<u8>> = Cache::new(2 * size).expect("a valid cache");
    let tsc: Cache<Key, Vec<u8>> = Cache::builder()
        .capacity(2 * size)
        .clock(MonotonicClock::new())
        .build()
        .expect("a valid cache");
    for k in &resident {
        map.insert(*k, Arc::clone(&value));
        cache.insert_with_ttl(*k, Arc::clone(&value), TTL);
        tsc.insert_with_ttl(*k, Arc::clone(&value), TTL);
    }
    let mut group = c.benchmark_group("baseline/get_hit/zipf/100k");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("hashbrown", "1t"), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % reads.len();
            black_box(map.get(&resident[reads[i] as usize]).cloned())
        })
    });
    group.bench_function(BenchmarkId::new("tlscache", "1t"), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % reads.len();
            black_box(cache.get(&resident[reads[i] as usize]))
        })
    });
    group.bench_function(BenchmarkId::new("tlscache_tsc", "1t"), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % reads.len();
            black_box(tsc.get(&resident[reads[i] as usize]))
        })
    });
    group.finish();
}

/// tlscache-policy's lookup, single-use lookup and new session (built from
/// the state, stored by a finished handshake) against tlscache-core's get,
/// take and store, and against OpenSSL's own cache, each through its
/// load-generator engine, on 100k resident zipf ids.
fn policy_overhead(c: &mut Criterion) {
    let state = state(STATE);
    let size = 100_000;
    let resident = keys(size, 7);
    // Two threads' streams of `op` on zipf draws, seeded from `seed`.
    let streams = |seed: u64, op: fn(u32) -> Op| -> Vec<Vec<Op>> {
        (0..2)
            .map(|t| {
                draws(STREAM, size, Dist::Zipf, seed + t)
                    .into_iter()
                    .map(op)
                    .collect()
            })
            .collect()
    };
    let lookups = streams(200, Op::Get);
    let stores = streams(300, Op::Store);
    let takes = streams(400, Op::TakeStore);
    for (name, streams) in [
        ("lookup", &lookups),
        ("take", &takes),
        ("new_session", &stores),
    ] {
        let mut group = c.benchmark_group(format!("policy/{name}/100k"));
        for kind in [
            EngineKind::Tlscache,
            EngineKind::TlscacheCopy,
            EngineKind::Policy,
            EngineKind::Openssl,
        ] {
            let engine = kind.build(2 * size, TTL).expect("a valid engine");
            fill(&*engine, &resident, &state);
            for t in [1usize, 2] {
                group.throughput(Throughput::Elements(t as u64));
                group.bench_function(BenchmarkId::new(label(kind), format!("{t}t")), |b| {
                    b.iter_custom(|iters| timed(&*engine, &resident, &streams[..t], &state, iters))
                });
            }
        }
        group.finish();
    }
}

fn config() -> Criterion {
    let (warm, measure) = if quick() { (300, 700) } else { (500, 1500) };
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(warm))
        .measurement_time(Duration::from_millis(measure))
}

criterion_group! {
    name = benches;
    config = config();
    targets = throughput, expiry_sweep, expiry_get_during_sweep, policy_overhead, baseline
}
criterion_main!(benches);
