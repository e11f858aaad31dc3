//! Sessions a cache has let go of, kept by the thread that collected them
//! and filled again by that thread's next new sessions: the memory is
//! reused instead of freed and allocated again.
//!
//! A session is one allocation of a few hundred bytes, and a cache frees
//! them in bursts: each collection releases every session whose epoch has
//! passed. On glibc, frees past its per-thread cache (seven chunks of a
//! size) go to the allocator's arena under its lock, which the other
//! threads' frees and allocations contend for; that is where the policy
//! layer's write tail was (docs/performance.md, "2026-11-29, afternoon").
//! Here the cache's last handle on a session (see
//! [`Thin::release`](tlscache_core::Thin::release)) is wiped and kept, up
//! to [`SPARES`] a thread, and
//! [`SessionBuilder::build`](crate::SessionBuilder::build) fills a kept
//! one of the same size before it allocates (a session's memory is
//! rounded up to a size class, so one a few bytes longer or shorter
//! fits). What is kept is wiped at once, so no secret waits in it, and is
//! freed when its thread exits.
//!
//! A thread's collections and its new sessions do not keep step with each
//! other: a collection runs whichever thread's retirements are due, so
//! one thread's ring fills while another's runs dry, and the first then
//! freed sessions the second allocated, under the lock of the second's
//! arena, while the second allocated from it. So a thread whose ring is
//! full passes its oldest session to a pool all threads share (see
//! `Shared`), and a thread whose ring has no session of a size takes one
//! from there before it allocates. The pool is behind a lock that is only
//! ever tried, never waited for: a thread that finds it taken frees or
//! allocates as before.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::session::Session;

/// Sessions a thread keeps at most: 64 KiB of 256-byte sessions. A
/// collection's burst is a few dozen, but a thread's collections and its
/// new sessions do not keep step: at two threads of ticket traffic
/// (`fixed tlscache-policy ticket 2`) a bound of 64 left 9% of new
/// sessions to the allocator and dropped 5% of releases, and the policy's
/// write p99.9 was 2.2–3.4× the core's in four alternated runs of
/// `latency --tickets tlscache-policy tlscache`, against 1.5–1.8× (one
/// disturbed run apart) at 256.
pub(crate) const SPARES: usize = 256;

/// Sessions larger than this many words are not kept: few are, and the
/// count of each size kept (see `Spares`) stays a small array.
const MAX_WORDS: usize = 1024;

/// A thread's kept sessions.
struct Spares {
    /// Each kept session with its size (`size_of_val`), so that a search
    /// reads this ring alone, not the sessions; the newest at the back.
    ring: VecDeque<(usize, Arc<Session>)>,
    /// How many of the ring's sessions are of each size, in words: a
    /// search for a size the ring does not hold ends here, instead of
    /// reading the whole ring (which took a new session 180 to 230 ns
    /// more, about double its build, with the ring full of another size).
    counts: [u16; MAX_WORDS],
}

/// Bytes of sessions the shared pool holds at most: 1,024 sessions of
/// 256 bytes. They stay there, wiped, until a thread takes them or the
/// process exits.
pub(crate) const SHARED_BYTES: usize = 256 * 1024;

/// The sessions threads passed on when their own rings were full, by size
/// in words (see `words`), newest last.
struct Shared {
    by_words: [Vec<Arc<Session>>; MAX_WORDS],
    /// The bytes of every session in `by_words`, at most [`SHARED_BYTES`].
    bytes: usize,
}

impl Shared {
    const fn new() -> Self {
        Self {
            by_words: [const { Vec::new() }; MAX_WORDS],
            bytes: 0,
        }
    }

    /// Holds `session` (wiped, kept by no thread, of `size` bytes), or
    /// gives it back if that would take the pool past [`SHARED_BYTES`] or
    /// no session that large is kept.
    fn put(&mut self, session: Arc<Session>, size: usize) -> Option<Arc<Session>> {
        let Some(w) = words(size).filter(|_| self.bytes + size <= SHARED_BYTES) else {
            return Some(session);
        };
        self.bytes += size;
        self.by_words[w].push(session);
        None
    }

    /// The session of `size` bytes put most recently, if any.
    fn take(&mut self, size: usize) -> Option<Arc<Session>> {
        let session = self.by_words.get_mut(words(size)?)?.pop()?;
        self.bytes -= size_of_val(&*session);
        Some(session)
    }
}

/// The pool all threads share. Its lock is only ever tried: a thread that
/// finds it taken frees or allocates instead of waiting.
static SHARED: Mutex<Shared> = Mutex::new(Shared::new());

/// Passes `session` (wiped, kept by no thread, of `size` bytes) to the
/// shared pool, or gives it back if the pool is taken now or full.
fn pass_on(session: Arc<Session>, size: usize) -> Option<Arc<Session>> {
    match SHARED.try_lock() {
        Ok(mut shared) => shared.put(session, size),
        Err(_) => Some(session),
    }
}

/// The session of `size` bytes another thread passed on most recently, if
/// the shared pool holds one and is not taken now.
fn take_passed(size: usize) -> Option<Arc<Session>> {
    SHARED.try_lock().ok()?.take(size)
}

thread_local! {
    static SPARE: RefCell<Spares> = const {
        RefCell::new(Spares {
            ring: VecDeque::new(),
            counts: [0; MAX_WORDS],
        })
    };
}

/// The index into `Spares::counts` of a session of `size` bytes, if one
/// that large is kept at all.
fn words(size: usize) -> Option<usize> {
    Some(size / size_of::<usize>()).filter(|&w| w < MAX_WORDS)
}

/// Keeps `session`, already wiped, whose last handle this is, in place of
/// the oldest one kept if the thread keeps [`SPARES`] already (so that a
/// change in the sessions' sizes does not leave the ring full of sizes
/// nobody builds any more); that one goes to the shared pool, or is
/// freed if the pool is taken or full.
pub(crate) fn keep(session: Arc<Session>) {
    let size = size_of_val(&*session);
    let mut left = Some(session);
    // Not while the thread exits (`try_with`) or while a `take` of this
    // thread is running (`try_borrow_mut`); then `left` still holds it.
    let _ = SPARE.try_with(|spare| {
        let (Ok(mut spare), Some(w)) = (spare.try_borrow_mut(), words(size)) else {
            return;
        };
        let Some(session) = left.take() else {
            return;
        };
        if spare.ring.len() >= SPARES {
            if let Some((old, oldest)) = spare.ring.pop_front() {
                // Every size in the ring is counted (`words` let it in).
                spare.counts[old / size_of::<usize>()] -= 1;
                left = pass_on(oldest, old);
            }
        }
        spare.ring.push_back((size, session));
        spare.counts[w] += 1;
    });
    // Dropped outside the ring's borrow and the pool's lock.
    drop(left);
}

/// A kept session whose memory a session with `len` bytes of context and
/// state fits exactly, the most recently kept first: this thread's, or
/// else one another thread passed on.
pub(crate) fn take(len: usize) -> Option<Arc<Session>> {
    let size = Session::size_for(len)?;
    let w = words(size)?;
    SPARE
        .try_with(|spare| {
            let mut spare = spare.try_borrow_mut().ok()?;
            if spare.counts[w] == 0 {
                return take_passed(size);
            }
            let at = spare.ring.iter().rposition(|&(s, _)| s == size)?;
            let (_, session) = spare.ring.swap_remove_back(at)?;
            spare.counts[w] -= 1;
            Some(session)
        })
        .ok()
        .flatten()
}

/// How many sessions this thread keeps now.
#[cfg(test)]
pub(crate) fn kept() -> usize {
    SPARE.with(|spare| spare.borrow().ring.len())
}

/// Whether every state this thread keeps is zeros.
#[cfg(test)]
pub(crate) fn all_wiped() -> bool {
    SPARE.with(|spare| {
        spare
            .borrow()
            .ring
            .iter()
            .all(|(_, s)| s.state().iter().all(|&b| b == 0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wiped session of `len` bytes of state, and its size.
    fn session(len: usize) -> (Arc<Session>, usize) {
        let session = Session::builder(b"pool", vec![0u8; len]).build().unwrap();
        let size = size_of_val(&*session);
        (session, size)
    }

    #[test]
    fn the_shared_pool_gives_back_the_newest_of_a_size_and_holds_no_more_than_its_bound() {
        let mut pool = Box::new(Shared::new());
        let (small, small_size) = session(48);
        let (large, large_size) = session(2_000);
        assert_ne!(small_size, large_size);
        let (first, second) = (Arc::as_ptr(&small), Arc::as_ptr(&large));
        assert!(pool.put(small, small_size).is_none());
        assert!(pool.put(large, large_size).is_none());
        assert_eq!(pool.bytes, small_size + large_size);
        // Only a session of the size asked for comes back.
        assert!(pool.take(small_size + 8).is_none());
        assert_eq!(pool.take(large_size).map(|s| Arc::as_ptr(&s)), Some(second));
        assert_eq!(pool.take(small_size).map(|s| Arc::as_ptr(&s)), Some(first));
        assert!(pool.take(small_size).is_none());
        assert_eq!(pool.bytes, 0);

        // Filled to the bound, it gives the next one back.
        let fit = SHARED_BYTES / small_size;
        for _ in 0..fit {
            let (s, size) = session(48);
            assert!(pool.put(s, size).is_none());
        }
        let (over, size) = session(48);
        let at = Arc::as_ptr(&over);
        assert_eq!(pool.put(over, size).map(|s| Arc::as_ptr(&s)), Some(at));
        assert_eq!(pool.bytes, fit * small_size);
        // A session too large to be kept at all is given back too.
        let (huge, size) = session(MAX_WORDS * size_of::<usize>());
        let mut empty = Box::new(Shared::new());
        assert!(empty.put(huge, size).is_some());
        assert_eq!(empty.bytes, 0);
    }
}
