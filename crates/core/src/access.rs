//! How readers tell a shard's writers what they used, without sharing a
//! cache line with one another.
//!
//! Each shard has a few *stripes*, and a thread always records through the
//! same one (threads are numbered in the order they first read a cache, and
//! the number picks the stripe). A stripe holds the thread's hit and miss
//! counts, the newest access stamp it took, and a small buffer of recent
//! accesses. With one thread per stripe, a hit writes only lines its own
//! core already holds; a writer reads them once per write, when it drains
//! the buffers into the LRU list.
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

use crate::index::widen;
use crate::sync::{thread_index, AtomicU64, Ordering};

/// Accesses a stripe buffers between two drains. Four header words and
/// twenty entries fill three cache lines.
const STRIPE_READS: usize = 20;

/// Stripes a cache has at most over all its shards together, so a cache
/// of many shards keeps to a few hundred kilobytes of stripes.
const MAX_TOTAL_STRIPES: usize = 4096;

/// Stripes a shard has at most.
const MAX_STRIPES: usize = 16;

/// Stripes per shard for a cache of `shards` shards: one per core (as a
/// power of two, at most `MAX_STRIPES`), fewer when the shards are so many
/// that two threads rarely meet in one.
pub(crate) fn stripes_for(shards: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut stripes = cores.next_power_of_two().min(MAX_STRIPES);
    while stripes > 1 && stripes.saturating_mul(shards) > MAX_TOTAL_STRIPES {
        stripes /= 2;
    }
    stripes
}

/// One thread's (or a few threads') access records in one shard.
#[repr(C, align(64))]
pub(crate) struct Stripe {
    /// Hits recorded here; hit `n` (counting from one) goes to buffer
    /// entry `n % STRIPE_READS` when it fits.
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

    /// Records a hit on the node in `slot`, with `clock` the shard's clock.
    /// Returns the stamp when the buffer is full: the caller then stores
    /// it in the node.
    #[inline]
    pub(crate) fn hit(&self, clock: u64, slot: u32) -> Option<u64> {
        let n = self.hits.fetch_add(1, Ordering::Relaxed) + 1;
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

    #[inline]
    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
}

/// A shard's stripes.
pub(crate) struct Access {
    stripes: Box<[Stripe]>,
}

impl Access {
    /// `stripes` stripes: a power of two.
    pub(crate) fn new(stripes: usize) -> Self {
        debug_assert!(stripes.is_power_of_two());
        Self {
            stripes: (0..stripes).map(|_| Stripe::new()).collect(),
        }
    }

    /// The calling thread's stripe.
    #[inline]
    pub(crate) fn stripe(&self) -> &Stripe {
        &self.stripes[thread_index() & (self.stripes.len() - 1)]
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
