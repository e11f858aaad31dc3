//! A real three-master Redis Cluster on loopback ports (`redis-cli
//! --cluster create`, persistence off): sessions spread over the masters
//! and are shared between proxies, slots move while sessions flow, and a
//! master dies or hangs.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{new_session, proxy, start_masters, wait_for, RedisServer, CTX};
use tlscache_policy::{CacheMode, Handshake, Session, SessionCache, Side};
use tlscache_redis::RedisStore;

/// The store's command and connect timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(200);

fn cluster_store(nodes: &[RedisServer]) -> RedisStore {
    RedisStore::cluster(nodes.iter().map(RedisServer::url))
        .prefix(b"test:")
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
        .build()
        .expect("a valid store")
}

fn finish_new(cache: &SessionCache, session: &Arc<Session>) {
    cache.handshake_started(Side::Server);
    cache.handshake_finished(Side::Server, Handshake::New(session));
}

/// Sessions made on proxy `a` with ids `ids`.
fn made(a: &SessionCache, ids: std::ops::Range<u32>) -> Vec<Arc<Session>> {
    ids.map(|id| {
        let s = new_session(a, id, 300);
        finish_new(a, &s);
        s
    })
    .collect()
}

#[test]
fn sessions_spread_over_the_masters_and_resume_on_another_proxy() {
    let nodes = start_masters(3);
    let (a, _) = proxy(cluster_store(&nodes), CacheMode::SERVER);
    let (b, b_store) = proxy(cluster_store(&nodes), CacheMode::SERVER);
    let sessions = made(&a, 0..300);
    let held: Vec<u64> = nodes.iter().map(RedisServer::keys).collect();
    assert_eq!(held.iter().sum::<u64>(), 300, "{held:?}");
    assert!(
        held.iter().all(|&n| n > 0),
        "each master holds some: {held:?}"
    );
    for s in &sessions {
        assert!(b.lookup(s.id().as_bytes(), CTX).is_some());
    }
    assert_eq!(b_store.stats().hits, 300);
    assert_eq!(b_store.stats().errors, 0);

    // TLS 1.3 tickets: each resumes once in the fleet, whichever master
    // holds it.
    let tickets = made(&a, 1000..1060);
    for t in &tickets {
        assert!(b.lookup_once(t.id().as_bytes(), CTX).is_some());
    }
    for t in &tickets {
        assert!(
            a.lookup_once(t.id().as_bytes(), CTX).is_none(),
            "taken on the other proxy"
        );
    }
}

/// Moves `slots` slots from `from` to `to` with `redis-cli --cluster
/// reshard` (which migrates their keys).
fn reshard(nodes: &[RedisServer], from: usize, to: usize, slots: u32) {
    let out = std::process::Command::new("redis-cli")
        .args([
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{}", nodes[0].port),
        ])
        .args(["--cluster-from", &nodes[from].node_id()])
        .args(["--cluster-to", &nodes[to].node_id()])
        .args(["--cluster-slots", &slots.to_string()])
        .arg("--cluster-yes")
        .output()
        .expect("redis-cli runs");
    assert!(
        out.status.success(),
        "reshard: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sessions_keep_resuming_while_slots_move() {
    let nodes = start_masters(3);
    let (a, a_store) = proxy(cluster_store(&nodes), CacheMode::SERVER);
    let (b, b_store) = proxy(cluster_store(&nodes), CacheMode::SERVER);
    let (a, b) = (Arc::new(a), Arc::new(b));
    let before = made(&a, 0..600);
    let stop = Arc::new(AtomicBool::new(false));
    let (resumed, missed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let flow = {
        let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
        let (resumed, missed) = (resumed.clone(), missed.clone());
        std::thread::spawn(move || {
            let mut id = 10_000;
            while !stop.load(Ordering::Relaxed) {
                let s = new_session(&a, id, 300);
                finish_new(&a, &s);
                let found = b.lookup(s.id().as_bytes(), CTX).is_some();
                if found { &resumed } else { &missed }.fetch_add(1, Ordering::Relaxed);
                id += 1;
            }
        })
    };
    // A third of the first master's slots, keys and all, to the second.
    reshard(&nodes, 0, 1, 1800);
    stop.store(true, Ordering::Relaxed);
    flow.join().expect("no panic while slots move");
    let (resumed, missed) = (
        resumed.load(Ordering::Relaxed),
        missed.load(Ordering::Relaxed),
    );
    assert!(resumed > 0);
    println!(
        "while slots moved: {resumed} resumed, {missed} missed; errors A {}, B {}",
        a_store.stats().errors,
        b_store.stats().errors
    );

    // Once the move is over, every session resumes on the other proxy:
    // those made before it (their keys moved with their slots) and new
    // ones, wherever their slot now is.
    let moved: Vec<u64> = nodes.iter().map(RedisServer::keys).collect();
    let (b2, b2_store) = proxy(cluster_store(&nodes), CacheMode::SERVER);
    let b_errors = b_store.stats().errors;
    for s in &before {
        assert!(b.lookup(s.id().as_bytes(), CTX).is_some(), "{moved:?}");
        assert!(b2.lookup(s.id().as_bytes(), CTX).is_some(), "{moved:?}");
    }
    for s in made(&a, 20_000..20_300) {
        assert!(b.lookup(s.id().as_bytes(), CTX).is_some());
    }
    assert_eq!(
        b_store.stats().errors,
        b_errors,
        "a connection made before the move follows MOVED answers"
    );
    assert_eq!(b2_store.stats().errors, 0);
}

/// A proxy that has been running: it has looked sessions up (so its
/// store knows the slot map and keeps connections ready).
fn warm_up(b: &SessionCache, sessions: &[Arc<Session>]) {
    for s in sessions {
        assert!(b.lookup(s.id().as_bytes(), CTX).is_some());
    }
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn a_dead_master_costs_its_slots_only_and_never_more_than_the_timeout() {
    let mut nodes = start_masters(3);
    let (a, _) = proxy(cluster_store(&nodes), CacheMode::SERVER);
    // Every lookup of B goes to Redis: nothing it finds is kept locally.
    let (b, b_store) = proxy(
        cluster_store(&nodes),
        CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE,
    );
    let sessions = made(&a, 0..300);
    // Which master holds which session: ask each.
    let holder = |s: &Session, nodes: &[RedisServer]| {
        let key = cluster_store(nodes).key(&tlscache_policy::SidCtx::new(CTX).unwrap(), s.id());
        nodes
            .iter()
            .position(|n| {
                redis::cmd("EXISTS")
                    .arg(&key)
                    .query::<u64>(&mut n.connection())
                    .is_ok_and(|e| e == 1)
            })
            .expect("some master holds it")
    };
    let on: Vec<usize> = sessions.iter().map(|s| holder(s, &nodes)).collect();
    warm_up(&b, &sessions);
    nodes[2].kill();
    let dead_slot_sessions = on.iter().filter(|&&at| at == 2).count();
    let live_slot_sessions = on.len() - dead_slot_sessions;
    assert!(dead_slot_sessions > 0 && live_slot_sessions > 0, "{on:?}");
    let mut slowest = Duration::ZERO;
    // At once, and again once the other masters have marked it failed.
    for round in ["just killed", "marked failed"] {
        if round == "marked failed" {
            std::thread::sleep(Duration::from_secs(3));
        }
        let errors = b_store.stats().errors;
        let mut live_hits = 0;
        for (s, &at) in sessions.iter().zip(&on) {
            let start = Instant::now();
            let found = b.lookup(s.id().as_bytes(), CTX).is_some();
            slowest = slowest.max(start.elapsed());
            if at == 2 {
                assert!(!found, "{round}: the dead master's session cannot be found");
            } else if found {
                live_hits += 1;
            }
        }
        let errors = b_store.stats().errors - errors;
        println!(
            "master 3 {round}: {live_hits} of {live_slot_sessions} live-slot sessions resumed, \
             {dead_slot_sessions} dead-slot misses ({errors} counted errors), slowest lookup {slowest:?}"
        );
        assert_eq!(
            live_hits, live_slot_sessions,
            "{round}: the live masters keep sharing"
        );
        assert!(
            errors > 0 && errors <= dead_slot_sessions as u64,
            "{round}: {errors}"
        );
    }
    assert!(slowest < 3 * TIMEOUT, "slowest lookup {slowest:?}");
}

#[test]
fn a_hung_master_costs_its_slots_at_most_the_timeout() {
    let nodes = start_masters(3);
    let (a, _) = proxy(cluster_store(&nodes), CacheMode::SERVER);
    let (b, b_store) = proxy(
        cluster_store(&nodes),
        CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE,
    );
    let sessions = made(&a, 0..300);
    let ctx = tlscache_policy::SidCtx::new(CTX).unwrap();
    let store = cluster_store(&nodes);
    let on_hung: Vec<bool> = sessions
        .iter()
        .map(|s| {
            redis::cmd("EXISTS")
                .arg(store.key(&ctx, s.id()))
                .query::<u64>(&mut nodes[2].connection())
                .is_ok_and(|e| e == 1)
        })
        .collect();
    warm_up(&b, &sessions);
    // SIGSTOP: connections are accepted, nothing is answered.
    nodes[2].signal("-STOP");
    let (mut slowest, mut live_hits, mut live) = (Duration::ZERO, 0, 0);
    for (s, &hung) in sessions.iter().zip(&on_hung) {
        let start = Instant::now();
        let found = b.lookup(s.id().as_bytes(), CTX).is_some();
        slowest = slowest.max(start.elapsed());
        if hung {
            assert!(!found);
        } else {
            live += 1;
            live_hits += usize::from(found);
        }
    }
    nodes[2].signal("-CONT");
    println!(
        "master 3 hung: {live_hits} of {live} live-slot sessions resumed, slowest lookup {slowest:?}, {:?}",
        b_store.stats()
    );
    assert_eq!(live_hits, live, "the live masters keep sharing");
    // One command timeout, for the call that found it hung (with room for
    // a loaded machine); every later call for its slots fails at once.
    assert!(slowest < TIMEOUT * 3 / 2, "slowest lookup {slowest:?}");
    // Answering again, it is found by the store's probe: its sessions
    // resume again, without a call having to wait for it.
    wait_for("the master's sessions to resume again", || {
        sessions
            .iter()
            .zip(&on_hung)
            .filter(|&(_, &hung)| hung)
            .all(|(s, _)| b.lookup(s.id().as_bytes(), CTX).is_some())
            .then_some(())
    });
}
