//! Latency of single lookups under the 90/9/1 zipf mix at 2 threads, per
//! engine, through the load generator's `Engine` adapters: 100k capacity,
//! 200k ids, every lookup timed with the TSC (quanta) into a histogram.
//!
//! `cargo run --release -p tlscache-benches --bin latency [--gets-only] [engine...]`
//! (every engine by default; names as in `mem`). `--gets-only` runs
//! lookups alone (100/0/0), to separate what writes do to reads.
//!
//! Prints one line per engine: `name: p50 N ns, p99 N ns, p99.9 N ns`, and
//! the timer's own cost (an empty timed region), which every figure
//! includes.

use std::sync::Barrier;

use hdrhistogram::Histogram;
use tlscache_benches::{fill, keys, label, ops, state, Dist, Engine, Mix, Op, ENGINES, TTL};

const CAPACITY: usize = 100_000;
const KEYS: usize = 200_000;
const THREADS: u64 = 2;
const OPS: usize = 2_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1_000_000_000, 3).expect("valid fixed bounds")
}

/// Runs each thread's stream, timing every lookup.
fn measure(engine: &dyn Engine, keys: &[[u8; 32]], streams: &[Vec<Op>]) -> Histogram<u64> {
    let state = state(256);
    let clock = quanta::Clock::new();
    let start = Barrier::new(streams.len());
    let mut all = histogram();
    std::thread::scope(|s| {
        let handles: Vec<_> = streams
            .iter()
            .map(|stream| {
                let (clock, start, state) = (&clock, &start, &state);
                s.spawn(move || {
                    let mut h = histogram();
                    start.wait();
                    for op in stream {
                        match *op {
                            Op::Get(k) => {
                                let t0 = clock.raw();
                                let hit = engine.lookup(&keys[k as usize]);
                                let t1 = clock.raw();
                                std::hint::black_box(hit);
                                h.saturating_record(clock.delta_as_nanos(t0, t1));
                            }
                            Op::Store(k) => engine.store(keys[k as usize], state, TTL),
                            Op::Take(k) | Op::TakeStore(k) => {
                                std::hint::black_box(engine.take(&keys[k as usize]));
                            }
                        }
                    }
                    h
                })
            })
            .collect();
        for handle in handles {
            all.add(handle.join().expect("a latency thread panicked"))
                .expect("histograms of one shape");
        }
    });
    all
}

fn main() {
    let mut chosen: Vec<String> = std::env::args().skip(1).collect();
    let gets_only = chosen.iter().any(|a| a == "--gets-only");
    chosen.retain(|a| a != "--gets-only");
    let mix = if gets_only {
        Mix { get: 100, store: 0 }
    } else {
        Mix { get: 90, store: 9 }
    };
    let keys = keys(KEYS, 11);
    let streams: Vec<Vec<Op>> = (0..THREADS)
        .map(|t| ops(OPS, KEYS, Dist::Zipf, mix, 400 + t))
        .collect();
    let state = state(256);
    let clock = quanta::Clock::new();
    let mut timer = histogram();
    for _ in 0..1_000_000 {
        let t0 = clock.raw();
        let t1 = clock.raw();
        timer.saturating_record(clock.delta_as_nanos(t0, t1));
    }
    println!(
        "timer: p50 {} ns, p99 {} ns, p99.9 {} ns",
        timer.value_at_quantile(0.5),
        timer.value_at_quantile(0.99),
        timer.value_at_quantile(0.999)
    );
    for kind in ENGINES {
        if !chosen.is_empty() && !chosen.iter().any(|c| c == label(kind)) {
            continue;
        }
        let engine = kind.build(CAPACITY, TTL).expect("a valid engine");
        fill(&*engine, &keys, &state);
        let h = measure(&*engine, &keys, &streams);
        println!(
            "{}: p50 {} ns, p99 {} ns, p99.9 {} ns",
            label(kind),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999)
        );
    }
}
