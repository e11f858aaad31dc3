//! Real OpenSSL handshakes over in-memory socket pairs, resuming through
//! tlscache.

mod common;

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{certified, client, connect};
use openssl::ssl::{Ssl, SslContext, SslMethod, SslSession, SslVersion};
use tlscache_core::ManualClock;
use tlscache_policy::{CacheMode, SessionCache};

fn server(cache: &Arc<SessionCache>, sid_ctx: &[u8], max: SslVersion) -> SslContext {
    let mut ctx = SslContext::builder(SslMethod::tls_server()).unwrap();
    certified(&mut ctx);
    ctx.set_max_proto_version(Some(max)).unwrap();
    tlscache_openssl::install(&mut ctx, cache.clone(), sid_ctx).unwrap();
    ctx.build()
}

fn cache() -> Arc<SessionCache> {
    Arc::new(
        SessionCache::builder()
            .mode(CacheMode::SERVER)
            .build()
            .unwrap(),
    )
}

#[test]
fn tls12_resumes_by_session_id_through_the_cache() {
    let cache = cache();
    let server = server(&cache, b"front", SslVersion::TLS1_2);
    let client = client(SslVersion::TLS1_2);
    let (reused, session) = connect(&server, &client, None);
    assert!(!reused);
    assert_eq!(cache.sess_number(), 1, "the session went to tlscache");
    let stored = cache.lookup(session.id(), b"front").expect("under its id");
    assert_eq!(
        SslSession::from_der(stored.state()).unwrap().id(),
        session.id(),
        "kept as DER"
    );
    let hits = cache.stats().hits;
    for _ in 0..3 {
        assert!(connect(&server, &client, Some(&session)).0);
    }
    assert_eq!(cache.stats().hits, hits + 3);
}

#[test]
fn an_expired_session_does_not_resume() {
    let clock = ManualClock::new();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    clock.set(now);
    let cache = Arc::new(
        SessionCache::builder()
            .mode(CacheMode::SERVER)
            .timeout(300)
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let server = server(&cache, b"front", SslVersion::TLS1_2);
    let client = client(SslVersion::TLS1_2);
    let (_, session) = connect(&server, &client, None);
    clock.advance(Duration::from_secs(300));
    assert!(
        connect(&server, &client, Some(&session)).0,
        "valid through time + timeout"
    );
    clock.advance(Duration::from_secs(2));
    assert!(!connect(&server, &client, Some(&session)).0);
    assert_eq!(cache.stats().timeouts, 1);
}

#[test]
fn a_removed_session_does_not_resume() {
    let cache = cache();
    let server = server(&cache, b"front", SslVersion::TLS1_2);
    let client = client(SslVersion::TLS1_2);
    let (_, session) = connect(&server, &client, None);
    assert!(cache.remove_session_id(session.id()));
    assert!(!connect(&server, &client, Some(&session)).0);
}

#[test]
fn openssl_removing_a_session_removes_it_from_the_cache() {
    // A connection dropped without close_notify: OpenSSL's
    // ssl_clear_bad_session calls SSL_CTX_remove_session, and so our
    // remove callback.
    let cache = cache();
    let server = server(&cache, b"front", SslVersion::TLS1_2);
    let client = client(SslVersion::TLS1_2);
    let (s_sock, c_sock) = UnixStream::pair().unwrap();
    let server2 = server.clone();
    let t = std::thread::spawn(move || {
        let s = Ssl::new(&server2).unwrap().accept(s_sock).unwrap();
        drop(s); // no shutdown
    });
    let c = Ssl::new(&client).unwrap().connect(c_sock).unwrap();
    let session = c.ssl().session().unwrap().to_owned();
    t.join().unwrap();
    assert_eq!(cache.sess_number(), 0);
    assert!(!connect(&server, &client, Some(&session)).0);
}

#[test]
fn a_session_from_another_context_does_not_resume() {
    let shared = cache();
    let front = server(&shared, b"front", SslVersion::TLS1_2);
    let admin = server(&shared, b"admin", SslVersion::TLS1_2);
    let client = client(SslVersion::TLS1_2);
    let (_, session) = connect(&front, &client, None);
    assert!(!connect(&admin, &client, Some(&session)).0);
    assert!(
        connect(&front, &client, Some(&session)).0,
        "still resumes where it was made"
    );
}

#[test]
fn tls13_stateful_tickets_resume_once() {
    let cache = cache();
    let server = server(&cache, b"front", SslVersion::TLS1_3);
    let client = client(SslVersion::TLS1_3);
    let (reused, ticket) = connect(&server, &client, None);
    assert!(!reused);
    assert!(cache.sess_number() >= 1, "stateful tickets go to the cache");
    assert!(connect(&server, &client, Some(&ticket)).0);
    assert!(
        !connect(&server, &client, Some(&ticket)).0,
        "the same ticket again"
    );
}

#[test]
fn an_unknown_session_gets_a_full_handshake() {
    // A session from another server (another cache): unknown here.
    let elsewhere = server(&cache(), b"front", SslVersion::TLS1_2);
    let here_cache = cache();
    let here = server(&here_cache, b"front", SslVersion::TLS1_2);
    let client = client(SslVersion::TLS1_2);
    let (_, foreign) = connect(&elsewhere, &client, None);
    assert!(!connect(&here, &client, Some(&foreign)).0);
    assert_eq!(here_cache.stats().misses, 1);
    assert_eq!(here_cache.stats().hits, 0);
}

#[test]
fn a_long_stateless_ticket_is_never_looked_up() {
    // A plain OpenSSL server with its default stateless tickets.
    let mut plain = SslContext::builder(SslMethod::tls_server()).unwrap();
    certified(&mut plain);
    let plain = plain.build();
    let here_cache = cache();
    let here = server(&here_cache, b"front", SslVersion::TLS1_3);
    let client = client(SslVersion::TLS1_3);
    let (_, stateless) = connect(&plain, &client, None);
    assert!(!connect(&here, &client, Some(&stateless)).0);
    let stats = here_cache.stats();
    assert_eq!((stats.hits, stats.misses), (0, 0));
}

#[test]
fn an_oversized_context_is_refused() {
    let mut ctx = SslContext::builder(SslMethod::tls_server()).unwrap();
    let err = tlscache_openssl::install(&mut ctx, cache(), &[0; 33]).unwrap_err();
    assert!(
        matches!(err, tlscache_openssl::InstallError::Context(_)),
        "{err}"
    );
}
