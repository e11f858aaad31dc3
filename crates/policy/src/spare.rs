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
//! fits). What does not fit is dropped as before; what is kept is wiped
//! at once, so no secret waits in it, and is freed when its thread exits.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

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
/// nobody builds any more).
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
                left = Some(oldest);
            }
        }
        spare.ring.push_back((size, session));
        spare.counts[w] += 1;
    });
    // Dropped outside the ring's borrow.
    drop(left);
}

/// A kept session whose memory a session with `len` bytes of context and
/// state fits exactly, the most recently kept first.
pub(crate) fn take(len: usize) -> Option<Arc<Session>> {
    let size = Session::size_for(len)?;
    let w = words(size)?;
    SPARE
        .try_with(|spare| {
            let mut spare = spare.try_borrow_mut().ok()?;
            if spare.counts[w] == 0 {
                return None;
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
