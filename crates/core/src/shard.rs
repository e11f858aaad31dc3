//! One shard: a lock-free index for readers and, behind one mutex, the arena,
//! LRU list and timing wheel that writers keep.

use std::borrow::Borrow;

use crossbeam_utils::CachePadded;
use smallvec::SmallVec;

use crate::access::{widen, Access};
use crate::arena::{Arena, Nodes};
use crate::entry::{expired, Node, Thin, NEVER};
use crate::index::Table;
use crate::list::SlotLists;
use crate::listener::{Listener, RemovalCause};
use crate::lru::Lru;
use crate::sync::epoch::{self, Atomic, Guard, Owned};
use crate::sync::{lock, Arc, AtomicU64, Mutex, Ordering};
use crate::wheel::{now_tick, Wheel};

/// Entries a shard can address: a slot's two links (its LRU link and its
/// wheel link) are `u32` indices after a few hundred list heads, which
/// leaves half of the `u32` range for slots, less a margin for the slots
/// retired entries hold until they are collected.
pub const MAX_SHARD_ENTRIES: usize = (u32::MAX / 2 - 1024) as usize;

// The last link of a slot 512 past a full shard's capacity (the one an
// insert places before it evicts, and slots waiting for a collection) is
// still a `u32`.
const _: () = assert!(
    (crate::lru::HEADS + crate::wheel::HEADS + 1) as u64 + 2 * (MAX_SHARD_ENTRIES as u64 + 512)
        <= u32::MAX as u64
);

/// Entries an unbounded shard's index is first sized for; it doubles when
/// it fills. A bounded shard's index is sized for its capacity from the
/// start, so it is rebuilt only to clear tombstones.
const INITIAL_ENTRIES: usize = 16;

pub(crate) type Weigher<K, V> = Box<dyn Fn(&K, &V) -> u64 + Send + Sync>;

/// What every shard of one cache shares.
pub(crate) struct Config<K, V: ?Sized + Thin> {
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) listener: Option<Listener<K, V>>,
    /// Retirements a shard's writers let gather before a writer collects
    /// (see `CacheBuilder::collect_every`).
    pub(crate) collect_every: u32,
}

impl<K, V: ?Sized + Thin> Config<K, V> {
    fn weigh(&self, key: &K, value: &V) -> u64 {
        self.weigher.as_ref().map_or(0, |w| w(key, value))
    }
}

/// What every write carries: the cache's settings, the caller's epoch
/// guard (pinned for the whole write, listener calls included) and the
/// clock reading the write is made at, or `None` when the cache expires
/// entries only on flush (`Expiry::OnFlush`): then a write treats no
/// expired entry as gone, and sweeps only what a lazy flush left to it.
pub(crate) struct Ctx<'a, K, V: ?Sized + Thin> {
    pub(crate) config: &'a Config<K, V>,
    pub(crate) guard: &'a Guard,
    pub(crate) now: Option<u64>,
    /// Under `Expiry::OnFlush`, the last lazy flush's time (see
    /// `Cache::flush_expired_lazily_at`): a shard that has not swept to it
    /// does so first.
    pub(crate) flushed: Option<u64>,
}

/// One store's inputs.
pub(crate) struct Store<K, V: ?Sized + Thin> {
    /// The key's hash, which picked the shard.
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: Arc<V>,
    /// Clock nanoseconds, or [`NEVER`].
    pub(crate) deadline: u64,
    /// Whether the caller wants the replaced value back.
    pub(crate) replaced: bool,
}

/// Counters only lock holders write, on a second line.
#[derive(Default)]
struct Cold {
    len: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
}

/// A counter snapshot of one shard.
#[derive(Default, Clone, Copy)]
pub(crate) struct ShardStats {
    pub(crate) len: u64,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) inserts: u64,
    pub(crate) evictions: u64,
    pub(crate) expirations: u64,
}

/// Only lock holders write these counters, so a load and a store suffice.
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Ordering::Relaxed) + by, Ordering::Relaxed);
}

/// A live node and its arena slot (the node does not store it), as a
/// writer finds it: through the index, the LRU list or the wheel.
struct Found<'g, K, V: ?Sized + Thin> {
    slot: u32,
    node: &'g Node<K, V>,
}

impl<K, V: ?Sized + Thin> Clone for Found<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V: ?Sized + Thin> Copy for Found<'_, K, V> {}

impl<K, V: ?Sized + Thin> std::ops::Deref for Found<'_, K, V> {
    type Target = Node<K, V>;

    fn deref(&self) -> &Node<K, V> {
        self.node
    }
}

/// Removed entries whose listener calls wait for the lock to be released:
/// the node (for its key) and, for a value replaced in place, that value
/// itself (the node holds the new one), moved here rather than counted
/// again: a replaced value is often cold, and a second count would be a
/// miss on it under the lock for a listener that may not even look. The
/// node pointers stay valid while the write's guard is pinned: a node is
/// retired (if at all, even one just replaced in place and then evicted)
/// under that guard. Room for one inline: a write rarely removes more
/// (an eviction, a take), and with room for four every write moved the
/// `Write` holding it through a `memcpy` call (cachegrind: 1,235 → 1,192
/// instructions per ticket connection with one).
type Pending<K, V> = SmallVec<[(*const Node<K, V>, Option<Arc<V>>, RemovalCause); 1]>;

/// Listener calls gathered under `guard` to be made later, once the
/// caller holds no lock. The nodes they name stay valid while `guard` is
/// pinned, which the borrow ensures.
pub(crate) struct Heard<'g, K, V: ?Sized + Thin> {
    pending: Pending<K, V>,
    guard: &'g Guard,
}

impl<'g, K, V: ?Sized + Thin> Heard<'g, K, V>
where
    V: Send + Sync + 'static,
{
    pub(crate) fn new(guard: &'g Guard) -> Self {
        Self {
            pending: Pending::new(),
            guard,
        }
    }

    /// Makes the calls.
    pub(crate) fn tell(self, config: &Config<K, V>) {
        // SAFETY: every node was retired, or had its value replaced, under
        // `self.guard`, which is still pinned (borrowed for `'g`).
        unsafe { notify(config, self.pending, self.guard) }
    }
}

/// Calls the listener for each removal in `pending`, then hands each
/// replaced value to the collector under `guard`: a reader pinned before
/// the replacement may still be about to take a count on it.
///
/// # Safety
///
/// `guard` is the guard under which each node was retired, or had its
/// value replaced, and is still pinned, so no node has been freed.
unsafe fn notify<K, V>(config: &Config<K, V>, pending: Pending<K, V>, guard: &Guard)
where
    V: ?Sized + Thin + Send + Sync + 'static,
{
    // Only a write with a listener gathers anything.
    if let Some(listener) = &config.listener {
        for (node, replaced, cause) in pending {
            // SAFETY: the caller's guarantee: the node is not freed yet.
            let node = unsafe { &*node };
            match replaced {
                Some(value) => {
                    listener(&node.key, &value, cause);
                    guard.defer(move || crate::doomed::release(value));
                }
                None => node.with_value(|value| listener(&node.key, value, cause)),
            }
        }
    }
}

/// Writer-side state, guarded by the shard lock.
struct State<K, V: ?Sized + Thin> {
    /// The nodes: slot `i` holds the node that owns slot `i`'s links.
    arena: Arena<K, V>,
    /// Slots the LRU, wheel and weights have room reserved for.
    reserved: usize,
    /// Tombstones in the index (see `index`).
    tombs: usize,
    weights: Vec<u64>,
    /// The links of the LRU's list and the wheel's: each slot's two side
    /// by side, so a write that places, removes or evicts an entry finds
    /// both on one line.
    lists: SlotLists,
    lru: Lru,
    wheel: Wheel,
    len: usize,
    weight: u64,
    capacity: usize,
    max_weight: u64,
    /// The newest access stamp the writers have seen (readers' stamps as
    /// of the last drain, and inserts'); published in `Shard::clock`.
    clock: u64,
    /// Nodes retired and values replaced since a writer of this shard
    /// last collected garbage.
    unflushed: u32,
}

// SAFETY: the arena owns the nodes (like `Box`es), and its pointers are
// dereferenced only by the holder of the shard lock (and, for retired
// nodes, by their deferred reclamation alone); with `K` and `V` Send + Sync,
// so is the state that owns them.
unsafe impl<K: Send + Sync, V: ?Sized + Thin + Send + Sync> Send for State<K, V> {}

/// One write in progress: the lock, the guard and the pending notifications.
struct Write<'s, 'g, K, V: ?Sized + Thin> {
    shard: &'s Shard<K, V>,
    st: crate::sync::MutexGuard<'s, State<K, V>>,
    table: &'g Table,
    guard: &'g Guard,
    pending: Pending<K, V>,
    listening: bool,
    /// Collect garbage at the end, however little this shard's writes
    /// retired since the last collection (flushes, clears, resizes).
    flush: bool,
}

pub(crate) struct Shard<K, V: ?Sized + Thin> {
    table: Atomic<Table>,
    /// The arena's nodes, where readers find the slots the index names:
    /// the arena's own memory (`Arena::nodes`), which a write also hands
    /// with a retired slot to its reclamation.
    nodes: Arc<Nodes<K, V>>,
    /// The time of the last lazy flush this shard has caught up with (0:
    /// none), beside the table pointer every read loads: it changes only
    /// when the shard catches up. Under a lazy flush to a later time,
    /// readers treat entries due by then as gone until it does.
    swept: AtomicU64,
    /// `State::clock` as of the last insert: readers stamp their accesses
    /// after it (see `access`). On its own line, which only inserts write.
    clock: CachePadded<AtomicU64>,
    cold: CachePadded<Cold>,
    /// Readers' hit and miss counts and access records, by thread.
    access: Access,
    /// On lines of its own: every write writes the lock word and the
    /// state, and the fields above, which every read loads, must not share
    /// a line with them. Unpadded, the state's tail (its stamp clock, the
    /// retirement count) shared the line of `table` and `swept`.
    state: CachePadded<Mutex<State<K, V>>>,
}

impl<K, V: ?Sized + Thin> Shard<K, V>
where
    K: Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// A shard bounded to `capacity` entries (if `bounded`) whose index
    /// and arena start sized for `expected` of them (its part of a pooled
    /// capacity may be far below its bound; both grow as needed).
    pub(crate) fn new(
        bounded: bool,
        capacity: usize,
        expected: usize,
        max_weight: u64,
        stripes: usize,
        now: u64,
    ) -> Self {
        let groups = Table::groups_for(if bounded {
            expected.min(capacity).saturating_add(1)
        } else {
            INITIAL_ENTRIES
        });
        let arena = Arena::new(bounded.then_some(expected.min(capacity)));
        Self {
            table: Atomic::new(Table::new(groups)),
            nodes: arena.nodes(),
            clock: CachePadded::new(AtomicU64::new(0)),
            cold: CachePadded::new(Cold::default()),
            swept: AtomicU64::new(0),
            access: Access::new(stripes),
            state: CachePadded::new(Mutex::new(State {
                arena,
                reserved: 0,
                tombs: 0,
                weights: Vec::new(),
                lists: SlotLists::new(crate::lru::HEADS + crate::wheel::HEADS),
                lru: Lru::new(),
                wheel: Wheel::new(now_tick(now)),
                len: 0,
                weight: 0,
                capacity,
                max_weight,
                clock: 0,
                unflushed: 0,
            })),
        }
    }

    #[inline]
    fn table<'g>(&self, guard: &'g Guard) -> &'g Table {
        // Acquire pairs with the Release store that published the table.
        let table = self.table.load(Ordering::Acquire, guard);
        // SAFETY: the table pointer is never null (set in `new`, replaced
        // only by a non-null table in `make_room`); a replaced table is
        // retired, so it outlives `guard`.
        unsafe { table.deref() }
    }

    /// Lock-free lookup: atomic loads, an access record in the thread's
    /// stripe (see `access`; in the node when the stripe's buffer is full),
    /// and the value's refcount. `now` is called only for an entry with a
    /// deadline; its `None` skips the expiry check (`Expiry::OnFlush`).
    #[inline]
    pub(crate) fn get<Q>(
        &self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> Option<u64>,
        guard: &Guard,
    ) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let found = self.table(guard).find(hash, key, &self.nodes, guard);
        let (stripe, own) = self.access.stripe();
        if let Some((slot, node)) = found {
            let (value, deadline) = node.get();
            if deadline == NEVER || !now().is_some_and(|now| expired(deadline, now)) {
                if let Some(stamp) = stripe.hit(own, self.clock.load(Ordering::Relaxed), slot) {
                    // Truncating the stamp is intended: `widen` restores it.
                    node.stamp.store(stamp as u32, Ordering::Relaxed);
                }
                // SAFETY: the node held `value`, whose count is released
                // (by a replacement or with the node) only after `guard`,
                // pinned when it was loaded, unpins.
                return Some(unsafe { Node::<K, V>::share(value) });
            }
        }
        stripe.miss(own);
        None
    }

    fn begin<'s, 'g>(&'s self, config: &Config<K, V>, guard: &'g Guard) -> Write<'s, 'g, K, V> {
        let st = lock(&self.state);
        Write {
            shard: self,
            table: self.table(guard),
            st,
            guard,
            pending: Pending::new(),
            listening: config.listener.is_some(),
            flush: false,
        }
    }

    /// Takes the lock for a write to the key of hash `hash` and does the
    /// shard's upkeep first: buffered reads, then the sweep due at `now`
    /// and any a lazy flush left. Hands back the write, the settings and
    /// `now`.
    #[inline(always)]
    fn begin_for<'s: 'g, 'g>(
        &'s self,
        ctx: Ctx<'g, K, V>,
        hash: u64,
    ) -> (Write<'s, 'g, K, V>, &'g Config<K, V>, Option<u64>) {
        let Ctx {
            config,
            guard,
            now,
            flushed,
        } = ctx;
        self.table(guard).prefetch(hash);
        let mut w = self.begin(config, guard);
        w.maintain(now);
        w.catch_up(flushed);
        (w, config, now)
    }

    /// Inserts `store.key` if `decide` approves of the live value it would
    /// replace (`None` when absent). `Ok` holds the replaced value if
    /// `store.replaced` asks for it, `Err` hands the value back when
    /// `decide` said no. `decide` runs under the shard lock, before
    /// anything changes.
    pub(crate) fn insert(
        &self,
        ctx: Ctx<'_, K, V>,
        store: Store<K, V>,
        decide: impl FnOnce(Option<&Arc<V>>) -> bool,
    ) -> Result<Option<Arc<V>>, Arc<V>> {
        let Store {
            hash,
            key,
            value,
            deadline,
            replaced,
        } = store;
        let (mut w, config, now) = self.begin_for(ctx, hash);
        w.prefetch_victim();
        let existing = w.live(hash, &key, now);
        let approved = match existing {
            Some(n) => n.with_value(|v| decide(Some(v))),
            None => decide(None),
        };
        if !approved {
            w.finish(config);
            return Err(value);
        }
        let weight = config.weigh(&key, &value);
        let previous = existing.filter(|_| replaced).map(|n| n.value());
        if weight > w.st.max_weight {
            // Heavier than the whole shard: it would only flush the shard
            // and then go itself, so it goes at once.
            if let Some(old) = existing {
                w.remove(old, RemovalCause::Replaced);
            }
            bump(&self.cold.evictions, 1);
            w.finish(config);
            if let Some(listener) = &config.listener {
                listener(&key, &value, RemovalCause::Evicted);
            }
            return Ok(previous);
        }
        match existing {
            Some(old) => w.replace(old, value, deadline, weight),
            None => w.add(hash, key, value, deadline, weight),
        }
        w.evict();
        w.finish(config);
        Ok(previous)
    }

    /// Removes `key`'s live value if `pred` approves of it.
    pub(crate) fn remove<Q>(
        &self,
        ctx: Ctx<'_, K, V>,
        hash: u64,
        key: &Q,
        cause: RemovalCause,
        pred: impl FnOnce(&Arc<V>) -> bool,
    ) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let (mut w, config, now) = self.begin_for(ctx, hash);
        let out = w
            .live(hash, key, now)
            .filter(|node| node.with_value(pred))
            .map(|node| {
                let value = node.value();
                w.remove(node, cause);
                value
            });
        w.finish(config);
        out
    }

    /// Sweeps entries due at `now` and applies buffered accesses, under
    /// `guard` (one for the whole cache's flush, whose caller collects
    /// garbage once at the end).
    pub(crate) fn flush_expired(&self, config: &Config<K, V>, now: u64, guard: &Guard) {
        let mut w = self.begin(config, guard);
        // No `note_swept`: an entry stored after this sweep, before a lazy
        // flush, is still the lazy flush's to take.
        w.maintain(Some(now));
        w.finish(config);
    }

    /// Sweeps what a lazy flush at `flushed` left here, if this shard has
    /// not swept that far (checked under the lock, so an entry stored
    /// since a write caught up stays).
    pub(crate) fn catch_up(&self, config: &Config<K, V>, flushed: u64, guard: &Guard) {
        if !self.owes(flushed) {
            return;
        }
        let mut w = self.begin(config, guard);
        w.catch_up(Some(flushed));
        w.finish(config);
    }

    /// Whether reads must treat entries due at `flushed` (a lazy flush's
    /// time) as gone: this shard has not swept to it yet. A reader asks
    /// before it looks the key up.
    #[inline]
    pub(crate) fn owes(&self, flushed: u64) -> bool {
        // Acquire pairs with the Release store in `note_swept`: a reader
        // that sees the sweep done then sees the index without what it
        // swept, so it cannot find a swept entry and keep it. One that
        // does not see it hides everything due by `flushed`, entries
        // stored after the sweep included; its lookup then takes effect
        // before those stores, which have not returned.
        self.swept.load(Ordering::Acquire) < flushed
    }

    /// Removes every entry.
    pub(crate) fn clear(&self, config: &Config<K, V>) {
        let guard = &epoch::pin();
        let mut w = self.begin(config, guard);
        let mut slots = Vec::with_capacity(w.st.len);
        w.table.for_each(|slot| slots.push(slot));
        for slot in slots {
            let node = w.node(slot);
            w.remove(node, RemovalCause::Cleared);
        }
        w.flush = true;
        w.finish(config);
    }

    /// Evicts the least recently used entry if the shard holds more than
    /// `keep`; says whether it did. For a pooled capacity's trim, which
    /// holds a lock of its own: the listener's calls go to `heard`, for
    /// the caller to make once it holds none.
    pub(crate) fn evict_one<'g>(
        &self,
        config: &Config<K, V>,
        keep: usize,
        heard: &mut Heard<'g, K, V>,
    ) -> bool {
        let mut w = self.begin(config, heard.guard);
        // Buffered accesses first, so the evictor sees every recent use.
        w.maintain(None);
        let len = w.st.len;
        let evicted = len > keep;
        if evicted {
            let capacity = std::mem::replace(&mut w.st.capacity, len - 1);
            w.evict();
            w.st.capacity = capacity;
        }
        heard.pending.extend(w.settle(config));
        evicted
    }

    /// Sets the shard's bounds and evicts down to them.
    pub(crate) fn set_capacity(&self, config: &Config<K, V>, capacity: usize, max_weight: u64) {
        let guard = &epoch::pin();
        let mut w = self.begin(config, guard);
        w.st.capacity = capacity;
        w.st.max_weight = max_weight;
        // Buffered accesses first, so the evictor sees every recent use.
        w.maintain(None);
        w.evict();
        w.flush = true;
        w.finish(config);
    }

    pub(crate) fn stats(&self) -> ShardStats {
        // Relaxed and unlocked: a snapshot of counters that move on.
        let (hits, misses) = self.access.counts();
        ShardStats {
            len: self.cold.len.load(Ordering::Relaxed),
            hits,
            misses,
            inserts: self.cold.inserts.load(Ordering::Relaxed),
            evictions: self.cold.evictions.load(Ordering::Relaxed),
            expirations: self.cold.expirations.load(Ordering::Relaxed),
        }
    }
}

impl<'s: 'g, 'g, K, V: ?Sized + Thin> Write<'s, 'g, K, V>
where
    K: Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// The node in slot `slot`, which the LRU, the wheel or the index has
    /// just named (so it is live).
    fn node(&self, slot: u32) -> Found<'g, K, V> {
        // SAFETY: slots in the LRU list, the wheel and the index are live;
        // a node leaves them (under this lock) before it is retired, and a
        // retired node's memory is not reused before `self.guard`, pinned
        // for the whole write, unpins.
        let node = unsafe { self.st.arena.get(slot) };
        Found { slot, node }
    }

    /// The node for `key`, removing it first (as expired) if it is. With
    /// `now` of `None` an expired node still counts (`Expiry::OnFlush`).
    fn live<Q>(&mut self, hash: u64, key: &Q, now: Option<u64>) -> Option<Found<'g, K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let shard: &'s Shard<K, V> = self.shard;
        let (slot, node) = self
            .table
            .find_out_of_line(hash, key, &shard.nodes, self.guard)?;
        let node = Found { slot, node };
        if now.is_some_and(|now| node.expired(now)) {
            self.remove(node, RemovalCause::Expired);
            return None;
        }
        Some(node)
    }

    /// Applies buffered reads to the LRU and sweeps what is due at `now`
    /// (nothing when `now` is `None`). Inline, with the work out of line:
    /// most writes find no buffered read and nothing due, and as a call of
    /// its own the two checks had cost a write some 50 instructions of
    /// saving and restoring registers (callgrind, `fixed tlscache
    /// ticket_small 1`).
    #[inline(always)]
    fn maintain(&mut self, now: Option<u64>) {
        if self.shard.access.pending() {
            self.drain_accesses();
        }
        if let Some(now) = now.filter(|&now| self.st.wheel.has_due(&self.st.lists, now)) {
            self.sweep(now);
        }
    }

    /// Applies buffered reads to the LRU.
    #[inline(never)]
    fn drain_accesses(&mut self) {
        let access = &self.shard.access;
        let st = &mut *self.st;
        let newest = access.newest(st.clock);
        access.drain(newest, |slot, stamp| {
            // No node is read: a slot freed since is skipped, and a slot
            // reused since holds a node inserted after this stamp was
            // taken, which `touch` (newer stamps only) leaves in place.
            if Lru::contains(&st.lists, slot) {
                st.lru.touch(&mut st.lists, slot, stamp, &st.arena);
            }
        });
        st.clock = newest;
    }

    /// Removes what is due at `now`.
    #[inline(never)]
    fn sweep(&mut self, now: u64) {
        let mut due = Vec::new();
        let State {
            wheel,
            arena,
            lists,
            ..
        } = &mut *self.st;
        wheel.advance(lists, now, &mut due, |slot| {
            // SAFETY: the wheel only holds slots of linked nodes, and this
            // runs under the shard lock, so the node is live.
            unsafe { arena.get(slot) }.deadline()
        });
        for slot in due {
            let node = self.node(slot);
            self.unlink(node, RemovalCause::Expired);
        }
    }

    /// Sweeps what a lazy flush at `flushed` left to this shard, if it has
    /// not swept that far yet.
    fn catch_up(&mut self, flushed: Option<u64>) {
        if let Some(at) = flushed.filter(|&at| self.shard.owes(at)) {
            self.maintain(Some(at));
            self.note_swept(at);
        }
    }

    /// Records that everything due at `at` has been swept.
    fn note_swept(&self, at: u64) {
        let swept = &self.shard.swept;
        // Only lock holders store it, so a Relaxed load sees the last.
        if swept.load(Ordering::Relaxed) < at {
            // Release pairs with the Acquire in `Shard::owes`: it follows
            // the sweep's removals from the index.
            swept.store(at, Ordering::Release);
        }
    }

    /// A new access stamp for a write, after every access drained so far
    /// (`maintain` ran first), published to readers.
    fn stamp(&mut self) -> u64 {
        self.st.clock += 1;
        self.shard.clock.store(self.st.clock, Ordering::Relaxed);
        self.st.clock
    }

    /// Places a new node for `key` and enters it in a free index entry,
    /// rebuilding the index first if it is full.
    fn add(&mut self, hash: u64, key: K, value: Arc<V>, deadline: u64, weight: u64) {
        // Truncation intended: the index uses the hash's low half.
        let hash = hash as u32;
        let slot = self.alloc_slot();
        let stamp = self.stamp();
        self.st
            .arena
            .place(slot, Node::new(key, value, deadline, stamp, hash));
        self.make_room();
        if self.table.insert(hash, slot) {
            self.st.tombs -= 1;
        }
        let st = &mut *self.st;
        st.lru.insert(&mut st.lists, slot, stamp, &st.arena);
        if deadline != NEVER {
            st.wheel.schedule(&mut st.lists, slot, deadline);
        }
        st.len += 1;
        self.set_weight(slot, weight);
        bump(&self.shard.cold.inserts, 1);
    }

    /// Stores `value` and `deadline` in `old`'s node in place (see
    /// `Node::get` for what readers see meanwhile), as the key's most
    /// recent use, and hands the old value to the listener and then, once
    /// no pinned reader can be taking a count on it, to its drop.
    fn replace(&mut self, old: Found<'g, K, V>, value: Arc<V>, deadline: u64, weight: u64) {
        let was = old.deadline();
        let stamp = self.stamp();
        let previous = old.replace(value, deadline);
        let st = &mut *self.st;
        st.lru.touch(&mut st.lists, old.slot, stamp, &st.arena);
        match (was, deadline) {
            (NEVER, NEVER) => {}
            (NEVER, _) => st.wheel.schedule(&mut st.lists, old.slot, deadline),
            (_, NEVER) => st.wheel.cancel(&mut st.lists, old.slot),
            // A later deadline keeps the entry's place, which is due at or
            // before the old one: when that place comes due, the sweep
            // finds the deadline later and places the entry by it. So a
            // session stored again and again moves in the wheel once per
            // time-to-live at most, not at every store, and a store does
            // not write its wheel neighbours' links.
            _ if deadline >= was => {}
            _ => {
                st.wheel.cancel(&mut st.lists, old.slot);
                st.wheel.schedule(&mut st.lists, old.slot, deadline);
            }
        }
        if let Some(w) = st.weights.get_mut(old.slot as usize) {
            st.weight -= std::mem::take(w);
        }
        self.set_weight(old.slot, weight);
        bump(&self.shard.cold.inserts, 1);
        if self.listening {
            // Handed to the collector by `notify`, after the listener's
            // call: counted with this write's retirements, though if this
            // write collects, the value waits for the next collection.
            self.st.unflushed = self.st.unflushed.saturating_add(1);
            self.pending
                .push((old.node, Some(previous), RemovalCause::Replaced));
        } else {
            self.st.arena.retire_value(previous);
        }
    }

    /// Records the weight of the entry in `slot`, counted in `len`
    /// already, and publishes the length.
    fn set_weight(&mut self, slot: u32, weight: u64) {
        let st = &mut *self.st;
        if !st.weights.is_empty() || weight != 0 {
            if st.weights.len() < st.arena.len() {
                st.weights.resize(st.arena.len(), 0);
            }
            st.weights[slot as usize] = weight;
        }
        st.weight += weight;
        self.shard.cold.len.store(st.len as u64, Ordering::Relaxed);
    }

    fn alloc_slot(&mut self) -> u32 {
        let st = &mut *self.st;
        let (slot, new) = st.arena.alloc();
        if !new {
            return slot;
        }
        let slots = slot as usize;
        if slots == st.reserved {
            // Grow by doubling, but not past the shard's capacity (plus
            // the one an insert links before it evicts), so a full bounded
            // shard carries no slack. Slots still waiting for the epoch
            // collector can take more than that (see docs/performance.md,
            // "slots past capacity"); past it, grow by an eighth at a time,
            // never by one: reserving exactly one more copies both lists
            // whole.
            let bound = st.capacity.saturating_add(1);
            let limit = if slots < bound {
                bound
            } else {
                slots.saturating_add((slots / 8).max(16))
            };
            let target = (slots * 2).max(16).min(limit);
            st.reserved = target;
            st.lists.reserve(target);
        }
        st.lists.grow(slots + 1);
        slot
    }

    /// Takes `node` out of the cache for `cause`.
    fn remove(&mut self, node: Found<'g, K, V>, cause: RemovalCause) {
        // The entry's links and then its neighbours' in both lists, so the
        // lists' misses overlap instead of following one another.
        let st = &mut *self.st;
        let expires = node.expires();
        st.lists.prefetch(node.slot);
        if expires {
            Wheel::prefetch_neighbours(&st.lists, node.slot);
        }
        Lru::prefetch_neighbours(&st.lists, node.slot);
        if expires {
            st.wheel.cancel(&mut st.lists, node.slot);
        }
        self.unlink(node, cause);
    }

    /// Unlinks `node` from the index and LRU and retires it. The wheel
    /// link is the caller's (`advance` has already dropped it).
    fn unlink(&mut self, node: Found<'g, K, V>, cause: RemovalCause) {
        if self.table.remove(node.hash, node.slot) {
            self.st.tombs += 1;
        }
        self.retire(node, cause);
    }

    /// Takes `node`, already out of the index, out of the LRU and retires
    /// it.
    fn retire(&mut self, node: Found<'g, K, V>, cause: RemovalCause) {
        let st = &mut *self.st;
        st.lru.remove(&mut st.lists, node.slot);
        st.len -= 1;
        if let Some(weight) = st.weights.get_mut(node.slot as usize) {
            st.weight -= std::mem::take(weight);
        }
        self.shard.cold.len.store(st.len as u64, Ordering::Relaxed);
        match cause {
            RemovalCause::Evicted => bump(&self.shard.cold.evictions, 1),
            RemovalCause::Expired => bump(&self.shard.cold.expirations, 1),
            _ => {}
        }
        if self.listening {
            self.pending.push((node.node, None, cause));
        }
        // `node` was just unlinked from the index and the LRU under the
        // shard lock, so no new reader can reach it; readers that hold it
        // are pinned, and the collector waits for them.
        st.arena.retire(node.slot);
    }

    /// On a full shard, starts loading the node and links of the entry an
    /// insert of a new key would evict, so those misses overlap the
    /// lookup of the key instead of following it.
    #[inline]
    fn prefetch_victim(&mut self) {
        let st = &mut *self.st;
        if st.len >= st.capacity {
            if let Some(slot) = Lru::tail(&st.lists) {
                st.arena.prefetch(slot);
                st.lists.prefetch(slot);
            }
        }
        // And the node and links a new key would take.
        if let Some(slot) = st.arena.next_free() {
            st.arena.prefetch(slot);
            st.lists.prefetch(slot);
        }
    }

    /// Evicts least recently used entries until the shard is within bounds.
    fn evict(&mut self) {
        while self.st.len > self.st.capacity || self.st.weight > self.st.max_weight {
            let st = &mut *self.st;
            let Some(slot) = st.lru.oldest(&st.lists, &st.arena) else {
                break;
            };
            let node = self.node(slot);
            let placed = self.st.lru.listed(&self.st.arena, slot);
            let stamp = widen(node.stamp.load(Ordering::Relaxed), self.st.clock);
            if stamp > placed {
                // Used since it was placed, recorded in the node (its
                // thread's buffer was full).
                let st = &mut *self.st;
                st.lru.touch(&mut st.lists, slot, stamp, &st.arena);
                continue;
            }
            self.remove(node, RemovalCause::Evicted);
        }
    }

    /// Rebuilds the index if one more entry would fill it past its bound:
    /// larger when the live entries need it, else the same size without
    /// tombstones. A rebuild copies entries only (nodes stay in their
    /// slots); a reader still probing the old table sees it as it was when
    /// it was replaced.
    fn make_room(&mut self) {
        let used = self.st.len + self.st.tombs + 1;
        if used <= self.table.max_used() {
            return;
        }
        let now = self.table.groups();
        let want = Table::groups_for(self.st.len + 1);
        let groups = if want > now { want.max(now * 2) } else { now };
        let guard = self.guard;
        let arena = &self.st.arena;
        let new = self.table.rebuilt(
            groups,
            |slot| {
                // SAFETY: the index names only live nodes, and this runs
                // under the shard lock.
                unsafe { arena.get(slot) }.hash
            },
            |slot| arena.prefetch(slot),
        );
        // Release: publishes the new table and its entries to readers.
        let old = self
            .shard
            .table
            .swap(Owned::new(new), Ordering::Release, guard);
        self.table = self.shard.table(guard);
        self.st.tombs = 0;
        // SAFETY: the old table is no longer published; only readers
        // already pinned can hold it, and the collector waits for them.
        unsafe { guard.defer_destroy(old) };
    }

    /// Releases the lock, then tells the listener what left.
    #[inline(always)]
    fn finish(self, config: &Config<K, V>) {
        let (guard, listening) = (self.guard, self.listening);
        let pending = self.settle(config);
        if listening {
            // SAFETY: each node was retired (or had its value replaced)
            // under the write's guard, which the caller still holds pinned.
            unsafe { notify(config, pending, guard) }
        }
    }

    /// `finish` up to the listener's calls, which it returns: releases the
    /// lock, hands what this write retired to the collector and collects.
    #[inline(always)]
    fn settle(self, config: &Config<K, V>) -> Pending<K, V> {
        let Write {
            shard,
            mut st,
            pending,
            guard,
            flush,
            ..
        } = self;
        let retired = st.arena.retiring() as u32;
        let unflushed = st.unflushed.saturating_add(retired);
        let flush = flush || unflushed >= config.collect_every;
        st.unflushed = if flush { 0 } else { unflushed };
        let handed = st.arena.hand_over();
        drop(st);
        handed.defer(&shard.nodes, guard);
        if flush {
            // Hands this thread's garbage to the collector and frees what
            // no reader can hold any more, here rather than on a reader's
            // pin (crossbeam-epoch collects on every 128th pin), which
            // would put those frees on a lookup's latency. The values it
            // frees last handles of are set aside, and this write and the
            // thread's next ones drop a few each (see `doomed`).
            crate::doomed::collecting(|| guard.flush());
        }
        crate::doomed::drop_some();
        pending
    }
}

impl<K, V: ?Sized + Thin> Drop for Shard<K, V> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no reader or writer is left; nothing is
        // deferred, so the unprotected guard is sound.
        let guard = unsafe { epoch::unprotected() };
        let mut st = lock(&self.state);
        let st = &mut *st;
        for slot in 0..st.arena.len() as u32 {
            // Every live node is in the LRU list, once.
            if Lru::contains(&st.lists, slot) {
                // SAFETY: a live node; this is its last use.
                unsafe { st.arena.drop_live(slot) };
            }
        }
        let table = self.table.load(Ordering::Relaxed, guard);
        // SAFETY: the table is never null and owned by this shard alone.
        drop(unsafe { table.into_owned() });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn what_reads_load_shares_no_line_with_what_writes_store() {
        type S = Shard<[u8; 32], Vec<u8>>;
        let line = |offset: usize| offset / 64;
        let state = std::mem::offset_of!(S, state);
        let state_lines =
            line(state)..=line(state + std::mem::size_of::<Mutex<State<[u8; 32], Vec<u8>>>>() - 1);
        for (name, offset) in [
            ("table", std::mem::offset_of!(S, table)),
            ("nodes", std::mem::offset_of!(S, nodes)),
            ("swept", std::mem::offset_of!(S, swept)),
            ("access", std::mem::offset_of!(S, access)),
        ] {
            assert!(
                !state_lines.contains(&line(offset)),
                "{name} shares a line with the state"
            );
            assert_ne!(
                line(offset),
                line(std::mem::offset_of!(S, clock)),
                "{name} beside the clock"
            );
            assert_ne!(
                line(offset),
                line(std::mem::offset_of!(S, cold)),
                "{name} beside the counters"
            );
        }
    }
}
