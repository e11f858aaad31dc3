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
//! that could hold its node unpin. The nodes a write retires, and the
//! values it replaces in place, gather in a [`Batch`] under the shard
//! lock, and the write hands the batch to the collector as one deferred
//! call once it has released the lock. The call drops the nodes' keys and
//! values and the replaced values, and pushes the batch, slots and all,
//! onto a lock-free stack of reclaimed batches. Writers take that whole
//! stack at once (a swap, so the stack has no ABA problem) under the shard
//! lock, take free slots from the batches' lists without reading a node,
//! and use the emptied batches again. The deferred call holds the arena's
//! memory alive by reference count, so it may run after the shard is gone.
//!
//! So a write pays one deferred call and one count on the arena whatever
//! it retired, and no walk over reclaimed nodes under the lock (a stack
//! linked through the nodes themselves had put tens of microseconds into
//! some writes).

use std::alloc::{self, Layout};
use std::ptr;

use crate::entry::Node;
use crate::lru::ListStamps;
use crate::sync::epoch::Guard;
use crate::sync::{Arc, AtomicPtr, Ordering, UnsafeCell};

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
/// Emptied batches a shard keeps for reuse: more than the writes whose
/// batches the collector holds at once in a steady flow, so that a write
/// seldom allocates one.
const SPARE_BATCHES: usize = 256;

/// One write's retired nodes' slots and replaced values, freed together
/// once no pinned reader can hold them. Filled under the shard lock; once
/// handed over, owned by its deferred reclamation, then by the reclaimed
/// stack, then by the writer that takes the stack.
pub(crate) struct Batch<V> {
    /// Reached only by the batch's owner of the moment. A cell that loom
    /// checks: a batch passes between threads through the collector and
    /// the reclaimed stack, and loom fails a model in which an owner's
    /// accesses are not ordered after the previous owner's.
    contents: UnsafeCell<Contents<V>>,
}

struct Contents<V> {
    /// The next batch on the reclaimed stack.
    next: *mut Batch<V>,
    /// Slots of retired nodes, whose contents are dropped when the batch
    /// is reclaimed; free slots once it is.
    slots: Vec<u32>,
    /// Values replaced in place, dropped when the batch is reclaimed.
    values: Vec<Arc<V>>,
}

impl<V> Batch<V> {
    fn new() -> Box<Self> {
        Box::new(Self {
            contents: UnsafeCell::new(Contents {
                next: ptr::null_mut(),
                slots: Vec::new(),
                values: Vec::new(),
            }),
        })
    }

    /// Calls `f` on the contents. The caller owns the batch (see the type).
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut Contents<V>) -> R) -> R {
        // SAFETY: one owner at a time reaches the contents (see the type),
        // and `f` cannot reach this batch again.
        self.contents.with_mut(|c| f(unsafe { &mut *c }))
    }

    /// Retirements gathered.
    pub(crate) fn len(&self) -> usize {
        self.with(|c| c.slots.len() + c.values.len())
    }
}

// SAFETY: a batch is owned by one thread at a time (the lock's holder,
// the deferred reclamation, or the writer that takes it off the stack);
// `next` is a link only its owner follows, and the values are `Send`.
unsafe impl<V: Send + Sync> Send for Batch<V> {}

/// A shard's node memory, shared by its writers, its readers (who find a
/// slot's node through the segment directory) and the deferred
/// reclamations of retired nodes.
///
/// Segment 0 holds slots `0..2^shift`; segment `k >= 1` holds the
/// `2^(shift + k - 1)` slots after those, so the total doubles with each
/// segment and a slot's segment is its bit length past `shift`.
pub(crate) struct Nodes<K, V> {
    /// Each segment's base, null until allocated. Written under the shard
    /// lock before any node of the segment is published; readers load a
    /// base only after an index entry's `Acquire`, which orders it.
    segments: [AtomicPtr<Node<K, V>>; SEGMENTS],
    shift: u32,
    /// Head of the stack of reclaimed batches (null when empty), linked
    /// through `Batch::next`.
    reclaimed: AtomicPtr<Batch<V>>,
}

// SAFETY: the raw pointers are owned segments, freed once in `Drop`; the
// nodes in them are read and written under the protocol described on
// `Arena` (shard lock, epoch-protected reads, or sole ownership after the
// epoch), and hold `K` and `V`, which are `Send + Sync`.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for Nodes<K, V> {}
// SAFETY: as for `Send`; shared access is through atomics.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Nodes<K, V> {}

impl<K, V> Nodes<K, V> {
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

    /// Drops the contents of the retired nodes in `batch` and the values
    /// it holds, and stacks it for its slots' reuse.
    ///
    /// # Safety
    ///
    /// `batch` was sealed from this arena, and no thread can reach its
    /// nodes or values any more; passed here once.
    unsafe fn reclaim(&self, batch: Box<Batch<V>>) {
        // SAFETY: per the contract, this call owns the nodes' contents.
        unsafe { self.drop_contents(&batch) };
        batch.with(|c| c.values.clear());
        let batch = Box::into_raw(batch);
        let mut head = self.reclaimed.load(Ordering::Relaxed);
        loop {
            // SAFETY: `batch` is ours until the exchange below publishes it.
            unsafe { &*batch }.with(|c| c.next = head);
            // Release: the writer that takes the stack (Acquire) sees the
            // batch's slots and the dropped contents before it reuses them.
            match self.reclaimed.compare_exchange_weak(
                head,
                batch,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Drops the key and value of every node in `batch`.
    ///
    /// # Safety
    ///
    /// Each slot in `batch` holds a retired node that no thread can reach
    /// any more, whose contents have not been dropped.
    unsafe fn drop_contents(&self, batch: &Batch<V>) {
        batch.with(|c| {
            for &slot in &c.slots {
                // SAFETY: a retired slot's segment is allocated and stays
                // so while `self` lives; per the contract its node is ours.
                unsafe {
                    let node = self.at(slot);
                    ptr::drop_in_place(ptr::addr_of_mut!((*node).key));
                    (*node).release_value();
                }
            }
        });
    }
}

impl<K, V> Drop for Nodes<K, V> {
    fn drop(&mut self) {
        // Acquire: pairs with the reclamations' Release pushes (the last
        // count on the arena already orders them; loom checks this one).
        let mut at = self.reclaimed.swap(ptr::null_mut(), Ordering::Acquire);
        while !at.is_null() {
            // SAFETY: stacked batches are owned by the stack, and nothing
            // else is left to take them; their contents were dropped.
            let batch = unsafe { Box::from_raw(at) };
            at = batch.with(|c| c.next);
        }
        for k in 0..SEGMENTS {
            let base = self.segments[k].load(Ordering::Relaxed);
            if !base.is_null() {
                // SAFETY: allocated in `Arena::grow` with this layout; every
                // node in it was dropped (live ones by the shard, retired
                // ones by their reclamation, which held `self` alive until
                // done).
                unsafe { alloc::dealloc(base.cast(), self.layout(k)) };
            }
        }
    }
}

/// Node slots for one shard. Owned by the shard's writer state: every
/// method but the deferred reclamation runs under the shard lock.
pub(crate) struct Arena<K, V> {
    nodes: Arc<Nodes<K, V>>,
    /// Segments allocated so far.
    segments: usize,
    /// Slots in the allocated segments.
    room: u64,
    /// Slots handed out so far (free or not).
    len: u32,
    /// Slots free for reuse now.
    free: Vec<u32>,
    /// The batch the write under way retires to.
    retiring: Box<Batch<V>>,
    /// Emptied batches, for reuse. Boxed: a batch's address is what the
    /// collector and the reclaimed stack hold, and reuse keeps it.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Batch<V>>>,
}

impl<K, V> Arena<K, V> {
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
                reclaimed: AtomicPtr::new(ptr::null_mut()),
            }),
            segments: 0,
            room: 0,
            len: 0,
            free: Vec::new(),
            retiring: Batch::new(),
            spare: Vec::new(),
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
        if self.free.is_empty() {
            self.take_reclaimed();
        }
        match self.free.last() {
            Some(&slot) => Some(slot),
            None => (u64::from(self.len) < self.room).then_some(self.len),
        }
    }

    /// A free slot, and whether it is new (never used before).
    pub(crate) fn alloc(&mut self) -> (u32, bool) {
        if self.free.is_empty() {
            self.take_reclaimed();
        }
        if let Some(slot) = self.free.pop() {
            return (slot, false);
        }
        let slot = self.len;
        if u64::from(slot) == self.room {
            self.grow();
        }
        self.len += 1;
        (slot, true)
    }

    /// Moves every reclaimed slot to the free list and keeps the emptied
    /// batches for reuse.
    fn take_reclaimed(&mut self) {
        // Acquire: pairs with each reclamation's Release push.
        let mut at = self
            .nodes
            .reclaimed
            .swap(ptr::null_mut(), Ordering::Acquire);
        while !at.is_null() {
            // SAFETY: the swap made the stacked batches this writer's;
            // each came from `Box::into_raw` in `reclaim`.
            let batch = unsafe { Box::from_raw(at) };
            at = batch.with(|c| {
                self.free.append(&mut c.slots);
                std::mem::replace(&mut c.next, ptr::null_mut())
            });
            if self.spare.len() < SPARE_BATCHES {
                self.spare.push(batch);
            }
        }
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
    /// its contents are dropped and its slot freed once the write's batch
    /// is handed over and no reader pinned by then can hold it.
    pub(crate) fn retire(&mut self, slot: u32) {
        self.retiring.with(|c| c.slots.push(slot));
    }

    /// Retires `value`, just replaced in place in a node: it is dropped
    /// with the write's batch, once no reader that may be about to take a
    /// count on it is pinned.
    pub(crate) fn retire_value(&mut self, value: Arc<V>) {
        self.retiring.with(|c| c.values.push(value));
    }

    /// Retirements the write under way has gathered.
    pub(crate) fn retiring(&self) -> usize {
        self.retiring.len()
    }

    /// Takes the write's batch out, to be handed to the collector (see
    /// [`Retired::defer`]) once the lock is released, and starts an empty
    /// one; `None` if the write retired nothing.
    pub(crate) fn hand_over(&mut self) -> Option<Retired<K, V>> {
        if self.retiring.len() == 0 {
            return None;
        }
        if self.spare.is_empty() {
            self.take_reclaimed();
        }
        let fresh = self.spare.pop().unwrap_or_else(Batch::new);
        Some(Retired {
            nodes: Arc::clone(&self.nodes),
            batch: std::mem::replace(&mut self.retiring, fresh),
        })
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
impl<K, V> ListStamps for Arena<K, V> {
    fn stamp_of(&self, slot: u32) -> u64 {
        // SAFETY: the list names only live slots (placed, not retired; see
        // `Lru`), and only the shard lock's holder, who holds this arena,
        // calls this.
        unsafe { self.get(slot) }.placed.load(Ordering::Relaxed)
    }

    fn set_stamp(&self, slot: u32, stamp: u64) {
        // SAFETY: as in `get`: a slot being placed holds its new node.
        unsafe { self.get(slot) }
            .placed
            .store(stamp, Ordering::Relaxed);
    }
}

impl<K, V> Drop for Arena<K, V> {
    fn drop(&mut self) {
        // SAFETY: a batch not handed over holds retired nodes whose
        // contents only it drops; the arena goes with its shard, so no
        // reader is left to hold them.
        unsafe { self.nodes.drop_contents(&self.retiring) };
    }
}

/// One write's batch on its way to the collector, taken out under the
/// shard lock.
pub(crate) struct Retired<K, V> {
    nodes: Arc<Nodes<K, V>>,
    batch: Box<Batch<V>>,
}

impl<K, V> Retired<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Hands the batch to the collector under `guard`, pinned for the
    /// write that retired it.
    pub(crate) fn defer(self, guard: &Guard) {
        let Retired { nodes, batch } = self;
        // SAFETY (of the reclamation): the batch's nodes are out of the
        // index and the shard's lists and its values out of their nodes,
        // so after every thread pinned now has unpinned nobody can reach
        // them; the batch is reclaimed exactly once. Two words:
        // crossbeam-epoch keeps the call inline, without an allocation.
        guard.defer(move || {
            // SAFETY: see above.
            unsafe { nodes.reclaim(batch) }
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

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
