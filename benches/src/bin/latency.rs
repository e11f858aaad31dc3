//! Latency of single operations at 2 threads, per engine, through the
//! `Engine` adapters of tlscache-engines: 100k capacity, 200k ids, every
//! operation timed with the TSC (quanta) into a histogram.
//!
//! `cargo run --release -p tlscache-benches --bin latency [--gets-only | --tickets] [engine...]`
//! (quick_cache, scc, moka, mutex_lru and tlscache by default; names as in
//! `mem`, so `tlscache-policy` and `openssl` run when named). By default the workload
//! is the 90/9/1 zipf mix; `--gets-only` runs lookups alone (100/0/0), to
//! separate what writes do to reads; `--tickets` runs TLS 1.3 ticket
//! traffic (each connection takes one id and stores two, zipf ids), the
//! write-heavy case.
//!
//! Prints per engine a line for its lookups, `name: p50 N ns, p99 N ns,
//! p99.9 N ns` (none under `--tickets`, which makes no lookups), and one
//! for its writes (stores and takes), `name writes: p50 …`; first, the
//! timer's own cost (an empty timed region), which every figure includes,
//! and the machine's own pauses: `stalls: N per second over 10 µs`, the
//! gaps a busy loop on one thread sees in a second. On a shared virtual
//! machine those pauses, not the cache, set the p99.9 of any operation
//! that takes more than a few hundred nanoseconds: an operation of `t` µs
//! meets one with a chance of about `N × t / 10⁶`.

use std::sync::Barrier;

use hdrhistogram::Histogram;
use tlscache_benches::{
    fill, keys, label, ops, state, ticket_ops, Dist, Engine, EngineKind, Mix, Op, ENGINES, TTL,
};

const CAPACITY: usize = 100_000;
const KEYS: usize = 200_000;
const THREADS: u64 = 2;
const OPS: usize = 2_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1_000_000_000, 3).expect("valid fixed bounds")
}

/// Lookups' and writes' latencies.
struct Latencies {
    lookups: Histogram<u64>,
    writes: Histogram<u64>,
}

/// Runs each thread's stream, timing every operation.
fn measure(engine: &dyn Engine, keys: &[[u8; 32]], streams: &[Vec<Op>]) -> Latencies {
    let state = state(256);
    let clock = quanta::Clock::new();
    let start = Barrier::new(streams.len());
    let mut all = Latencies {
        lookups: histogram(),
        writes: histogram(),
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = streams
            .iter()
            .map(|stream| {
                let (clock, start, state) = (&clock, &start, &state);
                s.spawn(move || {
                    let mut lookups = histogram();
                    let mut writes = histogram();
                    start.wait();
                    for op in stream {
                        let t0 = clock.raw();
                        let found = match *op {
                            Op::Get(k) => engine.lookup(&keys[k as usize]),
                            Op::Store(k) => {
                                engine.store(keys[k as usize], state, TTL);
                                false
                            }
                            Op::Take(k) | Op::TakeStore(k) => engine.take(&keys[k as usize]),
                        };
                        let t1 = clock.raw();
                        std::hint::black_box(found);
                        let h = match op {
                            Op::Get(_) => &mut lookups,
                            _ => &mut writes,
                        };
                        h.saturating_record(clock.delta_as_nanos(t0, t1));
                    }
                    Latencies { lookups, writes }
                })
            })
            .collect();
        for handle in handles {
            let got = handle.join().expect("a latency thread panicked");
            all.lookups
                .add(got.lookups)
                .expect("histograms of one shape");
            all.writes.add(got.writes).expect("histograms of one shape");
        }
    });
    all
}

/// Gaps of over 10 µs a busy loop sees in one second: the machine's own
/// pauses (interrupts, another guest on the host), which any timed
/// operation meets now and then.
fn stalls(clock: &quanta::Clock) -> u64 {
    const GAP_NS: u64 = 10_000;
    let start = clock.raw();
    let mut last = start;
    let mut gaps = 0;
    while clock.delta_as_nanos(start, last) < 1_000_000_000 {
        let now = clock.raw();
        if clock.delta_as_nanos(last, now) > GAP_NS {
            gaps += 1;
        }
        last = now;
    }
    gaps
}

/// `name: p50 N ns, p99 N ns, p99.9 N ns`.
fn line(name: &str, h: &Histogram<u64>) -> String {
    format!(
        "{name}: p50 {} ns, p99 {} ns, p99.9 {} ns",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999)
    )
}

fn main() {
    let mut chosen: Vec<String> = std::env::args().skip(1).collect();
    let gets_only = chosen.iter().any(|a| a == "--gets-only");
    let tickets = chosen.iter().any(|a| a == "--tickets");
    chosen.retain(|a| a != "--gets-only" && a != "--tickets");
    if gets_only && tickets {
        eprintln!("latency: --gets-only and --tickets exclude each other");
        std::process::exit(2);
    }
    if let Some(unknown) = chosen
        .iter()
        .find(|c| !EngineKind::ALL.iter().any(|k| label(*k) == c.as_str()))
    {
        eprintln!("latency: unknown engine {unknown:?}");
        std::process::exit(2);
    }
    let mix = if gets_only {
        Mix { get: 100, store: 0 }
    } else {
        Mix { get: 90, store: 9 }
    };
    let keys = keys(KEYS, 11);
    let streams: Vec<Vec<Op>> = (0..THREADS)
        .map(|t| {
            if tickets {
                ticket_ops(OPS, KEYS, Dist::Zipf, 400 + t)
            } else {
                ops(OPS, KEYS, Dist::Zipf, mix, 400 + t)
            }
        })
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
    println!("stalls: {} per second over 10 µs", stalls(&clock));
    let kinds: Vec<EngineKind> = if chosen.is_empty() {
        ENGINES.to_vec()
    } else {
        EngineKind::ALL
            .into_iter()
            .filter(|k| chosen.iter().any(|c| c == label(*k)))
            .collect()
    };
    for kind in kinds {
        let engine = kind.build(CAPACITY, TTL).expect("a valid engine");
        fill(&*engine, &keys, &state);
        let h = measure(&*engine, &keys, &streams);
        if !h.lookups.is_empty() {
            println!("{}", line(label(kind), &h.lookups));
        }
        if !h.writes.is_empty() {
            println!("{}", line(&format!("{} writes", label(kind)), &h.writes));
        }
    }
}
