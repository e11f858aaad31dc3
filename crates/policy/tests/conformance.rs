//! The contract, one rule per test. Each test quotes the rule it checks:
//! from the manual pages `SSL_CTX_add_session(3)` and
//! `SSL_CTX_set_session_cache_mode(3)`, or from the OpenSSL 3.0 function
//! whose behaviour it pins down.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    await_count, cache, cache_with, id, session, session_for, with_store, Call, Fault, Recorder, T0,
};
use tlscache_policy::{
    CacheMode, Handshake, ProtocolVersion, Removal, Session, SessionCache, Side,
    DEFAULT_CACHE_SIZE, DEFAULT_TIMEOUT,
};

fn ctx_of(s: &Session) -> Vec<u8> {
    s.sid_ctx().as_bytes().to_vec()
}

// ---- SSL_CTX_add_session(3) ---------------------------------------------

/// "SSL_CTX_add_session() adds the session c to the context ctx. The
/// reference count for session c is incremented by 1."
#[test]
fn add_session_takes_one_reference() {
    let (c, _) = cache();
    let s = session(&c, 1);
    assert_eq!(Arc::strong_count(&s), 1);
    assert!(c.add_session(&s));
    assert_eq!(Arc::strong_count(&s), 2);
    assert_eq!(c.sess_number(), 1);
}

/// "If a session with the same session id already exists, the old session
/// is removed by calling SSL_SESSION_free(3)." / "If the same session is
/// stored in a different SSL_SESSION object, The old session is removed and
/// replaced by the new session." (OpenSSL 3.0's SSL_CTX_add_session calls
/// no remove callback for the replaced session and does not mark it.)
#[test]
fn a_different_object_with_the_same_id_replaces_the_old() {
    let (c, _, store) = with_store(SessionCache::builder());
    let old = session(&c, 1);
    let new = session(&c, 1);
    assert!(c.add_session(&old));
    assert!(c.add_session(&new));
    await_count(&old, 1); // the cache's reference to the old one is freed
    assert_eq!(c.sess_number(), 1);
    let hit = c.lookup(&id(1), &ctx_of(&new)).unwrap();
    assert!(Arc::ptr_eq(&hit, &new));
    assert!(old.is_resumable());
    assert_eq!(store.calls(), vec![], "no remove callback on replacement");
}

/// "If the session is actually identical (the SSL_SESSION object is
/// identical), SSL_CTX_add_session() is a no-op, and the return value is
/// 0."
#[test]
fn adding_the_identical_object_again_is_a_no_op_returning_false() {
    let (c, _) = cache();
    let s = session(&c, 1);
    assert!(c.add_session(&s));
    assert!(!c.add_session(&s));
    assert_eq!(Arc::strong_count(&s), 2);
    assert_eq!(c.sess_number(), 1);
}

/// "SSL_CTX_remove_session() removes the session c from the context ctx and
/// marks it as non-resumable. SSL_SESSION_free(3) is called once for c."
#[test]
fn remove_session_removes_marks_and_releases() {
    let (c, _) = cache();
    let s = session(&c, 1);
    c.add_session(&s);
    assert!(c.remove_session(&s));
    assert!(!s.is_resumable());
    await_count(&s, 1);
    assert_eq!(c.sess_number(), 0);
    assert!(c.lookup(&id(1), &ctx_of(&s)).is_none());
}

/// "0: The operation failed. ... In case of the remove operation, the
/// session was not found in the cache." (remove_session_lock marks the
/// session and calls the remove callback whether or not it was found.)
#[test]
fn removing_an_uncached_session_returns_false_and_still_marks_it() {
    let (c, _, store) = with_store(SessionCache::builder());
    let s = session(&c, 1);
    assert!(!c.remove_session(&s));
    assert!(!s.is_resumable());
    assert_eq!(store.calls(), vec![Call::Remove(1, Removal::Removed)]);
}

/// OpenSSL's remove callback hands a TLS stack's own session object over;
/// an adapter removes by id what the cache holds under it.
#[test]
fn removing_by_id_marks_and_reports_what_was_cached() {
    let (c, _, store) = with_store(SessionCache::builder());
    let s = session(&c, 1);
    c.add_session(&s);
    assert!(c.remove_session_id(s.id().as_bytes()));
    assert!(!s.is_resumable());
    assert_eq!(c.sess_number(), 0);
    assert_eq!(store.calls(), vec![Call::Remove(1, Removal::Removed)]);
    assert!(
        !c.remove_session_id(s.id().as_bytes()),
        "nothing cached under it now"
    );
    assert!(!c.remove_session_id(&[]), "an invalid id");
    assert!(!c.remove_session_id(&[1; 33]));
    assert_eq!(store.calls(), vec![], "no callback when nothing was cached");
}

/// SSL_SESSION_set_ex_data: application data rides with the session.
#[test]
fn ex_data_rides_with_the_session_by_type() {
    let s = Session::builder(b"id", Vec::new())
        .ex_data(std::sync::Arc::new(42u32))
        .build()
        .unwrap();
    assert_eq!(s.ex_data::<u32>(), Some(&42));
    assert_eq!(s.ex_data::<u64>(), None, "another type is not there");
    assert_eq!(
        Session::builder(b"id", Vec::new())
            .build()
            .unwrap()
            .ex_data::<u32>(),
        None
    );
}

/// remove_session_lock looks the session up by id: removing one object
/// removes whatever is cached under its id.
#[test]
fn remove_session_removes_by_id() {
    let (c, _) = cache();
    let cached = session(&c, 1);
    let other = session(&c, 1);
    c.add_session(&cached);
    assert!(c.remove_session(&other));
    assert_eq!(c.sess_number(), 0);
}

/// "If a server SSL_CTX is configured with the
/// SSL_SESS_CACHE_NO_INTERNAL_STORE flag then the internal cache will not
/// be populated automatically by new sessions ..., even though the internal
/// cache will be searched automatically for session-resume requests ... So
/// the application can use SSL_CTX_add_session() directly to have full
/// control over the sessions that can be resumed if desired."
#[test]
fn no_internal_store_still_searches_what_add_session_put_there() {
    let (c, _) =
        cache_with(SessionCache::builder().mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE));
    let automatic = session(&c, 1);
    c.handshake_finished(Side::Server, Handshake::New(&automatic));
    assert_eq!(c.sess_number(), 0);
    let manual = session(&c, 2);
    assert!(c.add_session(&manual));
    assert!(c.lookup(&id(2), &ctx_of(&manual)).is_some());
    assert!(c.lookup(&id(1), &ctx_of(&automatic)).is_none());
}

// ---- SSL_CTX_set_session_cache_mode(3) -----------------------------------

/// "The default mode is SSL_SESS_CACHE_SERVER."
#[test]
fn the_default_mode_is_server() {
    let (c, _) = cache();
    assert_eq!(c.mode(), CacheMode::SERVER);
}

/// The mode bits are OpenSSL's.
#[test]
fn mode_bits_are_openssl_values() {
    let bits = [
        (CacheMode::OFF, 0x0),
        (CacheMode::CLIENT, 0x1),
        (CacheMode::SERVER, 0x2),
        (CacheMode::BOTH, 0x3),
        (CacheMode::NO_AUTO_CLEAR, 0x80),
        (CacheMode::NO_INTERNAL_LOOKUP, 0x100),
        (CacheMode::NO_INTERNAL_STORE, 0x200),
        (CacheMode::NO_INTERNAL, 0x300),
    ];
    for (mode, value) in bits {
        assert_eq!(mode.bits(), value);
    }
    assert_eq!(CacheMode::CLIENT | CacheMode::SERVER, CacheMode::BOTH);
    assert_eq!(
        CacheMode::NO_INTERNAL_LOOKUP | CacheMode::NO_INTERNAL_STORE,
        CacheMode::NO_INTERNAL
    );
}

/// "SSL_CTX_set_session_cache_mode() returns the previously set cache
/// mode." / "SSL_CTX_get_session_cache_mode() returns the currently set
/// cache mode." OpenSSL stores the whole `long`: undefined bits come back
/// as set.
#[test]
fn set_mode_returns_the_previous_and_keeps_every_bit() {
    let (c, _) = cache();
    let odd = CacheMode::from_bits(0x2 | 0x400 | 0x8000);
    assert_eq!(c.set_mode(CacheMode::BOTH), CacheMode::SERVER);
    assert_eq!(c.mode(), CacheMode::BOTH);
    assert_eq!(c.set_mode(odd), CacheMode::BOTH);
    assert_eq!(c.mode().bits(), 0x8402);
    // The unknown bits change nothing (UPDATE_TIME, 0x400, touches only
    // the time of what is added): it behaves as SERVER.
    let s = session(&c, 1);
    c.handshake_finished(Side::Server, Handshake::New(&s));
    assert_eq!(c.sess_number(), 1);
}

/// OpenSSL 3.2's `SSL_CTX_add_session` under `SSL_SESS_CACHE_UPDATE_TIME`
/// (gap 6): "Adjust last used time": the session's time becomes now, so
/// its timeout runs from the latest add, the identical object's too (which
/// still returns 0).
#[test]
fn update_time_restarts_the_timeout_on_every_add() {
    let (c, clock) =
        cache_with(SessionCache::builder().mode(CacheMode::SERVER | CacheMode::UPDATE_TIME));
    let s = session_for(&c, 1, 10);
    assert!(c.add_session(&s));
    clock.advance(Duration::from_secs(8));
    assert!(!c.add_session(&s), "the identical object: still 0");
    assert_eq!(s.time(), T0 + 8);
    clock.advance(Duration::from_secs(8)); // 16 s after creation, 8 after the add
    c.flush_sessions(T0 + 16);
    assert!(c.lookup(&id(1), &ctx_of(&s)).is_some());
    c.flush_sessions(T0 + 19);
    assert_eq!(c.sess_number(), 0, "expired 10 s after the latest add");
    assert_eq!(
        format!("{:?}", CacheMode::UPDATE_TIME),
        "CacheMode(UPDATE_TIME)"
    );
    // Without the bit the time stays.
    let (plain, clock) = cache();
    let t = session_for(&plain, 2, 10);
    plain.add_session(&t);
    clock.advance(Duration::from_secs(8));
    plain.add_session(&t);
    assert_eq!(t.time(), T0);
}

/// "SSL_SESS_CACHE_OFF: No session caching for client or server takes
/// place." (ssl_update_cache neither stores nor calls the new-session
/// callback; lookups are not gated by the mode, so add_session still
/// resumes.)
#[test]
fn off_stores_nothing_automatically() {
    let (c, _, store) = with_store(SessionCache::builder().mode(CacheMode::OFF));
    let s = session(&c, 1);
    c.handshake_finished(Side::Server, Handshake::New(&s));
    let client = c
        .session_builder(&id(2), vec![2])
        .peer(tlscache_policy::PeerKey::new("example.com:443"))
        .build()
        .unwrap();
    c.handshake_finished(Side::Client, Handshake::New(&client));
    assert_eq!(c.sess_number(), 0);
    assert!(c.client_session(b"example.com:443").is_none());
    assert_eq!(store.calls(), vec![]);
    c.add_session(&s);
    assert!(c.lookup(&id(1), &ctx_of(&s)).is_some());
}

/// "SSL_SESS_CACHE_CLIENT: Client sessions are added to the session cache.
/// ... This option is not activated by default."
#[test]
fn client_sessions_are_stored_only_in_client_mode() {
    let (c, _) = cache();
    let peer = tlscache_policy::PeerKey::new("upstream:443");
    let s = c
        .session_builder(&id(1), vec![1])
        .peer(peer.clone())
        .build()
        .unwrap();
    c.handshake_finished(Side::Client, Handshake::New(&s));
    assert!(c.client_session(peer.as_bytes()).is_none());
    c.set_mode(CacheMode::CLIENT);
    c.handshake_finished(Side::Client, Handshake::New(&s));
    let got = c.client_session(peer.as_bytes()).unwrap();
    assert!(Arc::ptr_eq(&got, &s));
    // A server session is not stored in CLIENT-only mode.
    let server = session(&c, 2);
    c.handshake_finished(Side::Server, Handshake::New(&server));
    assert_eq!(c.sess_number(), 0);
}

/// "SSL_SESS_CACHE_SERVER: ... the server looks for the corresponding
/// session in (first) the internal session cache (unless
/// SSL_SESS_CACHE_NO_INTERNAL_LOOKUP is set), then (second) in the external
/// cache if available."
#[test]
fn lookup_is_internal_first_then_external() {
    let (c, _, store) = with_store(SessionCache::builder());
    let inside = session(&c, 1);
    c.add_session(&inside);
    assert!(c.lookup(&id(1), &ctx_of(&inside)).is_some());
    assert_eq!(store.calls(), vec![], "an internal hit asks no one else");
    let outside = session(&c, 2);
    store.put(&outside);
    assert!(c.lookup(&id(2), &ctx_of(&outside)).is_some());
    assert_eq!(store.calls(), vec![Call::Get(2)]);
}

/// "SSL_SESS_CACHE_NO_INTERNAL_LOOKUP: ... If external session caching
/// callbacks are in use, this flag guarantees that all lookups are directed
/// to the external cache." (lookup_sess_in_cache counts a miss only when it
/// searched the internal cache.)
#[test]
fn no_internal_lookup_goes_straight_to_the_external_store() {
    let (c, _, store) =
        with_store(SessionCache::builder().mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_LOOKUP));
    let s = session(&c, 1);
    c.add_session(&s);
    assert!(c.lookup(&id(1), &ctx_of(&s)).is_none());
    assert_eq!(store.calls(), vec![Call::Get(1)]);
    assert_eq!(c.stats().misses, 0);
}

/// "any successful session lookups in the external cache (i.e. for
/// session-resume requests) would normally be copied into the local cache
/// before processing continues - this flag [NO_INTERNAL_STORE] prevents
/// these additions to the internal cache as well."
#[test]
fn external_hits_are_copied_in_unless_no_internal_store() {
    let (c, _, store) = with_store(SessionCache::builder());
    let s = session(&c, 1);
    store.put(&s);
    assert!(c.lookup(&id(1), &ctx_of(&s)).is_some());
    assert_eq!(c.sess_number(), 1, "copied into the internal cache");

    let (c, _, store) =
        with_store(SessionCache::builder().mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE));
    let s = session(&c, 1);
    store.put(&s);
    assert!(c.lookup(&id(1), &ctx_of(&s)).is_some());
    assert_eq!(c.sess_number(), 0);
}

/// "Normally the session cache is checked for expired sessions every 255
/// connections using the SSL_CTX_flush_sessions(3) function." In OpenSSL
/// 3.0's ssl_update_cache the test is `(accept_good & 0xff) == 0xff` on the
/// count before the current handshake, so the flush comes with the 256th
/// finished handshake, then the 512th, and so on.
#[test]
fn expired_sessions_are_flushed_on_the_256th_handshake() {
    let (c, clock, store) = with_store(SessionCache::builder());
    let old = session_for(&c, 1, 10);
    c.add_session(&old);
    clock.advance(Duration::from_secs(11));
    for _ in 0..255 {
        c.handshake_finished(Side::Server, Handshake::Resumed);
    }
    assert_eq!(c.sess_number(), 1, "not yet: 255 handshakes finished");
    c.handshake_finished(Side::Server, Handshake::Resumed);
    assert_eq!(c.sess_number(), 0, "flushed with the 256th");
    assert!(!old.is_resumable());
    assert_eq!(store.calls(), vec![Call::Remove(1, Removal::Expired)]);
    assert_eq!(c.stats().accept_good, 256);

    let late = session_for(&c, 2, 10);
    c.add_session(&late);
    clock.advance(Duration::from_secs(11));
    for _ in 0..255 {
        c.handshake_finished(Side::Server, Handshake::Resumed);
    }
    assert_eq!(c.sess_number(), 1);
    c.handshake_finished(Side::Server, Handshake::Resumed);
    assert_eq!(c.sess_number(), 0, "and again with the 512th");
}

/// The flush on the 256th handshake holds for every later lookup, removal
/// and store at once, though the shards sweep its sessions later (each at
/// its next write, all before a count): what it took is a miss, never a
/// timeout, as in OpenSSL.
#[test]
fn what_the_auto_flush_took_is_gone_for_every_later_call() {
    let clock = tlscache_core::ManualClock::new();
    clock.set(Duration::from_secs(T0));
    let c = SessionCache::builder()
        .shards(8)
        .clock(clock.clone())
        .build()
        .unwrap();
    let old: Vec<_> = (1..=20).map(|n| session_for(&c, n, 10)).collect();
    for s in &old {
        assert!(c.add_session(s));
    }
    clock.advance(Duration::from_secs(11));
    let fresh = session_for(&c, 30, 100);
    assert!(c.add_session(&fresh));
    for _ in 0..256 {
        c.handshake_finished(Side::Server, Handshake::Resumed);
    }
    for s in &old[..10] {
        assert!(c.lookup(s.id().as_bytes(), &ctx_of(s)).is_none());
    }
    assert!(c
        .lookup_once(old[10].id().as_bytes(), &ctx_of(&old[10]))
        .is_none());
    assert!(!c.remove_session(&old[11]), "flushed: no longer cached");
    // Stored again after the flush, expired: cached until a lookup finds it
    // (a timeout) or the next flush.
    assert!(c.add_session(&old[12]));
    assert!(c.lookup(fresh.id().as_bytes(), &ctx_of(&fresh)).is_some());
    let st = c.stats();
    assert_eq!((st.misses, st.timeouts, st.hits), (11, 0, 1));
    assert_eq!(st.number, 2, "the fresh session and the one stored again");
    assert!(
        old.iter().all(|s| !s.is_resumable()),
        "all swept by the count"
    );
    assert!(c
        .lookup(old[12].id().as_bytes(), &ctx_of(&old[12]))
        .is_none());
    assert_eq!((c.stats().timeouts, c.sess_number()), (1, 1));
}

/// The auto flush applies only when the mode includes the handshake's side
/// (`(mode & SSL_SESS_CACHE_SERVER) == SSL_SESS_CACHE_SERVER` in
/// ssl_update_cache).
#[test]
fn the_auto_flush_needs_the_side_in_the_mode() {
    let (c, clock) = cache_with(SessionCache::builder().mode(CacheMode::CLIENT));
    let s = session_for(&c, 1, 1);
    c.add_session(&s);
    clock.advance(Duration::from_secs(5));
    for _ in 0..256 {
        c.handshake_finished(Side::Server, Handshake::Resumed);
    }
    assert_eq!(c.sess_number(), 1);
    for _ in 0..256 {
        c.handshake_finished(Side::Client, Handshake::Resumed);
    }
    assert_eq!(c.sess_number(), 0, "the client side's 256th flushed");
}

/// "SSL_SESS_CACHE_NO_AUTO_CLEAR: ... the automatic flushing may be
/// disabled and SSL_CTX_flush_sessions(3) can be called explicitly by the
/// application."
#[test]
fn no_auto_clear_leaves_flushing_to_the_application() {
    let (c, clock) =
        cache_with(SessionCache::builder().mode(CacheMode::SERVER | CacheMode::NO_AUTO_CLEAR));
    let s = session_for(&c, 1, 10);
    c.add_session(&s);
    clock.advance(Duration::from_secs(11));
    for _ in 0..1024 {
        c.handshake_finished(Side::Server, Handshake::Resumed);
    }
    assert_eq!(c.sess_number(), 1);
    c.flush_sessions(T0 + 11);
    assert_eq!(c.sess_number(), 0);
}

/// "if more than one SSL_CTX object is being maintained, the sessions are
/// unique for each SSL_CTX object."
#[test]
fn each_cache_keeps_its_own_sessions() {
    let (a, _) = cache();
    let (b, _) = cache();
    let s = session(&a, 1);
    a.add_session(&s);
    assert!(b.lookup(&id(1), &ctx_of(&s)).is_none());
    assert_eq!(b.sess_number(), 0);
}

/// "Since a client may try to reuse a session intended for use in a
/// different context, the session id context must be set by the server."
/// (ssl_get_prev_session: "We have the session requested by the client, but
/// we don't want to use it in this context" — treated like a cache miss,
/// counting neither a hit nor a miss.)
#[test]
fn a_session_from_another_context_does_not_resume() {
    let (c, _) = cache_with(SessionCache::builder().session_id_context(b"app-a"));
    let s = session(&c, 1);
    c.add_session(&s);
    assert!(c.lookup(&id(1), b"app-b").is_none());
    assert!(c.lookup(&id(1), b"").is_none());
    let stats = c.stats();
    assert_eq!((stats.hits, stats.misses), (0, 0));
    assert!(c.lookup(&id(1), b"app-a").is_some());
    assert_eq!(c.stats().hits, 1);
}

// ---- OpenSSL 3.0 code paths ----------------------------------------------

/// lookup_sess_in_cache: an internal miss counts `sess_miss`; ssl_get_prev_session:
/// a usable session counts `sess_hit`.
#[test]
fn hits_and_misses_are_counted() {
    let (c, _) = cache();
    let s = session(&c, 1);
    c.add_session(&s);
    c.lookup(&id(1), &ctx_of(&s)).unwrap();
    assert!(c.lookup(&id(2), &ctx_of(&s)).is_none());
    let stats = c.stats();
    assert_eq!((stats.hits, stats.misses, stats.cb_hits), (1, 1, 0));
}

/// lookup_sess_in_cache: an external hit counts `sess_cb_hit` (and, once
/// ssl_get_prev_session accepts it, `sess_hit`; the internal miss before it
/// counts too). The get callback's `copy` flag: a shared session is the
/// store's own object; an owned one becomes the cache's.
#[test]
fn external_hits_count_and_respect_copy_semantics() {
    let (c, _, store) =
        with_store(SessionCache::builder().mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE));
    let s = session(&c, 1);
    store.put(&s);
    let shared = c.lookup(&id(1), &ctx_of(&s)).unwrap();
    assert!(Arc::ptr_eq(&shared, &s), "copy = 1: the store's object");
    store.owned.store(true, std::sync::atomic::Ordering::SeqCst);
    let owned = c.lookup(&id(1), &ctx_of(&s)).unwrap();
    assert!(!Arc::ptr_eq(&owned, &s), "copy = 0: a fresh object");
    assert_eq!(Arc::strong_count(&owned), 1, "handed over, not kept");
    let stats = c.stats();
    assert_eq!((stats.hits, stats.cb_hits, stats.misses), (2, 2, 2));
}

/// lookup_sess_in_cache: "If its not resumable then ignore this session".
#[test]
fn a_non_resumable_external_session_is_ignored() {
    let (c, _, store) = with_store(SessionCache::builder());
    let s = session(&c, 1);
    store.put(&s);
    c.remove_session(&s); // marks it; the store forgets it ...
    store.put(&s); // ... and a stale copy comes back
    assert!(c.lookup(&id(1), &ctx_of(&s)).is_none());
    assert_eq!(c.stats().cb_hits, 0);
    assert_eq!(c.sess_number(), 0);
}

/// ssl_get_prev_session: an expired session counts `sess_timeout`, and
/// "session was from the cache, so remove it" (SSL_CTX_remove_session: the
/// remove callback runs and the session is marked).
#[test]
fn an_expired_session_counts_a_timeout_and_is_removed() {
    let (c, clock, store) = with_store(SessionCache::builder());
    let s = session_for(&c, 1, 100);
    c.add_session(&s);
    clock.set(Duration::from_secs(T0 + 100));
    assert!(
        c.lookup(&id(1), &ctx_of(&s)).is_some(),
        "valid through its last second"
    );
    clock.set(Duration::from_secs(T0 + 101));
    assert!(c.lookup(&id(1), &ctx_of(&s)).is_none());
    let stats = c.stats();
    assert_eq!((stats.timeouts, stats.hits, stats.misses), (1, 1, 0));
    assert_eq!(c.sess_number(), 0);
    assert!(!s.is_resumable());
    assert_eq!(store.calls(), vec![Call::Remove(1, Removal::Expired)]);
}

/// SSL_CTX_flush_sessions(ctx, t): removes each session with
/// `t > time + timeout` (sess_timedout), marks it non-resumable and calls
/// the remove callback; `t == 0` removes every session.
#[test]
fn flush_sessions_removes_exactly_the_timed_out() {
    let (c, _, store) = with_store(SessionCache::builder());
    let short = session_for(&c, 1, 10);
    let long = session_for(&c, 2, 20);
    c.add_session(&short);
    c.add_session(&long);
    c.flush_sessions(T0 + 10);
    assert_eq!(c.sess_number(), 2, "t == time + timeout is not timed out");
    c.flush_sessions(T0 + 11);
    assert_eq!(c.sess_number(), 1);
    assert!(!short.is_resumable() && long.is_resumable());
    assert_eq!(store.calls(), vec![Call::Remove(1, Removal::Expired)]);
    c.flush_sessions(0);
    assert_eq!(c.sess_number(), 0);
    assert!(!long.is_resumable());
    assert_eq!(store.calls(), vec![Call::Remove(2, Removal::Cleared)]);
}

/// A flush at a time far ahead of the clock and then one at the real time
/// keep the sessions the second must keep.
#[test]
fn flushing_at_a_far_time_then_now_keeps_what_it_must() {
    let (c, _) = cache();
    c.flush_sessions(T0 + 1_000_000_000);
    let s = session(&c, 1);
    c.add_session(&s);
    c.flush_sessions(T0);
    assert_eq!(c.sess_number(), 1);
    assert!(c.lookup(&id(1), &ctx_of(&s)).is_some());
}

/// SSL_CTX_add_session: "new cache entry -- remove old ones if cache has
/// become too large", counting `sess_cache_full`; remove_session_lock marks
/// the evicted session and calls the remove callback. OpenSSL 3.0 evicts
/// while `SSL_CTX_sess_number(ctx) >= SSL_CTX_sess_get_cache_size(ctx)`
/// with the new session already counted, so a full cache of size N holds
/// N - 1 sessions.
#[test]
fn a_full_cache_evicts_first_and_counts_cache_full() {
    let (c, _, store) = with_store(SessionCache::builder().cache_size(3));
    let sessions: Vec<_> = (1..=3).map(|n| session(&c, n)).collect();
    for s in &sessions {
        assert!(c.add_session(s), "adding a new session succeeds");
    }
    assert_eq!(c.sess_number(), 2);
    let stats = c.stats();
    assert_eq!(stats.cache_full, 1);
    assert!(!sessions[0].is_resumable());
    assert_eq!(store.calls(), vec![Call::Remove(1, Removal::Evicted)]);

    let (one, _) = cache_with(SessionCache::builder().cache_size(1));
    one.add_session(&session(&one, 1));
    assert_eq!(one.sess_number(), 1, "size 1 holds one: no tail to evict");
    one.add_session(&session(&one, 2));
    assert_eq!(one.sess_number(), 1);
    assert_eq!(one.stats().cache_full, 1);
}

/// The default cache size is SSL_SESSION_CACHE_MAX_SIZE_DEFAULT (1024 * 20);
/// SSL_CTX_sess_set_cache_size returns the previous size; 0 is unbounded; a
/// smaller size takes effect at once.
#[test]
fn cache_size_defaults_changes_and_shrinks_live() {
    let (c, _) = cache();
    assert_eq!(c.cache_size(), DEFAULT_CACHE_SIZE);
    assert_eq!(DEFAULT_CACHE_SIZE, 20480);
    assert_eq!(c.set_cache_size(0), 20480);
    for n in 0..100 {
        c.add_session(&session(&c, n));
    }
    assert_eq!(c.sess_number(), 100);
    assert_eq!(c.set_cache_size(11), 0);
    assert_eq!(c.sess_number(), 10);
    assert_eq!(c.stats().cache_full, 90);
}

/// SSL_CTX_set_timeout returns the previous timeout; OpenSSL 3.0's default
/// for TLS is two hours; ssl_get_new_session: "If the context has a default
/// timeout, use it", so 0 means the protocol default. Sessions already made
/// keep theirs.
#[test]
fn timeout_defaults_changes_and_applies_to_new_sessions() {
    let (c, _) = cache();
    assert_eq!(c.timeout(), DEFAULT_TIMEOUT);
    assert_eq!(DEFAULT_TIMEOUT, 7200);
    let before = session(&c, 1);
    assert_eq!(c.set_timeout(60), 7200);
    assert_eq!(session(&c, 2).timeout(), 60);
    assert_eq!(before.timeout(), 7200);
    assert_eq!(c.set_timeout(0), 60);
    assert_eq!(session(&c, 3).timeout(), 7200);
}

/// tls_finish_handshake counts `sess_accept_good` / `sess_connect_good`
/// (and a resumed client handshake `sess_hit`); the state machine counts
/// `sess_accept` / `sess_connect` when a handshake starts.
#[test]
fn handshake_counters() {
    let (c, _) = cache_with(SessionCache::builder().mode(CacheMode::BOTH));
    c.handshake_started(Side::Server);
    c.handshake_started(Side::Server);
    c.handshake_started(Side::Client);
    let s = session(&c, 1);
    c.handshake_finished(Side::Server, Handshake::New(&s));
    c.handshake_finished(Side::Client, Handshake::Resumed);
    let stats = c.stats();
    assert_eq!(stats.accept, 2);
    assert_eq!(stats.accept_good, 1);
    assert_eq!(stats.connect, 1);
    assert_eq!(stats.connect_good, 1);
    assert_eq!(stats.hits, 1, "the client's resumption");
    assert_eq!(stats.number, 1);
}

/// ssl_update_cache: the new-session callback is called for every new
/// session whose side the mode enables, NO_INTERNAL_STORE or not; a resumed
/// (non-TLS 1.3) handshake stores nothing.
#[test]
fn the_new_session_callback_follows_the_mode() {
    let (c, _, store) =
        with_store(SessionCache::builder().mode(CacheMode::SERVER | CacheMode::NO_INTERNAL));
    let s = session(&c, 1);
    c.handshake_finished(Side::Server, Handshake::New(&s));
    c.handshake_finished(Side::Server, Handshake::Resumed);
    assert_eq!(store.calls(), vec![Call::New(1)]);
    assert_eq!(c.sess_number(), 0);
    // NO_INTERNAL: the lookup goes to the store alone and is not copied in.
    assert!(c.lookup(&id(1), &ctx_of(&s)).is_some());
    assert_eq!(store.calls(), vec![Call::Get(1)]);
    assert_eq!(c.sess_number(), 0);
}

/// SSL_CTX_sess_number counts sessions in the cache, expired ones that no
/// flush has removed yet included.
#[test]
fn sess_number_includes_expired_sessions_until_flushed() {
    let (c, clock) = cache();
    let s = session_for(&c, 1, 1);
    c.add_session(&s);
    c.add_session(&session(&c, 2));
    clock.advance(Duration::from_secs(60));
    assert_eq!(c.sess_number(), 2);
    c.flush_sessions(T0 + 60);
    assert_eq!(c.sess_number(), 1);
}

// ---- beyond OpenSSL: client lists, single use, a failing store -------------

/// Client sessions per peer: newest first, each handed out once, at most
/// `tickets_per_peer` kept (oldest dropped), expired ones skipped.
#[test]
fn client_sessions_per_peer() {
    let (c, clock) = cache_with(
        SessionCache::builder()
            .mode(CacheMode::CLIENT)
            .tickets_per_peer(2),
    );
    let peer = tlscache_policy::PeerKey::new("db.internal:5432");
    let make = |n: u8, timeout: u64| {
        c.session_builder(&id(n), vec![n])
            .peer(peer.clone())
            .timeout(timeout)
            .build()
            .unwrap()
    };
    for (n, timeout) in [(1, 100), (2, 100), (3, 5)] {
        c.handshake_finished(Side::Client, Handshake::New(&make(n, timeout)));
    }
    assert_eq!(
        c.client_session(b"db.internal:5432")
            .unwrap()
            .id()
            .as_bytes(),
        id(3)
    );
    assert_eq!(
        c.client_session(b"db.internal:5432")
            .unwrap()
            .id()
            .as_bytes(),
        id(2)
    );
    assert!(
        c.client_session(b"db.internal:5432").is_none(),
        "1 was dropped"
    );
    c.handshake_finished(Side::Client, Handshake::New(&make(4, 5)));
    c.handshake_finished(Side::Client, Handshake::New(&make(5, 100)));
    c.handshake_finished(Side::Client, Handshake::New(&make(6, 5)));
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        c.client_session(b"db.internal:5432")
            .unwrap()
            .id()
            .as_bytes(),
        id(5)
    );
    assert!(c.client_session(b"db.internal:5432").is_none());
    assert!(c.client_session(b"elsewhere:443").is_none());
}

/// Single use: a session found by `lookup_once` leaves the cache with it.
#[test]
fn lookup_once_resumes_once() {
    let (c, _) = cache();
    let s = session(&c, 1);
    c.add_session(&s);
    assert!(c.lookup_once(&id(1), &ctx_of(&s)).is_some());
    assert!(c.lookup_once(&id(1), &ctx_of(&s)).is_none());
    assert!(c.lookup(&id(1), &ctx_of(&s)).is_none());
    let stats = c.stats();
    assert_eq!((stats.hits, stats.misses), (1, 2));
}

/// A single-use lookup consumes only a session it resumes (issue 23, gap
/// 1): `ssl_get_prev_session` refuses a session of another version or
/// session-id context, and OpenSSL's own cache keeps it; so does this one,
/// uncounted, and the session still resumes where it belongs.
#[test]
fn lookup_once_leaves_a_session_it_refuses() {
    let (c, _) = cache();
    let s12 = session(&c, 1); // TLS 1.2, the builder's default
    c.add_session(&s12);
    assert!(c
        .lookup_once_version(&id(1), &ctx_of(&s12), ProtocolVersion::TLS1_3)
        .is_none());
    assert!(c.lookup_once(&id(1), b"another context").is_none());
    assert_eq!(c.sess_number(), 1, "refused, not consumed");
    let stats = c.stats();
    // OpenSSL keys by version and id: the TLS 1.3 lookup misses; the
    // other context's finds it (uncounted).
    assert_eq!((stats.hits, stats.misses), (0, 1));
    assert!(s12.is_resumable());
    assert!(c
        .lookup_once_version(&id(1), &ctx_of(&s12), ProtocolVersion::TLS1_2)
        .is_some());
    assert_eq!(c.sess_number(), 0);
    assert_eq!(c.stats().hits, 1);
}

/// An expired session found by a single-use lookup goes as a lookup's
/// does: counted as a timeout, removed, marked, reported to the store.
#[test]
fn lookup_once_removes_an_expired_session_as_a_timeout() {
    let (c, clock, store) = with_store(SessionCache::builder());
    let s = session_for(&c, 1, 10);
    c.handshake_finished(Side::Server, Handshake::New(&s));
    store.calls();
    clock.advance(Duration::from_secs(11));
    assert!(c.lookup_once(&id(1), &ctx_of(&s)).is_none());
    assert_eq!(c.sess_number(), 0);
    assert!(!s.is_resumable());
    let stats = c.stats();
    assert_eq!((stats.timeouts, stats.hits), (1, 0));
    assert_eq!(
        store.calls(),
        vec![Call::Take(1), Call::Remove(1, Removal::Expired)]
    );
}

/// A store that only listens (gap 3) does not veto local single use: a
/// ticket found locally resumes without asking it, and it is asked only
/// after a local miss.
#[test]
fn a_listening_store_leaves_single_use_to_the_cache() {
    let listener = Arc::new(Recorder::listening());
    let (c, _) = cache_with(SessionCache::builder().external_store(listener.clone()));
    let s = session(&c, 1);
    c.handshake_finished(Side::Server, Handshake::New(&s));
    assert!(c.lookup_once(&id(1), &ctx_of(&s)).is_some());
    assert!(c.lookup_once(&id(1), &ctx_of(&s)).is_none());
    assert_eq!(
        listener.calls(),
        vec![Call::New(1), Call::Take(1)],
        "asked once, after the local miss"
    );
    assert_eq!(c.stats().hits, 1);
}

/// OpenSSL counts `sess_hit` for every resumption, stateless tickets
/// included (gap 4): a stack reports one the cache never saw.
#[test]
fn a_stateless_resumption_counts_a_hit() {
    let (c, _) = cache();
    c.handshake_started(Side::Server);
    c.handshake_finished(Side::Server, Handshake::ResumedStateless);
    let stats = c.stats();
    assert_eq!((stats.hits, stats.misses, stats.accept_good), (1, 0, 1));
    // A resumption found by a lookup was counted there, not again.
    c.handshake_finished(Side::Server, Handshake::Resumed);
    assert_eq!(c.stats().hits, 1);
}

/// With an external store, single use is the store's to grant: a ticket the
/// store no longer has (used on another server) does not resume here even
/// though it is cached locally.
#[test]
fn lookup_once_needs_the_store_to_yield_the_ticket() {
    let (c, _, store) = with_store(SessionCache::builder());
    let s = session(&c, 1);
    c.handshake_finished(Side::Server, Handshake::New(&s));
    assert!(store.holds(1));
    store.sessions.lock().unwrap().clear(); // another server took it
    assert!(c.lookup_once(&id(1), &ctx_of(&s)).is_none());
    let s2 = session(&c, 2);
    c.handshake_finished(Side::Server, Handshake::New(&s2));
    assert!(c.lookup_once(&id(2), &ctx_of(&s2)).is_some());
    assert!(!store.holds(2), "taken from the store too");
    // Found only in the store: taken there, never copied in.
    let s3 = session(&c, 3);
    store.put(&s3);
    assert!(c.lookup_once(&id(3), &ctx_of(&s3)).is_some());
    assert_eq!(c.sess_number(), 0);
}

/// A store that errs, panics or answers after the budget never fails a
/// lookup: each is counted and the lookup misses.
#[test]
fn a_misbehaving_store_is_a_counted_miss() {
    let (c, _, store) =
        with_store(SessionCache::builder().external_budget(Duration::from_millis(10)));
    let s = session(&c, 1);
    store.put(&s);
    for fault in [Fault::Error, Fault::Panic, Fault::Slow] {
        store.set_fault(fault);
        assert!(c.lookup(&id(1), &ctx_of(&s)).is_none(), "{fault:?}");
        c.handshake_finished(Side::Server, Handshake::New(&session(&c, 2)));
    }
    let stats = c.stats();
    assert_eq!(
        stats.external_errors, 4,
        "error and panic, lookups and stores"
    );
    assert_eq!(stats.external_slow, 2);
    assert_eq!(stats.cb_hits, 0);
    store.set_fault(Fault::None);
    assert!(c.lookup(&id(1), &ctx_of(&s)).is_some());
}
