//! How readers tell a shard's writers what they used, without sharing a
//! cache line with one another.
//!
//! Each shard has a few *stripes*, and a thread always records through the
//! same one, picked by its number (see `threads`: the smallest
//! number no live thread holds when it first reads). A shard has one
//! *own* stripe per core, for the threads numbered below that, and as many
//! *shared* stripes for every other thread. A stripe holds its threads' hit
//! and miss counts, the newest access stamp they took, and a small buffer
//! of recent accesses.
//!
//! A number names one live thread at a time, so an own stripe has one
//! writer among readers: it counts with plain loads and stores, and a hit
//! or a miss costs no atomic read-modify-write and writes only lines its
//! own core already holds. A shared stripe counts with `fetch_add`, since
//! its threads may meet in it. A writer reads the stripes once per write,
//! when it drains the buffers into the LRU list.
//!
//! Access stamps order the LRU (see `lru`). A hit's stamp is one more than
//! the larger of the shard's *clock* (which writers move past every stamp
//! they have seen, at every write) and its stripe's newest stamp. So one
//! thread's stamps rise with each of its accesses, and an access made after
//! a write is stamped after it; the stamps of threads on different stripes
//! between two writes may interleave in any order, which is where the LRU
//! becomes approximate under concurrency.
//!
//! A hit is recorded in its stripe's buffer while that has room (the
//! accesses since the last drain fit), and otherwise in its node's stamp.
//! Either way a thread's own accesses are never lost: the writer drains
//! the buffers before it evicts, and the evictor reads node stamps (see
//! `lru`). Threads that share a stripe can overwrite each other's entries;
//! only then is an access lost from the buffer, and that is the lossy
//! recording the crate's docs allow under concurrency.

use crate::sync::{AtomicU64, Ordering};
use crate::threads::{count_on_stripe, thread_stripe};

/// The full access stamp whose low half is `low`, taken as the one within
/// 2^31 of `newest` (the newest stamp the shard's writers have seen).
/// Stamps a reader took after that are a little ahead of it; an entry not
/// accessed while its shard's stamps moved on by 2^31 is the only one
/// misread.
#[inline]
pub(crate) fn widen(low: u32, newest: u64) -> u64 {
    let ahead = low.wrapping_sub(newest as u32) as i32;
    newest.saturating_add_signed(i64::from(ahead))
}

/// Accesses a stripe buffers between two drains. Four header words and
/// twenty entries fill three cache lines.
const STRIPE_READS: usize = 20;

/// Own stripes a cache has at most over all its shards together (it has as
/// many shared ones), so a cache of many shards keeps to a megabyte of
/// stripes.
const MAX_TOTAL_STRIPES: usize = 2048;

/// Own stripes a shard has at most.
const MAX_STRIPES: usize = 16;

/// Own stripes per shard for a cache of `shards` shards: one per core (as
/// a power of two, at most `MAX_STRIPES`), fewer when the shards are so
/// many that two threads rarely meet in one.
///
/// Under loom a shard has one own stripe, so that models of two or three
/// threads explore both kinds of stripe.
pub(crate) fn stripes_for(shards: usize) -> usize {
    if cfg!(loom) {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut stripes = cores.next_power_of_two().min(MAX_STRIPES);
    while stripes > 1 && stripes.saturating_mul(shards) > MAX_TOTAL_STRIPES {
        stripes /= 2;
    }
    stripes
}

/// One thread's (or, shared, a few threads') access records in one shard.
#[repr(C, align(64))]
pub(crate) struct Stripe {
    /// Hits recorded here; hit `n` (counting from one) goes to buffer
    /// entry `n % STRIPE_READS` when it fits. Like `last` and `misses`,
    /// only the stripe's readers write it.
    hits: AtomicU64,
    /// The newest stamp taken here.
    last: AtomicU64,
    /// `hits` as of the last drain: hits past it are the buffer's. Only
    /// writers (under the shard lock) store it.
    drained: AtomicU64,
    misses: AtomicU64,
    /// `stamp << 32 | slot + 1`, the stamp's low half beside the slot; `0`
    /// was never written.
    reads: [AtomicU64; STRIPE_READS],
}

impl Stripe {
    fn new() -> Self {
        Self {
            hits: AtomicU64::new(0),
            last: AtomicU64::new(0),
            drained: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            reads: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Records a hit on the node in `slot`, with `clock` the shard's clock;
    /// `own` says whether this is the calling thread's own stripe.
    /// Returns the stamp when the buffer is full: the caller then stores
    /// it in the node.
    #[inline]
    pub(crate) fn hit(&self, own: bool, clock: u64, slot: u32) -> Option<u64> {
        let n = count_on_stripe(&self.hits, own);
        let stamp = clock.max(self.last.load(Ordering::Relaxed)) + 1;
        self.last.store(stamp, Ordering::Relaxed);
        // A hit that a drain counted before its entry was written (another
        // thread on this stripe was slow) wraps around here and goes to the
        // node instead.
        let pending = n.wrapping_sub(self.drained.load(Ordering::Relaxed));
        if pending <= STRIPE_READS as u64 {
            let entry = (stamp << 32) | u64::from(slot + 1);
            self.reads[n as usize % STRIPE_READS].store(entry, Ordering::Relaxed);
            None
        } else {
            Some(stamp)
        }
    }

    /// Records a miss; `own` as for `hit`.
    #[inline]
    pub(crate) fn miss(&self, own: bool) {
        count_on_stripe(&self.misses, own);
    }
}

/// A shard's stripes: its own ones, then as many shared ones.
pub(crate) struct Access {
    stripes: Box<[Stripe]>,
    /// Own stripes: a power of two.
    own: usize,
}

impl Access {
    /// `own` own stripes (a power of two) and as many shared ones.
    pub(crate) fn new(own: usize) -> Self {
        debug_assert!(own.is_power_of_two());
        Self {
            stripes: (0..2 * own).map(|_| Stripe::new()).collect(),
            own,
        }
    }

    /// The calling thread's stripe, and whether it is the thread's own.
    #[inline]
    pub(crate) fn stripe(&self) -> (&Stripe, bool) {
        let (at, own) = thread_stripe(self.own);
        (&self.stripes[at], own)
    }

    /// Whether a reader has counted a hit since the last drain: otherwise
    /// a write has nothing to drain, and no stripe's newest stamp is past
    /// the last drain's but for a hit whose stamp was still being stored
    /// as that drain counted it (see `Stripe::hit`), which may then be
    /// taken up by the next drain. The shard lock's holder asks, before
    /// `newest` and `drain`, so that a write in a shard nobody reads
    /// (TLS 1.3 tickets are taken, never looked up) reads each stripe's
    /// counts once instead of walking the stripes twice.
    pub(crate) fn pending(&self) -> bool {
        // Without a branch per stripe: each is almost always drained.
        let differ = self.stripes.iter().fold(0, |differ, s| {
            differ | (s.hits.load(Ordering::Relaxed) ^ s.drained.load(Ordering::Relaxed))
        });
        differ != 0
    }

    /// The newest stamp any reader took, or `clock` if that is newer. Only
    /// the shard lock's holder calls this and `drain`.
    pub(crate) fn newest(&self, clock: u64) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.last.load(Ordering::Relaxed))
            .fold(clock, u64::max)
    }

    /// Hands every buffered access, `(slot, stamp)`, to `touch` and empties
    /// the buffers. `newest` is `self.newest(..)` taken just before: an
    /// entry stamped after it is one a reader is still writing, and is
    /// left out (it is lost, as the recording may be under concurrency).
    pub(crate) fn drain(&self, newest: u64, mut touch: impl FnMut(u32, u64)) {
        for stripe in self.stripes.iter() {
            let hits = stripe.hits.load(Ordering::Relaxed);
            let drained = stripe.drained.load(Ordering::Relaxed);
            if hits == drained {
                continue;
            }
            // Only the last `STRIPE_READS` fit; hits past those went to
            // their nodes.
            let last = hits.min(drained + STRIPE_READS as u64);
            for n in drained + 1..=last {
                let entry = stripe.reads[n as usize % STRIPE_READS].load(Ordering::Relaxed);
                // Slots are stored plus one, so zero was never written.
                let Some(slot) = (entry as u32).checked_sub(1) else {
                    continue;
                };
                let stamp = widen((entry >> 32) as u32, newest);
                if stamp <= newest {
                    touch(slot, stamp);
                }
            }
            stripe.drained.store(hits, Ordering::Relaxed);
        }
    }

    /// Hits and misses over all stripes.
    pub(crate) fn counts(&self) -> (u64, u64) {
        self.stripes.iter().fold((0, 0), |(hits, misses), s| {
            (
                hits + s.hits.load(Ordering::Relaxed),
                misses + s.misses.load(Ordering::Relaxed),
            )
        })
    }
}
