//! Workloads for the benchmarks, run through tlscache-engines'
//! [`Engine`] trait, so the benchmarks and the main job drive every engine
//! through the same adapters.
//!
//! Every engine runs the same pre-generated operation streams; figures
//! compare engines, not harnesses.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
pub use tlscache_engines::{Engine, EngineKind, SessionId as Key, State};

/// The engines every throughput benchmark compares: tlscache-core first,
/// then its peers.
pub const ENGINES: [EngineKind; 5] = [
    EngineKind::Tlscache,
    EngineKind::QuickCache,
    EngineKind::Scc,
    EngineKind::Moka,
    EngineKind::MutexLru,
];

/// A short, path-safe label for an engine (criterion uses it as a folder).
pub fn label(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Tlscache => "tlscache",
        EngineKind::Policy => "tlscache-policy",
        EngineKind::TlscacheCopy => "tlscache-copy",
        EngineKind::QuickCache => "quick_cache",
        EngineKind::Scc => "scc",
        EngineKind::Moka => "moka",
        EngineKind::MutexLru => "mutex_lru",
        EngineKind::Rustls => "rustls",
        EngineKind::Openssl => "openssl",
    }
}

/// How long every stored session lives: longer than any run.
pub const TTL: Duration = Duration::from_secs(3600);

/// One operation of a stream; the number indexes the key set.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Look the key up.
    Get(u32),
    /// Store a session under the key.
    Store(u32),
    /// Take (get and remove) the key.
    Take(u32),
    /// Take the key, then store it again, so that the cache stays full.
    TakeStore(u32),
}

/// How keys are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dist {
    /// Zipf with exponent 1.0: a few hot sessions, a long tail.
    Zipf,
    /// Every key equally likely.
    Uniform,
}

impl Dist {
    /// A short name for benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Dist::Zipf => "zipf",
            Dist::Uniform => "uniform",
        }
    }
}

/// Shares of each kind of operation, in percent (the rest are takes).
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Gets.
    pub get: u32,
    /// Stores.
    pub store: u32,
}

/// `n` distinct random 32-byte keys.
pub fn keys(n: usize, seed: u64) -> Vec<Key> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let k: Key = rng.gen();
        if seen.insert(k) {
            out.push(k);
        }
    }
    out
}

/// Key indices `0..keys`, `len` of them, drawn by `dist`.
pub fn draws(len: usize, keys: usize, dist: Dist, seed: u64) -> Vec<u32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(keys as u64, 1.0).expect("valid zipf parameters");
    (0..len)
        .map(|_| match dist {
            Dist::Zipf => zipf.sample(&mut rng) as u32 - 1,
            Dist::Uniform => rng.gen_range(0..keys as u32),
        })
        .collect()
}

/// A stream of `len` operations over `keys` keys in proportions `mix`.
pub fn ops(len: usize, keys: usize, dist: Dist, mix: Mix, seed: u64) -> Vec<Op> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    draws(len, keys, dist, seed)
        .into_iter()
        .map(|key| match rng.gen_range(0..100) {
            p if p < mix.get => Op::Get(key),
            p if p < mix.get + mix.store => Op::Store(key),
            _ => Op::Take(key),
        })
        .collect()
}

/// A stream of `len` operations over `keys` keys as TLS 1.3 stateful
/// tickets make them: each connection takes one ticket and stores two new
/// ones (rustls and OpenSSL issue two), so a third of the operations are
/// takes and two thirds stores, every id drawn by `dist`. `len` is rounded
/// down to whole connections.
pub fn ticket_ops(len: usize, keys: usize, dist: Dist, seed: u64) -> Vec<Op> {
    draws(len - len % 3, keys, dist, seed)
        .chunks_exact(3)
        .flat_map(|c| [Op::Take(c[0]), Op::Store(c[1]), Op::Store(c[2])])
        .collect()
}

/// Runs `ops` against `engine`; returns the hits, so nothing is optimised out.
pub fn run(engine: &dyn Engine, keys: &[Key], ops: &[Op], state: &State) -> u64 {
    let mut hits = 0;
    for op in ops {
        match *op {
            Op::Get(k) => hits += u64::from(engine.lookup(&keys[k as usize])),
            Op::Store(k) => engine.store(keys[k as usize], state, TTL),
            Op::Take(k) => hits += u64::from(engine.take(&keys[k as usize])),
            Op::TakeStore(k) => {
                hits += u64::from(engine.take(&keys[k as usize]));
                engine.store(keys[k as usize], state, TTL);
            }
        }
    }
    hits
}

/// Stores every key of `keys` in `engine`.
pub fn fill(engine: &dyn Engine, keys: &[Key], state: &State) {
    for k in keys {
        engine.store(*k, state, TTL);
    }
}

/// Runs `iters` operations on each of `streams.len()` threads at once
/// (each thread its own stream, wrapping around) and returns the wall time
/// from a common start to the last thread's end.
pub fn timed(
    engine: &dyn Engine,
    keys: &[Key],
    streams: &[Vec<Op>],
    state: &State,
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
                        hits += run(engine, keys, &stream[..n], state);
                        left -= n;
                    }
                    black_box(hits);
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        for w in workers {
            w.join().expect("a benchmark thread panicked");
        }
        t0.elapsed()
    })
}

/// A session state of `bytes` bytes, shared by every stored session.
pub fn state(bytes: usize) -> State {
    Arc::new(vec![7u8; bytes])
}

/// The resident set size of this process, in bytes.
pub fn rss_bytes() -> Result<u64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|e| format!("/proc/self/statm: {e}"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .ok_or("unexpected /proc/self/statm format")?;
    Ok(pages * 4096)
}

/// Whether the quick subset was asked for (`TLSCACHE_BENCH_QUICK=1`, as
/// `tools/bench --quick` sets it).
pub fn quick() -> bool {
    std::env::var_os("TLSCACHE_BENCH_QUICK").is_some_and(|v| v == "1")
}
