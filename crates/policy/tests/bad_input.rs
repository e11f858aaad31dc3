//! Bad input gets a typed error or a miss, never a panic and never a
//! truncation.

mod common;

use std::time::Duration;

use common::{cache, cache_with, id, session_for, T0};
use tlscache_policy::{
    ConfigError, Session, SessionCache, SessionError, SessionId, SidCtx, MAX_CLOCK_SKEW,
};

#[test]
fn oversized_and_empty_ids_and_contexts_are_errors() {
    assert_eq!(
        Session::builder(&[1; 33], vec![]).build().unwrap_err(),
        SessionError::IdTooLong(33)
    );
    assert_eq!(
        Session::builder(&[], vec![]).build().unwrap_err(),
        SessionError::EmptyId
    );
    assert_eq!(
        Session::builder(&[1; 32], vec![])
            .sid_ctx(&[2; 33])
            .build()
            .unwrap_err(),
        SessionError::ContextTooLong(33)
    );
    let longest = Session::builder(&[1; 32], vec![])
        .sid_ctx(&[2; 32])
        .build()
        .unwrap();
    assert_eq!(longest.id().as_bytes(), &[1; 32]);
    assert_eq!(longest.sid_ctx().as_bytes(), &[2; 32]);
    assert!(SessionId::new(&[0; 1000]).is_err());
    assert!(SidCtx::new(&[]).is_ok());
}

#[test]
fn lookups_with_bad_ids_or_contexts_miss_and_count_nothing() {
    let (c, _) = cache();
    let s = c.session_builder(&id(1), vec![1]).build().unwrap();
    c.add_session(&s);
    assert!(c.lookup(&[], b"").is_none());
    assert!(c.lookup(&[1; 33], b"").is_none());
    assert!(c.lookup(&[1; 4096], b"").is_none());
    assert!(c.lookup_once(&[], b"").is_none());
    assert!(c.lookup_once(&[1; 33], b"").is_none());
    let stats = c.stats();
    assert_eq!((stats.hits, stats.misses), (0, 0));
    // A context no session can have is a plain miss of resumption.
    assert!(c.lookup(&id(1), &[0; 64]).is_none());
    assert!(c.lookup(&id(1), b"").is_some());
}

#[test]
fn a_too_long_context_setting_is_an_error_and_changes_nothing() {
    let (c, _) = cache_with(SessionCache::builder().session_id_context(b"app"));
    assert_eq!(
        c.set_session_id_context(&[0; 33]).unwrap_err(),
        SessionError::ContextTooLong(33)
    );
    assert_eq!(c.session_id_context().as_bytes(), b"app");
    let err = SessionCache::builder()
        .session_id_context(&[0; 40])
        .build()
        .unwrap_err();
    assert_eq!(err, ConfigError::Session(SessionError::ContextTooLong(40)));
}

#[test]
fn a_zero_timeout_lasts_only_its_creation_second() {
    let (c, clock) = cache();
    let s = session_for(&c, 1, 0);
    c.add_session(&s);
    clock.set(Duration::from_millis(T0 * 1000 + 999));
    assert!(c.lookup(&id(1), b"").is_some());
    clock.set(Duration::from_secs(T0 + 1));
    assert!(c.lookup(&id(1), b"").is_none());
    assert_eq!(c.stats().timeouts, 1);
}

#[test]
fn a_huge_timeout_never_expires_and_nothing_overflows() {
    let (c, clock) = cache();
    let s = session_for(&c, 1, u64::MAX);
    assert_eq!(s.expires_at(), None);
    c.add_session(&s);
    let edge = c
        .session_builder(&id(2), vec![2])
        .time(u64::MAX - 5)
        .timeout(5)
        .build()
        .unwrap();
    c.add_session(&edge);
    c.flush_sessions(u64::MAX);
    // The edge session's last second is u64::MAX, and no t > u64::MAX.
    assert_eq!(c.sess_number(), 2);
    assert!(!edge.is_expired(u64::MAX));
    clock.set(Duration::MAX);
    assert!(c.lookup(&id(1), b"").is_some());
}

#[test]
fn sessions_from_the_future_do_not_resume() {
    let (c, _) = cache();
    let far = c
        .session_builder(&id(1), vec![1])
        .time(T0 + 3600)
        .build()
        .unwrap();
    let near = c
        .session_builder(&id(2), vec![2])
        .time(T0 + MAX_CLOCK_SKEW)
        .build()
        .unwrap();
    c.add_session(&far);
    c.add_session(&near);
    assert!(c.lookup(&id(1), b"").is_none());
    assert!(c.lookup(&id(2), b"").is_some(), "within the allowed skew");
    let ancient = c.session_builder(&id(3), vec![3]).time(0).build().unwrap();
    c.add_session(&ancient);
    assert!(c.lookup(&id(3), b"").is_none());
    assert_eq!(c.stats().timeouts, 1);
}

/// Issue 23, gap 2: every size works with every shard count (OpenSSL
/// accepts any size), set later or at build, and a full cache of size N
/// holds N − 1 sessions without evicting while it has room; a size past
/// what the engine can address is unbounded.
#[test]
fn every_size_works_with_any_shard_count() {
    for shards in [None, Some(4), Some(64)] {
        for size in [1u64, 2, 7, 100] {
            for at_build in [false, true] {
                let mut b = SessionCache::builder();
                if let Some(n) = shards {
                    b = b.shards(n);
                }
                let c = if at_build {
                    b.cache_size(size).build().unwrap()
                } else {
                    let c = b.build().unwrap();
                    assert_eq!(c.set_cache_size(size), 20480);
                    c
                };
                let add = |n: u64| {
                    let s = c.session_builder(&[n as u8; 32], vec![1]).build().unwrap();
                    c.add_session(&s)
                };
                let held = (size - 1).max(1);
                let case = format!("shards {shards:?}, size {size}, at build {at_build}");
                for n in 0..held {
                    assert!(add(n));
                    assert_eq!(c.sess_number(), n + 1, "{case}: evicted with room");
                }
                for n in held..held + 5 {
                    assert!(add(n));
                    assert_eq!(c.sess_number(), held, "{case}");
                }
                assert_eq!(c.stats().cache_full, 5, "{case}");
            }
        }
    }
    assert_eq!(
        SessionCache::builder()
            .cache_size(u64::MAX)
            .build()
            .unwrap()
            .cache_size(),
        u64::MAX
    );
    assert!(SessionCache::builder().shards(3).build().is_err());
    assert_eq!(
        SessionCache::builder()
            .tickets_per_peer(0)
            .build()
            .unwrap_err(),
        ConfigError::NoTicketsPerPeer
    );
}
