//! Random operation sequences against a small reference model of the whole
//! contract (modes, add/remove, lookups, single use, expiry, flushes, the
//! auto flush, sizes and counters), comparing every answer. One shard, so
//! eviction is exact LRU; no external store (the conformance suite covers
//! the callbacks).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{cache_with, T0};
use proptest::prelude::*;
use tlscache_policy::{CacheMode, Handshake, Session, SessionCache, SessionStats, Side};

const IDS: u8 = 6;
const VARIANTS: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    Add(u8, usize),
    Remove(u8, usize),
    Lookup(u8, bool),
    LookupOnce(u8, bool),
    New(u8, usize),
    Resumed(u16),
    Advance(u64),
    Flush(Option<u64>),
    SetMode(u64),
    SetSize(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let modes = prop::sample::select(vec![
        0x2, 0x0, 0x1, 0x3, 0x82, 0x102, 0x202, 0x302, 0x382, 0x402,
    ]);
    prop_oneof![
        4 => (0..IDS, 0..VARIANTS).prop_map(|(n, v)| Op::Add(n, v)),
        2 => (0..IDS, 0..VARIANTS).prop_map(|(n, v)| Op::Remove(n, v)),
        5 => (0..IDS, any::<bool>()).prop_map(|(n, ok)| Op::Lookup(n, ok)),
        2 => (0..IDS, any::<bool>()).prop_map(|(n, ok)| Op::LookupOnce(n, ok)),
        3 => (0..IDS, 0..VARIANTS).prop_map(|(n, v)| Op::New(n, v)),
        1 => (1..300u16).prop_map(Op::Resumed),
        2 => (0..40u64).prop_map(Op::Advance),
        1 => prop::option::of(0..60u64).prop_map(Op::Flush),
        1 => modes.prop_map(Op::SetMode),
        1 => (0..8u64).prop_map(Op::SetSize),
    ]
}

/// The reference: a map from id to (variant, last access), plus the
/// counters and flags OpenSSL keeps.
struct Model {
    entries: HashMap<u8, (usize, u64)>,
    resumable: HashMap<(u8, usize), bool>,
    /// Creation times moved by adds under `UPDATE_TIME` (else `T0`).
    born: HashMap<(u8, usize), u64>,
    tick: u64,
    now: u64,
    mode: u64,
    size: u64,
    stats: SessionStats,
}

fn timeout_of(n: u8, v: usize) -> u64 {
    [5, 30, 90][(usize::from(n) + v) % 3]
}

impl Model {
    fn capacity(&self) -> Option<usize> {
        (self.size != 0).then(|| self.size.saturating_sub(1).max(1) as usize)
    }

    fn born(&self, n: u8, v: usize) -> u64 {
        self.born.get(&(n, v)).copied().unwrap_or(T0)
    }

    fn expired(&self, n: u8, v: usize) -> bool {
        self.now > self.born(n, v) + timeout_of(n, v)
    }

    fn touch(&mut self, n: u8) {
        self.tick += 1;
        if let Some(e) = self.entries.get_mut(&n) {
            e.1 = self.tick;
        }
    }

    fn evict_to_capacity(&mut self) {
        while let Some(cap) = self.capacity() {
            if self.entries.len() <= cap {
                break;
            }
            let (&victim, &(v, _)) = self.entries.iter().min_by_key(|(_, e)| e.1).unwrap();
            self.entries.remove(&victim);
            self.resumable.insert((victim, v), false);
            self.stats.cache_full += 1;
        }
    }

    fn add(&mut self, n: u8, v: usize) -> bool {
        if self.mode & 0x400 != 0 {
            self.born.insert((n, v), self.now);
        }
        if self.entries.get(&n).is_some_and(|e| e.0 == v) {
            if self.mode & 0x400 != 0 {
                self.touch(n);
            }
            return false;
        }
        self.tick += 1;
        self.entries.insert(n, (v, self.tick));
        self.evict_to_capacity();
        true
    }

    fn remove(&mut self, n: u8, v: usize) -> bool {
        self.resumable.insert((n, v), false);
        self.entries.remove(&n).is_some()
    }

    fn flush(&mut self, t: u64) {
        let gone: Vec<(u8, usize)> = self
            .entries
            .iter()
            .filter(|(&n, &(v, _))| t == 0 || t > self.born(n, v) + timeout_of(n, v))
            .map(|(&n, &(v, _))| (n, v))
            .collect();
        for (n, v) in gone {
            self.entries.remove(&n);
            self.resumable.insert((n, v), false);
        }
    }

    /// What `lookup`/`lookup_once` answer: the variant resumed, if any. A
    /// single-use lookup consumes only what it resumes, or an expired
    /// session (which a lookup removes too), and touches nothing.
    fn lookup(&mut self, n: u8, ctx_ok: bool, once: bool) -> Option<usize> {
        if self.mode & 0x100 != 0 {
            return None; // no internal lookup and no store
        }
        let Some(&(v, _)) = self.entries.get(&n) else {
            self.stats.misses += 1;
            return None;
        };
        if !once {
            self.touch(n);
        }
        if !ctx_ok {
            return None;
        }
        if self.expired(n, v) {
            self.stats.timeouts += 1;
            self.remove(n, v);
            return None;
        }
        if !self.resumable.get(&(n, v)).copied().unwrap_or(true) {
            return None;
        }
        if once {
            self.entries.remove(&n);
        }
        self.stats.hits += 1;
        Some(v)
    }

    fn finished(&mut self) {
        let before = self.stats.accept_good;
        self.stats.accept_good += 1;
        if self.mode & 0x80 == 0 && self.mode & 0x2 != 0 && before & 0xff == 0xff {
            self.flush(self.now);
        }
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (c, clock) = cache_with(SessionCache::builder().session_id_context(b"ctx"));
    // Two distinct objects per id, made once, all created at T0.
    let objects: Vec<Vec<Arc<Session>>> = (0..IDS)
        .map(|n| {
            (0..VARIANTS)
                .map(|v| {
                    c.session_builder(&[n; 32], vec![n, v as u8])
                        .timeout(timeout_of(n, v))
                        .build()
                        .unwrap()
                })
                .collect()
        })
        .collect();
    let variant = |s: &Arc<Session>| usize::from(s.state()[1]);
    let mut m = Model {
        entries: HashMap::new(),
        resumable: HashMap::new(),
        born: HashMap::new(),
        tick: 0,
        now: T0,
        mode: 0x2,
        size: 20480,
        stats: SessionStats::default(),
    };
    for op in ops {
        match op {
            Op::Add(n, v) => {
                let got = c.add_session(&objects[n as usize][v]);
                prop_assert_eq!(got, m.add(n, v), "{:?}", op);
            }
            Op::Remove(n, v) => {
                let got = c.remove_session(&objects[n as usize][v]);
                prop_assert_eq!(got, m.remove(n, v), "{:?}", op);
            }
            Op::Lookup(n, ok) => {
                let ctx: &[u8] = if ok { b"ctx" } else { b"other" };
                let got = c.lookup(&[n; 32], ctx).map(|s| variant(&s));
                prop_assert_eq!(got, m.lookup(n, ok, false), "{:?}", op);
            }
            Op::LookupOnce(n, ok) => {
                let ctx: &[u8] = if ok { b"ctx" } else { b"other" };
                let got = c.lookup_once(&[n; 32], ctx).map(|s| variant(&s));
                prop_assert_eq!(got, m.lookup(n, ok, true), "{:?}", op);
            }
            Op::New(n, v) => {
                c.handshake_finished(Side::Server, Handshake::New(&objects[n as usize][v]));
                if m.mode & 0x2 != 0 && m.mode & 0x200 == 0 {
                    m.add(n, v);
                }
                m.finished();
            }
            Op::Resumed(k) => {
                for _ in 0..k {
                    c.handshake_finished(Side::Server, Handshake::Resumed);
                    m.finished();
                }
            }
            Op::Advance(secs) => {
                clock.advance(Duration::from_secs(secs));
                m.now += secs;
            }
            Op::Flush(t) => {
                let t = t.map_or(0, |dt| T0 + dt);
                c.flush_sessions(t);
                m.flush(t);
            }
            Op::SetMode(bits) => {
                let old = c.set_mode(CacheMode::from_bits(bits));
                prop_assert_eq!(old.bits(), m.mode);
                m.mode = bits;
            }
            Op::SetSize(size) => {
                let old = c.set_cache_size(size);
                prop_assert_eq!(old, m.size);
                m.size = size;
                m.evict_to_capacity();
            }
        }
        m.stats.number = m.entries.len() as u64;
        let mut got = c.stats();
        got.client_peers = 0;
        prop_assert_eq!(got, m.stats, "after {:?}", op);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_cache_matches_the_reference_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
