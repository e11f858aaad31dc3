//! A shard's node storage: segments of node slots that never move, so a
//! node's address is stable for its whole life, and slot `i` is the node's
//! place in memory, its LRU and wheel link, and what the index names.
//!
//! Against one heap allocation per node, this saves the allocator's header
//! and size-class rounding, the slab of pointers that mapped slots to
//! nodes, and a `malloc`/`free` pair per insert. Segments are aligned to a
//! cache line, so a node of 64 bytes (a 32-byte key) sits on one line.
//!
//! A slot is reused only after the epoch collector has seen every reader
//! that could hold its node unpin. A write gathers the slots it retires,
//! and the values it replaces in place, under the shard lock, and once it
//! has released the lock hands each to the collector as a deferred call
//! of two words (crossbeam-epoch keeps it inline: no allocation). A
//! slot's call drops the node's key and value and pushes the slot onto a
//! lock-free stack of reclaimed slots, linked through the dead nodes
//! themselves; when a writer's collection runs it, the call is set aside
//! for that thread's next writes, two a write (see `doomed`). A writer
//! takes the whole stack at once (a swap, so the stack has no ABA
//! problem) and then pops one slot per insert, reading
//! the next link from the node it is about to overwrite anyway: no walk
//! over cold nodes under the lock (a whole-stack walk had put tens of
//! microseconds into some writes), and no batch to allocate, fill, stack
//! and recycle. Each call holds the arena's memory alive by reference
//! count, so it may run after the shard is gone.

use std::alloc::{self, Layout};
use std::ptr;

use crossbeam_utils::CachePadded;

use crate::entry::{Node, Thin};
use crate::lru::ListStamps;
use crate::sync::epoch::Guard;
use smallvec::SmallVec;

use crate::sync::{Arc, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Slots of the first segment at most, as a shift (a bounded shard's first
/// segment holds its capacity when that is smaller).
const MAX_FIRST_SHIFT: u32 = 16;
/// Slots of an unbounded shard's first segment, as a shift.
const UNBOUNDED_FIRST_SHIFT: u32 = 10;
/// Slots of the first segment at least, as a shift.
const MIN_FIRST_SHIFT: u32 = 4;
/// Segments an arena can have: the first of `2^shift` slots, then one as
/// large as all before it, until `u32` slots are addressed.
const SEGMENTS: usize = 33 - MIN_FIRST_SHIFT as usize;
/// Segments are aligned to this, so 64-byte nodes never straddle lines.
const LINE: usize = 64;
/// A shard's node memory, shared by its writers, its readers (who find a
/// slot's node through the segment directory) and the deferred
/// reclamations of retired nodes.
///
/// Segment 0 holds slots `0..2^shift`; segment `k >= 1` holds the
/// `2^(shift + k - 1)` slots after those, so the total doubles with each
/// segment and a slot's segment is its bit length past `shift`.
///
/// Every read and write that reaches a node loads `shift` and a segment's
/// base; every retirement takes a count on this memory and every
/// reclamation drops one and pushes onto `reclaimed`, from whichever
/// thread runs it. So the directory starts a line of its own, away from
/// the reference count before it (the alignment puts the count on the
/// line before), and `reclaimed` has a line of its own after it: sharing
/// them, the other core's retirements made a miss of the directory loads.
#[repr(C, align(128))]
pub(crate) struct Nodes<K, V: ?Sized + Thin> {
    shift: u32,
    /// Each segment's base, null until allocated. Written under the shard
    /// lock before any node of the segment is published; readers load a
    /// base only after an index entry's `Acquire`, which orders it.
    segments: [AtomicPtr<Node<K, V>>; SEGMENTS],
    /// Head of the stack of reclaimed slots, as slot + 1 (0 when empty).
    /// Each reclaimed node's `placed` holds the next one's, the same way.
    reclaimed: CachePadded<AtomicU64>,
}

// SAFETY: the raw pointers are owned segments, freed once in `Drop`; the
// nodes in them are read and written under the protocol described on
// `Arena` (shard lock, epoch-protected reads, or sole ownership after the
// epoch), and hold `K` and `V`, which are `Send + Sync`.
unsafe impl<K: Send + Sync, V: ?Sized + Thin + Send + Sync> Send for Nodes<K, V> {}
// SAFETY: as for `Send`; shared access is through atomics.
unsafe impl<K: Send + Sync, V: ?Sized + Thin + Send + Sync> Sync for Nodes<K, V> {}

impl<K, V: ?Sized + Thin> Nodes<K, V> {
    /// Segment `k`'s slot count.
    fn segment_len(&self, k: usize) -> usize {
        1usize << (self.shift as usize + k.saturating_sub(1))
    }

    fn layout(&self, k: usize) -> Layout {
        Layout::array::<Node<K, V>>(self.segment_len(k))
            .and_then(|l| l.align_to(LINE))
            .expect("a segment of at most 2^32 nodes fits the address space")
    }

    /// The segment of `slot` and the slot's offset in it.
    #[inline]
    fn locate(&self, slot: u32) -> (usize, usize) {
        // The first segment holds a bounded shard's capacity, so almost
        // every slot is there: a compare instead of the arithmetic below.
        if slot >> self.shift == 0 {
            return (0, slot as usize);
        }
        let k = (u32::BITS - (slot >> self.shift).leading_zeros()) as usize;
        let start = ((1u64 << k) >> 1) << self.shift;
        (k, (u64::from(slot) - start) as usize)
    }

    /// The address of slot `slot`'s node (initialised or not).
    ///
    /// # Safety
    ///
    /// `slot`'s segment is allocated, and the caller observed that (under
    /// the shard lock, or through an `Acquire` load of an entry naming a
    /// slot of it).
    #[inline]
    unsafe fn at(&self, slot: u32) -> *mut Node<K, V> {
        let (k, offset) = self.locate(slot);
        let base = self.segments[k].load(Ordering::Relaxed);
        // SAFETY: per the contract the segment is allocated, and `offset`
        // is inside it.
        unsafe { base.add(offset) }
    }

    /// The node in `slot`.
    ///
    /// # Safety
    ///
    /// `slot` holds a live node (placed and not yet reclaimed), observed as
    /// `at` requires.
    #[inline]
    pub(crate) unsafe fn get<'a>(&self, slot: u32) -> &'a Node<K, V> {
        // SAFETY: per the contract the node is initialised; its memory
        // lives as long as `self`, which the shard and every deferred
        // reclamation hold.
        unsafe { &*self.at(slot) }
    }

    /// Drops the key of the retired node in `slot` and hands back the
    /// node's handle on its value, for the caller to release.
    ///
    /// # Safety
    ///
    /// `slot` holds a retired node that no thread can reach any more,
    /// whose contents have not been dropped; called once.
    unsafe fn take_contents(&self, slot: u32) -> Arc<V> {
        // SAFETY: a retired slot's segment is allocated and stays so while
        // `self` lives; per the contract its node is ours.
        unsafe {
            let node = self.at(slot);
            ptr::drop_in_place(ptr::addr_of_mut!((*node).key));
            (*node).take_value()
        }
    }

    /// The link field of the (dead) node in `slot`: its `placed`, which
    /// holds the next reclaimed slot + 1 while the slot waits for reuse.
    ///
    /// # Safety
    ///
    /// `slot`'s segment is allocated (a slot once handed out).
    unsafe fn link<'a>(&self, slot: u32) -> &'a AtomicU32 {
        // SAFETY: the segment is allocated and lives as long as `self`;
        // an atomic field may be reached through a shared reference
        // whatever the rest of the node holds.
        unsafe { &*ptr::addr_of!((*self.at(slot)).placed) }
    }
}

/// The reclamation of a retired slot, run by the epoch collector.
impl<K, V> Nodes<K, V>
where
    V: ?Sized + Thin + Send + Sync + 'static,
{
    /// [`reclaim`](Self::reclaim) of `slot`: at once, or, when a write
    /// of this thread is collecting, from the thread's ring by its next
    /// writes (see `doomed`), so that a collection does not meet each
    /// retired node's cold line in one burst.
    ///
    /// # Safety
    ///
    /// As [`reclaim`](Self::reclaim)'s.
    unsafe fn reclaim_soon(nodes: Arc<Self>, slot: u32) {
        #[cfg(not(loom))]
        {
            /// [`Nodes::reclaim`] of `slot` through a handle from
            /// `Arc::into_raw`, which it gives back.
            ///
            /// # Safety
            ///
            /// As `reclaim`'s, for the arena `nodes` holds a count on.
            unsafe fn reclaim_raw<K, V>(nodes: *const u8, slot: u32)
            where
                V: ?Sized + Thin + Send + Sync + 'static,
            {
                // SAFETY: from `Arc::into_raw` of an `Arc<Nodes<K, V>>`
                // (the caller's guarantee), whose count this takes back.
                let nodes = unsafe { Arc::from_raw(nodes.cast::<Nodes<K, V>>()) };
                // SAFETY: the caller's guarantee, passed on.
                unsafe { nodes.reclaim(slot) }
            }
            let nodes = Arc::into_raw(nodes).cast::<u8>();
            // SAFETY: `nodes` holds a count on the arena, and `reclaim`'s
            // contract is the caller's; the call runs once, now or later
            // on this thread, and later is as sound as now (the node only
            // waits longer).
            unsafe { crate::doomed::later(nodes, slot, reclaim_raw::<K, V>) }
        }
        // SAFETY: the caller's guarantee, passed on.
        #[cfg(loom)]
        unsafe {
            nodes.reclaim(slot)
        }
    }

    /// Drops the contents of the retired node in `slot` and stacks the
    /// slot for reuse.
    ///
    /// # Safety
    ///
    /// `slot` was retired from this arena, and no thread can reach its
    /// node any more; passed here once.
    unsafe fn reclaim(&self, slot: u32) {
        // SAFETY: per the contract, this call owns the node's contents.
        // The value's handle is released here, or set aside while a write
        // collects (see `doomed`).
        crate::doomed::release(unsafe { self.take_contents(slot) });
        // SAFETY: a retired slot was handed out, so its segment exists.
        let link = unsafe { self.link(slot) };
        let mut head = self.reclaimed.load(Ordering::Relaxed);
        loop {
            // A slot + 1, at most `u32::MAX`: slots are below the arena's
            // `u32` length.
            link.store(head as u32, Ordering::Relaxed);
            // Release: the writer that takes the stack (Acquire) sees the
            // dropped contents and every link below before it reuses the
            // slots (each push's exchange continues the release sequence).
            match self.reclaimed.compare_exchange_weak(
                head,
                u64::from(slot) + 1,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }
}

impl<K, V: ?Sized + Thin> Drop for Nodes<K, V> {
    fn drop(&mut self) {
        for k in 0..SEGMENTS {
            let base = self.segments[k].load(Ordering::Relaxed);
            if !base.is_null() {
                // SAFETY: allocated in `Arena::grow` with this layout; every
                // node in it was dropped (live ones by the shard, retired
                // ones by their reclamation, which held `self` alive until
                // done; a reclaimed node's link field needs no drop).
                unsafe { alloc::dealloc(base.cast(), self.layout(k)) };
            }
        }
    }
}

/// Node slots for one shard. Owned by the shard's writer state: every
/// method but the deferred reclamation runs under the shard lock.
pub(crate) struct Arena<K, V: ?Sized + Thin> {
    nodes: Arc<Nodes<K, V>>,
    /// Segments allocated so far.
    segments: usize,
    /// Slots in the allocated segments.
    room: u64,
    /// Slots handed out so far (free or not).
    len: u32,
    /// The reclaimed slots this writer took off the stack and has not
    /// reused yet, as slot + 1 of the first (0: none), linked as on the
    /// stack.
    taken: u64,
    /// Slots the write under way retires.
    retiring: SmallVec<[u32; 4]>,
    /// Values the write under way replaced in place.
    replaced: SmallVec<[Arc<V>; 2]>,
}

impl<K, V: ?Sized + Thin> Arena<K, V> {
    /// An empty arena for a shard holding up to `capacity` entries (`None`
    /// when unbounded).
    pub(crate) fn new(capacity: Option<usize>) -> Self {
        // One segment holds a small bounded shard (plus the entry an insert
        // places before it evicts) without slack beyond a power of two; an
        // unbounded one starts moderate and doubles.
        let shift = capacity.map_or(UNBOUNDED_FIRST_SHIFT, |c| {
            c.saturating_add(1)
                .checked_next_power_of_two()
                .map_or(MAX_FIRST_SHIFT, usize::trailing_zeros)
                .clamp(MIN_FIRST_SHIFT, MAX_FIRST_SHIFT)
        });
        Self {
            nodes: Arc::new(Nodes {
                segments: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
                shift,
                reclaimed: CachePadded::new(AtomicU64::new(0)),
            }),
            segments: 0,
            room: 0,
            len: 0,
            taken: 0,
            retiring: SmallVec::new(),
            replaced: SmallVec::new(),
        }
    }

    /// The node memory, for readers.
    pub(crate) fn nodes(&self) -> Arc<Nodes<K, V>> {
        Arc::clone(&self.nodes)
    }

    /// Slots handed out so far: every slot index is below this.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// The node in `slot`.
    ///
    /// # Safety
    ///
    /// `slot` holds a live node (placed and not yet retired).
    #[inline]
    pub(crate) unsafe fn get<'a>(&self, slot: u32) -> &'a Node<K, V> {
        // SAFETY: per the contract; under the shard lock, which the caller
        // holds (it owns `self`), every allocated segment is visible.
        unsafe { self.nodes.get(slot) }
    }

    /// Starts loading the node in `slot` into cache (see
    /// [`prefetch`](crate::sync::prefetch)); nothing for a slot never
    /// handed out.
    #[inline]
    pub(crate) fn prefetch(&self, slot: u32) {
        if slot < self.len {
            // SAFETY: every slot below `len` was handed out, so its segment
            // is allocated, as this arena's owner (the lock's holder) sees.
            crate::sync::prefetch(unsafe { self.nodes.at(slot) });
        }
    }

    /// The slot the next [`alloc`](Self::alloc) will hand out, if it is
    /// one in an allocated segment.
    pub(crate) fn next_free(&mut self) -> Option<u32> {
        if self.taken == 0 {
            self.take_reclaimed();
        }
        match self.taken.checked_sub(1) {
            // At most `u32::MAX`: a slot + 1.
            Some(slot) => Some(slot as u32),
            None => (u64::from(self.len) < self.room).then_some(self.len),
        }
    }

    /// A free slot, and whether it is new (never used before).
    pub(crate) fn alloc(&mut self) -> (u32, bool) {
        if self.taken == 0 {
            self.take_reclaimed();
        }
        if let Some(slot) = self.taken.checked_sub(1) {
            // At most `u32::MAX`: a slot + 1.
            let slot = slot as u32;
            // SAFETY: a reclaimed slot was handed out, so its segment
            // exists; its node is dead, and its link was written before the
            // push that `take_reclaimed`'s Acquire swap saw.
            self.taken = u64::from(unsafe { self.nodes.link(slot) }.load(Ordering::Relaxed));
            return (slot, false);
        }
        let slot = self.len;
        if u64::from(slot) == self.room {
            self.grow();
        }
        self.len += 1;
        (slot, true)
    }

    /// Takes the whole stack of reclaimed slots, to pop one per insert.
    fn take_reclaimed(&mut self) {
        // Acquire: pairs with the reclamations' Release pushes.
        self.taken = self.nodes.reclaimed.swap(0, Ordering::Acquire);
    }

    fn grow(&mut self) {
        let k = self.segments;
        let layout = self.nodes.layout(k);
        // SAFETY: the layout has a non-zero size (a node is not zero-sized).
        let base = unsafe { alloc::alloc(layout) }.cast::<Node<K, V>>();
        if base.is_null() {
            alloc::handle_alloc_error(layout);
        }
        // Relaxed: readers reach this segment only through an entry stored
        // later with Release.
        self.nodes.segments[k].store(base, Ordering::Relaxed);
        self.segments += 1;
        self.room += self.nodes.segment_len(k) as u64;
    }

    /// Writes `node` into `slot` (from `alloc`) and returns it.
    pub(crate) fn place(&mut self, slot: u32, node: Node<K, V>) -> &Node<K, V> {
        // SAFETY: `slot` was handed out, so its segment is allocated, under
        // this lock.
        let at = unsafe { self.nodes.at(slot) };
        // SAFETY: a free slot's previous node (if any) was reclaimed after
        // every reader that could see it unpinned, and its contents were
        // dropped; nobody else refers to this memory.
        unsafe {
            at.write(node);
            &*at
        }
    }

    /// Retires the node in `slot`, already unreachable for new readers:
    /// its contents are dropped and its slot freed once the write hands it
    /// over and no reader pinned by then can hold it.
    pub(crate) fn retire(&mut self, slot: u32) {
        self.retiring.push(slot);
    }

    /// Retires `value`, just replaced in place in a node: it is dropped
    /// once the write hands it over and no reader that may be about to
    /// take a count on it is pinned.
    pub(crate) fn retire_value(&mut self, value: Arc<V>) {
        self.replaced.push(value);
    }

    /// Retirements the write under way has gathered.
    pub(crate) fn retiring(&self) -> usize {
        self.retiring.len() + self.replaced.len()
    }

    /// Takes the write's retirements out, to be handed to the collector
    /// (see [`HandOver::defer`]) once the lock is released.
    ///
    /// Most writes retire one node (an eviction, a take) or one value
    /// (replaced in place) and nothing else: that slot comes out as a
    /// number (the arena's count is taken after the lock is released), or
    /// that value as itself. Moving the two inline vectors out and
    /// iterating them had cost such a write some 60 instructions
    /// (callgrind, `fixed tlscache ticket_small 1`).
    pub(crate) fn hand_over(&mut self) -> HandOver<K, V> {
        match (self.retiring.as_slice(), self.replaced.len()) {
            ([], 0) => HandOver::Nothing,
            (&[slot], 0) => {
                self.retiring.clear();
                HandOver::One(slot)
            }
            ([], 1) => match self.replaced.pop() {
                Some(value) => HandOver::Value(value),
                None => HandOver::Nothing,
            },
            _ => HandOver::Many(Retired {
                nodes: Arc::clone(&self.nodes),
                slots: std::mem::take(&mut self.retiring),
                values: std::mem::take(&mut self.replaced),
            }),
        }
    }

    /// Drops the live node in `slot` in place, at the shard's end (no
    /// reader is left, nothing is deferred for it).
    ///
    /// # Safety
    ///
    /// `slot` holds a live node, and this is its last use.
    pub(crate) unsafe fn drop_live(&mut self, slot: u32) {
        // SAFETY: per the contract (and the segment is allocated).
        unsafe { ptr::drop_in_place(self.nodes.at(slot)) };
    }
}

/// The LRU list's stamps live in the nodes (`Node::placed`).
impl<K, V: ?Sized + Thin> ListStamps for Arena<K, V> {
    fn stamp_of(&self, slot: u32) -> u32 {
        // SAFETY: the list names only live slots (placed, not retired; see
        // `Lru`), and only the shard lock's holder, who holds this arena,
        // calls this.
        unsafe { self.get(slot) }.placed.load(Ordering::Relaxed)
    }

    fn set_stamp(&self, slot: u32, stamp: u64) {
        // SAFETY: as in `get`: a slot being placed holds its new node.
        unsafe { self.get(slot) }
            .placed
            // Truncation intended: the low half is kept (see `Node`).
            .store(stamp as u32, Ordering::Relaxed);
    }
}

impl<K, V: ?Sized + Thin> Drop for Arena<K, V> {
    fn drop(&mut self) {
        for &slot in &self.retiring {
            // SAFETY: a slot retired and not handed over holds a node
            // whose contents only this drops; the arena goes with its
            // shard, so no reader is left to hold them.
            drop(unsafe { self.nodes.take_contents(slot) });
        }
    }
}

/// One write's retirements on their way to the collector, taken out
/// under the shard lock by [`Arena::hand_over`].
pub(crate) enum HandOver<K, V: ?Sized + Thin> {
    /// The write retired nothing.
    Nothing,
    /// The write retired this one slot and no value.
    One(u32),
    /// The write retired this one value and no slot.
    Value(Arc<V>),
    /// Anything else.
    Many(Retired<K, V>),
}

impl<K, V: ?Sized + Thin> HandOver<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Hands each retirement to the collector under `guard`, pinned for
    /// the write that retired them. `nodes` must be the memory of the
    /// arena that handed them over (the shard's own handle on it), which a
    /// slot's reclamation holds a count on.
    #[inline(always)]
    pub(crate) fn defer(self, nodes: &Arc<Nodes<K, V>>, guard: &Guard) {
        match self {
            HandOver::Nothing => {}
            HandOver::One(slot) => {
                let nodes = Arc::clone(nodes);
                // SAFETY (of the reclamation): `nodes` is the memory of the
                // arena that retired `slot` (the caller's contract); the
                // node is out of the index and the shard's lists, so after
                // every thread pinned now has unpinned nobody can reach
                // it, and a slot is retired once.
                guard.defer(move || {
                    // SAFETY: see above.
                    unsafe { Nodes::reclaim_soon(nodes, slot) }
                });
            }
            // Out of its node: dropped once no reader pinned now can be
            // about to take a count on it.
            HandOver::Value(value) => guard.defer(move || crate::doomed::release(value)),
            HandOver::Many(retired) => retired.defer(guard),
        }
    }
}

/// Retirements other than a single slot.
pub(crate) struct Retired<K, V: ?Sized + Thin> {
    nodes: Arc<Nodes<K, V>>,
    slots: SmallVec<[u32; 4]>,
    values: SmallVec<[Arc<V>; 2]>,
}

impl<K, V: ?Sized + Thin> Retired<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Hands each retirement to the collector under `guard`, pinned for
    /// the write that retired them: a call per slot and one per value, of
    /// two words or one (crossbeam-epoch keeps them inline).
    #[inline(never)]
    pub(crate) fn defer(self, guard: &Guard) {
        let Retired {
            nodes,
            slots,
            values,
        } = self;
        let last = slots.len();
        let mut count = Some(nodes);
        for (n, slot) in slots.into_iter().enumerate() {
            // The last call takes the write's own count on the arena.
            let held = if n + 1 == last {
                count.take()
            } else {
                count.clone()
            };
            let Some(nodes) = held else {
                break;
            };
            // SAFETY (of the reclamation): the node is out of the index and
            // the shard's lists, so after every thread pinned now has
            // unpinned nobody can reach it; each slot is retired once.
            guard.defer(move || {
                // SAFETY: see above.
                unsafe { Nodes::reclaim_soon(nodes, slot) }
            });
        }
        for value in values {
            // Out of its node: dropped once no reader pinned now can be
            // about to take a count on it.
            guard.defer(move || crate::doomed::release(value));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The line (of 64 bytes) each byte of `range` falls on, first and last.
    fn lines(range: std::ops::Range<usize>) -> (usize, usize) {
        (range.start / 64, (range.end - 1) / 64)
    }

    #[test]
    fn the_directory_shares_no_line_with_the_count_or_the_stack() {
        type N = Nodes<[u8; 32], Vec<u8>>;
        // In an `Arc`, the two counts come first, then the value at its
        // alignment: a whole line or more after them.
        assert!(std::mem::align_of::<N>() >= 2 * LINE);
        let directory = std::mem::offset_of!(N, shift)
            ..std::mem::offset_of!(N, segments) + std::mem::size_of::<[usize; SEGMENTS]>();
        let stack = std::mem::offset_of!(N, reclaimed)
            ..std::mem::offset_of!(N, reclaimed) + std::mem::size_of::<AtomicU64>();
        assert_eq!(directory.start, 0, "the directory starts the value");
        assert!(lines(directory).1 < lines(stack).0);
    }

    #[test]
    fn a_collection_sets_reclamations_aside_for_the_next_writes() {
        let mut arena: Arena<u64, u64> = Arena::new(Some(10));
        let value = Arc::new(7u64);
        for want in 0..3 {
            let (slot, _) = arena.alloc();
            assert_eq!(slot, want);
            arena.place(
                slot,
                Node::new(u64::from(slot), Arc::clone(&value), 0, 0, 0),
            );
        }
        let nodes = arena.nodes();
        crate::doomed::collecting(|| {
            for slot in 0..2 {
                // SAFETY: slots 0 and 1 hold nodes no reader reaches (none
                // was published), each reclaimed once.
                unsafe { Nodes::reclaim_soon(Arc::clone(&nodes), slot) };
            }
        });
        // Set aside: the nodes still hold their values, and no slot is
        // back for reuse.
        assert_eq!(Arc::strong_count(&value), 4);
        let (slot, new) = arena.alloc();
        assert_eq!((slot, new), (3, true));
        // The next write runs both (two a write).
        crate::doomed::drop_some();
        assert_eq!(Arc::strong_count(&value), 2);
        let (slot, new) = arena.alloc();
        assert!(slot < 2 && !new, "slot {slot}, new {new}");
        // Outside a collection: at once.
        // SAFETY: slot 2 holds a node no reader reaches, reclaimed once.
        unsafe { Nodes::reclaim_soon(Arc::clone(&nodes), 2) };
        assert_eq!(Arc::strong_count(&value), 1);
    }

    #[test]
    fn segments_double_and_slots_map_into_them() {
        let mut arena: Arena<u64, u64> = Arena::new(Some(10));
        let nodes = arena.nodes();
        assert_eq!(nodes.shift, 4);
        assert_eq!(nodes.locate(0), (0, 0));
        assert_eq!(nodes.locate(15), (0, 15));
        assert_eq!(nodes.locate(16), (1, 0));
        assert_eq!(nodes.locate(31), (1, 15));
        assert_eq!(nodes.locate(32), (2, 0));
        assert_eq!(nodes.locate(63), (2, 31));
        assert_eq!(nodes.locate(64), (3, 0));
        assert_eq!(
            nodes.locate(u32::MAX),
            (28, (u32::MAX - (1 << 31)) as usize)
        );
        assert_eq!(nodes.segment_len(28), 1 << 31);
        // Handing out 100 slots allocates segments of 16, 16, 32 and 64.
        for want in 0..100 {
            let (slot, new) = arena.alloc();
            assert_eq!((slot, new), (want, true));
            let node = Node::new(u64::from(slot), Arc::new(0), 0, 0, 0);
            assert_eq!(arena.place(slot, node).key, u64::from(slot));
        }
        assert_eq!((arena.segments, arena.room), (4, 128));
        for slot in 0..100 {
            // SAFETY: every slot below 100 holds a live node.
            assert_eq!(unsafe { arena.get(slot) }.key, u64::from(slot));
            // SAFETY: as above; this is each node's last use.
            unsafe { arena.drop_live(slot) };
        }
    }
}
