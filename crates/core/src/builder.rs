//! Building a cache: settings, their defaults and their validation.

use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::num::NonZeroU32;
use std::time::Duration;

use ahash::RandomState;

use crate::cache::Cache;
use crate::clock::{Clock, CoarseClock};
use crate::entry::Thin;
use crate::error::BuildError;
use crate::listener::{Listener, RemovalCause};
use crate::shard::{Weigher, MAX_SHARD_ENTRIES};
use crate::sync::Arc;

/// OpenSSL's `SSL_SESSION_CACHE_MAX_SIZE_DEFAULT`: the default capacity.
pub const DEFAULT_CAPACITY: usize = 20 * 1024;

/// The largest shard count a cache accepts.
pub const MAX_SHARDS: usize = 1 << 16;

/// Shards per core by default, where the capacity gives each shard a
/// bound of its own (at least [`POOLED_PER_SHARD`](crate::POOLED_PER_SHARD)
/// entries): enough that two threads rarely want one shard's lock at once,
/// few enough that the shards' own state stays in a core's cache. Two
/// threads' TLS 1.3 ticket traffic found its shard's lock held in 8.6% of
/// operations at 4 a core, 4.6% at 8 and 2.5% at 16; each doubling adds
/// about 4 to 6 L1 misses a ticket operation on one thread (every write
/// reads a dozen lines of its shard's state), and at 16 a core one thread
/// ran about 5% slower while two ran about 7% faster (see
/// docs/performance.md).
const SHARDS_PER_CORE: usize = 8;

/// Shards per core by default whatever the capacity (short of fewer shards
/// than entries), though a capacity this splits into fewer than
/// `POOLED_PER_SHARD` entries a shard is then pooled (a sum over the shards
/// per insert): more shards than this are used only where that is not so.
const MIN_SHARDS_PER_CORE: usize = 4;

/// Retirements (entries removed and values replaced) a shard's writers let
/// gather, by default, before a writer collects garbage itself. Without
/// it, readers' pins run the frees of what writers retired (crossbeam-epoch
/// collects on every 128th pin), and that sets the lookups' p99.9. Each
/// collection seals the thread's bag of deferred calls, a 2 KB copy, so
/// collecting less often makes writes cheaper and leaves more to free at
/// once. Every 16th keeps `tests/collection.rs`' bound (half of 96
/// retirements freed by the writers themselves). Under loom, every one.
/// This is the default of a shard bounded below [`LARGE_SHARD`] entries;
/// a larger one collects every [`LARGE_SHARD_COLLECT_EVERY`]th.
pub const DEFAULT_COLLECT_EVERY: u32 = if cfg!(loom) { 1 } else { 16 };

/// Retirements a shard of at least [`LARGE_SHARD`] entries (or an
/// unbounded one) lets gather, by default, before a writer collects.
///
/// A collection's fixed part (sealing and queueing the thread's bag of
/// deferred calls, then taking back the one whose epoch has passed) costs
/// about 1,600 instructions however little it frees, and at two threads
/// each one also moves the global epoch, a line every pin reads. What
/// waits for a collection is bounded the other way: about three
/// collections' worth of retired slots (the one gathering, and two epochs)
/// take arena slots past the capacity. At 32 that is some 96 slots, under
/// a tenth of a shard of [`LARGE_SHARD`] entries and 1.5% of the
/// 6,250-entry shards of a 100,000-entry cache on two cores. There it
/// took 4% of a ticket operation's instructions off, and in most
/// alternated runs made two threads' ticket and insert work 3–11% faster;
/// readers pay with larger collections on their pins (see
/// `docs/performance.md`, "2026-11-29, late night"). A small shard keeps
/// [`DEFAULT_COLLECT_EVERY`]: there 96 slots would be several times its
/// capacity. Under loom, every one.
pub const LARGE_SHARD_COLLECT_EVERY: u32 = if cfg!(loom) { 1 } else { 32 };

/// Entries a shard's bound must reach for it to collect every
/// [`LARGE_SHARD_COLLECT_EVERY`] retirements by default.
pub const LARGE_SHARD: usize = 1024;

/// The retirements a cache's shards let gather before a writer collects,
/// unless the builder set it: by the smallest shard's bound (`capacity`
/// split over `shards`, `None` when unbounded).
pub(crate) fn default_collect_every(capacity: Option<usize>, shards: usize) -> u32 {
    match capacity {
        Some(entries) if entries / shards.max(1) < LARGE_SHARD => DEFAULT_COLLECT_EVERY,
        _ => LARGE_SHARD_COLLECT_EVERY,
    }
}

/// When an entry past its deadline leaves the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    /// An expired entry is a miss at once, and every write sweeps its
    /// shard's due entries. The default.
    #[default]
    Eager,
    /// An expired entry stays, visible to reads and counted by `len`, until
    /// [`Cache::flush_expired`] or [`Cache::flush_expired_at`] sweeps it,
    /// or [`Cache::flush_expired_lazily_at`] takes it out of sight and
    /// leaves the sweep to the shards' next writes; reads and writes never
    /// read the clock. This is OpenSSL's model: a
    /// session's timeout is checked by whoever looks it up, and expired
    /// sessions are flushed every 255 connections or on demand. The sweep
    /// still costs O(expired).
    OnFlush,
}

/// Settings for a [`Cache`]; see [`Cache::builder`].
///
/// Every setting has a default: 20 480 entries (OpenSSL's default session
/// cache size), shards from the machine's parallelism, no time-to-live, a
/// [`CoarseClock`] (monotonic, moving once a kernel tick) and a randomly
/// seeded ahash hasher (keys are chosen by remote clients, so a fixed seed
/// would invite collision floods).
pub struct CacheBuilder<K, V: ?Sized + Thin, S = RandomState> {
    pub(crate) capacity: Option<usize>,
    pub(crate) shards: Option<usize>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) clock: Option<std::sync::Arc<dyn Clock>>,
    pub(crate) hasher: S,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) max_weight: Option<u64>,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) expiry: Expiry,
    /// `None`: by shard size (see [`default_collect_every`]).
    pub(crate) collect_every: Option<NonZeroU32>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V: ?Sized + Thin> Default for CacheBuilder<K, V, RandomState> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V: ?Sized + Thin> CacheBuilder<K, V, RandomState> {
    /// A builder with every setting at its default.
    pub fn new() -> Self {
        Self {
            capacity: Some(DEFAULT_CAPACITY),
            shards: None,
            ttl: None,
            clock: None,
            hasher: RandomState::new(),
            weigher: None,
            max_weight: None,
            listener: None,
            expiry: Expiry::Eager,
            collect_every: None,
            _types: PhantomData,
        }
    }
}

impl<K, V: ?Sized + Thin, S> CacheBuilder<K, V, S> {
    /// The most entries the cache holds: a hard bound, split evenly across
    /// the shards, or, below [`POOLED_PER_SHARD`](crate::POOLED_PER_SHARD)
    /// entries a shard, shared by them all. Any size from 1 works with any
    /// shard count.
    pub fn capacity(mut self, entries: usize) -> Self {
        self.capacity = Some(entries);
        self
    }

    /// No entry bound (OpenSSL's cache size 0). Weight bounds still apply.
    pub fn unbounded(mut self) -> Self {
        self.capacity = None;
        self
    }

    /// The number of shards: a power of two. By default 8 per core where
    /// that leaves each shard at least
    /// [`POOLED_PER_SHARD`](crate::POOLED_PER_SHARD) entries of the
    /// capacity, else fewer, down to 4 per core (and never more shards than
    /// entries). More shards make two writers meet on one shard's lock
    /// less often; each shard's LRU is exact within the shard.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The time-to-live of entries inserted without one of their own.
    /// `Duration::ZERO` makes them expire at once; `Duration::MAX` (or no
    /// call) never.
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// When expired entries leave: at once ([`Expiry::Eager`], the default)
    /// or only when flushed ([`Expiry::OnFlush`]).
    pub fn expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// The time source: by default a [`CoarseClock`] (the kernel's tick);
    /// a [`MonotonicClock`](crate::MonotonicClock) for nanoseconds, or a
    /// [`ManualClock`](crate::ManualClock) in tests.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(std::sync::Arc::new(clock));
        self
    }

    /// Bounds the total weight (e.g. bytes) as well as the entry count.
    /// `weigher` runs once per insert, under no lock.
    pub fn weigher(
        mut self,
        max_weight: u64,
        weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.max_weight = Some(max_weight);
        self.weigher = Some(Box::new(weigher));
        self
    }

    /// Called once for every value that leaves the cache, with the cause,
    /// after the shard lock is released. It may call back into the cache.
    pub fn removal_listener(
        mut self,
        listener: impl Fn(&K, &Arc<V>, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// How many retirements (entries removed, evicted, expired or replaced)
    /// a shard's writers let gather before the writer that reaches the
    /// count hands them to the epoch collector and frees what no reader
    /// can still hold. By default [`DEFAULT_COLLECT_EVERY`] (16), or
    /// [`LARGE_SHARD_COLLECT_EVERY`] (32) when the capacity splits into
    /// shards of at least [`LARGE_SHARD`] entries, or is unbounded.
    ///
    /// Each collection costs a fixed amount (a 2 KB copy) on that one
    /// write. The calls it runs (a retired node's reclamation with its
    /// value's drop, or a replaced value's drop) are not run there but set
    /// aside, and each of the thread's writes then runs two (at most 256
    /// wait per thread, and a cache's drop runs its thread's at once).
    /// Values that are costly to drop (a TLS session zeroizes its secret
    /// and frees its memory) still want a smaller count: sooner drops.
    pub fn collect_every(mut self, retirements: NonZeroU32) -> Self {
        self.collect_every = Some(retirements);
        self
    }

    /// The key hasher. Use a randomly seeded one where keys come from
    /// untrusted peers.
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            capacity: self.capacity,
            shards: self.shards,
            ttl: self.ttl,
            clock: self.clock,
            hasher,
            weigher: self.weigher,
            max_weight: self.max_weight,
            listener: self.listener,
            expiry: self.expiry,
            collect_every: self.collect_every,
            _types: PhantomData,
        }
    }

    /// Builds the cache, or says which setting is invalid.
    pub fn build(mut self) -> Result<Cache<K, V, S>, BuildError>
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Send + Sync + 'static,
        S: BuildHasher,
    {
        let shards = match self.shards {
            Some(shards) => shards,
            None => default_shards(self.capacity),
        };
        validate(self.capacity, shards)?;
        match (&self.weigher, self.max_weight) {
            (Some(_), Some(max)) if max < shards as u64 => {
                return Err(BuildError::MaxWeightTooSmall {
                    max_weight: max,
                    shards,
                })
            }
            (Some(_), Some(_)) | (None, None) => {}
            _ => return Err(BuildError::WeigherWithoutMaxWeight),
        }
        let clock = self
            .clock
            .take()
            .unwrap_or_else(|| std::sync::Arc::new(CoarseClock::new()));
        Ok(Cache::from_parts(self, shards, clock))
    }
}

/// Checks a capacity against a shard count.
pub(crate) fn validate(capacity: Option<usize>, shards: usize) -> Result<(), BuildError> {
    if !shards.is_power_of_two() {
        return Err(BuildError::ShardsNotPowerOfTwo(shards));
    }
    if shards > MAX_SHARDS {
        return Err(BuildError::TooManyShards {
            shards,
            max: MAX_SHARDS,
        });
    }
    if let Some(capacity) = capacity {
        if capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        if capacity.div_ceil(shards) > MAX_SHARD_ENTRIES {
            return Err(BuildError::CapacityTooLarge {
                capacity,
                max: MAX_SHARD_ENTRIES,
            });
        }
    }
    Ok(())
}

/// [`SHARDS_PER_CORE`] where each shard keeps a bound of its own, else
/// down to [`MIN_SHARDS_PER_CORE`], and never more shards than entries.
fn default_shards(capacity: Option<usize>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    shards_for(cores, capacity)
}

/// [`default_shards`] on `cores` cores.
fn shards_for(cores: usize, capacity: Option<usize>) -> usize {
    let per_core = |n: usize| {
        cores
            .saturating_mul(n)
            .checked_next_power_of_two()
            .map_or(MAX_SHARDS, |s| s.min(MAX_SHARDS))
    };
    let (mut shards, least) = (per_core(SHARDS_PER_CORE), per_core(MIN_SHARDS_PER_CORE));
    if let Some(capacity) = capacity {
        while shards > least && shards.saturating_mul(crate::POOLED_PER_SHARD) > capacity {
            shards /= 2;
        }
        while shards > 1 && shards > capacity {
            shards /= 2;
        }
    }
    shards
}

/// Part `index` of `total` split over `parts` as evenly as integers allow.
pub(crate) fn split(total: u64, parts: usize, index: usize) -> u64 {
    let parts = parts as u64;
    total / parts + u64::from((index as u64) < total % parts)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::POOLED_PER_SHARD;

    #[test]
    fn large_shards_collect_less_often_by_default() {
        let large = LARGE_SHARD_COLLECT_EVERY;
        assert_eq!(default_collect_every(None, 16), large);
        assert_eq!(default_collect_every(Some(16 * LARGE_SHARD), 16), large);
        assert_eq!(default_collect_every(Some(100_000), 16), large);
        // One entry short of a large bound in every shard.
        let small = DEFAULT_COLLECT_EVERY;
        assert_eq!(default_collect_every(Some(16 * LARGE_SHARD - 1), 16), small);
        assert_eq!(default_collect_every(Some(16), 1), small);
        // Pooled (a bound shared by all shards) is small too.
        assert_eq!(default_collect_every(Some(100), 8), small);
    }

    #[test]
    fn default_shards_keep_a_bound_each_past_four_a_core() {
        // 8 a core where each shard keeps its own bound.
        assert_eq!(shards_for(2, Some(100_000)), 16);
        assert_eq!(shards_for(2, None), 16);
        assert_eq!(shards_for(3, None), 32);
        // OpenSSL's default size on 64 cores: 512 shards would pool it (a
        // sum over them all per insert), so it stays at 4 a core.
        assert_eq!(shards_for(64, Some(DEFAULT_CAPACITY)), 256);
        const { assert!(256 * POOLED_PER_SHARD <= DEFAULT_CAPACITY) };
        const { assert!(512 * POOLED_PER_SHARD > DEFAULT_CAPACITY) };
        // Below 8 a core's bound, 4 a core as before (pooled here, as it
        // was), then 8 a core.
        assert_eq!(shards_for(2, Some(511)), 8);
        assert_eq!(shards_for(2, Some(1_000)), 8);
        assert_eq!(shards_for(2, Some(1_024)), 16);
        // Never more shards than entries, and at most `MAX_SHARDS`.
        assert_eq!(shards_for(2, Some(5)), 4);
        assert_eq!(shards_for(2, Some(1)), 1);
        assert_eq!(shards_for(1 << 20, None), MAX_SHARDS);
    }
}
