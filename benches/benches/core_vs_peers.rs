//! tlscache-core against quick_cache and moka in one run, on proxy-like
//! traffic: 100k capacity, 200k random 32-byte ids, 256-byte shared
//! payloads, 90% get / 9% insert / 1% remove, zipf(1.0) and uniform ids,
//! 1 and 2 threads. Plus single-threaded get hits against an
//! unsynchronised hashbrown map with the same hasher.
//!
//! `cargo bench -p tlscache-benches --bench core_vs_peers`

#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tlscache_benches::{
    keys, ops, run, Dist, Engine, Hashbrown, Key, Moka, Op, QuickCache, Tlscache,
};

const CAPACITY: usize = 100_000;
const KEYS: usize = 200_000;
const STREAM: usize = 1 << 20;
const PAYLOAD: usize = 256;

/// Runs `iters` operations on each of `streams.len()` threads at once and
/// returns the wall time from a common start to the last thread's end.
fn timed(
    engine: &dyn Engine<PAYLOAD>,
    keys: &[Key],
    streams: &[Vec<Op>],
    payload: &Arc<[u8; PAYLOAD]>,
    iters: u64,
) -> Duration {
    let start = Barrier::new(streams.len() + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = streams
            .iter()
            .map(|stream| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let mut left = iters as usize;
                    let mut hits = 0;
                    while left > 0 {
                        let n = left.min(stream.len());
                        hits += run(engine, keys, &stream[..n], payload);
                        left -= n;
                    }
                    black_box(hits);
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        for w in workers {
            w.join().expect("worker panicked");
        }
        t0.elapsed()
    })
}

fn engines() -> Vec<(&'static str, Box<dyn Engine<PAYLOAD>>)> {
    vec![
        ("tlscache", Box::new(Tlscache::<PAYLOAD>::new(CAPACITY))),
        (
            "quick_cache",
            Box::new(QuickCache::<PAYLOAD>::new(CAPACITY)),
        ),
        ("moka", Box::new(Moka::<PAYLOAD>::new(CAPACITY))),
    ]
}

fn mix(c: &mut Criterion) {
    let keys = keys(KEYS, 1);
    let payload = Arc::new([7u8; PAYLOAD]);
    for dist in [Dist::Zipf, Dist::Uniform] {
        let streams: Vec<Vec<Op>> = (0..2)
            .map(|t| ops(STREAM, KEYS, dist, 90, 9, 100 + t))
            .collect();
        let warm = ops(STREAM, KEYS, dist, 0, 100, 99);
        for threads in [1usize, 2] {
            let mut group = c.benchmark_group(format!("mix_90_9_1/{}", dist.name()));
            group.throughput(Throughput::Elements(threads as u64));
            for (name, engine) in engines() {
                run(&*engine, &keys, &warm, &payload);
                group.bench_function(BenchmarkId::new(name, format!("{threads}t")), |b| {
                    b.iter_custom(|iters| {
                        timed(&*engine, &keys, &streams[..threads], &payload, iters)
                    })
                });
            }
            group.finish();
        }
    }
}

fn get_hit(c: &mut Criterion) {
    let keys = keys(CAPACITY, 2);
    let payload = Arc::new([7u8; PAYLOAD]);
    let stream: Vec<Op> = ops(STREAM, CAPACITY, Dist::Zipf, 100, 0, 3);
    let mut group = c.benchmark_group("get_hit/zipf");
    group.throughput(Throughput::Elements(1));

    let mut map = Hashbrown::<PAYLOAD>::new();
    for k in &keys {
        map.0.insert(*k, payload.clone());
    }
    let indices: Vec<u32> = stream
        .iter()
        .map(|op| match op {
            Op::Get(k) | Op::Insert(k) | Op::Remove(k) => *k,
        })
        .collect();
    group.bench_function(BenchmarkId::new("hashbrown", "1t"), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & (STREAM - 1);
            black_box(map.get(&keys[indices[i] as usize]))
        })
    });
    // Twice the capacity, so every key stays resident in every engine.
    let roomy: Vec<(&str, Box<dyn Engine<PAYLOAD>>)> = vec![
        ("tlscache", Box::new(Tlscache::<PAYLOAD>::new(2 * CAPACITY))),
        (
            "quick_cache",
            Box::new(QuickCache::<PAYLOAD>::new(2 * CAPACITY)),
        ),
        ("moka", Box::new(Moka::<PAYLOAD>::new(2 * CAPACITY))),
    ];
    for (name, engine) in roomy {
        for k in &keys {
            engine.insert(*k, payload.clone());
        }
        group.bench_function(BenchmarkId::new(name, "1t"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (STREAM - 1);
                black_box(engine.get(&keys[indices[i] as usize]))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = mix, get_hit
}
criterion_main!(benches);
