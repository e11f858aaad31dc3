//! A shard's hash index: an open-addressed table of 32-bit entries, each
//! an arena slot, in groups of eight (half a cache line). Readers probe it
//! with atomic loads under an epoch guard; writers change it under the
//! shard lock.
//!
//! Beside each group is a control word, one byte per entry (seven bits of
//! its tag, or empty, or tombstone), and the control words of a table are
//! an array of their own: an eighth of the groups' size, small enough to
//! stay in cache. A lookup reads its group's control word, loads only the
//! entries whose byte matches, and compares the key of the node each names:
//! a miss is decided by the control word alone almost always (a byte
//! matches by chance one time in 128), without loading the group, and a
//! hit touches one entry and one node.
//!
//! An entry is `slot + 1`, `0` is an empty entry and `u32::MAX` a removed
//! one (a *tombstone*). A key's *tag* is the low half of its hash: it
//! picks the key's home group, and its low seven bits go in the control
//! byte. Groups are probed in order from the key's own until the key is
//! found or a group with an empty entry ends the search. A group's control word says the same of its
//! entries as the entries do, except for a moment inside a writer's store
//! (see `Table::ctrl`), so everything below holds of either.
//!
//! Why readers never miss a present key, whatever writers do meanwhile:
//! - a new entry goes to the first group along its probe sequence that has
//!   an empty entry or a tombstone, so every group before it was full of
//!   live entries when it was stored;
//! - removing an entry empties it only if its group still has an empty
//!   entry, else leaves a tombstone, so a group without empty entries never
//!   gains one (until the table is rebuilt, which publishes a new table and
//!   leaves the old one as it was);
//! - a store to a present key changes its node in place (see `Node`), not
//!   the index.
//!
//! So a key present through a whole lookup sits in one entry, and every
//! group before it lacks empty entries throughout: the lookup reaches it.
//!
//! Publication: a writer fills a node, then stores its entry and then the
//! entry's control byte, each with `Release`; readers load control words
//! and entries with `Acquire`, so a node they reach is fully initialised. Removed nodes and replaced tables are retired to the
//! epoch collector: a table is freed, and a node's slot returned to the
//! shard's arena, once no pinned reader can hold them.

use std::borrow::Borrow;

use crate::arena::Nodes;
use crate::entry::{Node, Thin};
use crate::sync::epoch::Guard;
use crate::sync::{prefetch, AtomicU32, AtomicU64, Ordering};

/// Entries per group.
const GROUP: usize = 8;
/// How far ahead of its copy a rebuild starts loading an entry's node.
const REBUILD_AHEAD: usize = 16;
/// Live entries a table is sized for, per group (62.5% full). Takes and
/// evictions leave tombstones until a rebuild at [`USED_PER_GROUP`], and a
/// probe walks on through every group they fill: at six a group (75%),
/// finds in the TLS 1.3 ticket workload walked 1.8 groups (zipf ids) and
/// 2.3 (uniform), and a ticket operation cost 30 to 40 instructions more
/// than at five (cachegrind of `fixed tlscache ticket 1`), for 1.3 bytes
/// per entry less (`mem tlscache`: 88.8 against 87.5).
const LIVE_PER_GROUP: usize = 5;
/// Live entries and tombstones a table holds at most, per group (87.5%):
/// past that it is rebuilt, so every probe meets an empty entry soon.
const USED_PER_GROUP: usize = 7;
/// An empty entry.
const EMPTY: u32 = 0;
/// A tombstone.
const TOMB: u32 = u32::MAX;

/// The control byte of an empty entry.
const CTRL_EMPTY: u8 = 0;
/// The control byte of a tombstone.
const CTRL_TOMB: u8 = 1;
/// A one in every byte of a control word.
const LOW_BITS: u64 = u64::from_ne_bytes([0x01; 8]);
/// The top bit of every byte of a control word.
const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);

/// The control byte of a live entry with `tag`: the top bit set (so it is
/// neither empty nor a tombstone) over the tag's low seven bits (the bits
/// that least decide its home group).
#[inline]
fn ctrl_of(tag: u32) -> u8 {
    0x80 | (tag as u8 & 0x7f)
}

/// The top bit of every byte of `word` that may equal `byte`: each byte
/// that does, and perhaps a byte just above one that does (a borrow of the
/// subtraction), so callers confirm a match against the entry itself.
#[inline]
fn matching(word: u64, byte: u8) -> u64 {
    let x = word ^ (LOW_BITS * u64::from(byte));
    x.wrapping_sub(LOW_BITS) & !x & HIGH_BITS
}

/// Whether a control word has an empty byte. Exact: the lowest zero byte
/// always shows, and without one nothing does.
#[inline]
fn has_empty(word: u64) -> bool {
    word.wrapping_sub(LOW_BITS) & !word & HIGH_BITS != 0
}

/// The byte at position `i` (below 8) of `word` (entry `i` of its group),
/// counting from the least significant, as `lowest` does.
#[inline]
fn byte_at(word: u64, i: usize) -> u8 {
    // Truncation intended: the byte's eight bits.
    (word >> (8 * i)) as u8
}

/// `word` with its byte `i` (below 8) set to `byte`. With shifts in
/// registers: through the word's bytes in memory, the compiler stored the
/// word, then the byte, and loaded the word back, a load the processor
/// cannot forward from the two stores (`perf annotate` put 9% of an
/// insert's own samples on the store after it).
#[inline]
fn with_byte(word: u64, i: usize, byte: u8) -> u64 {
    let shift = 8 * i;
    (word & !(0xff << shift)) | (u64::from(byte) << shift)
}

/// The position of the lowest byte whose top bit `bits` shows.
#[inline]
fn lowest(bits: u64) -> usize {
    (bits.trailing_zeros() / 8) as usize
}

/// The entry for `slot` under tag `tag`.
#[inline]
fn entry(slot: u32) -> u32 {
    slot + 1
}

/// The slot of a live entry, `None` for an empty entry or a tombstone.
#[inline]
fn slot_of(entry: u32) -> Option<u32> {
    match entry {
        0 | TOMB => None,
        low => Some(low - 1),
    }
}

#[repr(C, align(32))]
struct Group([AtomicU32; GROUP]);

impl Group {
    fn new() -> Self {
        Self(std::array::from_fn(|_| AtomicU32::new(EMPTY)))
    }
}

/// A group array and its control words. Dropping a table frees only the
/// arrays: nodes are owned by the arena and retired one by one.
pub(crate) struct Table {
    groups: Box<[Group]>,
    /// One word per group, byte `i` for entry `i`: [`CTRL_EMPTY`],
    /// [`CTRL_TOMB`] or [`ctrl_of`] its tag. Eight bytes a group, so the
    /// words of a shard's table stay in cache where its groups do not: a
    /// lookup reads its group's word and loads only the entries whose byte
    /// matches, and a miss is decided by the word alone. A writer stores an
    /// entry before its byte (so a reader that sees a byte finds the entry
    /// it stands for) and keeps the two alike under the shard lock.
    ctrl: Box<[AtomicU64]>,
}

impl Table {
    /// Groups that hold `entries` live entries at the intended load.
    pub(crate) fn groups_for(entries: usize) -> usize {
        entries.div_ceil(LIVE_PER_GROUP).max(1)
    }

    /// A table of `groups` empty groups.
    pub(crate) fn new(groups: usize) -> Self {
        let groups = groups.max(1);
        Self {
            groups: (0..groups).map(|_| Group::new()).collect(),
            ctrl: (0..groups).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Live entries and tombstones the table may hold before a rebuild.
    pub(crate) fn max_used(&self) -> usize {
        self.groups.len() * USED_PER_GROUP
    }

    /// The group a tag's probe starts at: the tag scaled to the group
    /// count (no power-of-two rounding, so a table is sized to its shard).
    #[inline]
    fn home(&self, tag: u32) -> usize {
        ((u64::from(tag) * self.groups.len() as u64) >> 32) as usize
    }

    /// The group after `at`, wrapping.
    #[inline]
    fn next(&self, at: usize) -> usize {
        if at + 1 == self.groups.len() {
            0
        } else {
            at + 1
        }
    }

    /// Starts loading the control word and the entries of the group a
    /// key of hash `hash` starts its probe at (see
    /// [`prefetch`](crate::sync::prefetch)): a writer asks before it takes
    /// the lock, so the misses overlap the lock and its upkeep.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        // Truncation intended: the tag is the hash's low half.
        let at = self.home(hash as u32);
        prefetch(std::ptr::from_ref(&self.ctrl[at]));
        prefetch(std::ptr::from_ref(&self.groups[at]));
    }

    /// [`find`](Self::find) as a call, for writers. Inlined into a
    /// write, whose path is long, it cost a ticket operation 27 more
    /// instructions (892 → 919, callgrind of `fixed tlscache ticket 1`):
    /// more registers to save across the rest of the write.
    #[inline(never)]
    pub(crate) fn find_out_of_line<'g, K, V: ?Sized + Thin, Q>(
        &self,
        hash: u64,
        key: &Q,
        nodes: &'g Nodes<K, V>,
        guard: &'g Guard,
    ) -> Option<(u32, &'g Node<K, V>)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.find(hash, key, nodes, guard)
    }

    /// The node for `key` (hash `hash`), expired or not. Lock-free: atomic
    /// loads only. Always inlined: in a lookup, the call's prologue and
    /// epilogue (the registers it saved and restored) were 27 of 345
    /// instructions (callgrind of `fixed tlscache hit 1`).
    #[inline(always)]
    pub(crate) fn find<'g, K, V: ?Sized + Thin, Q>(
        &self,
        hash: u64,
        key: &Q,
        nodes: &'g Nodes<K, V>,
        _guard: &'g Guard,
    ) -> Option<(u32, &'g Node<K, V>)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        // Truncation intended: the tag is the hash's low half.
        let tag = hash as u32;
        let byte = ctrl_of(tag);
        let mut at = self.home(tag);
        // A hit reads an entry of this group (almost always): start its
        // line on the way while the control word is read.
        prefetch(std::ptr::from_ref(&self.groups[at]));
        for _ in 0..self.groups.len() {
            // Acquire pairs with the Release store of the byte, so the
            // entry it stands for is there.
            let word = self.ctrl[at].load(Ordering::Acquire);
            let mut hits = matching(word, byte);
            while hits != 0 {
                let i = lowest(hits);
                hits &= hits - 1;
                // Acquire pairs with the Release store of the entry, so the
                // node it names (and its segment) is initialised.
                let e = self.groups[at].0[i].load(Ordering::Acquire);
                if let Some(slot) = slot_of(e) {
                    // SAFETY: the entry was live while `_guard` was pinned,
                    // so its node was placed and is retired (if at all)
                    // only after the guard unpins.
                    let node = unsafe { nodes.get(slot) };
                    // The whole tag first: a byte matches by chance one
                    // time in 128, and keys may be long.
                    if node.hash == tag && node.key.borrow() == key {
                        return Some((slot, node));
                    }
                }
            }
            if has_empty(word) {
                return None;
            }
            at = self.next(at);
        }
        None
    }

    /// The entry naming `slot` (whose key hash is `hash`), for tests.
    #[cfg(test)]
    fn position(&self, hash: u32, slot: u32) -> Option<&AtomicU32> {
        let want = slot + 1;
        let mut at = self.home(hash);
        for _ in 0..self.groups.len() {
            let group = &self.groups[at];
            if let Some(e) = group.0.iter().find(|e| e.load(Ordering::Relaxed) == want) {
                return Some(e);
            }
            if has_empty(self.ctrl[at].load(Ordering::Relaxed)) {
                return None;
            }
            at = self.next(at);
        }
        None
    }

    /// Enters the freshly placed node in `slot` (key hash `hash`) and says
    /// whether it took a tombstone's place. The caller holds the shard lock
    /// and has made room (`max_used` not reached).
    pub(crate) fn insert(&self, hash: u32, slot: u32) -> bool {
        let mut at = self.home(hash);
        loop {
            let ctrl = &self.ctrl[at];
            let word = ctrl.load(Ordering::Relaxed);
            // Empty entries and tombstones: the bytes without the top bit.
            let free = !word & HIGH_BITS;
            if free != 0 {
                let i = lowest(free);
                // Release: publishes the node's fields to readers' Acquire
                // loads of the entry; then the byte publishes the entry.
                self.groups[at].0[i].store(entry(slot), Ordering::Release);
                ctrl.store(with_byte(word, i, ctrl_of(hash)), Ordering::Release);
                return byte_at(word, i) == CTRL_TOMB;
            }
            // Some group has room: the table is never full.
            at = self.next(at);
        }
    }

    /// Removes `slot`'s entry and says whether it left a tombstone. Caller
    /// holds the shard lock and must retire the node afterwards.
    pub(crate) fn remove(&self, hash: u32, slot: u32) -> bool {
        let mut at = self.home(hash);
        for _ in 0..self.groups.len() {
            let group = &self.groups[at];
            let want = slot + 1;
            if let Some(i) = group
                .0
                .iter()
                .position(|e| e.load(Ordering::Relaxed) == want)
            {
                // A group that has no empty entry must not gain one (see
                // the module's doc): probes for later keys pass through it.
                let ctrl = &self.ctrl[at];
                let word = ctrl.load(Ordering::Relaxed);
                let tomb = !has_empty(word);
                let (value, byte) = if tomb {
                    (TOMB, CTRL_TOMB)
                } else {
                    (EMPTY, CTRL_EMPTY)
                };
                // Relaxed: readers that still see the old byte or entry
                // reach a node that stays valid for their epoch.
                ctrl.store(with_byte(word, i, byte), Ordering::Relaxed);
                group.0[i].store(value, Ordering::Relaxed);
                return tomb;
            }
            if has_empty(self.ctrl[at].load(Ordering::Relaxed)) {
                break;
            }
            at = self.next(at);
        }
        debug_assert!(false, "removing a slot that is not in the table");
        false
    }

    /// A copy of this table's live entries in a table of `groups` groups,
    /// without tombstones; `tag` gives the tag of the node in a slot (its
    /// `hash`). `ahead` is called on each slot [`REBUILD_AHEAD`] entries
    /// before `tag` is asked for it: time to start loading what `tag`
    /// reads (its node), so a rebuild's reads of nodes overlap instead of
    /// paying one miss after another. Caller holds the shard lock and
    /// publishes the copy with `Release`.
    pub(crate) fn rebuilt(
        &self,
        groups: usize,
        tag: impl Fn(u32) -> u32,
        ahead: impl Fn(u32),
    ) -> Self {
        let new = Self::new(groups);
        let mut slots = Vec::new();
        self.for_each(|slot| slots.push(slot));
        for (i, &slot) in slots.iter().enumerate() {
            if let Some(&later) = slots.get(i + REBUILD_AHEAD) {
                ahead(later);
            }
            new.insert(tag(slot), slot);
        }
        new
    }

    /// Calls `f` on the slot of every live entry. Caller holds the shard
    /// lock.
    pub(crate) fn for_each(&self, mut f: impl FnMut(u32)) {
        for group in self.groups.iter() {
            for e in &group.0 {
                if let Some(slot) = slot_of(e.load(Ordering::Relaxed)) {
                    f(slot);
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The slots of live entries, in table order.
    fn slots(t: &Table) -> Vec<u32> {
        let mut out = Vec::new();
        t.for_each(|s| out.push(s));
        out
    }

    /// A tag whose home is group `g` of a table of `n` groups.
    fn tag_in(g: usize, n: usize, salt: u32) -> u32 {
        ((g as u64 * (1u64 << 32)).div_ceil(n as u64)) as u32 + salt
    }

    #[test]
    fn a_control_byte_is_set_and_read_where_lowest_finds_it() {
        let word = 0x0807_0605_0403_0201u64;
        for i in 0..GROUP {
            assert_eq!(byte_at(word, i), i as u8 + 1);
            let set = with_byte(word, i, 0xa5);
            assert_eq!(byte_at(set, i), 0xa5);
            // Only byte `i` changed.
            for j in (0..GROUP).filter(|&j| j != i) {
                assert_eq!(byte_at(set, j), byte_at(word, j), "byte {j} after {i}");
            }
            // `lowest` names the same position: the top bit of byte `i`.
            assert_eq!(lowest(with_byte(0, i, 0x80)), i);
        }
    }

    #[test]
    fn entries_overflow_into_the_next_group_and_stay_findable() {
        let t = Table::new(2);
        let tag = tag_in(0, 2, 0);
        // Nine keys homed in group 0: the ninth goes to group 1.
        for slot in 0..9 {
            assert!(!t.insert(tag + slot, slot));
        }
        assert_eq!(slots(&t), (0..9).collect::<Vec<_>>());
        for slot in 0..9 {
            assert!(t.position(tag + slot, slot).is_some(), "slot {slot}");
        }
        assert!(t.position(tag, 42).is_none());
    }

    #[test]
    fn a_full_group_keeps_tombstones_and_an_open_one_empties() {
        let t = Table::new(2);
        let tag = tag_in(0, 2, 0);
        for slot in 0..9 {
            t.insert(tag, slot);
        }
        // Group 0 is full: removing from it leaves a tombstone, so the
        // probe for slot 8 (in group 1) still passes through.
        assert!(t.remove(tag, 3));
        assert!(t.position(tag, 8).is_some());
        // Group 1 has empty entries: removing there empties.
        assert!(!t.remove(tag, 8));
        // A new entry reuses the tombstone.
        assert!(t.insert(tag, 20));
        assert_eq!(slots(&t), vec![0, 1, 2, 20, 4, 5, 6, 7]);
    }

    #[test]
    fn a_rebuild_keeps_live_entries_and_drops_tombstones() {
        let t = Table::new(2);
        let tag = tag_in(0, 2, 0);
        for slot in 0..12 {
            t.insert(tag + slot, slot);
        }
        for slot in [1, 2, 3] {
            t.remove(tag + slot, slot);
        }
        let r = t.rebuilt(5, |slot| tag + slot, |_| {});
        assert_eq!(r.groups(), 5);
        let mut live = slots(&r);
        live.sort_unstable();
        assert_eq!(live, [0, 4, 5, 6, 7, 8, 9, 10, 11]);
        for slot in live {
            assert!(r.position(tag + slot, slot).is_some(), "slot {slot}");
        }
    }

    /// Every control byte says what its entry is; `tag_of` gives the tag
    /// each slot was entered under.
    fn assert_mirrored(t: &Table, tag_of: impl Fn(u32) -> u32) {
        for (g, group) in t.groups.iter().enumerate() {
            let word = t.ctrl[g].load(Ordering::Relaxed);
            for (i, e) in group.0.iter().enumerate() {
                let e = e.load(Ordering::Relaxed);
                let want = match slot_of(e) {
                    None if e == EMPTY => CTRL_EMPTY,
                    None => CTRL_TOMB,
                    Some(slot) => ctrl_of(tag_of(slot)),
                };
                assert_eq!(byte_at(word, i), want, "group {g} entry {i}");
            }
        }
    }

    #[test]
    fn control_words_find_every_match_and_every_empty() {
        // Bytes of every kind, near each other's bit patterns (borrows of
        // the subtraction are what could go wrong), in random words.
        let kinds = [CTRL_EMPTY, CTRL_TOMB, 0x80, 0x81, 0x82, 0xfe, 0xff];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            let mut bytes = [0u8; GROUP];
            for b in &mut bytes {
                // xorshift64
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = kinds[(x % kinds.len() as u64) as usize];
            }
            let word = u64::from_le_bytes(bytes);
            assert_eq!(has_empty(word), bytes.contains(&CTRL_EMPTY), "{word:#x}");
            let free = !word & HIGH_BITS;
            if let Some(first) = bytes.iter().position(|&b| b < 0x80) {
                assert_eq!(lowest(free), first, "{word:#x}");
            } else {
                assert_eq!(free, 0);
            }
            for want in [0x80u8, 0x81, 0xff] {
                let hits = matching(word, want);
                for (i, &b) in bytes.iter().enumerate() {
                    if b == want {
                        assert_ne!(byte_at(hits, i), 0, "{word:#x} byte {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn control_words_follow_inserts_removes_and_rebuilds() {
        let t = Table::new(2);
        let tag = tag_in(0, 2, 0);
        let tag_of = |slot| tag + slot * 37;
        for slot in 0..12 {
            t.insert(tag_of(slot), slot);
            assert_mirrored(&t, tag_of);
        }
        for slot in [0, 3, 9, 11] {
            t.remove(tag_of(slot), slot);
            assert_mirrored(&t, tag_of);
        }
        t.insert(tag_of(20), 20);
        assert_mirrored(&t, tag_of);
        assert_mirrored(&t.rebuilt(4, tag_of, |_| {}), tag_of);
    }

    /// One step of the table's property test: enter a slot (under tag
    /// `tag` picked from a few, so keys crowd into few groups), remove the
    /// `n`th live slot, or rebuild into a number of groups.
    #[derive(Clone, Debug)]
    enum Step {
        Insert(u32),
        Remove(usize),
        Rebuild(usize),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0u32..6).prop_map(Step::Insert),
            3 => any::<usize>().prop_map(Step::Remove),
            1 => (1usize..5).prop_map(Step::Rebuild),
        ]
    }

    proptest::proptest! {
        /// Against a plain map of live slots to tags: whatever the order of
        /// inserts, removes (tombstones included) and rebuilds, every live
        /// slot is found along its probe, no removed one is, the table
        /// lists exactly the live slots, and every control byte says what
        /// its entry is.
        #[test]
        fn the_table_matches_a_map_of_live_slots(
            steps in proptest::collection::vec(step(), 1..120),
        ) {
            use std::collections::BTreeMap;
            let mut t = Table::new(2);
            let mut live: BTreeMap<u32, u32> = BTreeMap::new();
            let mut gone = Vec::new();
            let mut next = 0u32;
            let mut tombs = 0usize;
            // Few distinct tags, spread over both halves of the hash range.
            let tag_of = |k: u32| k.wrapping_mul(0x9e37_79b9) | (k & 1);
            for s in steps {
                match s {
                    Step::Insert(k) => {
                        // Room as the shard keeps it: rebuild before the
                        // table would pass its bound.
                        if live.len() + tombs + 1 > t.max_used() {
                            let groups = Table::groups_for(live.len() + 1).max(t.groups());
                            t = t.rebuilt(groups, |slot| live[&slot], |_| {});
                            tombs = 0;
                        }
                        if t.insert(tag_of(k), next) {
                            tombs -= 1;
                        }
                        live.insert(next, tag_of(k));
                        next += 1;
                    }
                    Step::Remove(n) if !live.is_empty() => {
                        let slot = *live.keys().nth(n % live.len()).unwrap();
                        let tag = live.remove(&slot).unwrap();
                        if t.remove(tag, slot) {
                            tombs += 1;
                        }
                        gone.push((slot, tag));
                    }
                    Step::Remove(_) => {}
                    Step::Rebuild(extra) => {
                        let groups = Table::groups_for(live.len()) + extra;
                        t = t.rebuilt(groups, |slot| live[&slot], |_| {});
                        tombs = 0;
                    }
                }
                assert_mirrored(&t, |slot| live[&slot]);
                for (&slot, &tag) in &live {
                    proptest::prop_assert!(t.position(tag, slot).is_some(), "slot {} lost", slot);
                }
                for &(slot, tag) in &gone {
                    proptest::prop_assert!(t.position(tag, slot).is_none(), "slot {} kept", slot);
                }
                let mut listed = slots(&t);
                listed.sort_unstable();
                proptest::prop_assert_eq!(listed, live.keys().copied().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn sizing_leaves_room() {
        assert_eq!(Table::groups_for(0), 1);
        assert_eq!(Table::groups_for(5), 1);
        assert_eq!(Table::groups_for(6), 2);
        assert_eq!(Table::new(3).max_used(), 21);
    }
}
