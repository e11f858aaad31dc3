//! The workload model: who connects, how often they resume, what a new
//! session costs, and how the population moves.

use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use tlscache_engines::{SessionId, State};

/// Named workloads; every knob can still be overridden by a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Preset {
    /// A TLS-terminating proxy: zipf(1.0) clients, 80% try to resume, TLS
    /// 1.2 session ids, sessions of 100 to 2000 bytes.
    Proxy,
    /// TLS 1.3 stateful tickets: every resumption takes its ticket (single
    /// use) and the handshake issues a new one.
    Tls13Tickets,
    /// The client population shifts every 50 000 connections per thread,
    /// so yesterday's sessions stop being asked for.
    Churn,
    /// 98% of connections resume, from a population that fits the cache.
    ReadMostly,
}

impl Preset {
    /// The preset's name as `--preset` takes it (`tls13-tickets`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Proxy => "proxy",
            Preset::Tls13Tickets => "tls13-tickets",
            Preset::Churn => "churn",
            Preset::ReadMostly => "read-mostly",
        }
    }
}

/// Everything that defines a run. Runs with equal workloads and seeds see
/// the same connections in the same order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Workload {
    /// The preset it started from.
    pub preset: Preset,
    /// Distinct clients.
    pub clients: u32,
    /// Zipf exponent of client popularity.
    pub zipf: f64,
    /// Share of connections that offer a session to resume.
    pub resume: f64,
    /// Resume with single-use tickets (take) instead of session ids (get).
    pub tickets: bool,
    /// Simulated cost of a full handshake, spun on the CPU, in nanoseconds.
    pub handshake_ns: u64,
    /// Smallest session state, in bytes.
    pub min_size: usize,
    /// Largest session state, in bytes.
    pub max_size: usize,
    /// Session lifetime.
    pub timeout: Duration,
    /// Sessions each engine may hold.
    pub capacity: usize,
    /// Threads driving the engine.
    pub threads: usize,
    /// Timed connections per thread.
    pub ops: u64,
    /// Untimed connections per thread before timing starts.
    pub warmup: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Every this many connections per thread the population shifts (0:
    /// never).
    pub churn_every: u64,
    /// A mass-expiry phase: sessions made during the warm-up live only this
    /// long, and timing starts once they have all expired, so every engine
    /// is measured replacing a cache full of expired sessions (`None`: they
    /// get the ordinary timeout).
    pub mass_expiry: Option<Duration>,
}

impl Workload {
    /// The preset's workload.
    pub fn preset(preset: Preset) -> Self {
        let base = Self {
            preset,
            clients: 200_000,
            zipf: 1.0,
            resume: 0.8,
            tickets: false,
            handshake_ns: 0,
            min_size: 100,
            max_size: 2000,
            timeout: Duration::from_secs(300),
            capacity: 100_000,
            threads: 2,
            ops: 1_000_000,
            warmup: 200_000,
            seed: 1,
            churn_every: 0,
            mass_expiry: None,
        };
        match preset {
            Preset::Proxy => base,
            Preset::Tls13Tickets => Self {
                tickets: true,
                ..base
            },
            Preset::Churn => Self {
                churn_every: 50_000,
                ..base
            },
            Preset::ReadMostly => Self {
                resume: 0.98,
                clients: 50_000,
                ..base
            },
        }
    }

    /// Why the workload cannot run, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let fail = |m: &str| Err(m.to_string());
        if self.clients == 0 {
            return fail("--clients must be at least 1");
        }
        if !(self.zipf.is_finite() && self.zipf > 0.0) {
            return fail("--zipf must be a positive number");
        }
        if !(0.0..=1.0).contains(&self.resume) {
            return fail("--resume must be between 0 and 1");
        }
        if self.min_size == 0 || self.min_size > self.max_size {
            return fail("--min-size must be at least 1 and at most --max-size");
        }
        if self.max_size > 1 << 20 {
            return fail("--max-size must be at most 1 MiB");
        }
        if self.capacity == 0 {
            return fail("--capacity must be at least 1");
        }
        if self.threads == 0 || self.threads > 1024 {
            return fail("--threads must be between 1 and 1024");
        }
        if self.ops == 0 {
            return fail("--ops must be at least 1");
        }
        if self.timeout.is_zero() || self.mass_expiry.is_some_and(|d| d.is_zero()) {
            return fail("--timeout-secs and --mass-expiry-secs must be at least 1");
        }
        Ok(())
    }

    /// Thread `t`'s connections: the warm-up ones, then the timed ones.
    pub fn streams(&self, t: usize) -> (Vec<Conn>, Vec<Conn>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ (t as u64) << 32);
        let zipf =
            Zipf::new(u64::from(self.clients), self.zipf).expect("checked: clients >= 1, zipf > 0");
        let mut make = |n: u64, from: u64| {
            (from..from + n)
                .map(|i| {
                    // Each churn phase moves a quarter of the population.
                    let phase = i.checked_div(self.churn_every).unwrap_or(0) as u32;
                    let shift = phase.wrapping_mul((self.clients / 4).max(1));
                    let rank = zipf.sample(&mut rng) as u32 - 1;
                    Conn {
                        client: rank.wrapping_add(shift),
                        resume: rng.gen_bool(self.resume),
                    }
                })
                .collect::<Vec<_>>()
        };
        let warm = make(self.warmup, 0);
        let timed = make(self.ops, self.warmup);
        (warm, timed)
    }

    /// Session states of sizes spread over `min_size..=max_size`; client
    /// `c` gets state `c % len`.
    pub fn states(&self) -> Vec<State> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        (0..STATES)
            .map(|_| {
                let size = rng.gen_range(self.min_size..=self.max_size);
                Arc::new((0..size).map(|_| rng.gen()).collect())
            })
            .collect()
    }
}

/// Distinct session states a run uses.
const STATES: usize = 256;

/// One connection: which client, and whether it offers a session.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// The client (its popularity rank, shifted by churn).
    pub client: u32,
    /// Whether it tries to resume.
    pub resume: bool,
}

/// Client `c`'s session id: 32 bytes spread from `c`.
pub fn session_id(c: u32) -> SessionId {
    let mut x = u64::from(c).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d;
    let mut id = [0; 32];
    for chunk in id.chunks_exact_mut(8) {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    id
}
