//! A shard's node storage: fixed-size segments of node slots that never
//! move, so a node's address is stable for its whole life, and slot `i` is
//! both the node's place in memory and its LRU and wheel link.
//!
//! Against one heap allocation per node, this saves the allocator's header
//! and size-class rounding, the slab of pointers that mapped slots to
//! nodes, and a `malloc`/`free` pair per insert. Segments are aligned to a
//! cache line, so a node of 64 bytes (a 32-byte key) sits on one line.
//!
//! A slot is reused only after the epoch collector has seen every reader
//! that could hold its node unpin: a retired node is handed to
//! [`Arena::retire`], which defers dropping its key and value and pushing
//! its slot onto a lock-free stack of reclaimed slots. Writers take that
//! whole stack at once (a swap, so the stack has no ABA problem) under the
//! shard lock. The deferred call holds the arena's memory alive by
//! reference count, so it may run after the shard is gone.

use std::alloc::{self, Layout};
use std::ptr;

use crate::index::Node;
use crate::sync::epoch::Guard;
use crate::sync::{lock, Arc, AtomicU32, Mutex, Ordering};

/// Slots per segment at most (a bounded shard's first segment holds its
/// capacity when that is smaller), as a shift.
const MAX_SEGMENT_SHIFT: u32 = 16;
/// Slots per segment of an unbounded shard, as a shift.
const UNBOUNDED_SEGMENT_SHIFT: u32 = 10;
/// Slots per segment at least, as a shift.
const MIN_SEGMENT_SHIFT: u32 = 4;
/// Segments are aligned to this, so 64-byte nodes never straddle lines.
const LINE: usize = 64;
/// The empty reclaimed stack.
const EMPTY: u32 = 0;

/// The part of an arena that deferred reclamations share with the shard.
struct Memory<K, V> {
    /// Every segment's base, for freeing. Written only under the shard lock.
    segments: Mutex<Vec<*mut Node<K, V>>>,
    /// Bytes of each segment, for its layout.
    layout: Layout,
    /// Head of the reclaimed stack: slot + 1, or `EMPTY`. Each stacked
    /// slot's node keeps the next link (slot + 1) in its `stamp`.
    reclaimed: AtomicU32,
}

// SAFETY: the raw pointers are owned segments, freed once in `Drop`; the
// nodes in them are read and written under the protocol described on
// `Arena` (shard lock, or sole ownership after the epoch), and hold `K` and
// `V`, which are `Send + Sync`.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for Memory<K, V> {}
// SAFETY: as for `Send`; shared access is the atomic stack head and the
// mutex.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Memory<K, V> {}

impl<K, V> Memory<K, V> {
    /// Drops the contents of the retired node at `node` and stacks its
    /// slot for reuse.
    ///
    /// # Safety
    ///
    /// `node` is an initialised node of this arena that no thread can reach
    /// any more, passed here once.
    unsafe fn reclaim(&self, node: *mut Node<K, V>) {
        // SAFETY: per the contract, this call owns the node's contents.
        let slot = unsafe {
            ptr::drop_in_place(ptr::addr_of_mut!((*node).key));
            ptr::drop_in_place(ptr::addr_of_mut!((*node).value));
            (*node).slot
        };
        // SAFETY: the node's memory stays allocated while `self` lives.
        let link = unsafe { &(*node).stamp };
        let mut head = self.reclaimed.load(Ordering::Relaxed);
        loop {
            link.store(head, Ordering::Relaxed);
            // Release: the writer that takes the stack (Acquire) sees the
            // link and the dropped contents before it reuses the slot.
            match self.reclaimed.compare_exchange_weak(
                head,
                slot + 1,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }
}

impl<K, V> Drop for Memory<K, V> {
    fn drop(&mut self) {
        for &base in lock(&self.segments).iter() {
            // SAFETY: allocated in `Arena::grow` with this layout; every node
            // in it was dropped (live ones by the shard, retired ones by
            // their reclamation, which held `self` alive until done).
            unsafe { alloc::dealloc(base.cast(), self.layout) };
        }
    }
}

/// Node slots for one shard. Owned by the shard's writer state: every
/// method but the deferred reclamation runs under the shard lock.
pub(crate) struct Arena<K, V> {
    memory: Arc<Memory<K, V>>,
    /// The segments' bases, the writers' copy.
    bases: Vec<*mut Node<K, V>>,
    shift: u32,
    /// Slots handed out so far (free or not).
    len: u32,
    /// Slots free for reuse now.
    free: Vec<u32>,
}

impl<K, V> Arena<K, V> {
    /// An empty arena for a shard holding up to `capacity` entries (`None`
    /// when unbounded).
    pub(crate) fn new(capacity: Option<usize>) -> Self {
        // One segment holds a small bounded shard (plus the entry an insert
        // links before it evicts) without slack beyond a power of two; an
        // unbounded one grows by segments of moderate size.
        let shift = capacity.map_or(UNBOUNDED_SEGMENT_SHIFT, |c| {
            c.saturating_add(1)
                .checked_next_power_of_two()
                .map_or(MAX_SEGMENT_SHIFT, usize::trailing_zeros)
                .clamp(MIN_SEGMENT_SHIFT, MAX_SEGMENT_SHIFT)
        });
        let layout = Layout::array::<Node<K, V>>(1 << shift)
            .and_then(|l| l.align_to(LINE))
            .expect("a segment of 2^16 nodes fits the address space");
        Self {
            memory: Arc::new(Memory {
                segments: Mutex::new(Vec::new()),
                layout,
                reclaimed: AtomicU32::new(EMPTY),
            }),
            bases: Vec::new(),
            shift,
            len: 0,
            free: Vec::new(),
        }
    }

    /// Slots handed out so far: every slot index is below this.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// The address of slot `slot`'s node (initialised or not).
    #[inline]
    fn at(&self, slot: u32) -> *mut Node<K, V> {
        let base = self.bases[(slot >> self.shift) as usize];
        // SAFETY: `slot` was handed out, so its segment exists and the
        // offset is inside it.
        unsafe { base.add((slot & ((1 << self.shift) - 1)) as usize) }
    }

    /// The node in `slot`.
    ///
    /// # Safety
    ///
    /// `slot` holds a live node (placed and not yet retired).
    #[inline]
    pub(crate) unsafe fn get<'a>(&self, slot: u32) -> &'a Node<K, V> {
        // SAFETY: per the contract the node is initialised; its memory
        // lives as long as the arena's `Memory`, which the shard holds.
        unsafe { &*self.at(slot) }
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
        if slot as usize == self.bases.len() << self.shift {
            self.grow();
        }
        self.len += 1;
        (slot, true)
    }

    /// Moves every reclaimed slot to the free list.
    fn take_reclaimed(&mut self) {
        // Acquire: pairs with each reclamation's Release push.
        let mut at = self.memory.reclaimed.swap(EMPTY, Ordering::Acquire);
        while at != EMPTY {
            let slot = at - 1;
            self.free.push(slot);
            // SAFETY: a stacked slot's node memory is allocated, and its
            // `stamp` holds the next link, written before the push.
            at = unsafe { &(*self.at(slot)).stamp }.load(Ordering::Relaxed);
        }
    }

    fn grow(&mut self) {
        let layout = self.memory.layout;
        // SAFETY: the layout has a non-zero size (a node is not zero-sized).
        let base = unsafe { alloc::alloc(layout) }.cast::<Node<K, V>>();
        if base.is_null() {
            alloc::handle_alloc_error(layout);
        }
        lock(&self.memory.segments).push(base);
        self.bases.push(base);
    }

    /// Writes `node` into `slot` (from `alloc`) and returns it.
    pub(crate) fn place(&mut self, slot: u32, node: Node<K, V>) -> *const Node<K, V> {
        let at = self.at(slot);
        // SAFETY: a free slot's previous node (if any) was reclaimed after
        // every reader that could see it unpinned, and its contents were
        // dropped; nobody else refers to this memory.
        unsafe { at.write(node) };
        at
    }

    /// Retires `node`, already unreachable for new readers: its contents
    /// are dropped and its slot freed once no pinned reader can hold it.
    pub(crate) fn retire(&self, node: &Node<K, V>, guard: &Guard)
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        let memory = Arc::clone(&self.memory);
        let node = Retired(ptr::from_ref(node).cast_mut());
        // SAFETY (of the reclamation): the node is unlinked from the index
        // and the shard's lists, so after every thread pinned now has
        // unpinned nobody can reach it; it is retired exactly once.
        guard.defer(move || {
            let node = node;
            // SAFETY: see above.
            unsafe { memory.reclaim(node.0) }
        });
    }

    /// Drops the live node in `slot` in place, at the shard's end (no
    /// reader is left, nothing is deferred for it).
    ///
    /// # Safety
    ///
    /// `slot` holds a live node, and this is its last use.
    pub(crate) unsafe fn drop_live(&mut self, slot: u32) {
        // SAFETY: per the contract.
        unsafe { ptr::drop_in_place(self.at(slot)) };
    }
}

/// A retired node's address, sent to whichever thread runs the deferred
/// reclamation.
struct Retired<K, V>(*mut Node<K, V>);

// SAFETY: the node is owned by the reclamation alone once it runs; its
// `K` and `V` are `Send`.
unsafe impl<K: Send, V: Send> Send for Retired<K, V> {}
