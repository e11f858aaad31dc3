//! Circular doubly linked lists through arena slots, the one mechanism
//! under the LRU order (`lru`) and the timing wheel (`wheel`).
//!
//! A [`SlotLists`] keeps every link in one vector: first the list heads
//! (sentinels, each an empty list to begin with), then one link per arena
//! slot, so slot `i` owns link `heads + i` and a slot is in at most one of
//! the lists at a time. Linking, unlinking and moving are O(1) and
//! allocate nothing once the vector has room for the shard's slots.

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

/// Lists through arena slots, with `heads` list heads.
#[derive(Debug)]
pub(crate) struct SlotLists {
    links: Vec<Link>,
    heads: u32,
}

impl SlotLists {
    /// `heads` empty lists, with room for no slot yet.
    pub(crate) fn new(heads: u32) -> Self {
        Self {
            links: (0..heads).map(|i| Link { prev: i, next: i }).collect(),
            heads,
        }
    }

    /// The link arena slot `slot` owns.
    #[inline]
    pub(crate) fn link(&self, slot: u32) -> u32 {
        self.heads + slot
    }

    /// The arena slot that owns `link` (not a head).
    #[inline]
    pub(crate) fn slot(&self, link: u32) -> u32 {
        link - self.heads
    }

    /// Makes room for arena slots `0..slots`.
    pub(crate) fn grow(&mut self, slots: usize) {
        let want = self.heads as usize + slots;
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
        let want = self.heads as usize + slots;
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

    /// Whether arena slot `slot` is in a list or parked (false for a slot
    /// there is no room for yet).
    #[inline]
    pub(crate) fn contains(&self, slot: u32) -> bool {
        self.links
            .get(self.link(slot) as usize)
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

    /// Starts loading arena slot `slot`'s link (see
    /// [`prefetch`](crate::sync::prefetch)).
    #[inline]
    pub(crate) fn prefetch(&self, slot: u32) {
        if let Some(link) = self.links.get(self.link(slot) as usize) {
            crate::sync::prefetch(link);
        }
    }

    /// Starts loading the links of the neighbours of arena slot `slot`,
    /// which unlinking it writes; nothing if it is in no list.
    #[inline]
    pub(crate) fn prefetch_neighbours(&self, slot: u32) {
        if let Some(link) = self.links.get(self.link(slot) as usize) {
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
        assert!((0..5).all(|s| !l.contains(s)));
        assert!(!l.contains(99), "a slot without room is in no list");
        for s in 0..3 {
            l.insert_after(l.link(s), 0);
        }
        l.insert_after(l.link(3), 1);
        l.insert_after(l.link(4), l.link(3));
        assert_eq!(members(&l, 0), vec![2, 1, 0]);
        assert_eq!(members(&l, 1), vec![3, 4]);
        assert_eq!(l.unlink(l.link(1)), (l.link(2), l.link(0)));
        assert!(!l.contains(1));
        assert_eq!(members(&l, 0), vec![2, 0]);
        // The last member out leaves its head alone: both neighbours are it.
        l.unlink(l.link(3));
        assert_eq!(l.unlink(l.link(4)), (1, 1));
        assert_eq!(members(&l, 1), Vec::<u32>::new());
        let first = l.detach(0);
        assert_eq!(l.slot(first), 2);
        assert_eq!(members(&l, 0), Vec::<u32>::new());
        assert!(l.contains(2), "detached members count as linked");
        l.mark_unlinked(first);
        assert!(!l.contains(2));
    }
}
