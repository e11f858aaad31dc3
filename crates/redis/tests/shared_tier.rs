//! Two proxies sharing sessions through a real redis-server.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use tlscache_policy::{CacheMode, Handshake, Session, SessionCache, Side};
use tlscache_redis::{ConfigError, RedisStore};

fn finish_new(cache: &SessionCache, session: &Arc<Session>) {
    cache.handshake_started(Side::Server);
    cache.handshake_finished(Side::Server, Handshake::New(session));
}

#[test]
fn a_session_made_on_one_proxy_resumes_on_the_other() {
    let server = RedisServer::start();
    let (a, a_store) = proxy(store_on(&server.url()), CacheMode::SERVER);
    let (b, b_store) = proxy(store_on(&server.url()), CacheMode::SERVER);

    let session = new_session(&a, 1, 300);
    finish_new(&a, &session);
    assert_eq!(a_store.stats().stores, 1);

    let resumed = b
        .lookup(session.id().as_bytes(), CTX)
        .expect("B resumes A's session");
    assert_eq!(resumed.state(), session.state());
    assert_eq!(resumed.time(), session.time());
    let stats = b.stats();
    assert_eq!((stats.misses, stats.cb_hits, stats.hits), (1, 1, 1));
    assert_eq!((b_store.stats().lookups, b_store.stats().hits), (1, 1));

    // B copied it in: the next lookup is local and asks Redis nothing.
    assert!(b.lookup(session.id().as_bytes(), CTX).is_some());
    assert_eq!(b_store.stats().lookups, 1);
    assert_eq!(b.stats().hits, 2);

    // The key holds the context: another context finds nothing in Redis.
    let other = RedisStore::builder(server.url())
        .prefix(b"test:")
        .build()
        .unwrap();
    let (c, _) = proxy(other, CacheMode::SERVER);
    c.set_session_id_context(b"admin-8443").unwrap();
    assert!(c.lookup(session.id().as_bytes(), b"admin-8443").is_none());
    assert_eq!(c.stats().cb_hits, 0);
}

#[test]
fn the_key_and_value_are_as_documented() {
    let server = RedisServer::start();
    let (a, store) = proxy(store_on(&server.url()), CacheMode::SERVER);
    let session = new_session(&a, 2, 300);
    finish_new(&a, &session);

    let mut key = b"test:".to_vec();
    key.push(CTX.len() as u8);
    key.extend_from_slice(CTX);
    key.extend_from_slice(session.id().as_bytes());
    assert_eq!(store.key(&session.sid_ctx(), session.id()), key);

    let mut conn = server.connection();
    let value: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
    assert_eq!(value, session.encode().to_vec());
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
    assert!(
        (299_000..=301_000).contains(&pttl),
        "expiry is the remaining lifetime: {pttl} ms"
    );
}

#[test]
fn a_ticket_resumes_once_across_the_fleet_even_when_eight_threads_race() {
    let server = RedisServer::start();
    let (a, _) = proxy(store_on(&server.url()), CacheMode::SERVER);
    let (b, _) = proxy(store_on(&server.url()), CacheMode::SERVER);
    let (a, b) = (Arc::new(a), Arc::new(b));
    let rounds = 40;
    let barrier = Arc::new(Barrier::new(8));
    let wins = Arc::new(AtomicU64::new(0));

    let tickets: Vec<_> = (0..rounds).map(|i| new_session(&a, 100 + i, 300)).collect();
    for ticket in &tickets {
        // A issued it: it is in A's cache and in Redis.
        finish_new(&a, ticket);
    }
    let tickets = Arc::new(tickets);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let cache = Arc::clone(if t % 2 == 0 { &a } else { &b });
            let (barrier, wins, tickets) = (barrier.clone(), wins.clone(), tickets.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for ticket in tickets.iter() {
                    barrier.wait();
                    if cache.lookup_once(ticket.id().as_bytes(), CTX).is_some() {
                        wins.fetch_add(1, Ordering::Relaxed);
                        mine.push(ticket.id().as_bytes()[3]);
                    }
                }
                mine
            })
        })
        .collect();
    let mut won: Vec<u8> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    won.sort_unstable();
    let expected: Vec<u8> = (0..rounds).map(|i| (100 + i) as u8).collect();
    assert_eq!(won, expected, "every ticket resumed exactly once");
    assert_eq!(wins.load(Ordering::Relaxed), u64::from(rounds));
    // Redis holds none of them any more, and neither cache can resume one.
    for ticket in tickets.iter() {
        assert!(a.lookup(ticket.id().as_bytes(), CTX).is_none());
        assert!(b.lookup(ticket.id().as_bytes(), CTX).is_none());
    }
}

#[test]
fn no_internal_lookup_goes_straight_to_redis() {
    let server = RedisServer::start();
    let (b, store) = proxy(
        store_on(&server.url()),
        CacheMode::SERVER | CacheMode::NO_INTERNAL_LOOKUP,
    );
    // Only in B's own cache, never handed to Redis.
    let local = new_session(&b, 3, 300);
    assert!(b.add_session(&local));
    assert!(b.lookup(local.id().as_bytes(), CTX).is_none());
    assert_eq!(store.stats().lookups, 1);
    assert_eq!(b.stats().misses, 0, "the internal cache was not searched");

    // In Redis: found there.
    let shared = new_session(&b, 4, 300);
    finish_new(&b, &shared);
    assert!(b.lookup(shared.id().as_bytes(), CTX).is_some());
    assert_eq!((store.stats().lookups, store.stats().hits), (2, 1));
}

#[test]
fn no_internal_store_keeps_redis_hits_out_of_the_local_cache() {
    let server = RedisServer::start();
    let (a, _) = proxy(store_on(&server.url()), CacheMode::SERVER);
    let (b, store) = proxy(
        store_on(&server.url()),
        CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE,
    );
    let session = new_session(&a, 5, 300);
    finish_new(&a, &session);
    for _ in 0..3 {
        assert!(b.lookup(session.id().as_bytes(), CTX).is_some());
    }
    assert_eq!(b.sess_number(), 0);
    assert_eq!(store.stats().lookups, 3, "every lookup asked Redis");
    // And B's own new sessions go to Redis only.
    let own = new_session(&b, 6, 300);
    finish_new(&b, &own);
    assert_eq!(b.sess_number(), 0);
    assert!(a.lookup(own.id().as_bytes(), CTX).is_some());
}

#[test]
fn a_session_past_its_lifetime_is_gone_from_redis_too() {
    let server = RedisServer::start();
    let (a, store) = proxy(store_on(&server.url()), CacheMode::SERVER);
    let (b, _) = proxy(store_on(&server.url()), CacheMode::SERVER);
    // Valid within this second and the next: gone at most ~2 s from now.
    let session = new_session(&a, 7, 1);
    finish_new(&a, &session);
    let key = store.key(&session.sid_ctx(), session.id());
    let mut conn = server.connection();
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
    assert!((1..=2000).contains(&pttl), "PTTL {pttl}");
    wait_for("Redis to expire the session", || {
        let exists: u64 = redis::cmd("EXISTS").arg(&key).query(&mut conn).unwrap();
        (exists == 0).then_some(())
    });
    assert!(b.lookup(session.id().as_bytes(), CTX).is_none());

    // One already timed out is not stored at all.
    let old = a
        .session_builder(&[8; 32], b"old".to_vec())
        .time(1_000_000)
        .timeout(10)
        .build()
        .unwrap();
    finish_new(&a, &old);
    let exists: u64 = redis::cmd("EXISTS")
        .arg(store.key(&old.sid_ctx(), old.id()))
        .query(&mut conn)
        .unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn only_an_explicit_removal_deletes_from_redis() {
    let server = RedisServer::start();
    let store = Arc::new(store_on(&server.url()));
    // A local cache of size 2 (holding one session) in front of Redis.
    let a = SessionCache::builder()
        .mode(CacheMode::SERVER)
        .session_id_context(CTX)
        .cache_size(2)
        .shards(1)
        .external_store(store.clone())
        .external_budget(Duration::from_secs(1))
        .build()
        .unwrap();
    let (b, _) = proxy(store_on(&server.url()), CacheMode::SERVER);
    let first = new_session(&a, 9, 300);
    let second = new_session(&a, 10, 300);
    finish_new(&a, &first);
    finish_new(&a, &second);
    assert_eq!(a.stats().cache_full, 1, "the first was evicted locally");
    assert!(
        b.lookup(first.id().as_bytes(), CTX).is_some(),
        "and still resumes in the fleet"
    );

    a.flush_sessions(0);
    assert!(
        b.lookup(second.id().as_bytes(), CTX).is_some(),
        "a local flush is local"
    );

    let third = new_session(&a, 11, 300);
    finish_new(&a, &third);
    assert!(a.remove_session(&third));
    assert_eq!(store.stats().removes, 1);
    assert!(
        b.lookup(third.id().as_bytes(), CTX).is_none(),
        "removed fleet-wide"
    );
}

#[test]
fn a_value_that_is_not_a_session_is_a_counted_miss() {
    let server = RedisServer::start();
    let (b, store) = proxy(store_on(&server.url()), CacheMode::SERVER);
    let id = [12u8; 32];
    let key = store.key(
        &b.session_id_context(),
        &tlscache_policy::SessionId::new(&id).unwrap(),
    );
    let mut conn = server.connection();
    redis::cmd("SET")
        .arg(&key)
        .arg(b"garbage")
        .query::<()>(&mut conn)
        .unwrap();
    assert!(b.lookup(&id, CTX).is_none());
    assert_eq!(b.stats().external_errors, 1);
    assert_eq!(store.stats().errors, 1);
    // A wrong type is an error too, not a panic.
    redis::cmd("DEL").arg(&key).query::<()>(&mut conn).unwrap();
    redis::cmd("LPUSH")
        .arg(&key)
        .arg(1)
        .query::<()>(&mut conn)
        .unwrap();
    assert!(b.lookup(&id, CTX).is_none());
    assert_eq!(b.stats().external_errors, 2);
    // And the store carries on.
    let session = new_session(&b, 13, 300);
    finish_new(&b, &session);
    assert_eq!(store.stats().stores, 1);
}

#[test]
fn with_redis_down_lookups_miss_and_stores_are_dropped_and_counted() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let store = RedisStore::builder(url)
        .connect_timeout(Duration::from_millis(100))
        .command_timeout(Duration::from_millis(100))
        .retry_after(Duration::from_millis(50))
        .build()
        .unwrap();
    let (a, store) = proxy(store, CacheMode::SERVER);
    for i in 0..20 {
        let session = new_session(&a, 20 + i, 300);
        finish_new(&a, &session);
        assert!(
            a.lookup(session.id().as_bytes(), CTX).is_some(),
            "the local cache serves"
        );
        assert!(a.lookup(&[99; 32], CTX).is_none());
        assert!(
            a.lookup_once(session.id().as_bytes(), CTX).is_none(),
            "no take without Redis"
        );
    }
    let stats = store.stats();
    assert_eq!(stats.dropped_stores, 20);
    assert_eq!(stats.stores + stats.hits + stats.connects, 0);
    assert!(stats.errors >= 60);
    assert_eq!(a.stats().external_errors, stats.errors);
}

#[test]
fn a_hung_redis_costs_a_handshake_at_most_the_timeouts() {
    let server = RedisServer::start();
    let store = RedisStore::builder(server.url())
        .connect_timeout(Duration::from_millis(100))
        .command_timeout(Duration::from_millis(100))
        .retry_after(Duration::from_secs(60))
        .build()
        .unwrap();
    let (a, store) = proxy(store, CacheMode::SERVER);
    store.ping().expect("Redis answers first");
    server.signal("-STOP");
    let start = Instant::now();
    assert!(a.lookup(&[1; 32], CTX).is_none());
    let first = start.elapsed();
    // Backing off now: the next calls do not touch the network.
    let start = Instant::now();
    for _ in 0..100 {
        assert!(a.lookup(&[1; 32], CTX).is_none());
    }
    let next = start.elapsed();
    server.signal("-CONT");
    assert!(
        first >= Duration::from_millis(100),
        "waited for the timeout: {first:?}"
    );
    // Generous bounds for a loaded machine; the point is the order of
    // magnitude (a hung server without timeouts would block forever).
    assert!(first < Duration::from_secs(2), "{first:?}");
    assert!(
        next < Duration::from_secs(1),
        "100 backed-off calls took {next:?}"
    );
    assert_eq!(a.stats().external_errors, 101);
}

#[test]
fn redis_killed_during_load_and_restarted() {
    let mut server = RedisServer::start();
    let url = server.url();
    let quick = |url: &str| {
        RedisStore::builder(url)
            .prefix(b"test:")
            .connect_timeout(Duration::from_millis(100))
            .command_timeout(Duration::from_millis(100))
            .retry_after(Duration::from_millis(50))
            .build()
            .unwrap()
    };
    let (a, a_store) = proxy(quick(&url), CacheMode::SERVER);
    let (b, b_store) = proxy(quick(&url), CacheMode::SERVER);
    let (a, b) = (Arc::new(a), Arc::new(b));
    // Sessions A holds locally; the load resumes them on A all along.
    let local: Vec<_> = (0..100).map(|i| new_session(&a, 1000 + i, 300)).collect();
    for s in &local {
        finish_new(&a, s);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..2)
        .map(|t| {
            let (a, b, stop, served) = (a.clone(), b.clone(), stop.clone(), served.clone());
            let local = local.clone();
            std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let s = &local[n as usize % local.len()];
                    assert!(
                        a.lookup(s.id().as_bytes(), CTX).is_some(),
                        "A's local cache serves"
                    );
                    served.fetch_add(1, Ordering::Relaxed);
                    // New sessions on A, looked up on B: through Redis.
                    let fresh = new_session(&a, 10_000 + t * 1_000_000 + n, 300);
                    finish_new(&a, &fresh);
                    let _ = b.lookup(fresh.id().as_bytes(), CTX);
                }
            })
        })
        .collect();

    let served_between = |f: &mut dyn FnMut()| {
        let before = served.load(Ordering::Relaxed);
        f();
        served.load(Ordering::Relaxed) - before
    };
    std::thread::sleep(Duration::from_millis(300));
    let hits_up = b.stats().cb_hits;
    assert!(hits_up > 0, "sharing works before the kill");

    let mut down_errors = 0;
    let during_outage = served_between(&mut || {
        server.kill();
        std::thread::sleep(Duration::from_millis(500));
        down_errors = a.stats().external_errors + b.stats().external_errors;
    });
    assert!(
        during_outage > 0,
        "the local cache kept serving while Redis was down"
    );
    assert!(down_errors > 0, "errors were counted");
    let dropped = a_store.stats().dropped_stores;
    assert!(dropped > 0, "stores were dropped and counted");

    // Connections made so far: none can succeed while the server is
    // down, so any counted after this is a reconnection to the restarted
    // server. (Read after the restart, B could already have reconnected.)
    let connects_before = b_store.stats().connects;
    server.restart();
    // Sharing resumes by itself.
    let hits_before = b.stats().cb_hits;
    wait_for("sharing to resume", || {
        (b.stats().cb_hits > hits_before + 10).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().expect("no panic in the load threads");
    }
    assert!(b_store.stats().connects > connects_before, "B reconnected");
    assert!(a_store.stats().connects >= 2, "A reconnected");
}

#[test]
fn a_one_node_cluster_shares_sessions() {
    let server = RedisServer::start_cluster();
    let cluster = || {
        RedisStore::cluster([server.url()])
            .prefix(b"test:")
            .connect_timeout(Duration::from_millis(500))
            .command_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    let (a, _) = proxy(cluster(), CacheMode::SERVER);
    let (b, b_store) = proxy(cluster(), CacheMode::SERVER);
    let session = new_session(&a, 14, 300);
    finish_new(&a, &session);
    assert!(b.lookup(session.id().as_bytes(), CTX).is_some());
    assert_eq!(b_store.stats().hits, 1);
    let ticket = new_session(&a, 15, 300);
    finish_new(&a, &ticket);
    assert!(b.lookup_once(ticket.id().as_bytes(), CTX).is_some());
    assert!(
        a.lookup_once(ticket.id().as_bytes(), CTX).is_none(),
        "GETDEL through the cluster"
    );
}

#[test]
fn bad_settings_are_typed_errors() {
    let zero = RedisStore::builder("redis://127.0.0.1:1")
        .command_timeout(Duration::ZERO)
        .build();
    assert!(matches!(
        zero,
        Err(ConfigError::ZeroTimeout("command timeout"))
    ));
    let zero = RedisStore::builder("redis://127.0.0.1:1")
        .connect_timeout(Duration::ZERO)
        .build();
    assert!(matches!(
        zero,
        Err(ConfigError::ZeroTimeout("connect timeout"))
    ));
    let tag = RedisStore::builder("redis://127.0.0.1:1")
        .prefix(b"{tls}:")
        .build();
    assert!(matches!(tag, Err(ConfigError::HashTagInPrefix(_))));
    assert!(matches!(
        RedisStore::builder("not a url").build(),
        Err(ConfigError::Address(_))
    ));
    assert!(matches!(
        RedisStore::cluster(Vec::<String>::new()).build(),
        Err(ConfigError::NoNodes)
    ));
    // Nothing listens there, and that is not a build error: Redis may come later.
    assert!(RedisStore::builder("redis://127.0.0.1:1").build().is_ok());
}
