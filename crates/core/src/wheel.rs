//! A hierarchical timing wheel over arena slots.
//!
//! Six levels of 64 slots each cover 2^36 ticks (a tick is 2^20 ns, about
//! 1.05 ms, so the wheel spans about 2.2 years); deadlines further out wait
//! in an overflow list that is re-sorted once per 2^36 ticks. Scheduling
//! and cancelling are O(1). `advance` visits only occupied slots, found with
//! one bit-scan per level, so a sweep costs O(expired + entries cascaded),
//! never O(entries) or O(ticks elapsed).
//!
//! A deadline already reached when it is scheduled (at or before the time
//! the wheel last swept to: a zero time-to-live, a clock that stepped
//! back) goes to a *due* list that the next `advance` empties first, so
//! such an entry never holds its place for a tick. An `advance` to no
//! later time than the last, with the due list empty, has nothing to hand
//! out and returns at once: a cache's writes between two moves of its
//! clock pay no sweep.
//!
//! Every list is one of the shard's [`SlotLists`], through the slots'
//! [`Way::Wheel`] links: its [`HEADS`] list heads (one per wheel slot, then
//! the overflow and due lists) follow the LRU's (`lru::HEADS`), and the
//! shard passes the lists to each call.

use smallvec::SmallVec;

use crate::list::{SlotLists, Way};

/// Nanoseconds per tick, as a shift: 2^20 ns is about 1.05 ms.
pub(crate) const TICK_SHIFT: u32 = 20;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const LEVELS: usize = 6;
/// Ticks covered by the whole wheel: 64^6.
const SPAN_BITS: u32 = SLOT_BITS * LEVELS as u32;
/// The wheel's first list head in the shard's lists: the wheel slots'
/// lists, level by level, then the overflow and due lists.
const BASE: u32 = crate::lru::HEADS;
const OVERFLOW: u32 = BASE + (SLOTS * LEVELS) as u32;
const DUE: u32 = OVERFLOW + 1;
/// The list heads the wheel takes in the shard's lists, after the LRU's.
pub(crate) const HEADS: u32 = DUE + 1 - BASE;

/// The tick by which a deadline in nanoseconds has certainly passed
/// (rounded up, so an entry is never swept early).
#[inline]
pub(crate) fn deadline_tick(deadline_nanos: u64) -> u64 {
    let whole = deadline_nanos >> TICK_SHIFT;
    whole + u64::from(deadline_nanos & ((1 << TICK_SHIFT) - 1) != 0)
}

/// The last whole tick at or before `now_nanos`.
#[inline]
pub(crate) fn now_tick(now_nanos: u64) -> u64 {
    now_nanos >> TICK_SHIFT
}

/// The per-shard timing wheel. Guarded by the shard lock.
#[derive(Debug)]
pub(crate) struct Wheel {
    occupied: [u64; LEVELS],
    /// Every deadline at or before this tick has been handed out.
    elapsed: u64,
    /// Every deadline at or before this nanosecond has been handed out or
    /// waits in the due list: the latest time `advance` swept to (or the
    /// start of the first tick). `place` sends a deadline at or before it
    /// to the due list, so an `advance` to no later time with an empty due
    /// list has nothing to hand out and returns at once: the writes that
    /// run between two moves of the clock pay no sweep.
    swept: u64,
    /// Whether the due list may hold links: set when `place` puts one
    /// there, cleared when `advance` empties it. While it is clear, the
    /// check that writes between two moves of the clock make reads no
    /// link (the due list's head is a line of its own, seldom in cache).
    due: bool,
}

impl Wheel {
    /// An empty wheel whose time starts at `now_tick`.
    pub(crate) fn new(now_tick: u64) -> Self {
        Self {
            occupied: [0; LEVELS],
            elapsed: now_tick,
            swept: now_tick.checked_shl(TICK_SHIFT).unwrap_or(u64::MAX),
            due: false,
        }
    }

    /// Schedules arena slot `slot` to expire at `deadline` (nanoseconds). O(1).
    pub(crate) fn schedule(&mut self, lists: &mut SlotLists, slot: u32, deadline: u64) {
        self.place(lists, lists.link(Way::Wheel, slot), deadline, true);
    }

    /// Cancels arena slot `slot`, if it was scheduled. O(1).
    pub(crate) fn cancel(&mut self, lists: &mut SlotLists, slot: u32) {
        if lists.contains(Way::Wheel, slot) {
            self.unlink(lists, lists.link(Way::Wheel, slot));
        }
    }

    /// Starts loading the links of the neighbours of arena slot `slot`,
    /// which cancelling it writes; nothing if it is not scheduled.
    #[inline]
    pub(crate) fn prefetch_neighbours(lists: &SlotLists, slot: u32) {
        lists.prefetch_neighbours(Way::Wheel, slot);
    }

    /// Whether [`advance`](Self::advance) to `now_nanos` may hand out
    /// anything: the clock has moved past the last sweep, or the due list
    /// holds links. Writes between two moves of the clock find nothing and
    /// pay no sweep.
    #[inline]
    pub(crate) fn has_due(&self, lists: &SlotLists, now_nanos: u64) -> bool {
        now_nanos > self.swept || (self.due && lists.next(DUE) != DUE)
    }

    /// Moves time to `now` (nanoseconds) and pushes every slot whose
    /// deadline is at or before `now` into `expired`. The wheel's time never
    /// moves backwards.
    ///
    /// The wheel keeps no copy of deadlines: `deadline_of(slot)` must
    /// return the deadline `slot` was scheduled with.
    pub(crate) fn advance(
        &mut self,
        lists: &mut SlotLists,
        now_nanos: u64,
        expired: &mut Vec<u32>,
        deadline_of: impl Fn(u32) -> u64,
    ) {
        if !self.has_due(lists, now_nanos) {
            return;
        }
        let now = now_tick(now_nanos);
        let mut link = self.detach(lists, DUE);
        // Set again below by any link placed back in it.
        self.due = false;
        while link != DUE {
            let next = lists.next(link);
            let deadline = deadline_of(lists.slot(link));
            if deadline <= now_nanos {
                lists.mark_unlinked(link);
                expired.push(lists.slot(link));
            } else {
                // A sweep to a time before the last (the clock stepped
                // back, or a flush at a past time): wait for the time, in
                // the due list still if it is at or before `swept`.
                self.place(lists, link, deadline, true);
            }
            link = next;
        }
        while let Some((at, list)) = self.next_due(lists) {
            if at > now {
                break;
            }
            self.elapsed = at;
            let mut link = self.detach(lists, list);
            while link != list {
                let next = lists.next(link);
                let deadline = deadline_of(lists.slot(link));
                if deadline_tick(deadline) <= at {
                    lists.mark_unlinked(link);
                    expired.push(lists.slot(link));
                } else {
                    self.place(lists, link, deadline, false);
                }
                link = next;
            }
        }
        self.elapsed = self.elapsed.max(now);
        // Deadlines inside the current tick sit in lists that start at the
        // next one; hand out those already reached, so a sweep is exact to
        // the nanosecond. This scans at most one tick's worth of entries.
        let next = self.elapsed.saturating_add(1);
        let starting: SmallVec<[u32; LEVELS]> = self.lists_starting_at(lists, next).collect();
        for list in starting {
            let mut link = lists.next(list);
            while link != list {
                let following = lists.next(link);
                let slot = lists.slot(link);
                if deadline_of(slot) <= now_nanos {
                    self.unlink(lists, link);
                    expired.push(slot);
                }
                link = following;
            }
        }
        self.swept = self.swept.max(now_nanos);
    }

    /// The occupied lists (wheel slots or overflow) whose start is tick `at`.
    fn lists_starting_at<'a>(
        &'a self,
        lists: &'a SlotLists,
        at: u64,
    ) -> impl Iterator<Item = u32> + 'a {
        (0..LEVELS)
            .filter_map(move |level| {
                let shift = SLOT_BITS * level as u32;
                let block = !((1u64 << (shift + SLOT_BITS)) - 1);
                let slot = (at >> shift) & (SLOTS as u64 - 1);
                let starts_here = at & ((1u64 << shift) - 1) == 0
                    && at & block == self.elapsed & block
                    && self.occupied[level] & (1 << slot) != 0;
                starts_here.then_some(BASE + (level * SLOTS) as u32 + slot as u32)
            })
            .chain({
                let next_block = (self.elapsed | ((1u64 << SPAN_BITS) - 1)).saturating_add(1);
                let overflow = lists.next(OVERFLOW) != OVERFLOW;
                (overflow && next_block == at).then_some(OVERFLOW)
            })
    }

    /// The tick of the earliest non-empty list and that list, if any.
    ///
    /// An occupied slot at level `l` always lies after the current position
    /// at that level and inside the current level-`l + 1` block (`place`
    /// puts it there, `advance` empties it before passing it), so the lowest
    /// occupied level holds the earliest list.
    fn next_due(&self, lists: &SlotLists) -> Option<(u64, u32)> {
        for (level, &occupied) in self.occupied.iter().enumerate() {
            if occupied == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            let current = (self.elapsed >> shift) & (SLOTS as u64 - 1);
            let after = occupied & ((!0u64 << current) << 1);
            debug_assert_eq!(after, occupied, "a slot at or behind the wheel's position");
            let slot = u64::from(after.trailing_zeros());
            let block = !((1u64 << (shift + SLOT_BITS)) - 1);
            let at = (self.elapsed & block) | (slot << shift);
            return Some((at, BASE + (level * SLOTS) as u32 + slot as u32));
        }
        (lists.next(OVERFLOW) != OVERFLOW).then(|| {
            let next_block = (self.elapsed | ((1u64 << SPAN_BITS) - 1)).saturating_add(1);
            (next_block, OVERFLOW)
        })
    }

    /// Links `link` into the list its deadline belongs in now: the due list
    /// if `may_be_due` and the deadline has been reached, otherwise a wheel
    /// slot no earlier than the next tick.
    fn place(&mut self, lists: &mut SlotLists, link: u32, deadline_nanos: u64, may_be_due: bool) {
        let deadline = deadline_tick(deadline_nanos);
        let at = deadline.max(self.elapsed.saturating_add(1));
        let differs = at ^ self.elapsed;
        // `swept` is at or past the end of tick `elapsed`, so this also
        // takes every deadline whose tick has been handed out.
        let list = if may_be_due && deadline_nanos <= self.swept {
            self.due = true;
            DUE
        } else if differs >> SPAN_BITS != 0 {
            OVERFLOW
        } else {
            let top_bit = 63 - (differs | (SLOTS as u64 - 1)).leading_zeros();
            let level = top_bit / SLOT_BITS;
            let slot = (at >> (level * SLOT_BITS)) & (SLOTS as u64 - 1);
            self.occupied[level as usize] |= 1 << slot;
            BASE + level * SLOTS as u32 + slot as u32
        };
        lists.insert_after(link, list);
    }

    fn unlink(&mut self, lists: &mut SlotLists, link: u32) {
        let (prev, next) = lists.unlink(link);
        if prev == next && prev < OVERFLOW {
            self.clear_bit(prev);
        }
    }

    /// Empties list `list` and returns its first member (or `list` itself if
    /// it was empty); members still chain to `list` through `next`.
    fn detach(&mut self, lists: &mut SlotLists, list: u32) -> u32 {
        let first = lists.detach(list);
        if list < OVERFLOW {
            self.clear_bit(list);
        }
        first
    }

    /// Marks wheel slot list `list` (a head below [`OVERFLOW`]) empty.
    fn clear_bit(&mut self, list: u32) {
        let at = (list - BASE) as usize;
        let (level, slot) = (at / SLOTS, at % SLOTS);
        self.occupied[level] &= !(1 << slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1 << TICK_SHIFT;

    /// A wheel with the lists and the deadline table the shard would keep.
    struct W {
        wheel: Wheel,
        lists: SlotLists,
        deadlines: Vec<u64>,
    }

    impl W {
        fn grow(&mut self, slots: usize) {
            self.lists.grow(slots);
            self.deadlines.resize(slots, 0);
        }
        fn schedule(&mut self, slot: u32, deadline: u64) {
            self.deadlines[slot as usize] = deadline;
            self.wheel.schedule(&mut self.lists, slot, deadline);
        }
        fn cancel(&mut self, slot: u32) {
            self.wheel.cancel(&mut self.lists, slot);
        }
        fn next_due(&self) -> Option<(u64, u32)> {
            self.wheel.next_due(&self.lists)
        }
    }

    fn wheel(now_tick: u64) -> W {
        W {
            wheel: Wheel::new(now_tick),
            // The shard's lists: the LRU's head (unused here), then the
            // wheel's.
            lists: SlotLists::new(crate::lru::HEADS + HEADS),
            deadlines: Vec::new(),
        }
    }

    /// Advances to the end of tick `now` (all of it has passed).
    fn drain(w: &mut W, now: u64) -> Vec<u32> {
        drain_ns(w, now.saturating_mul(T))
    }

    fn drain_ns(w: &mut W, now: u64) -> Vec<u32> {
        let mut out = Vec::new();
        let deadlines = &w.deadlines;
        w.wheel
            .advance(&mut w.lists, now, &mut out, |slot| deadlines[slot as usize]);
        out.sort_unstable();
        out
    }

    #[test]
    fn expires_at_the_deadline_not_before() {
        let mut w = wheel(0);
        w.grow(4);
        w.schedule(0, 10 * T);
        w.schedule(1, 100 * T);
        w.schedule(2, 5000 * T);
        w.schedule(3, 300_000 * T);
        assert!(drain(&mut w, 9).is_empty());
        assert_eq!(drain(&mut w, 10), vec![0]);
        assert!(drain(&mut w, 99).is_empty());
        assert_eq!(drain(&mut w, 100), vec![1]);
        assert!(drain(&mut w, 4999).is_empty());
        assert_eq!(drain(&mut w, 5000), vec![2]);
        assert!(drain(&mut w, 299_999).is_empty());
        assert_eq!(drain(&mut w, 1 << 40), vec![3]);
    }

    #[test]
    fn cancel_removes_and_clears_the_slot() {
        let mut w = wheel(7);
        w.grow(2);
        w.schedule(0, 70 * T);
        w.schedule(1, 70 * T);
        w.cancel(0);
        w.cancel(0);
        assert_eq!(drain(&mut w, 1000), vec![1]);
        w.cancel(1);
        assert!(w.wheel.occupied.iter().all(|&o| o == 0));
        assert!(w.next_due().is_none());
    }

    #[test]
    fn past_deadlines_are_due_at_once() {
        let mut w = wheel(1000);
        w.grow(2);
        w.schedule(0, 3 * T);
        w.schedule(1, 1000 * T);
        assert_eq!(drain(&mut w, 1000), vec![0, 1]);
        assert!(w.next_due().is_none());
    }

    #[test]
    fn a_clock_behind_the_wheel_expires_nothing_early() {
        let mut w = wheel(1000);
        w.grow(1);
        w.schedule(0, 900 * T);
        // The caller's clock reads 800: the entry is not due by it yet.
        assert!(drain(&mut w, 800).is_empty());
        assert_eq!(drain(&mut w, 1001), vec![0]);
    }

    #[test]
    fn beyond_the_horizon_waits_in_overflow_without_panicking() {
        let mut w = wheel(5);
        w.grow(3);
        let far = deadline_tick(u64::MAX - 1);
        w.schedule(0, u64::MAX - 1);
        w.schedule(1, ((1u64 << SPAN_BITS) + 17) * T);
        w.schedule(2, ((1u64 << SPAN_BITS) - 1) * T);
        assert_eq!(drain(&mut w, (1 << SPAN_BITS) - 2), Vec::<u32>::new());
        assert_eq!(drain(&mut w, (1 << SPAN_BITS) - 1), vec![2]);
        assert_eq!(drain(&mut w, (1 << SPAN_BITS) + 16), Vec::<u32>::new());
        assert_eq!(drain(&mut w, (1 << SPAN_BITS) + 17), vec![1]);
        assert_eq!(drain(&mut w, far - 1), Vec::<u32>::new());
        assert_eq!(drain(&mut w, far), vec![0]);
    }

    #[test]
    fn time_never_goes_back() {
        let mut w = wheel(500);
        w.grow(1);
        assert!(drain(&mut w, 10).is_empty());
        assert_eq!(w.wheel.elapsed, 500);
        w.schedule(0, 600 * T);
        assert!(drain(&mut w, 599).is_empty());
        assert_eq!(drain(&mut w, 600), vec![0]);
    }

    /// Against a sorted reference: many random deadlines, random advances.
    #[test]
    fn matches_a_sorted_reference() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut w = wheel(0);
        let n = 2000u32;
        w.grow(n as usize);
        let mut pending: Vec<(u64, u32)> = Vec::new();
        for slot in 0..n {
            let d = next() % (1 << (next() % 40));
            w.schedule(slot, d * T);
            pending.push((d, slot));
        }
        let mut now = 0u64;
        while !pending.is_empty() {
            now += next() % (1 << (next() % 36));
            let got = drain(&mut w, now);
            let mut want: Vec<u32> = pending
                .iter()
                .filter(|(d, _)| *d <= now)
                .map(|&(_, s)| s)
                .collect();
            want.sort_unstable();
            assert_eq!(got, want, "at tick {now}");
            pending.retain(|(d, _)| *d > now);
        }
    }

    #[test]
    fn sweeps_are_exact_to_the_nanosecond() {
        let mut w = wheel(0);
        w.grow(3);
        w.schedule(0, 10 * T + 5);
        w.schedule(1, 10 * T + 9);
        w.schedule(2, 64 * T + 1);
        assert!(drain_ns(&mut w, 10 * T + 4).is_empty());
        assert_eq!(drain_ns(&mut w, 10 * T + 5), vec![0]);
        assert_eq!(drain_ns(&mut w, 10 * T + 9), vec![1]);
        // Across a level-1 block boundary too.
        assert!(drain_ns(&mut w, 64 * T).is_empty());
        assert_eq!(drain_ns(&mut w, 64 * T + 1), vec![2]);
    }

    #[test]
    fn a_sweep_to_the_same_time_again_still_hands_out_what_came_since() {
        let mut w = wheel(0);
        w.grow(3);
        assert!(drain_ns(&mut w, 5 * T + 100).is_empty());
        // Already reached when scheduled, inside the current tick: the
        // next sweep, to the same time, must hand it out.
        w.schedule(0, 5 * T + 50);
        // Later in the same tick: not yet.
        w.schedule(1, 5 * T + 200);
        assert_eq!(drain_ns(&mut w, 5 * T + 100), vec![0]);
        assert!(drain_ns(&mut w, 5 * T + 100).is_empty());
        assert_eq!(drain_ns(&mut w, 5 * T + 200), vec![1]);
        // A sweep to an earlier time (a flush at a past time) hands out
        // only what is due by it, and the next to the last time the rest.
        w.schedule(2, 5 * T + 150);
        assert!(drain_ns(&mut w, 5 * T + 120).is_empty());
        assert_eq!(drain_ns(&mut w, 5 * T + 200), vec![2]);
    }

    /// Against a reference to the nanosecond: schedules, cancels and
    /// sweeps interleaved, deadlines often inside the current tick or
    /// already past, and sweeps often to the time of the last one.
    #[test]
    fn interleaved_nanosecond_sweeps_match_a_reference() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let n = 512u32;
        let mut w = wheel(0);
        w.grow(n as usize);
        // `Some(deadline)` for each scheduled slot.
        let mut live: Vec<Option<u64>> = vec![None; n as usize];
        let mut now = 0u64;
        for step in 0..20_000 {
            let slot = (next() % u64::from(n)) as u32;
            match next() % 4 {
                0 | 1 => {
                    if live[slot as usize].is_none() {
                        // From a little in the past to a few ticks ahead.
                        let d = (now + next() % (4 * T)).saturating_sub(T / 2);
                        w.schedule(slot, d);
                        live[slot as usize] = Some(d);
                    }
                }
                2 => {
                    w.cancel(slot);
                    live[slot as usize] = None;
                }
                _ => {
                    // Half the sweeps are to the same time again, and one
                    // in eight to a time before it (a flush at a past time).
                    let at = match next() % 8 {
                        0 => now.saturating_sub(next() % T),
                        1..=4 => now,
                        _ => {
                            now += next() % (2 * T);
                            now
                        }
                    };
                    let got = drain_ns(&mut w, at);
                    let mut want: Vec<u32> = (0..n)
                        .filter(|&s| live[s as usize].is_some_and(|d| d <= at))
                        .collect();
                    want.sort_unstable();
                    assert_eq!(got, want, "step {step}, at {at} ns");
                    for s in want {
                        live[s as usize] = None;
                    }
                }
            }
        }
    }

    #[test]
    fn deadline_ticks_round_up() {
        assert_eq!(deadline_tick(0), 0);
        assert_eq!(deadline_tick(1), 1);
        assert_eq!(deadline_tick(1 << TICK_SHIFT), 1);
        assert_eq!(deadline_tick((1 << TICK_SHIFT) + 1), 2);
        assert_eq!(deadline_tick(u64::MAX), 1 << (64 - TICK_SHIFT));
        assert_eq!(now_tick((2 << TICK_SHIFT) - 1), 1);
    }
}
