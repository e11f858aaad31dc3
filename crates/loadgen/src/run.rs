//! Driving one engine through a workload and measuring it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::workload::{session_id, Conn, Workload};
use tlscache_engines::Tiers;
use tlscache_engines::{Engine, State};

/// One connection in this many is timed, so that reading the clock does
/// not dominate what is measured.
const SAMPLE_EVERY: u64 = 64;

/// The slowest latency the histograms resolve: a minute, in nanoseconds.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// An empty latency histogram, 3 significant figures from 1 ns to a minute.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid fixed bounds")
}

/// Where the latency distribution is reported.
const QUANTILES: [f64; 9] = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999];

/// Connections a thread runs between two progress reports.
const PROGRESS_EVERY: u64 = 4096;

/// What one engine did with the workload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The engine's name.
    pub engine: &'static str,
    /// Timed connections, all threads.
    pub connections: u64,
    /// Wall time of the timed part.
    pub seconds: f64,
    /// Connections per second.
    pub ops_per_sec: f64,
    /// Resumption attempts.
    pub lookups: u64,
    /// Resumption attempts that found a session.
    pub hits: u64,
    /// Latency of a connection's cache work (lookup, and store after a full
    /// handshake; the simulated handshake itself excluded), sampled, in ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// The latency distribution: `(quantile, ns)` pairs from the median to
    /// the 99.99th percentile.
    pub latency: Vec<(f64, u64)>,
    /// Sessions held at the end, if the engine can tell.
    pub sessions: Option<u64>,
    /// Heap bytes per session when filled to capacity, from a separate
    /// probe ([`memory::probe`](crate::memory::probe)), if one ran.
    pub bytes_per_session: Option<f64>,
    /// For a tiered engine, what each tier did in the timed part.
    pub tiers: Option<Tiers>,
}

impl Outcome {
    /// Hits over lookups.
    pub fn hit_ratio(&self) -> f64 {
        if self.lookups == 0 {
            0.0
        } else {
            self.hits as f64 / self.lookups as f64
        }
    }
}

struct ThreadResult {
    lookups: u64,
    hits: u64,
    latency: Histogram<u64>,
}

/// Runs `streams` (one `(warm-up, timed)` pair per thread) against
/// `engine`, adding finished connections to `progress` as it goes.
pub fn run(
    engine: &dyn Engine,
    workload: &Workload,
    streams: &[(Vec<Conn>, Vec<Conn>)],
    states: &[State],
    progress: &AtomicU64,
) -> Outcome {
    let barrier = Barrier::new(streams.len() + 1);
    let (results, seconds, tiers) = std::thread::scope(|scope| {
        let handles: Vec<_> = streams
            .iter()
            .map(|(warm, timed)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    drive(engine, workload, warm, states, false, progress);
                    barrier.wait(); // warm-up done
                    barrier.wait(); // timing starts
                    let result = drive(engine, workload, timed, states, true, progress);
                    barrier.wait(); // timing ends
                    result
                })
            })
            .collect();
        barrier.wait();
        if let Some(short) = workload.mass_expiry {
            // Every warm-up session has expired when timing starts, for
            // every engine alike, however fast it ran the warm-up. The
            // extra second covers OpenSSL's whole-second session times.
            std::thread::sleep(short + Duration::from_millis(1100));
        }
        let tiers_before = engine.tiers();
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        let seconds = start.elapsed().as_secs_f64();
        let tiers = engine
            .tiers()
            .zip(tiers_before)
            .map(|(after, before)| after - before);
        let results: Vec<ThreadResult> = handles
            .into_iter()
            .map(|h| h.join().expect("a driver thread panicked"))
            .collect();
        (results, seconds, tiers)
    });
    let mut latency = histogram();
    let (mut lookups, mut hits) = (0, 0);
    for r in &results {
        lookups += r.lookups;
        hits += r.hits;
        latency.add(&r.latency).expect("histograms of one shape");
    }
    let connections = streams.iter().map(|(_, t)| t.len() as u64).sum::<u64>();
    Outcome {
        engine: engine.name(),
        connections,
        seconds,
        ops_per_sec: connections as f64 / seconds.max(1e-9),
        lookups,
        hits,
        p50_ns: latency.value_at_quantile(0.5),
        p99_ns: latency.value_at_quantile(0.99),
        p999_ns: latency.value_at_quantile(0.999),
        latency: QUANTILES
            .iter()
            .map(|&q| (q, latency.value_at_quantile(q)))
            .collect(),
        sessions: engine.sessions(),
        bytes_per_session: None,
        tiers,
    }
}

fn drive(
    engine: &dyn Engine,
    w: &Workload,
    conns: &[Conn],
    states: &[State],
    timed: bool,
    progress: &AtomicU64,
) -> ThreadResult {
    let mut out = ThreadResult {
        lookups: 0,
        hits: 0,
        latency: histogram(),
    };
    for (i, conn) in conns.iter().enumerate() {
        let i = i as u64;
        let sample = timed && i % SAMPLE_EVERY == 0;
        let id = session_id(conn.client);
        let mut spent = Duration::ZERO;
        let t0 = sample.then(Instant::now);
        let mut hit = false;
        if conn.resume {
            out.lookups += 1;
            hit = if w.tickets {
                engine.take(&id)
            } else {
                engine.lookup(&id)
            };
            out.hits += u64::from(hit);
        }
        if let Some(t0) = t0 {
            spent += t0.elapsed();
        }
        // A full handshake makes a new session; a TLS 1.3 server issues a
        // new ticket after a resumption too.
        if !hit || w.tickets {
            if !hit {
                spin(w.handshake_ns);
            }
            let state = &states[conn.client as usize % states.len()];
            let timeout = match w.mass_expiry {
                Some(short) if !timed => short,
                _ => w.timeout,
            };
            let t1 = sample.then(Instant::now);
            engine.store(id, state, timeout);
            if let Some(t1) = t1 {
                spent += t1.elapsed();
            }
        }
        if sample {
            out.latency
                .saturating_record(u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX));
        }
        if (i + 1) % PROGRESS_EVERY == 0 {
            progress.fetch_add(PROGRESS_EVERY, Ordering::Relaxed);
        }
    }
    progress.fetch_add(conns.len() as u64 % PROGRESS_EVERY, Ordering::Relaxed);
    out
}

/// Busy-waits `ns` nanoseconds: the CPU a full handshake would take.
fn spin(ns: u64) {
    if ns == 0 {
        return;
    }
    let until = Instant::now() + Duration::from_nanos(ns);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}
