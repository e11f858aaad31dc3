//! A fixed amount of one workload on one engine, timed once: the unit of
//! an A/B between two trees (`tools/ab` runs it built from each, in turns,
//! and compares medians), where criterion's adaptive sampling on this
//! noisy machine could not tell a few percent apart.
//!
//! `cargo run --release -p tlscache-benches --bin fixed -- ENGINE WORK THREADS OPS`
//! prints millions of operations per second over all threads. WORK is one
//! of:
//! - `mix`: 90% lookups, 9% stores, 1% takes of zipf ids over 200k keys,
//!   capacity 100k (the suite's `mix/zipf/100k`);
//! - `hit`: lookups of zipf ids over 100k resident keys, capacity 200k;
//! - `miss`: lookups of zipf ids over 100k absent keys, capacity 100k, full;
//! - `insert`: stores of zipf ids over 200k keys, capacity 100k;
//! - `ticket`: TLS 1.3 stateful tickets, a connection at a time: take one
//!   id, store two, each a zipf draw over 200k keys, capacity 100k (the
//!   suite's `ticket/zipf/100k`); `ticket_uniform` the same with uniform
//!   draws;
//! - `hit_small`, `insert_small`, `mix_small`, `ticket_small`: `hit`,
//!   `insert`, `mix` and `ticket` over 1k keys (`mix_small` and
//!   `ticket_small`: 2k keys, capacity 1k), whose entries stay
//!   in the core's caches: what an operation costs in instructions and
//!   synchronisation, apart from memory misses.
//!
//! Every thread first runs 2^20 operations of its stream untimed, then
//! OPS timed ones.

use std::process::ExitCode;

use tlscache_benches::{
    draws, fill, keys, label, ops, state, ticket_ops, timed, Dist, EngineKind, Mix, Op, TTL,
};

/// Operations in each thread's stream (runs wrap around it).
const STREAM: usize = 1 << 20;

fn usage() -> String {
    let names: Vec<_> = EngineKind::ALL.iter().map(|k| label(*k)).collect();
    format!(
        "usage: fixed <{}> <mix|hit|miss|insert>[_small]|ticket[_uniform] THREADS OPS",
        names.join("|")
    )
}

/// The capacity and each thread's stream of a workload, over 200k keys.
fn workload(work: &str, threads: usize) -> Option<(usize, Vec<Vec<Op>>)> {
    // Each thread's stream of zipf draws over `keys` keys, as ops.
    let each = |keys: usize, op: &dyn Fn(u32) -> Op| -> Vec<Vec<Op>> {
        (7..7 + threads as u64)
            .map(|seed| {
                draws(STREAM, keys, Dist::Zipf, seed)
                    .into_iter()
                    .map(op)
                    .collect()
            })
            .collect()
    };
    let tickets = |dist: Dist| -> Vec<Vec<Op>> {
        (7..7 + threads as u64)
            .map(|seed| ticket_ops(STREAM, 200_000, dist, seed))
            .collect()
    };
    Some(match work {
        "mix" => (
            100_000,
            (7..7 + threads as u64)
                .map(|s| ops(STREAM, 200_000, Dist::Zipf, Mix { get: 90, store: 9 }, s))
                .collect(),
        ),
        "hit" => (200_000, each(100_000, &Op::Get)),
        // Keys past the first 100k are never stored.
        "miss" => (100_000, each(100_000, &|k| Op::Get(k + 100_000))),
        "insert" => (100_000, each(200_000, &Op::Store)),
        "ticket" => (100_000, tickets(Dist::Zipf)),
        "ticket_uniform" => (100_000, tickets(Dist::Uniform)),
        "ticket_small" => (
            1_000,
            (7..7 + threads as u64)
                .map(|seed| ticket_ops(STREAM, 2_000, Dist::Zipf, seed))
                .collect(),
        ),
        "hit_small" => (200_000, each(1_000, &Op::Get)),
        "insert_small" => (100_000, each(1_000, &Op::Store)),
        "mix_small" => (
            1_000,
            (7..7 + threads as u64)
                .map(|s| ops(STREAM, 2_000, Dist::Zipf, Mix { get: 90, store: 9 }, s))
                .collect(),
        ),
        _ => return None,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [engine, work, threads, iters] = args.as_slice() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    let Some(kind) = EngineKind::ALL.into_iter().find(|k| label(*k) == engine) else {
        eprintln!("unknown engine {engine:?}\n{}", usage());
        return ExitCode::from(2);
    };
    let (Ok(threads @ 1..), Ok(iters @ 1..)) = (threads.parse::<usize>(), iters.parse::<u64>())
    else {
        eprintln!("THREADS and OPS are positive integers\n{}", usage());
        return ExitCode::from(2);
    };
    let Some((capacity, streams)) = workload(work, threads) else {
        eprintln!("unknown workload {work:?}\n{}", usage());
        return ExitCode::from(2);
    };
    let keys = keys(200_000, 1);
    let state = state(256);
    let engine = match kind.build(capacity, TTL) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot build {engine}: {e}");
            return ExitCode::FAILURE;
        }
    };
    fill(engine.as_ref(), &keys[..100_000], &state);
    timed(engine.as_ref(), &keys, &streams, &state, STREAM as u64);
    let took = timed(engine.as_ref(), &keys, &streams, &state, iters);
    let total = iters * threads as u64;
    println!("{:.2}", total as f64 / took.as_secs_f64() / 1e6);
    ExitCode::SUCCESS
}
