//! The cache: a power-of-two array of shards and the operations on it.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use ahash::RandomState;

use crate::builder::{default_collect_every, split, validate, CacheBuilder, Expiry};
use crate::clock::{duration_to_nanos, Clock};
use crate::entry::{Thin, NEVER};
use crate::error::BuildError;
use crate::listener::RemovalCause;
use crate::shard::{Config, Ctx, Heard, Shard, Store, MAX_SHARD_ENTRIES};
use crate::stats::CacheStats;
use crate::sync::epoch;
use crate::sync::{lock, Arc, AtomicU64, Mutex, Ordering};

/// A capacity below this many entries per shard is not split over the
/// shards but pooled: every shard may hold any number of entries, and an
/// insert that takes the whole cache past its capacity evicts (see
/// `Cache::trim`). A split bound lets a shard evict while others have room,
/// which matters when a shard's part is small (the fullest of a few
/// shards of 64 entries fills well before the cache does), and a
/// capacity smaller than the shard count could not be split at all.
/// Pooling costs a sum over the shards' counts per insert, small for the
/// small caches that use it.
pub const POOLED_PER_SHARD: usize = 64;

/// A clear of more entries than this runs its shards in parallel.
#[cfg(not(loom))]
const PARALLEL_CLEAR_MIN: u64 = 1 << 16;

/// A concurrent cache with lock-free reads, per-shard LRU eviction and
/// per-entry expiry.
///
/// Values are held as [`Arc<V>`]: `get` hands out a clone of the handle, which
/// keeps the value alive after the entry is evicted or replaced, the way an
/// `SSL_SESSION` reference outlives its cache entry. `V` may be unsized if
/// it implements [`Thin`](crate::Thin): a record that ends in bytes and
/// keeps their length, so that a value is one allocation.
///
/// Reads ([`get`](Self::get)) take no lock and never wait. Writes take the
/// lock of one shard, do that shard's maintenance (apply buffered accesses to
/// its LRU, sweep its due entries from the expiry wheel), and are
/// linearizable per key.
///
/// ```
/// use std::time::Duration;
/// use tlscache_core::{Arc, Cache};
///
/// let cache: Cache<Vec<u8>, String> = Cache::builder()
///     .capacity(10_000)
///     .time_to_live(Duration::from_secs(300))
///     .build()?;
/// cache.insert(b"session-id".to_vec(), Arc::new("state".to_string()));
/// let hit = cache.get(&b"session-id"[..]).expect("just inserted");
/// assert_eq!(*hit, "state");
/// # Ok::<(), tlscache_core::BuildError>(())
/// ```
pub struct Cache<K, V: ?Sized + Thin, S = RandomState> {
    shards: Box<[Shard<K, V>]>,
    shard_mask: usize,
    hasher: S,
    clock: std::sync::Arc<dyn Clock>,
    /// Default time-to-live in nanoseconds; `NEVER` for none.
    ttl: u64,
    /// `Expiry::Eager`: reads and writes treat an expired entry as gone.
    eager: bool,
    config: Config<K, V>,
    max_weight: u64,
    /// The capacity when it is pooled (see [`POOLED_PER_SHARD`]), else 0.
    pooled: AtomicU64,
    /// Serializes pooled trims, so two inserts never evict for one excess.
    trimming: Mutex<()>,
    /// Under `Expiry::OnFlush`, the time of the last lazy flush (see
    /// [`Cache::flush_expired_lazily_at`]) in clock nanoseconds, 0 for
    /// none: a shard that has not swept to it yet hides from reads what is
    /// due by it, and sweeps at its next write.
    flushed: AtomicU64,
    /// The lazy flush time up to which [`Cache::len`] has swept every
    /// shard.
    settled: AtomicU64,
}

impl<K, V: ?Sized + Thin, S> Drop for Cache<K, V, S> {
    fn drop(&mut self) {
        // What this thread's collections set aside to run a few at a time
        // (see `doomed`) runs now, rather than wait for writes that may
        // never come. That of other threads runs with their next writes.
        crate::doomed::drop_all();
    }
}

impl<K, V: ?Sized + Thin> Cache<K, V, RandomState>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// A builder with default settings.
    pub fn builder() -> CacheBuilder<K, V, RandomState> {
        CacheBuilder::new()
    }

    /// A cache of `capacity` entries with every other setting at its default.
    pub fn new(capacity: usize) -> Result<Self, BuildError> {
        Self::builder().capacity(capacity).build()
    }
}

impl<K, V: ?Sized + Thin, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    pub(crate) fn from_parts(
        builder: CacheBuilder<K, V, S>,
        shards: usize,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Self {
        let now = clock.now_nanos();
        let max_weight = builder.max_weight.unwrap_or(u64::MAX);
        let stripes = crate::access::stripes_for(shards);
        let shard_list = (0..shards)
            .map(|i| {
                Shard::new(
                    builder.capacity.is_some(),
                    shard_capacity(builder.capacity, shards, i),
                    builder.capacity.map_or(0, |c| c.div_ceil(shards)),
                    shard_weight(max_weight, shards, i),
                    stripes,
                    now,
                )
            })
            .collect();
        Self {
            shards: shard_list,
            shard_mask: shards - 1,
            hasher: builder.hasher,
            clock,
            ttl: builder.ttl.map_or(NEVER, duration_to_nanos),
            eager: builder.expiry == Expiry::Eager,
            config: Config {
                weigher: builder.weigher,
                listener: builder.listener,
                collect_every: builder.collect_every.map_or_else(
                    || default_collect_every(builder.capacity, shards),
                    std::num::NonZeroU32::get,
                ),
            },
            max_weight,
            pooled: AtomicU64::new(pooled(builder.capacity, shards)),
            trimming: Mutex::new(()),
            flushed: AtomicU64::new(0),
            settled: AtomicU64::new(0),
        }
    }

    #[inline]
    fn locate<Q: Hash + ?Sized>(&self, key: &Q) -> (u64, &Shard<K, V>) {
        let hash = self.hasher.hash_one(key);
        // Shards take bits 32.., the index bits ..32: independent choices.
        let shard = &self.shards[(hash >> 32) as usize & self.shard_mask];
        (hash, shard)
    }

    /// The cache clock's current time in nanoseconds.
    #[inline]
    fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    /// The time expiry is judged at: now, or `None` under `Expiry::OnFlush`
    /// (where no read or write needs the clock).
    #[inline]
    fn expiry_now(&self) -> Option<u64> {
        self.eager.then(|| self.now())
    }

    /// Under `Expiry::OnFlush`, the last lazy flush's time, if there was
    /// one (`None` under `Expiry::Eager`).
    #[inline]
    fn flushed_at(&self) -> Option<u64> {
        if self.eager {
            return None;
        }
        // Relaxed: the flush time is a value of its own. A read or write
        // that happens after the flush sees it (or a later one), which is
        // all the flush promises.
        match self.flushed.load(Ordering::Relaxed) {
            0 => None,
            at => Some(at),
        }
    }

    fn deadline(&self, now: u64, ttl: u64) -> u64 {
        if ttl == NEVER {
            NEVER
        } else {
            now.saturating_add(ttl)
        }
    }

    /// The live value for `key`, if any.
    ///
    /// Lock-free and allocation-free: an epoch pin, atomic loads of one
    /// index group's control word (a byte of hash per entry), of the
    /// entries whose byte matches and of the nodes they name, a clock read
    /// if the entry found has a deadline, and
    /// on a hit the value's refcount and an access record for the LRU. An
    /// expired entry is a miss at once (under [`Expiry::OnFlush`], once a
    /// flush has swept it). Should the pin collect garbage (crossbeam-epoch
    /// does on every 128th), the frees it finds wait for the thread's next
    /// writes (at most 256 a thread; see the README's promises).
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.locate(key);
        let guard = &crate::doomed::pin();
        if self.eager {
            return shard.get(hash, key, || Some(self.now()), guard);
        }
        // Under a lazy flush the shard has not swept to yet, entries due
        // by then are gone. Asked before the lookup: a shard that has swept
        // has unlinked them first (see `Shard::owes`).
        let hidden = self.flushed_at().filter(|&at| shard.owes(at));
        shard.get(hash, key, || hidden, guard)
    }

    /// Stores `value` under `key` with the default time-to-live and returns
    /// the live value it replaced.
    pub fn insert(&self, key: K, value: Arc<V>) -> Option<Arc<V>> {
        self.insert_inner(key, value, self.ttl, true, |_| true)
            .unwrap_or(None)
    }

    /// Stores `value` under `key`, expiring after `ttl`, and returns the live
    /// value it replaced.
    pub fn insert_with_ttl(&self, key: K, value: Arc<V>, ttl: Duration) -> Option<Arc<V>> {
        self.insert_inner(key, value, duration_to_nanos(ttl), true, |_| true)
            .unwrap_or(None)
    }

    /// Stores `value` under `key` with the default time-to-live, like
    /// [`insert`](Self::insert), but without handing back the value it
    /// replaced: a store that would drop that handle at once saves the two
    /// updates of its reference count. The removal listener still hears of
    /// it, as `Replaced`.
    ///
    /// ```
    /// use tlscache_core::{Arc, Cache};
    ///
    /// let cache: Cache<u32, &str> = Cache::new(100)?;
    /// cache.put(1, Arc::new("first"));
    /// cache.put(1, Arc::new("second"));
    /// assert_eq!(cache.get(&1).as_deref(), Some(&"second"));
    /// # Ok::<(), tlscache_core::BuildError>(())
    /// ```
    pub fn put(&self, key: K, value: Arc<V>) {
        let _ = self.insert_inner(key, value, self.ttl, false, |_| true);
    }

    /// [`put`](Self::put) with a time-to-live: stores `value` under `key`,
    /// expiring after `ttl`, and hands nothing back.
    pub fn put_with_ttl(&self, key: K, value: Arc<V>, ttl: Duration) {
        let _ = self.insert_inner(key, value, duration_to_nanos(ttl), false, |_| true);
    }

    /// Stores `value` only if `key` has no live value; otherwise hands
    /// `value` back in `Err`.
    pub fn insert_if_absent(&self, key: K, value: Arc<V>) -> Result<(), Arc<V>> {
        self.insert_inner(key, value, self.ttl, false, |existing| existing.is_none())
            .map(|_| ())
    }

    /// The per-key atomic conditional insert: `decide` sees the live value
    /// `key` holds now (or `None`) and says whether `value` replaces it. No
    /// other write to the key can come between the two.
    ///
    /// Returns `Ok(replaced)` if stored, `Err(value)` if `decide` declined.
    /// `ttl` of `None` means the default. `decide` runs under the shard's
    /// lock: it must be quick and must not call into this cache.
    ///
    /// OpenSSL's `SSL_CTX_add_session` (the same object again is a no-op, a
    /// different one replaces) is
    /// `insert_if(id, s, None, |old| !old.is_some_and(|old| Arc::ptr_eq(old, &s2)))`.
    pub fn insert_if(
        &self,
        key: K,
        value: Arc<V>,
        ttl: Option<Duration>,
        decide: impl FnOnce(Option<&Arc<V>>) -> bool,
    ) -> Result<Option<Arc<V>>, Arc<V>> {
        let ttl = ttl.map_or(self.ttl, duration_to_nanos);
        self.insert_inner(key, value, ttl, true, decide)
    }

    /// [`insert_if`](Self::insert_if) with an absolute deadline on the
    /// cache's clock instead of a time-to-live: the entry expires once the
    /// clock reaches `deadline` (`Duration::MAX`: never). A caller whose
    /// entries carry their own expiry time (a session's creation time plus
    /// its timeout) sets it exactly, with no clock read in between.
    pub fn insert_if_until(
        &self,
        key: K,
        value: Arc<V>,
        deadline: Duration,
        decide: impl FnOnce(Option<&Arc<V>>) -> bool,
    ) -> Result<Option<Arc<V>>, Arc<V>> {
        let deadline = duration_to_nanos(deadline);
        self.insert_at(key, value, deadline, self.expiry_now(), true, decide)
    }

    /// [`insert_if_until`](Self::insert_if_until) without handing back the
    /// value it replaced, as [`put`](Self::put) is to
    /// [`insert`](Self::insert): `Ok(())` if stored, `Err(value)` if
    /// `decide` declined. A replaced value is often long untouched, so the
    /// count `insert_if_until` takes on it is a cache miss under the
    /// shard's lock; this takes none. The removal listener still hears of
    /// it, as `Replaced`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tlscache_core::{Arc, Cache};
    ///
    /// let cache: Cache<u32, &str> = Cache::new(100)?;
    /// // OpenSSL's add: the same object again is declined and handed
    /// // back; another one replaces it.
    /// let add = |value: Arc<&'static str>| {
    ///     let same = Arc::clone(&value);
    ///     cache.put_if_until(1, value, Duration::MAX, |old| {
    ///         !old.is_some_and(|old| Arc::ptr_eq(old, &same))
    ///     })
    /// };
    /// let first = Arc::new("first");
    /// assert!(add(Arc::clone(&first)).is_ok());
    /// assert!(add(Arc::clone(&first)).is_err());
    /// assert!(add(Arc::new("second")).is_ok());
    /// assert_eq!(cache.get(&1).as_deref(), Some(&"second"));
    /// # Ok::<(), tlscache_core::BuildError>(())
    /// ```
    pub fn put_if_until(
        &self,
        key: K,
        value: Arc<V>,
        deadline: Duration,
        decide: impl FnOnce(Option<&Arc<V>>) -> bool,
    ) -> Result<(), Arc<V>> {
        let deadline = duration_to_nanos(deadline);
        self.insert_at(key, value, deadline, self.expiry_now(), false, decide)
            .map(|_| ())
    }

    /// `replaced` says whether the caller wants the replaced value back
    /// (else `Ok` holds `None`, and no count is taken on it).
    fn insert_inner(
        &self,
        key: K,
        value: Arc<V>,
        ttl: u64,
        replaced: bool,
        decide: impl FnOnce(Option<&Arc<V>>) -> bool,
    ) -> Result<Option<Arc<V>>, Arc<V>> {
        let now = self.now();
        let deadline = self.deadline(now, ttl);
        let now = self.eager.then_some(now);
        self.insert_at(key, value, deadline, now, replaced, decide)
    }

    fn insert_at(
        &self,
        key: K,
        value: Arc<V>,
        deadline: u64,
        now: Option<u64>,
        replaced: bool,
        decide: impl FnOnce(Option<&Arc<V>>) -> bool,
    ) -> Result<Option<Arc<V>>, Arc<V>> {
        let (hash, shard) = self.locate(&key);
        let guard = &epoch::pin();
        let ctx = Ctx {
            config: &self.config,
            guard,
            now,
            flushed: self.flushed_at(),
        };
        let store = Store {
            hash,
            key,
            value,
            deadline,
            replaced,
        };
        let out = shard.insert(ctx, store, decide);
        // Relaxed: a capacity change racing this insert trims by itself.
        let pooled = self.pooled.load(Ordering::Relaxed);
        if pooled != 0 && out.is_ok() {
            self.trim(pooled, (hash >> 32) as usize & self.shard_mask);
        }
        out
    }

    /// Under a pooled capacity, evicts until the cache holds at most
    /// `capacity` entries: least recently used first within a shard,
    /// starting with shard `first` (where the insert went, whose newest
    /// entry stays) and going round the others. Serialized, so entries in
    /// flight from concurrent inserts are evicted once, not once per
    /// insert; the count may pass the capacity for as long as an insert
    /// takes to reach here. The listener hears the evictions once the
    /// trim's lock is released.
    fn trim(&self, capacity: u64, first: usize) {
        if self.held() <= capacity {
            return;
        }
        // What a lazy flush took goes first, as expired, not evicted.
        self.settle();
        let guard = &epoch::pin();
        let mut heard = Heard::new(guard);
        {
            let _one = lock(&self.trimming);
            while self.held() > capacity {
                let shards = self.shards.len();
                let evicted = (0..shards).any(|k| {
                    let i = (first + k) & self.shard_mask;
                    self.shards[i].evict_one(&self.config, usize::from(k == 0), &mut heard)
                });
                if !evicted {
                    break;
                }
            }
        }
        heard.tell(&self.config);
    }

    /// Removes `key` and returns its live value.
    pub fn remove<Q>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_inner(key, RemovalCause::Removed, |_| true)
    }

    /// Removes `key` only if `pred` approves of its live value (for
    /// instance `|v| Arc::ptr_eq(v, &mine)`: remove this object, not a
    /// newer one under the same key). Returns the removed value.
    pub fn remove_if<Q>(&self, key: &Q, pred: impl FnOnce(&Arc<V>) -> bool) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_inner(key, RemovalCause::Removed, pred)
    }

    /// Gets and removes `key`'s live value in one step: among threads racing
    /// to take one entry, exactly one gets it (single-use tickets, 0-RTT
    /// anti-replay).
    pub fn take<Q>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_inner(key, RemovalCause::Taken, |_| true)
    }

    /// [`take`](Self::take) only if `pred` approves of the live value,
    /// decided under the shard lock, so among racing takers exactly one
    /// gets a value `pred` approves and a value it refuses stays (a ticket
    /// offered in the wrong context is not consumed by the refusal).
    pub fn take_if<Q>(&self, key: &Q, pred: impl FnOnce(&Arc<V>) -> bool) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_inner(key, RemovalCause::Taken, pred)
    }

    fn remove_inner<Q>(
        &self,
        key: &Q,
        cause: RemovalCause,
        pred: impl FnOnce(&Arc<V>) -> bool,
    ) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.locate(key);
        let guard = &epoch::pin();
        let ctx = Ctx {
            config: &self.config,
            guard,
            now: self.expiry_now(),
            flushed: self.flushed_at(),
        };
        shard.remove(ctx, hash, key, cause, pred)
    }

    /// Removes every entry expired now. Each shard's sweep costs
    /// O(expired entries), not O(entries).
    pub fn flush_expired(&self) {
        self.flush_expired_at(self.clock.now());
    }

    /// Removes every entry whose deadline is at or before `now` on the
    /// cache's clock (which may be ahead of the clock: OpenSSL's
    /// `SSL_CTX_flush_sessions(ctx, tm)`).
    pub fn flush_expired_at(&self, now: Duration) {
        let now = duration_to_nanos(now);
        let guard = &epoch::pin();
        for shard in self.shards.iter() {
            shard.flush_expired(&self.config, now, guard);
        }
        // Hands what the sweeps retired to the collector and frees what no
        // reader can hold any more: once, not once per shard (each
        // collection seals this thread's bag of deferred calls).
        guard.flush();
    }

    /// Under [`Expiry::OnFlush`]: removes every entry whose deadline is at
    /// or before `now` on the cache's clock, as
    /// [`flush_expired_at`](Self::flush_expired_at) does, but leaves the
    /// work to the shards. O(1) here.
    ///
    /// From the moment it returns, reads miss those entries; each shard
    /// sweeps them (the listener hears [`RemovalCause::Expired`]) before
    /// its next write does anything else, and every shard at once before
    /// [`len`](Self::len) or [`stats`](Self::stats) counts. A shard that
    /// sees no more writes keeps their memory until then. An entry stored
    /// after its shard has swept stays, expired or not, until the next
    /// flush, as after [`flush_expired_at`](Self::flush_expired_at).
    ///
    /// A lazy flush at or before the last one's time flushes a nanosecond
    /// after it instead, so that it takes what was stored since.
    ///
    /// Under [`Expiry::Eager`], expired entries are already gone for reads
    /// and writes; this is [`flush_expired_at`](Self::flush_expired_at).
    pub fn flush_expired_lazily_at(&self, now: Duration) {
        if self.eager {
            self.flush_expired_at(now);
            return;
        }
        let now = duration_to_nanos(now);
        // Relaxed: see `flushed_at`. Never 0, which means no flush.
        let _ = self
            .flushed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(now.max(last.saturating_add(1)))
            });
    }

    /// Removes every entry (cause [`RemovalCause::Cleared`]). A large cache
    /// is cleared shard-parallel on rayon's pool.
    pub fn clear(&self) {
        // What a lazy flush took leaves as expired, not cleared.
        self.settle();
        #[cfg(not(loom))]
        if self.held() >= PARALLEL_CLEAR_MIN {
            use rayon::prelude::*;
            let config = &self.config;
            self.shards.par_iter().for_each(|shard| shard.clear(config));
            return;
        }
        for shard in self.shards.iter() {
            shard.clear(&self.config);
        }
    }

    /// Changes the entry bound while traffic flows; a smaller bound evicts
    /// least recently used entries, shard by shard, before returning.
    /// `None` removes the bound.
    pub fn set_capacity(&self, capacity: Option<usize>) -> Result<(), BuildError> {
        let shards = self.shards.len();
        validate(capacity, shards)?;
        let pooled = pooled(capacity, shards);
        // What a lazy flush took leaves as expired, not evicted.
        self.settle();
        // Pooling stops before the shards shrink to their parts, and starts
        // after they grow to the whole, so no shard evicts for a bound
        // that is about to go.
        if pooled == 0 {
            self.pooled.store(0, Ordering::Relaxed);
        }
        for (i, shard) in self.shards.iter().enumerate() {
            shard.set_capacity(
                &self.config,
                shard_capacity(capacity, shards, i),
                shard_weight(self.max_weight, shards, i),
            );
        }
        if pooled != 0 {
            self.pooled.store(pooled, Ordering::Relaxed);
            self.trim(pooled, 0);
        }
        Ok(())
    }

    /// Entries held, including expired ones not yet swept (but not those a
    /// lazy flush took: their shards are swept first, see
    /// [`flush_expired_lazily_at`](Self::flush_expired_lazily_at)).
    pub fn len(&self) -> u64 {
        self.settle();
        self.held()
    }

    /// Entries in the shards, swept or not.
    fn held(&self) -> u64 {
        self.shards.iter().map(|s| s.stats().len).sum()
    }

    /// Sweeps every shard up to the last lazy flush, once per flush.
    fn settle(&self) {
        let Some(at) = self.flushed_at() else {
            return;
        };
        // Relaxed: a stale reading only sweeps again, which finds nothing.
        if self.settled.load(Ordering::Relaxed) >= at {
            return;
        }
        let guard = &epoch::pin();
        for shard in self.shards.iter() {
            shard.catch_up(&self.config, at, guard);
        }
        guard.flush();
        self.settled.fetch_max(at, Ordering::Relaxed);
    }

    /// Whether the cache holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The counters, summed over shards without a lock (after the sweep
    /// [`len`](Self::len) makes).
    pub fn stats(&self) -> CacheStats {
        self.settle();
        self.shards
            .iter()
            .fold(CacheStats::default(), |mut acc, s| {
                let s = s.stats();
                acc.len += s.len;
                acc.hits += s.hits;
                acc.misses += s.misses;
                acc.inserts += s.inserts;
                acc.evictions += s.evictions;
                acc.expirations += s.expirations;
                acc
            })
    }
}

/// The capacity if it is pooled (see [`POOLED_PER_SHARD`]), else 0.
fn pooled(capacity: Option<usize>, shards: usize) -> u64 {
    match capacity {
        Some(c) if shards > 1 && c < shards * POOLED_PER_SHARD => c as u64,
        _ => 0,
    }
}

/// Shard `index`'s entry bound: its part of the capacity, or all of it
/// when pooled.
fn shard_capacity(capacity: Option<usize>, shards: usize, index: usize) -> usize {
    capacity.map_or(MAX_SHARD_ENTRIES, |c| {
        if pooled(capacity, shards) != 0 {
            c
        } else {
            split(c as u64, shards, index) as usize
        }
    })
}

fn shard_weight(max_weight: u64, shards: usize, index: usize) -> u64 {
    if max_weight == u64::MAX {
        u64::MAX
    } else {
        split(max_weight, shards, index)
    }
}

impl<K, V: ?Sized + Thin, S> std::fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}
