//! Workloads and engine adapters shared by the benchmarks.
//!
//! Every engine is driven through [`Engine`] on the same pre-generated
//! operation streams, so figures compare engines, not harnesses.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

/// A session id: 32 random bytes, like a TLS session id.
pub type Key = [u8; 32];

/// A shared session payload.
pub type Payload<const N: usize> = Arc<[u8; N]>;

/// One operation of a stream; the number indexes the key set.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Look the key up.
    Get(u32),
    /// Store a payload under the key.
    Insert(u32),
    /// Remove the key.
    Remove(u32),
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

/// A stream of `len` operations over `keys` keys: `get_pct`% gets,
/// `insert_pct`% inserts, the rest removes.
pub fn ops(
    len: usize,
    keys: usize,
    dist: Dist,
    get_pct: u32,
    insert_pct: u32,
    seed: u64,
) -> Vec<Op> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(keys as u64, 1.0).expect("valid zipf parameters");
    (0..len)
        .map(|_| {
            let key = match dist {
                Dist::Zipf => zipf.sample(&mut rng) as u32 - 1,
                Dist::Uniform => rng.gen_range(0..keys as u32),
            };
            match rng.gen_range(0..100) {
                p if p < get_pct => Op::Get(key),
                p if p < get_pct + insert_pct => Op::Insert(key),
                _ => Op::Remove(key),
            }
        })
        .collect()
}

/// A cache as the benchmarks drive it.
pub trait Engine<const N: usize>: Send + Sync {
    /// Looks `key` up; true on a hit.
    fn get(&self, key: &Key) -> bool;
    /// Stores `value` under `key`.
    fn insert(&self, key: Key, value: Payload<N>);
    /// Removes `key`.
    fn remove(&self, key: &Key);
}

/// Runs `ops` against `engine`; returns the hits, so nothing is optimised out.
pub fn run<const N: usize>(
    engine: &dyn Engine<N>,
    keys: &[Key],
    ops: &[Op],
    payload: &Payload<N>,
) -> u64 {
    let mut hits = 0;
    for op in ops {
        match *op {
            Op::Get(k) => hits += u64::from(engine.get(&keys[k as usize])),
            Op::Insert(k) => engine.insert(keys[k as usize], payload.clone()),
            Op::Remove(k) => engine.remove(&keys[k as usize]),
        }
    }
    hits
}

/// Defines an adapter: a wrapper around one engine's cache, built from a
/// capacity, and its [`Engine`] impl. Engines differ only in their type,
/// their constructor and the name of their remove method.
macro_rules! adapter {
    ($(#[$doc:meta])* $name:ident($inner:ty), |$cap:ident| $build:expr, remove: $remove:ident) => {
        $(#[$doc])*
        pub struct $name<const N: usize>(pub $inner);

        impl<const N: usize> $name<N> {
            /// A cache of `capacity` entries with the engine's defaults.
            pub fn new($cap: usize) -> Self {
                Self($build)
            }
        }

        impl<const N: usize> Engine<N> for $name<N> {
            fn get(&self, key: &Key) -> bool {
                self.0.get(key).is_some()
            }
            fn insert(&self, key: Key, value: Payload<N>) {
                self.0.insert(key, value);
            }
            fn remove(&self, key: &Key) {
                self.0.$remove(key);
            }
        }
    };
}

adapter!(
    /// tlscache-core.
    Tlscache(tlscache_core::Cache<Key, [u8; N]>),
    |capacity| tlscache_core::Cache::new(capacity).expect("valid capacity"),
    remove: remove
);

adapter!(
    /// quick_cache's sync cache.
    QuickCache(quick_cache::sync::Cache<Key, Payload<N>>),
    |capacity| quick_cache::sync::Cache::new(capacity),
    remove: remove
);

adapter!(
    /// moka's sync cache.
    Moka(moka::sync::Cache<Key, Payload<N>>),
    |capacity| moka::sync::Cache::new(capacity as u64),
    remove: invalidate
);

/// An unsynchronised hashbrown map with the same hasher: the floor for a
/// single-threaded lookup.
pub struct Hashbrown<const N: usize>(pub hashbrown::HashMap<Key, Payload<N>, ahash::RandomState>);

impl<const N: usize> Hashbrown<N> {
    /// An empty map.
    pub fn new() -> Self {
        Self(hashbrown::HashMap::with_hasher(ahash::RandomState::new()))
    }

    /// The payload for `key`, cloned like a cache's handle.
    pub fn get(&self, key: &Key) -> Option<Payload<N>> {
        self.0.get(key).cloned()
    }
}

impl<const N: usize> Default for Hashbrown<N> {
    fn default() -> Self {
        Self::new()
    }
}
