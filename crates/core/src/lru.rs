//! Per-shard LRU order over arena slots.
//!
//! Every access takes a stamp (see `access`) and records it without a lock:
//! in its thread's buffer, or, when that is full, in its entry's node. The
//! list is kept sorted by the stamp each entry had when it was last placed
//! (its *list stamp*); an entry whose node stamp is newer than its list
//! stamp has been used since and is *stale*. Buffered accesses move their
//! entries up when a writer drains them, and stale entries are caught when
//! they come up for eviction: the evictor re-places a stale one by its
//! node stamp and looks again. A clean oldest entry has the smallest stamp
//! in the shard, so eviction is exact LRU as long as no access was lost,
//! which only threads sharing a buffer can cause.
//!
//! Placing walks from the head past entries with a newer list stamp. A fresh
//! access is the newest, so that walk is usually empty. An access recorded
//! in its node is placed only when its entry comes up, and may belong far
//! down the list; past [`MAX_WALK`] entries the walk stops and the entry
//! is *parked* in a heap ordered by list stamp instead. The oldest entry
//! is then the list's tail or the heap's top, whichever is older, so the
//! order stays exact and a placement costs O(`MAX_WALK` + log n).
//!
//! The list keeps only the links; list stamps live with the entries (in the
//! nodes, see [`ListStamps`]), where the 64-byte node has room for them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::access::widen;
use crate::list::{SlotLists, Way};

/// The list's one head: the first of the shard's [`SlotLists`], whose
/// heads are this one and then the wheel's (see `wheel`).
const HEAD: u32 = 0;

/// The list heads the LRU takes at the start of the shard's [`SlotLists`].
pub(crate) const HEADS: u32 = HEAD + 1;

/// Newer entries a placement walks past at most. Each step of the walk
/// reads a node, and an access recorded in its node long before its
/// entry reaches the tail may belong thousands of places below the head:
/// walking there under the shard lock put 150 to 220 µs on one write in a
/// thousand (`cargo run --release -p tlscache-benches --bin latency`,
/// 90/9/1 mix, 12,500 entries per shard).
const MAX_WALK: usize = 32;

/// Dead records the late heap may hold beyond twice its live ones before
/// it is compacted.
const LATE_SLACK: usize = 64;

/// Whether the late heap's record `(stamp, slot)` still stands: the slot
/// is parked (so live: a node leaves the LRU before its slot is freed)
/// and was parked with this stamp, not moved since.
fn live(list: &SlotLists, stamps: &impl ListStamps, stamp: u64, slot: u32) -> bool {
    // The low halves: a stamp that old would be widened wrong, and its
    // record must still stand.
    list.is_parked(list.link(Way::Lru, slot)) && stamps.stamp_of(slot) == stamp as u32
}

/// Where the list stamps of the slots in a list are kept: their low
/// halves, which [`Lru::listed`] widens again against the newest list
/// stamp (as an access stamp is, see `access::widen`), so that a node
/// keeps its list stamp in four bytes.
pub(crate) trait ListStamps {
    /// The low half of the list stamp of `slot`, which is in the list (or
    /// being placed).
    fn stamp_of(&self, slot: u32) -> u32;
    /// Sets the list stamp of `slot` (keeping its low half), which is
    /// being placed.
    fn set_stamp(&self, slot: u32, stamp: u64);
}

/// A circular doubly-linked list through arena slots' [`Way::Lru`] links,
/// newest first (see `list`; the links are the shard's, shared with the
/// wheel and passed to each call), and a heap of the slots whose place was
/// too far down the list to walk to.
#[derive(Debug)]
pub(crate) struct Lru {
    /// `(list stamp, slot)` of parked slots, oldest on top; a record whose
    /// slot has left or moved since is dropped when it comes up.
    late: BinaryHeap<Reverse<(u64, u32)>>,
    /// Slots parked now.
    parked: usize,
    /// At least the newest list stamp in the list (never lowered): a
    /// placement stamped at or after it belongs at the head, and takes it
    /// without reading the first entry's node. A write's own stamp is the
    /// shard's newest almost always, so its placement skips the walk.
    newest: u64,
}

impl Lru {
    pub(crate) fn new() -> Self {
        Self {
            late: BinaryHeap::new(),
            parked: 0,
            newest: 0,
        }
    }

    /// Inserts `slot`, placed by `stamp` (newest nearest the head), and
    /// records `stamp` as its list stamp.
    ///
    /// The walk from the head passes [`MAX_WALK`] newer entries at most:
    /// a slot whose place lies further down waits in the late heap
    /// instead, O(log n), and competes for eviction from there.
    pub(crate) fn insert(
        &mut self,
        list: &mut SlotLists,
        slot: u32,
        stamp: u64,
        stamps: &impl ListStamps,
    ) {
        stamps.set_stamp(slot, stamp);
        let link = list.link(Way::Lru, slot);
        if stamp >= self.newest {
            // Every entry in the list is stamped at or before `stamp`, so
            // the walk would stop at the first: the head is its place.
            self.newest = stamp;
            list.insert_after(link, HEAD);
            return;
        }
        let mut after = HEAD;
        let mut next = list.next(HEAD);
        for _ in 0..=MAX_WALK {
            if next == HEAD || self.listed(stamps, list.slot(next)) <= stamp {
                list.insert_after(link, after);
                return;
            }
            after = next;
            next = list.next(next);
        }
        list.park(link);
        self.late.push(Reverse((stamp, slot)));
        self.parked += 1;
        if self.late.len() > 2 * self.parked + LATE_SLACK {
            // Mostly records of slots that left or moved since: drop them,
            // O(n) once per n records pushed.
            let list = &*list;
            self.late
                .retain(|&Reverse((stamp, slot))| live(list, stamps, stamp, slot));
        }
    }

    /// Removes `slot`, which is in the list or the late heap (whose
    /// record of it is then dropped when it comes up).
    pub(crate) fn remove(&mut self, list: &mut SlotLists, slot: u32) {
        let link = list.link(Way::Lru, slot);
        if list.is_parked(link) {
            list.mark_unlinked(link);
            self.parked -= 1;
            if self.parked == 0 {
                self.late.clear();
            }
        } else {
            list.unlink(link);
        }
    }

    /// Whether `slot` is in the list or the late heap.
    pub(crate) fn contains(list: &SlotLists, slot: u32) -> bool {
        list.contains(Way::Lru, slot)
    }

    /// Re-places `slot` (in the list) by `stamp` if that is newer than
    /// where it stands.
    ///
    /// The list's first entry only takes the newer stamp: it is the newest
    /// placed, so it stays first. Under zipf lookups that is the common
    /// case, a hot entry read again before anything else moved up, and it
    /// saves the unlink and the walk.
    pub(crate) fn touch(
        &mut self,
        list: &mut SlotLists,
        slot: u32,
        stamp: u64,
        stamps: &impl ListStamps,
    ) {
        if stamp > self.listed(stamps, slot) {
            if list.next(HEAD) == list.link(Way::Lru, slot) {
                stamps.set_stamp(slot, stamp);
                self.newest = self.newest.max(stamp);
                return;
            }
            self.remove(list, slot);
            self.insert(list, slot, stamp, stamps);
        }
    }

    /// The list stamp of `slot`, in the list or parked: its low half,
    /// widened against the newest list stamp, which no entry's is after.
    /// An entry left where it is while the list's stamps moved on by 2^31
    /// is misread, as its access stamp is (see `access::widen`): a
    /// placement or the choice between the list's tail and the late
    /// heap's oldest may then put it out of order.
    pub(crate) fn listed(&self, stamps: &impl ListStamps, slot: u32) -> u64 {
        widen(stamps.stamp_of(slot), self.newest)
    }

    /// Starts loading the links of `slot`'s neighbours (`slot` is in the
    /// list), which removing it writes.
    #[inline]
    pub(crate) fn prefetch_neighbours(list: &SlotLists, slot: u32) {
        list.prefetch_neighbours(Way::Lru, slot);
    }

    /// The list's least recently placed slot, not counting the late heap:
    /// the likely victim, for prefetching.
    pub(crate) fn tail(list: &SlotLists) -> Option<u32> {
        let tail = list.prev(HEAD);
        (tail != HEAD).then(|| list.slot(tail))
    }

    /// The least recently placed slot: the list's tail or the late heap's
    /// oldest, whichever was placed first.
    #[inline]
    pub(crate) fn oldest(&mut self, list: &SlotLists, stamps: &impl ListStamps) -> Option<u32> {
        if self.parked == 0 {
            return Self::tail(list);
        }
        self.oldest_of_both(list, stamps)
    }

    #[cold]
    fn oldest_of_both(&mut self, list: &SlotLists, stamps: &impl ListStamps) -> Option<u32> {
        let mut late = None;
        while let Some(&Reverse((stamp, slot))) = self.late.peek() {
            if live(list, stamps, stamp, slot) {
                late = Some((stamp, slot));
                break;
            }
            self.late.pop();
        }
        match (Self::tail(list), late) {
            (Some(tail), Some((stamp, slot))) => Some(if stamp < self.listed(stamps, tail) {
                slot
            } else {
                tail
            }),
            (tail, late) => tail.or(late.map(|(_, slot)| slot)),
        }
    }

    #[cfg(test)]
    fn order(list: &SlotLists) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = list.next(HEAD);
        while at != HEAD {
            out.push(list.slot(at));
            at = list.next(at);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// List stamps in a plain vector, as the nodes would keep them.
    struct Stamps(Vec<Cell<u64>>);

    impl Stamps {
        /// Stamps for slots `0..n`, all zero.
        fn new(n: u32) -> Self {
            Self((0..n).map(|_| Cell::new(0)).collect())
        }
    }

    impl ListStamps for Stamps {
        fn stamp_of(&self, slot: u32) -> u32 {
            // The low half, as a node keeps it.
            self.0[slot as usize].get() as u32
        }
        fn set_stamp(&self, slot: u32, stamp: u64) {
            self.0[slot as usize].set(stamp);
        }
    }

    /// An LRU with lists of its own (heads for nothing else).
    struct L {
        lru: Lru,
        list: SlotLists,
    }

    impl L {
        fn new() -> Self {
            Self {
                lru: Lru::new(),
                list: SlotLists::new(HEADS),
            }
        }
        fn grow(&mut self, slots: usize) {
            self.list.grow(slots);
        }
        fn insert(&mut self, slot: u32, stamp: u64, st: &impl ListStamps) {
            self.lru.insert(&mut self.list, slot, stamp, st);
        }
        fn touch(&mut self, slot: u32, stamp: u64, st: &impl ListStamps) {
            self.lru.touch(&mut self.list, slot, stamp, st);
        }
        fn remove(&mut self, slot: u32) {
            self.lru.remove(&mut self.list, slot);
        }
        fn contains(&self, slot: u32) -> bool {
            Lru::contains(&self.list, slot)
        }
        fn oldest(&mut self, st: &impl ListStamps) -> Option<u32> {
            self.lru.oldest(&self.list, st)
        }
        fn tail(&self) -> Option<u32> {
            Lru::tail(&self.list)
        }
        fn listed(&self, st: &impl ListStamps, slot: u32) -> u64 {
            self.lru.listed(st, slot)
        }
        fn order(&self) -> Vec<u32> {
            Lru::order(&self.list)
        }
    }

    #[test]
    fn touching_the_first_entry_renews_its_stamp_in_place() {
        let mut l = L::new();
        let st = Stamps::new(8);
        l.grow(3);
        for (slot, stamp) in [(0, 1), (1, 2), (2, 3)] {
            l.insert(slot, stamp, &st);
        }
        l.touch(2, 9, &st);
        assert_eq!(l.order(), vec![2, 1, 0]);
        assert_eq!(st.stamp_of(2), 9);
        // An older stamp changes nothing.
        l.touch(2, 5, &st);
        assert_eq!(st.stamp_of(2), 9);
        // The renewed stamp places what comes after it: an access stamped
        // between the old and the new goes below it.
        l.touch(0, 7, &st);
        assert_eq!(l.order(), vec![2, 0, 1]);
        assert_eq!(l.oldest(&st), Some(1));
    }

    #[test]
    fn list_stamps_kept_in_low_halves_order_across_the_low_halfs_wrap() {
        // The placements of `a_placement_older_than_the_newest_still_walks_to_its_place`,
        // stamped where the low half wraps from u32::MAX to 0: the order
        // is the full stamps'.
        let base = (1u64 << 32) - 3;
        let mut l = L::new();
        let st = Stamps::new(8);
        l.grow(4);
        l.insert(0, base + 1, &st);
        l.insert(1, base + 2, &st);
        l.touch(1, base + 10, &st);
        assert_eq!(l.listed(&st, 0), base + 1);
        assert_eq!(l.listed(&st, 1), base + 10);
        l.insert(2, base + 5, &st);
        assert_eq!(l.order(), vec![1, 2, 0]);
        l.insert(3, base + 11, &st);
        assert_eq!(l.order(), vec![3, 1, 2, 0]);
        assert_eq!(l.oldest(&st), Some(0));
        // An older placement than its place: touched by a newer stamp it
        // moves up, by an older one it stays.
        l.touch(0, base + 4, &st);
        assert_eq!(l.order(), vec![3, 1, 2, 0]);
        l.touch(0, base + 12, &st);
        assert_eq!(l.order(), vec![0, 3, 1, 2]);
        assert_eq!(l.oldest(&st), Some(2));
    }

    #[test]
    fn a_placement_older_than_the_newest_still_walks_to_its_place() {
        let mut l = L::new();
        let st = Stamps::new(8);
        l.grow(4);
        l.insert(0, 1, &st);
        l.insert(1, 2, &st);
        // The first entry renewed in place: the newest stamp is now 10.
        l.touch(1, 10, &st);
        // Stamped after slot 0 and before slot 1's renewal: between them,
        // not at the head.
        l.insert(2, 5, &st);
        assert_eq!(l.order(), vec![1, 2, 0]);
        // Newer than all: at the head.
        l.insert(3, 11, &st);
        assert_eq!(l.order(), vec![3, 1, 2, 0]);
        assert_eq!(l.oldest(&st), Some(0));
    }

    #[test]
    fn newest_first_and_touch_moves_up() {
        let mut l = L::new();
        let st = Stamps::new(8);
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
        let mut l = L::new();
        let st = Stamps::new(8);
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

    /// Evicts everything, oldest first, as the shard's evictor would (no
    /// entry is stale here).
    fn drain_oldest(l: &mut L, st: &impl ListStamps) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(slot) = l.oldest(st) {
            l.remove(slot);
            out.push(slot);
        }
        out
    }

    #[test]
    fn late_reports_past_the_walk_are_parked_and_still_evicted_in_order() {
        let n = MAX_WALK as u32 + 10;
        let mut l = L::new();
        let st = Stamps::new(n + 3);
        l.grow(n as usize + 3);
        for slot in 0..n {
            l.insert(slot, 100 + 2 * u64::from(slot), &st);
        }
        // Places `n - 1` and `n - 3` entries down: parked, not walked to.
        l.insert(n, 101, &st);
        l.insert(n + 1, 105, &st);
        // Within the walk: placed in the list, four entries down.
        l.insert(n + 2, 100 + 2 * u64::from(n) - 9, &st);
        assert_eq!(l.lru.parked, 2);
        assert_eq!(l.order().len(), n as usize + 1, "the parked are not listed");
        assert!(l.contains(n) && l.contains(n + 1) && l.contains(n + 2));
        assert_eq!(l.order().iter().position(|&s| s == n + 2), Some(4));
        // Exact order by stamp across the list and the heap.
        let mut want: Vec<u32> = (0..n + 3).collect();
        want.sort_by_key(|&s| st.stamp_of(s));
        assert_eq!(drain_oldest(&mut l, &st), want);
        assert!(l.lru.late.is_empty());
    }

    #[test]
    fn a_parked_slot_moves_and_leaves_like_any_other() {
        let n = MAX_WALK as u32 + 2;
        let mut l = L::new();
        let st = Stamps::new(n + 1);
        l.grow(n as usize + 1);
        for slot in 0..n {
            l.insert(slot, 100 + u64::from(slot), &st);
        }
        l.insert(n, 50, &st);
        assert_eq!(l.oldest(&st), Some(n));
        // A newer access takes it out of the heap, to the head.
        l.touch(n, 1000, &st);
        assert_eq!(l.lru.parked, 0);
        assert_eq!(l.order()[0], n);
        assert_eq!(l.oldest(&st), Some(0));
        // Parked and removed: the heap's record is dead, and so skipped.
        l.touch(0, 99, &st); // older than its place: no move
        l.remove(n);
        l.insert(n, 60, &st);
        l.insert(n, 61, &st); // a second record; only the newest stands
        l.remove(1);
        assert_eq!(l.oldest(&st), Some(n));
        l.remove(n);
        assert!(!l.contains(n));
        assert_eq!(l.oldest(&st), Some(0));
    }

    #[test]
    fn dead_records_do_not_pile_up() {
        let n = MAX_WALK as u32 + 1;
        let mut l = L::new();
        let st = Stamps::new(n + 2);
        l.grow(n as usize + 2);
        for slot in 0..n {
            l.insert(slot, 1_000_000 + u64::from(slot), &st);
        }
        // One slot parked for good, another parked and moved again and
        // again: each move leaves a dead record behind.
        l.insert(n, 1, &st);
        l.insert(n + 1, 2, &st);
        for stamp in 3..10_000 {
            l.remove(n + 1);
            l.insert(n + 1, stamp, &st);
        }
        assert_eq!(l.lru.parked, 2);
        assert!(
            l.lru.late.len() <= 2 * 2 + LATE_SLACK + 1,
            "{}",
            l.lru.late.len()
        );
        assert_eq!(l.oldest(&st), Some(n));
    }

    #[test]
    fn empty_list_has_no_tail() {
        let mut l = L::new();
        let st = Stamps::new(8);
        assert_eq!(l.tail(), None);
        l.grow(1);
        l.insert(0, 9, &st);
        l.remove(0);
        assert_eq!(l.tail(), None);
    }
}
