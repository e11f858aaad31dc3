//! A shard's hash index: buckets of singly-linked node chains that readers
//! walk with atomic loads under an epoch guard, and writers change under the
//! shard lock.
//!
//! Publication: a writer fills a node, then stores it into a bucket or a
//! `next` field with `Release`; readers load both with `Acquire`, so a node
//! they reach is fully initialised. Unlinking rewrites one predecessor
//! pointer; the unlinked node keeps its own `next`, so a reader standing on
//! it walks on. Unlinked nodes and replaced tables are retired to the epoch
//! collector: a table is freed, and a node's slot returned to the shard's
//! arena, once no pinned reader can hold them.

use std::borrow::Borrow;

use crate::sync::epoch::{Atomic, Guard, Shared};
use crate::sync::{Arc, AtomicU32, Ordering};

/// One cache entry as readers see it. Nodes live in the shard's arena
/// (see `arena`), so a node's address is fixed from the insert that places
/// it until the epoch after its removal.
///
/// `repr(C)` in the order a lookup touches fields: a chain walk reads
/// `next` and `key`; a hit then reads `value` and `deadline` and writes
/// `stamp`. With a 32-byte key the node is 64 bytes, one cache line in the
/// arena. Chains compare keys directly: the key's hash is kept by writers
/// alone, off the readers' line.
#[repr(C)]
pub(crate) struct Node<K, V> {
    /// The node's arena slot (its LRU and wheel link too); fixed for the
    /// node's life.
    pub(crate) slot: u32,
    /// The low half of the newest access stamp (see `lru`; `widen` restores
    /// the rest); written by readers, `Relaxed`: it only orders evictions
    /// and a stale read makes one less exact. In a reclaimed slot it links
    /// the arena's stack of free slots instead.
    pub(crate) stamp: AtomicU32,
    next: Atomic<Node<K, V>>,
    pub(crate) key: K,
    pub(crate) value: Arc<V>,
    /// Clock nanoseconds at which the entry expires; `u64::MAX` is never.
    pub(crate) deadline: u64,
}

impl<K, V> Node<K, V> {
    pub(crate) fn new(key: K, value: Arc<V>, deadline: u64, stamp: u64, slot: u32) -> Self {
        Self {
            slot,
            // Truncation intended: see the field.
            stamp: AtomicU32::new(stamp as u32),
            next: Atomic::null(),
            key,
            value,
            deadline,
        }
    }

    /// Whether the entry has expired at `now` (clock nanoseconds).
    #[inline]
    pub(crate) fn expired(&self, now: u64) -> bool {
        now >= self.deadline && self.deadline != crate::shard::NEVER
    }
}

/// The full access stamp whose low half is `low`, taken as the one within
/// 2^31 of `seq` (the shard's sequence now). Stamps a reader took after
/// `seq` was loaded are a little ahead of it; an entry not accessed for
/// 2^31 of its shard's operations is the only one misread.
#[inline]
pub(crate) fn widen(low: u32, seq: u64) -> u64 {
    let ahead = low.wrapping_sub(seq as u32) as i32;
    seq.saturating_add_signed(i64::from(ahead))
}

/// A bucket array. Dropping a table frees only the array: nodes are owned
/// by the arena and retired one by one.
pub(crate) struct Table<K, V> {
    buckets: Box<[Atomic<Node<K, V>>]>,
    mask: u64,
}

impl<K: 'static, V: 'static> Table<K, V> {
    /// A table of `buckets` (a power of two) empty buckets.
    pub(crate) fn new(buckets: usize) -> Self {
        debug_assert!(buckets.is_power_of_two());
        Self {
            buckets: (0..buckets).map(|_| Atomic::null()).collect(),
            mask: buckets as u64 - 1,
        }
    }

    pub(crate) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    #[inline]
    fn bucket(&self, hash: u64) -> &Atomic<Node<K, V>> {
        // Shards use the hash's top bits, buckets its low bits.
        &self.buckets[(hash & self.mask) as usize]
    }

    /// The node for `key`, expired or not. Lock-free: atomic loads only.
    #[inline]
    pub(crate) fn find<'g, Q>(&self, hash: u64, key: &Q, guard: &'g Guard) -> Option<&'g Node<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        // Acquire pairs with the Release store that linked each node.
        let mut cur = self.bucket(hash).load(Ordering::Acquire, guard);
        // SAFETY: every pointer in a chain is null or a node that was linked
        // while `guard` could observe it; nodes are freed only through
        // `defer_destroy` after being unlinked, so they outlive `guard`.
        while let Some(node) = unsafe { cur.as_ref() } {
            if node.key.borrow() == key {
                return Some(node);
            }
            cur = node.next.load(Ordering::Acquire, guard);
        }
        None
    }

    /// Links the freshly placed `node` (key hash `hash`) at the head of its
    /// bucket. Caller holds the shard lock.
    pub(crate) fn link(&self, node: *const Node<K, V>, hash: u32, guard: &Guard) {
        let bucket = self.bucket(u64::from(hash));
        // SAFETY: `node` was just placed in the arena by the caller, who
        // holds the shard lock; no reader can see it yet.
        let node_ref = unsafe { &*node };
        node_ref
            .next
            .store(bucket.load(Ordering::Relaxed, guard), Ordering::Relaxed);
        // Release: publishes the node's fields to readers' Acquire loads.
        bucket.store(Shared::from(node), Ordering::Release);
    }

    /// Puts `node` in `old`'s place in its chain, in one store, and returns
    /// it. A reader walking the chain sees `old` or `node` there, never a
    /// chain without the key (linking at the head and then unlinking `old`
    /// would let a reader already past the head miss both). Caller holds
    /// the shard lock and must retire `old` afterwards.
    pub(crate) fn replace(
        &self,
        old: &Node<K, V>,
        node: *const Node<K, V>,
        hash: u32,
        guard: &Guard,
    ) {
        let Some(link) = self.link_to(old, hash, guard) else {
            debug_assert!(false, "replacing a node that is not in the table");
            return self.link(node, hash, guard);
        };
        // SAFETY: as in `link`.
        let node_ref = unsafe { &*node };
        node_ref
            .next
            .store(old.next.load(Ordering::Relaxed, guard), Ordering::Relaxed);
        // Release: publishes the node's fields to readers' Acquire loads.
        link.store(Shared::from(node), Ordering::Release);
    }

    /// Unlinks `node` from its bucket. Caller holds the shard lock and must
    /// retire the node afterwards.
    pub(crate) fn unlink(&self, node: &Node<K, V>, hash: u32, guard: &Guard) {
        let Some(link) = self.link_to(node, hash, guard) else {
            debug_assert!(false, "unlinking a node that is not in the table");
            return;
        };
        // Release: a reader that reaches the successor through this link
        // sees it initialised (it already was; this keeps the publication
        // chain unbroken).
        link.store(node.next.load(Ordering::Relaxed, guard), Ordering::Release);
    }

    /// The link (bucket or `next` field) that points at `node`, if it is in
    /// the table (`hash` is its key's). Caller holds the shard lock.
    fn link_to<'g>(
        &'g self,
        node: &Node<K, V>,
        hash: u32,
        guard: &'g Guard,
    ) -> Option<&'g Atomic<Node<K, V>>> {
        let target: *const Node<K, V> = node;
        let mut link = self.bucket(u64::from(hash));
        loop {
            let cur = link.load(Ordering::Relaxed, guard);
            if cur.as_raw() == target {
                return Some(link);
            }
            // SAFETY: under the shard lock no node of this table is freed,
            // so every node of the chain outlives `guard`.
            link = &unsafe { cur.as_ref() }?.next;
        }
    }

    /// Calls `f` on every node. Caller holds the shard lock.
    pub(crate) fn for_each<'g>(&self, guard: &'g Guard, mut f: impl FnMut(Shared<'g, Node<K, V>>)) {
        for bucket in self.buckets.iter() {
            let mut cur = bucket.load(Ordering::Relaxed, guard);
            while !cur.is_null() {
                // SAFETY: as in `find`; besides, the caller's lock keeps
                // every linked node alive.
                let next = unsafe { cur.deref() }.next.load(Ordering::Relaxed, guard);
                f(cur);
                cur = next;
            }
        }
    }
}
