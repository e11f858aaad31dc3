//! Per-shard LRU order over arena slots.
//!
//! Every access takes a stamp (see `access`) and records it without a lock:
//! in its thread's buffer, or, when that is full, in its entry's node. The
//! list is kept sorted by the stamp each entry had when it was last placed
//! (its *list stamp*); an entry whose node stamp is newer than its list
//! stamp has been used since and is *stale*. Buffered accesses move their
//! entries up when a writer drains them, and stale entries are caught when
//! they reach the tail: the evictor re-places a stale tail by its node
//! stamp and looks again. A clean tail has the smallest stamp in the shard,
//! so eviction is exact LRU as long as no access was lost, which only
//! threads sharing a buffer can cause.
//!
//! Placing walks from the head past entries with a newer list stamp. A fresh
//! access is the newest, so that walk is usually empty; only an access the
//! buffer lost and that many later accesses overtook walks further.
//!
//! The list keeps only the links; list stamps live with the entries (in the
//! nodes, see [`ListStamps`]), where the 64-byte node has room for them.

use crate::list::SlotLists;

/// The list's one head.
const HEAD: u32 = 0;

/// Where the list stamps of the slots in a list are kept.
pub(crate) trait ListStamps {
    /// The list stamp of `slot`, which is in the list (or being placed).
    fn stamp_of(&self, slot: u32) -> u64;
    /// Sets the list stamp of `slot`, which is being placed.
    fn set_stamp(&self, slot: u32, stamp: u64);
}

/// A circular doubly-linked list through arena slots, newest first (see
/// `list`; one head, so arena slot `i` owns link `i + 1`).
#[derive(Debug)]
pub(crate) struct Lru {
    list: SlotLists,
}

impl Lru {
    pub(crate) fn new() -> Self {
        Self {
            list: SlotLists::new(1),
        }
    }

    /// Makes room for arena slots `0..slots`.
    pub(crate) fn grow(&mut self, slots: usize) {
        self.list.grow(slots);
    }

    /// Reserves exactly enough memory for arena slots `0..slots`.
    pub(crate) fn reserve(&mut self, slots: usize) {
        self.list.reserve(slots);
    }

    /// Inserts `slot`, placed by `stamp` (newest nearest the head), and
    /// records `stamp` as its list stamp.
    pub(crate) fn insert(&mut self, slot: u32, stamp: u64, stamps: &impl ListStamps) {
        let list = &self.list;
        let mut after = HEAD;
        let mut next = list.next(HEAD);
        while next != HEAD && stamps.stamp_of(list.slot(next)) > stamp {
            after = next;
            next = list.next(next);
        }
        stamps.set_stamp(slot, stamp);
        self.list.insert_after(self.list.link(slot), after);
    }

    /// Removes `slot`, which is in the list.
    pub(crate) fn remove(&mut self, slot: u32) {
        self.list.unlink(self.list.link(slot));
    }

    /// Whether `slot` is in the list.
    pub(crate) fn contains(&self, slot: u32) -> bool {
        self.list.contains(slot)
    }

    /// Re-places `slot` (in the list) by `stamp` if that is newer than
    /// where it stands.
    pub(crate) fn touch(&mut self, slot: u32, stamp: u64, stamps: &impl ListStamps) {
        if stamp > stamps.stamp_of(slot) {
            self.remove(slot);
            self.insert(slot, stamp, stamps);
        }
    }

    /// Starts loading `slot`'s link into cache (see
    /// [`prefetch`](crate::sync::prefetch)).
    #[inline]
    pub(crate) fn prefetch(&self, slot: u32) {
        self.list.prefetch(slot);
    }

    /// Starts loading the links of `slot`'s neighbours (`slot` is in the
    /// list), which removing it writes.
    #[inline]
    pub(crate) fn prefetch_neighbours(&self, slot: u32) {
        self.list.prefetch_neighbours(slot);
    }

    /// The least recently placed slot.
    pub(crate) fn tail(&self) -> Option<u32> {
        let tail = self.list.prev(HEAD);
        (tail != HEAD).then(|| self.list.slot(tail))
    }

    #[cfg(test)]
    fn order(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = self.list.next(HEAD);
        while at != HEAD {
            out.push(self.list.slot(at));
            at = self.list.next(at);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// List stamps in a plain array, as the nodes would keep them.
    struct Stamps([Cell<u64>; 8]);

    impl Stamps {
        fn new() -> Self {
            Self(std::array::from_fn(|_| Cell::new(0)))
        }
    }

    impl ListStamps for Stamps {
        fn stamp_of(&self, slot: u32) -> u64 {
            self.0[slot as usize].get()
        }
        fn set_stamp(&self, slot: u32, stamp: u64) {
            self.0[slot as usize].set(stamp);
        }
    }

    #[test]
    fn newest_first_and_touch_moves_up() {
        let mut l = Lru::new();
        let st = Stamps::new();
        l.grow(4);
        for (slot, stamp) in [(0, 1), (1, 2), (2, 3), (3, 4)] {
            l.insert(slot, stamp, &st);
        }
        assert_eq!(l.order(), vec![3, 2, 1, 0]);
        l.touch(1, 5, &st);
        assert_eq!(l.order(), vec![1, 3, 2, 0]);
        assert_eq!(l.tail(), Some(0));
        assert_eq!(st.stamp_of(0), 1);
        l.remove(0);
        assert_eq!(l.tail(), Some(2));
        assert_eq!(st.stamp_of(2), 3);
        assert!(!l.contains(0));
        assert!(l.contains(1));
    }

    #[test]
    fn late_reports_land_in_stamp_order() {
        let mut l = Lru::new();
        let st = Stamps::new();
        l.grow(4);
        for (slot, stamp) in [(0, 1), (1, 2), (2, 3), (3, 4)] {
            l.insert(slot, stamp, &st);
        }
        // Accessed as 0 (stamp 6), then 1 (stamp 5) reported out of order.
        l.touch(0, 6, &st);
        l.touch(1, 5, &st);
        assert_eq!(l.order(), vec![0, 1, 3, 2]);
        // A stale report never moves an entry down.
        l.touch(0, 2, &st);
        assert_eq!(l.order(), vec![0, 1, 3, 2]);
    }

    #[test]
    fn empty_list_has_no_tail() {
        let mut l = Lru::new();
        let st = Stamps::new();
        assert_eq!(l.tail(), None);
        l.grow(1);
        l.insert(0, 9, &st);
        l.remove(0);
        assert_eq!(l.tail(), None);
    }
}
