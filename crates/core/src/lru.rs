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

const HEAD: u32 = 0;
/// `prev` of a slot that is not in the list.
const UNLINKED: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
}

/// Where the list stamps of the slots in a list are kept.
pub(crate) trait ListStamps {
    /// The list stamp of `slot`, which is in the list (or being placed).
    fn stamp_of(&self, slot: u32) -> u64;
    /// Sets the list stamp of `slot`, which is being placed.
    fn set_stamp(&self, slot: u32, stamp: u64);
}

/// A circular doubly-linked list through arena slots, newest first.
/// Link 0 is the sentinel; arena slot `i` owns link `i + 1`.
#[derive(Debug)]
pub(crate) struct Lru {
    links: Vec<Link>,
}

impl Lru {
    pub(crate) fn new() -> Self {
        Self {
            links: vec![Link {
                prev: HEAD,
                next: HEAD,
            }],
        }
    }

    /// Makes room for arena slots `0..slots`.
    pub(crate) fn grow(&mut self, slots: usize) {
        if self.links.len() < slots + 1 {
            self.links.resize(
                slots + 1,
                Link {
                    prev: UNLINKED,
                    next: UNLINKED,
                },
            );
        }
    }

    /// Reserves exactly enough memory for arena slots `0..slots`.
    pub(crate) fn reserve(&mut self, slots: usize) {
        self.links
            .reserve_exact((slots + 1).saturating_sub(self.links.len()));
    }

    /// Inserts `slot`, placed by `stamp` (newest nearest the head), and
    /// records `stamp` as its list stamp.
    pub(crate) fn insert(&mut self, slot: u32, stamp: u64, stamps: &impl ListStamps) {
        let link = slot + 1;
        let mut after = HEAD;
        let mut next = self.links[HEAD as usize].next;
        while next != HEAD && stamps.stamp_of(next - 1) > stamp {
            after = next;
            next = self.links[next as usize].next;
        }
        stamps.set_stamp(slot, stamp);
        self.links[link as usize] = Link { prev: after, next };
        self.links[after as usize].next = link;
        self.links[next as usize].prev = link;
    }

    /// Removes `slot`, which is in the list.
    pub(crate) fn remove(&mut self, slot: u32) {
        let Link { prev, next, .. } = self.links[(slot + 1) as usize];
        self.links[prev as usize].next = next;
        self.links[next as usize].prev = prev;
        self.links[(slot + 1) as usize].prev = UNLINKED;
    }

    /// Whether `slot` is in the list.
    pub(crate) fn contains(&self, slot: u32) -> bool {
        self.links
            .get((slot + 1) as usize)
            .is_some_and(|link| link.prev != UNLINKED)
    }

    /// Re-places `slot` (in the list) by `stamp` if that is newer than
    /// where it stands.
    pub(crate) fn touch(&mut self, slot: u32, stamp: u64, stamps: &impl ListStamps) {
        if stamp > stamps.stamp_of(slot) {
            self.remove(slot);
            self.insert(slot, stamp, stamps);
        }
    }

    /// Starts loading `slot`'s links into cache (see
    /// [`prefetch`](crate::sync::prefetch)).
    #[inline]
    pub(crate) fn prefetch(&self, slot: u32) {
        if let Some(link) = self.links.get((slot + 1) as usize) {
            crate::sync::prefetch(link);
        }
    }

    /// Starts loading the links of `slot`'s neighbours (`slot` is in the
    /// list), which removing it writes.
    #[inline]
    pub(crate) fn prefetch_neighbours(&self, slot: u32) {
        if let Some(link) = self.links.get((slot + 1) as usize) {
            for at in [link.prev, link.next] {
                if let Some(l) = self.links.get(at as usize) {
                    crate::sync::prefetch(l);
                }
            }
        }
    }

    /// The least recently placed slot.
    pub(crate) fn tail(&self) -> Option<u32> {
        let tail = self.links[HEAD as usize].prev;
        (tail != HEAD).then(|| tail - 1)
    }

    #[cfg(test)]
    fn order(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = self.links[HEAD as usize].next;
        while at != HEAD {
            out.push(at - 1);
            at = self.links[at as usize].next;
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
