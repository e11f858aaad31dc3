//! Circular doubly linked lists through arena slots, the one mechanism
//! under the LRU order (`lru`) and the timing wheel (`wheel`).
//!
//! A [`SlotLists`] keeps every link in one vector: first the list heads
//! (sentinels, each an empty list to begin with), then two links per arena
//! slot, side by side: its [`Way::Lru`] link and its [`Way::Wheel`] link.
//! A slot is in at most one list of each way at a time. The two links of a
//! slot are 16 bytes at an even index, so (the vector's memory being
//! 16-byte aligned, as the allocator's is) they share a cache line: a
//! write that links, unlinks or evicts an entry reads and writes both of
//! its links, and side by side that is one miss, not two. Linking,
//! unlinking and moving are O(1) and allocate nothing once the vector has
//! room for the shard's slots.

/// Which of its two links a slot uses: the LRU order's or the wheel's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    Lru = 0,
    Wheel = 1,
}

/// `prev` of a slot's link that is in no list.
const UNLINKED: u32 = u32::MAX;
/// `prev` of a slot's link that is *parked*: in no list, but held by the
/// list's owner elsewhere, so [`SlotLists::contains`] still says yes.
const PARKED: u32 = u32::MAX - 1;

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
}

/// Lists through arena slots, with `heads` list heads (rounded up to an
/// even count, so each slot's pair of links starts at an even index).
#[derive(Debug)]
pub(crate) struct SlotLists {
    links: Vec<Link>,
    heads: u32,
}

impl SlotLists {
    /// `heads` empty lists (heads `0..heads`), with room for no slot yet.
    pub(crate) fn new(heads: u32) -> Self {
        let heads = heads.next_multiple_of(2);
        Self {
            links: (0..heads).map(|i| Link { prev: i, next: i }).collect(),
            heads,
        }
    }

    /// The link arena slot `slot` owns in `way`.
    #[inline]
    pub(crate) fn link(&self, way: Way, slot: u32) -> u32 {
        self.heads + 2 * slot + way as u32
    }

    /// The arena slot that owns `link` (not a head), in either way.
    #[inline]
    pub(crate) fn slot(&self, link: u32) -> u32 {
        (link - self.heads) / 2
    }

    /// Makes room for arena slots `0..slots`.
    pub(crate) fn grow(&mut self, slots: usize) {
        let want = self.heads as usize + 2 * slots;
        if self.links.len() < want {
            self.links.resize(
                want,
                Link {
                    prev: UNLINKED,
                    next: UNLINKED,
                },
            );
        }
    }

    /// Reserves exactly enough memory for arena slots `0..slots`.
    pub(crate) fn reserve(&mut self, slots: usize) {
        let want = self.heads as usize + 2 * slots;
        self.links
            .reserve_exact(want.saturating_sub(self.links.len()));
    }

    /// The link after `link` (a head's first member, or the head itself
    /// when its list is empty).
    #[inline]
    pub(crate) fn next(&self, link: u32) -> u32 {
        self.links[link as usize].next
    }

    /// The link before `link` (a head's last member).
    #[inline]
    pub(crate) fn prev(&self, link: u32) -> u32 {
        self.links[link as usize].prev
    }

    /// Whether arena slot `slot` is in a list of `way` or parked there
    /// (false for a slot there is no room for yet).
    #[inline]
    pub(crate) fn contains(&self, way: Way, slot: u32) -> bool {
        self.links
            .get(self.link(way, slot) as usize)
            .is_some_and(|l| l.prev != UNLINKED)
    }

    /// Links `link`, in no list, right after `after` (a head or a member).
    #[inline]
    pub(crate) fn insert_after(&mut self, link: u32, after: u32) {
        let next = self.links[after as usize].next;
        self.links[link as usize] = Link { prev: after, next };
        self.links[after as usize].next = link;
        self.links[next as usize].prev = link;
    }

    /// Unlinks `link`, which is in a list, and returns its former
    /// neighbours: equal when the list is now empty (both its head).
    #[inline]
    pub(crate) fn unlink(&mut self, link: u32) -> (u32, u32) {
        let Link { prev, next } = self.links[link as usize];
        self.links[prev as usize].next = next;
        self.links[next as usize].prev = prev;
        self.links[link as usize].prev = UNLINKED;
        (prev, next)
    }

    /// Empties head `head`'s list and returns its first member (or `head`
    /// itself if it was empty). The members still chain to `head` through
    /// [`next`](Self::next) and count as linked until each is
    /// [`unlinked`](Self::mark_unlinked) or linked again.
    pub(crate) fn detach(&mut self, head: u32) -> u32 {
        let first = self.links[head as usize].next;
        self.links[head as usize] = Link {
            prev: head,
            next: head,
        };
        first
    }

    /// Parks `link`, which is in no list (see [`PARKED`]).
    #[inline]
    pub(crate) fn park(&mut self, link: u32) {
        self.links[link as usize].prev = PARKED;
    }

    /// Whether `link` is parked.
    #[inline]
    pub(crate) fn is_parked(&self, link: u32) -> bool {
        self.links[link as usize].prev == PARKED
    }

    /// Marks `link`, a member of a detached list or parked, as in no list.
    #[inline]
    pub(crate) fn mark_unlinked(&mut self, link: u32) {
        self.links[link as usize].prev = UNLINKED;
    }

    /// Starts loading arena slot `slot`'s links, both ways (see
    /// [`prefetch`](crate::sync::prefetch)).
    #[inline]
    pub(crate) fn prefetch(&self, slot: u32) {
        // The pair starts with the LRU link; the wheel's is on its line.
        if let Some(link) = self.links.get(self.link(Way::Lru, slot) as usize) {
            crate::sync::prefetch(link);
        }
    }

    /// Starts loading the links of the neighbours of arena slot `slot` in
    /// `way`, which unlinking it writes; nothing if it is in no list.
    #[inline]
    pub(crate) fn prefetch_neighbours(&self, way: Way, slot: u32) {
        if let Some(link) = self.links.get(self.link(way, slot) as usize) {
            if link.prev != UNLINKED && link.prev != PARKED {
                for at in [link.prev, link.next] {
                    if let Some(l) = self.links.get(at as usize) {
                        crate::sync::prefetch(l);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slots of `head`'s list, first to last, checking the back links.
    fn members(l: &SlotLists, head: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = l.next(head);
        let mut before = head;
        while at != head {
            assert_eq!(l.prev(at), before, "back link of {at}");
            out.push(l.slot(at));
            before = at;
            at = l.next(at);
        }
        assert_eq!(l.prev(head), before, "the head's back link");
        out
    }

    #[test]
    fn links_unlinks_and_detaches_across_heads() {
        let mut l = SlotLists::new(2);
        l.grow(5);
        assert!((0..5).all(|s| !l.contains(Way::Lru, s)));
        assert!(
            !l.contains(Way::Lru, 99),
            "a slot without room is in no list"
        );
        for s in 0..3 {
            l.insert_after(l.link(Way::Lru, s), 0);
        }
        l.insert_after(l.link(Way::Lru, 3), 1);
        l.insert_after(l.link(Way::Lru, 4), l.link(Way::Lru, 3));
        assert_eq!(members(&l, 0), vec![2, 1, 0]);
        assert_eq!(members(&l, 1), vec![3, 4]);
        assert_eq!(
            l.unlink(l.link(Way::Lru, 1)),
            (l.link(Way::Lru, 2), l.link(Way::Lru, 0))
        );
        assert!(!l.contains(Way::Lru, 1));
        assert_eq!(members(&l, 0), vec![2, 0]);
        // The last member out leaves its head alone: both neighbours are it.
        l.unlink(l.link(Way::Lru, 3));
        assert_eq!(l.unlink(l.link(Way::Lru, 4)), (1, 1));
        assert_eq!(members(&l, 1), Vec::<u32>::new());
        let first = l.detach(0);
        assert_eq!(l.slot(first), 2);
        assert_eq!(members(&l, 0), Vec::<u32>::new());
        assert!(l.contains(Way::Lru, 2), "detached members count as linked");
        l.mark_unlinked(first);
        assert!(!l.contains(Way::Lru, 2));
    }

    #[test]
    fn a_slots_two_links_are_separate_lists_side_by_side() {
        // An odd head count is rounded up: the pairs start at even indices.
        let mut l = SlotLists::new(3);
        l.grow(4);
        for s in 0..4 {
            let lru = l.link(Way::Lru, s);
            assert_eq!(lru % 2, 0, "slot {s}'s pair starts at an even index");
            assert_eq!(l.link(Way::Wheel, s), lru + 1);
            assert_eq!(l.slot(lru), s);
            assert_eq!(l.slot(lru + 1), s);
            // Sixteen bytes at an even index: one line, never two.
            let bytes = lru as usize * std::mem::size_of::<Link>();
            assert_eq!(bytes % 16, 0);
        }
        // Slot 1 in list 0 by its LRU link and in list 2 by its wheel link;
        // slot 2 in list 0 only.
        l.insert_after(l.link(Way::Lru, 1), 0);
        l.insert_after(l.link(Way::Wheel, 1), 2);
        l.insert_after(l.link(Way::Lru, 2), 0);
        assert_eq!(members(&l, 0), vec![2, 1]);
        assert_eq!(members(&l, 2), vec![1]);
        assert!(l.contains(Way::Wheel, 1) && !l.contains(Way::Wheel, 2));
        // Unlinking one way leaves the other alone.
        l.unlink(l.link(Way::Wheel, 1));
        assert!(!l.contains(Way::Wheel, 1));
        assert!(l.contains(Way::Lru, 1));
        assert_eq!(members(&l, 0), vec![2, 1]);
        assert_eq!(members(&l, 2), Vec::<u32>::new());
    }
}
