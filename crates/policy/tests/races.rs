//! Many threads at once: add, remove, lookup, single-use lookup and flush
//! racing, then the invariants checked.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{await_count, cache_with, T0};
use rand::{Rng, SeedableRng};
use tlscache_policy::{Handshake, Session, SessionCache, Side};

const THREADS: usize = 8;

fn id_of(n: u32) -> [u8; 32] {
    let mut id = [0xab; 32];
    id[..4].copy_from_slice(&n.to_le_bytes());
    id
}

/// Random operations on a small id space from eight threads; afterwards
/// the cache is dropped and every session must be held by its creator
/// alone: no reference lost, none leaked.
#[test]
fn refcounts_balance_under_racing_operations() {
    let (c, clock) = cache_with(SessionCache::builder().cache_size(48));
    let made: Vec<Vec<Arc<Session>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let c = &c;
                let clock = &clock;
                scope.spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
                    let mut made = Vec::new();
                    for _ in 0..20_000 {
                        let n = rng.gen_range(0..64u32);
                        match rng.gen_range(0..100) {
                            0..=24 => {
                                let s = c
                                    .session_builder(&id_of(n), vec![n as u8; 64])
                                    .timeout(rng.gen_range(1..20))
                                    .build()
                                    .unwrap();
                                if rng.gen_bool(0.5) {
                                    c.add_session(&s);
                                } else {
                                    c.handshake_finished(Side::Server, Handshake::New(&s));
                                }
                                made.push(s);
                            }
                            25..=34 => {
                                if let Some(s) = made.get(rng.gen_range(0..made.len().max(1))) {
                                    c.remove_session(s);
                                }
                            }
                            35..=39 => {
                                c.lookup_once(&id_of(n), b"");
                            }
                            40 => clock.advance(Duration::from_secs(1)),
                            41 => c.flush_sessions(T0 + rng.gen_range(0..30)),
                            _ => {
                                if let Some(s) = c.lookup(&id_of(n), b"") {
                                    assert_eq!(s.state()[0], n as u8);
                                }
                            }
                        }
                    }
                    made
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(c.sess_number() <= 47, "a full cache of size 48 holds 47");
    drop(c);
    for s in made.iter().flatten() {
        await_count(s, 1);
    }
}

/// Once `remove_session` has returned, no lookup that starts afterwards
/// resumes the removed session, while readers race the remover. Each round
/// waits until a reader has looked the id up after seeing the removal, so
/// every round is checked.
#[test]
fn no_session_resumes_after_its_removal_returned() {
    const ROUNDS: u32 = 300;
    /// Tells the readers to stop even if the remover panics.
    struct Stop<'a>(&'a AtomicUsize);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(usize::MAX, Ordering::Release);
        }
    }
    let (c, _) = cache_with(SessionCache::builder());
    let removed: Vec<AtomicBool> = (0..ROUNDS).map(|_| AtomicBool::new(false)).collect();
    let checked: Vec<AtomicUsize> = (0..ROUNDS).map(|_| AtomicUsize::new(0)).collect();
    let current = AtomicUsize::new(0);
    let violations = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let _stop = Stop(&current);
            for r in 0..ROUNDS {
                let s = c.session_builder(&id_of(r), vec![1]).build().unwrap();
                c.add_session(&s);
                current.store(r as usize, Ordering::Release);
                std::thread::yield_now();
                c.remove_session(&s);
                // Release pairs with the readers' Acquire: a reader that sees
                // the flag started its lookup after the removal returned.
                removed[r as usize].store(true, Ordering::Release);
                while checked[r as usize].load(Ordering::Acquire) == 0 {
                    std::thread::yield_now();
                }
            }
        });
        // Readers that spin would starve the remover on a small machine;
        // three, yielding after each lookup, keep it moving.
        for _ in 0..3 {
            scope.spawn(|| loop {
                let r = current.load(Ordering::Acquire);
                if r == usize::MAX {
                    break;
                }
                let done = removed[r].load(Ordering::Acquire);
                let got = c.lookup(&id_of(r as u32), b"");
                if done {
                    if got.is_some() {
                        violations.fetch_add(1, Ordering::Relaxed);
                    }
                    checked[r].fetch_add(1, Ordering::Release);
                }
                std::thread::yield_now();
            });
        }
    });
    assert_eq!(violations.load(Ordering::Relaxed), 0);
    assert!(checked.iter().all(|n| n.load(Ordering::Relaxed) > 0));
}

/// Eight handshakes race for each single-use ticket: exactly one resumes.
#[test]
fn a_single_use_ticket_resumes_once_among_eight_racers() {
    const ROUNDS: u32 = 500;
    let (c, _) = cache_with(SessionCache::builder());
    let barrier = Barrier::new(THREADS + 1);
    let winners: Vec<AtomicUsize> = (0..ROUNDS).map(|_| AtomicUsize::new(0)).collect();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for r in 0..ROUNDS {
                    barrier.wait();
                    if c.lookup_once(&id_of(r), b"").is_some() {
                        winners[r as usize].fetch_add(1, Ordering::Relaxed);
                    }
                    barrier.wait();
                }
            });
        }
        for r in 0..ROUNDS {
            let s = c.session_builder(&id_of(r), vec![1]).build().unwrap();
            c.add_session(&s);
            barrier.wait();
            barrier.wait();
        }
    });
    for (r, w) in winners.iter().enumerate() {
        assert_eq!(w.load(Ordering::Relaxed), 1, "round {r}");
    }
    assert_eq!(c.stats().hits, u64::from(ROUNDS));
}

/// Hits and misses counted by threads that come and go: waves of threads
/// (each exiting hands its number, and with it its counters' stripe, to a
/// thread of the next wave), started together so that they count at the
/// same time; on a machine of fewer than eight cores, more of them than
/// there are own stripes, so that some count on the shared ones. Every
/// lookup is counted once, none lost.
#[test]
fn counters_stay_exact_across_threads_that_come_and_go() {
    const WAVES: u32 = 4;
    const LOOKUPS: u32 = 20_000;
    let (c, _) = cache_with(SessionCache::builder());
    let s = c.session_builder(&id_of(1), vec![1]).build().unwrap();
    c.add_session(&s);
    for _ in 0..WAVES {
        let start = Barrier::new(THREADS);
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (c, start) = (&c, &start);
                scope.spawn(move || {
                    start.wait();
                    for n in 0..LOOKUPS {
                        // Half the threads hit, half miss.
                        let id = if t % 2 == 0 { id_of(1) } else { id_of(2 + n) };
                        c.lookup(&id, b"");
                    }
                });
            }
        });
    }
    let each = u64::from(WAVES * LOOKUPS) * (THREADS as u64 / 2);
    let stats = c.stats();
    assert_eq!(stats.hits, each);
    assert_eq!(stats.misses, each);
}

/// Sessions whose only handle is the cache's are kept and filled again by
/// later sessions (see `Thin::release`), while eight threads store, take,
/// remove, look up and flush: every session a lookup returns is whole
/// (its own id, its own state, of its own length), and one that a thread
/// holds stays so while the cache lets go of it and others are built.
#[test]
fn sessions_reused_under_racing_operations_stay_whole() {
    let (c, clock) = cache_with(SessionCache::builder().cache_size(48));
    // Two lengths a few ids share, so that kept sessions are filled by
    // sessions of other ids.
    let state_of = |n: u32| vec![n as u8; 48 + 16 * (n as usize % 2)];
    let whole = |s: &Session, n: u32| {
        assert_eq!(s.id().as_bytes(), &id_of(n));
        assert_eq!(s.state(), &state_of(n)[..], "session {n}");
    };
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (c, clock) = (&c, &clock);
            scope.spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(100 + t as u64);
                let mut held: Vec<(u32, Arc<Session>)> = Vec::new();
                for _ in 0..20_000 {
                    let n = rng.gen_range(0..64u32);
                    match rng.gen_range(0..100) {
                        0..=39 => {
                            let s = c
                                .session_builder(&id_of(n), state_of(n))
                                .timeout(rng.gen_range(1..20))
                                .build()
                                .unwrap();
                            whole(&s, n);
                            c.handshake_finished(Side::Server, Handshake::New(&s));
                        }
                        40..=49 => {
                            if let Some(s) = c.lookup_once(&id_of(n), b"") {
                                whole(&s, n);
                            }
                        }
                        50..=54 => {
                            if let Some(s) = c.lookup(&id_of(n), b"") {
                                c.remove_session(&s);
                                whole(&s, n);
                            }
                        }
                        55 => clock.advance(Duration::from_secs(1)),
                        56 => c.flush_sessions(T0 + rng.gen_range(0..30)),
                        _ => {
                            if let Some(s) = c.lookup(&id_of(n), b"") {
                                whole(&s, n);
                                // Some are held a while, across the cache
                                // letting go of them.
                                if rng.gen_bool(0.05) {
                                    held.push((n, s));
                                }
                            }
                        }
                    }
                    if held.len() > 16 {
                        let (n, s) = held.swap_remove(rng.gen_range(0..held.len()));
                        whole(&s, n);
                    }
                }
                for (n, s) in &held {
                    whole(s, *n);
                }
            });
        }
    });
}

/// Sessions let go of in bursts larger than a thread keeps pass through
/// the pool all threads share to other threads' next sessions, while
/// eight threads build and let go at once: every session built is whole,
/// and one a thread holds stays so while others are let go of and built.
#[test]
fn sessions_passed_between_threads_stay_whole() {
    use tlscache_core::Thin;

    // More than a thread keeps (256), so each burst passes some on.
    const BURST: usize = 300;
    let state_of = |n: u32| {
        let mut state = vec![(n % 251) as u8; 48 + 16 * (n as usize % 2)];
        state[..4].copy_from_slice(&n.to_le_bytes());
        state
    };
    let whole = |s: &Session, n: u32| {
        assert_eq!(s.id().as_bytes(), &id_of(n));
        assert_eq!(s.state(), &state_of(n)[..], "session {n}");
    };
    std::thread::scope(|scope| {
        for t in 0..THREADS as u32 {
            scope.spawn(move || {
                let mut held: Vec<(u32, Arc<Session>)> = Vec::new();
                for i in 0..6_000u32 {
                    let n = t << 24 | i;
                    let s = Session::builder(&id_of(n), state_of(n)).build().unwrap();
                    whole(&s, n);
                    held.push((n, s));
                    if held.len() == BURST {
                        // As a cache lets go of its last handles.
                        for (n, s) in held.drain(..) {
                            whole(&s, n);
                            <Session as Thin>::release(s);
                        }
                    }
                }
            });
        }
    });
}
