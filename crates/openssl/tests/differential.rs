//! The differential suite: every scenario runs twice, once against libssl's
//! own internal session cache in an `SSL_CTX` and once against
//! tlscache-policy (called directly where OpenSSL's `SSL_CTX_*` calls
//! are, installed through this crate where real handshakes run), and the
//! observations are compared. Each is equal, or differs in a way the
//! policy crate's docs list under "Where this cache differs from OpenSSL
//! 3.0", and the table below names the entry. The suite runs with the
//! default shard count and with one shard.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_int, c_long, c_uint};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{certified, client, connect_early, connect_reporting, Early};
use foreign_types::ForeignType;
use openssl::ssl::{SslContext, SslContextBuilder, SslMethod, SslOptions, SslSession, SslVersion};
use openssl_sys as ffi;
use tlscache_policy::{
    CacheMode, ExternalStore, Fetched, Handshake, ProtocolVersion, Removal, Session, SessionCache,
    SessionId, SidCtx, Side, StoreError,
};

extern "C" {
    // Public libssl 3.0 API that openssl-sys does not declare.
    fn SSL_SESSION_new() -> *mut ffi::SSL_SESSION;
    fn SSL_SESSION_set1_id(s: *mut ffi::SSL_SESSION, sid: *const u8, len: c_uint) -> c_int;
    fn SSL_SESSION_set1_id_context(s: *mut ffi::SSL_SESSION, ctx: *const u8, len: c_uint) -> c_int;
    fn SSL_SESSION_set1_master_key(s: *mut ffi::SSL_SESSION, key: *const u8, len: usize) -> c_int;
    fn SSL_SESSION_set_protocol_version(s: *mut ffi::SSL_SESSION, version: c_int) -> c_int;
    fn SSL_SESSION_set_timeout(s: *mut ffi::SSL_SESSION, t: c_long) -> c_long;
    fn SSL_SESSION_set_time(s: *mut ffi::SSL_SESSION, t: c_long) -> c_long;
    fn SSL_SESSION_get_time(s: *const ffi::SSL_SESSION) -> c_long;
    fn SSL_SESSION_is_resumable(s: *const ffi::SSL_SESSION) -> c_int;
    fn SSL_CTX_flush_sessions(ctx: *mut ffi::SSL_CTX, t: c_long);
    fn SSL_CTX_set_timeout(ctx: *mut ffi::SSL_CTX, t: c_long) -> c_long;
    fn SSL_CTX_get_timeout(ctx: *const ffi::SSL_CTX) -> c_long;
}

// `SSL_CTX_ctrl` commands behind the `SSL_CTX_sess_*` macros (ssl.h).
const SESS_NUMBER: c_int = 20;
const SESS_ACCEPT: c_int = 24;
const SESS_ACCEPT_GOOD: c_int = 25;
const SESS_HIT: c_int = 27;
const SESS_CB_HIT: c_int = 28;
const SESS_MISSES: c_int = 29;
const SESS_TIMEOUTS: c_int = 30;
const SESS_CACHE_FULL: c_int = 31;
const SET_SESS_CACHE_SIZE: c_int = 42;
const GET_SESS_CACHE_SIZE: c_int = 43;
const SET_SESS_CACHE_MODE: c_int = 44;
const GET_SESS_CACHE_MODE: c_int = 45;

/// The server contexts' session-id context.
const CTX: &[u8] = b"front";

/// Early data a server accepts, where it accepts any.
const EARLY_MAX: u32 = 1024;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A session to make: id, context, version, seconds since it was made,
/// timeout.
#[derive(Clone, Copy)]
struct Made<'a> {
    id: &'a [u8],
    ctx: &'a [u8],
    version: u16,
    age: u64,
    timeout: u64,
}

fn made(n: u8) -> Made<'static> {
    // Leaked once per distinct id: a handful per run.
    let id: &'static [u8] = Box::leak(Box::new([n; 32]));
    Made {
        id,
        ctx: CTX,
        version: 0x0303,
        age: 0,
        timeout: 600,
    }
}

/// How the handshake scenarios' server is set up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tickets {
    /// TLS 1.2 session ids (and TLS 1.3 stateful tickets).
    Stateful,
    /// TLS 1.3 tickets the server decrypts itself: no cache lookup.
    Stateless,
}

/// One cache under test, driven the same way on both sides.
trait Subject {
    /// A new session object (index), or `None` where the library refuses
    /// its id or context.
    fn make(&mut self, m: Made<'_>) -> Option<usize>;
    fn add(&mut self, s: usize) -> bool;
    fn remove(&mut self, s: usize) -> bool;
    fn resumable(&self, s: usize) -> bool;
    fn time_of(&self, s: usize) -> u64;
    fn number(&self) -> u64;
    /// accept, accept_good, hits, cb_hits, misses, timeouts, cache_full.
    fn stats(&self) -> [u64; 7];
    fn set_mode(&mut self, bits: u64) -> u64;
    fn mode(&self) -> u64;
    fn set_size(&mut self, size: u64) -> u64;
    fn size(&self) -> u64;
    fn set_timeout(&mut self, t: u64) -> u64;
    fn timeout(&self) -> u64;
    fn flush(&mut self, t: u64);
    /// Starts over with an external store (OpenSSL's new, get and remove
    /// session callbacks over a map) beside the internal cache.
    fn with_external(&mut self);
    /// A server context on this cache.
    fn server(&mut self, max: SslVersion, tickets: Tickets) -> SslContext;
    /// One connection to `server`: whether it resumed, and the session.
    fn connect(
        &mut self,
        server: &SslContext,
        client: &SslContext,
        offer: Option<&SslSession>,
    ) -> (bool, SslSession);
    /// A server context on this cache in session-id context `sid_ctx`
    /// (stateful tickets).
    fn server_in(&mut self, max: SslVersion, sid_ctx: &[u8]) -> SslContext;
    /// A TLS 1.3 server context on this cache, stateful tickets, that
    /// accepts early data (`SSL_CTX_set_max_early_data`).
    fn early_server(&mut self) -> SslContext;
    /// One connection to `server` that offers `offer` and sends `early`
    /// as early data.
    fn connect_early(
        &mut self,
        server: &SslContext,
        client: &SslContext,
        offer: &SslSession,
        early: &[u8],
    ) -> Early;
    /// Sends `hello` to `server` as a client would, reads the first
    /// record of its answer and hangs up; the record's type.
    fn raw_hello(&mut self, server: &SslContext, hello: &[u8]) -> u8 {
        raw_hello(server, hello)
    }
    /// Whether a session of `version` with `id` is cached: removes it.
    fn probe(&mut self, id: &[u8], version: u16) -> bool {
        let m = Made {
            id,
            version,
            ..made(0)
        };
        let s = self.make(m).expect("a valid id");
        self.remove(s)
    }
}

/// libssl's internal cache.
struct Libssl {
    ctx: SslContext,
    sessions: Vec<*mut ffi::SSL_SESSION>,
}

impl Libssl {
    fn new(tickets: Tickets) -> Self {
        Self {
            ctx: Self::builder(tickets).build(),
            sessions: Vec::new(),
        }
    }

    fn builder(tickets: Tickets) -> SslContextBuilder {
        let mut b = SslContext::builder(SslMethod::tls_server()).unwrap();
        certified(&mut b);
        if tickets == Tickets::Stateful {
            b.set_options(SslOptions::NO_TICKET);
        }
        b.set_session_id_context(CTX).unwrap();
        b
    }

    fn ctrl(&self, cmd: c_int, arg: c_long) -> u64 {
        // SAFETY: `ctx` is live; these commands read or set a number.
        let v = unsafe { ffi::SSL_CTX_ctrl(self.ctx.as_ptr(), cmd, arg, std::ptr::null_mut()) };
        u64::try_from(v).unwrap()
    }
}

impl Drop for Libssl {
    fn drop(&mut self) {
        for &s in &self.sessions {
            // SAFETY: each holds the reference `SSL_SESSION_new` gave.
            unsafe { ffi::SSL_SESSION_free(s) };
        }
    }
}

impl Subject for Libssl {
    fn make(&mut self, m: Made<'_>) -> Option<usize> {
        // SAFETY: a fresh session, set through its public setters; the
        // lengths are those of the slices passed.
        unsafe {
            let s = SSL_SESSION_new();
            assert!(!s.is_null());
            self.sessions.push(s);
            let key = [7u8; 48];
            let ok = SSL_SESSION_set1_id(s, m.id.as_ptr(), m.id.len() as c_uint) == 1
                && SSL_SESSION_set1_id_context(s, m.ctx.as_ptr(), m.ctx.len() as c_uint) == 1;
            SSL_SESSION_set1_master_key(s, key.as_ptr(), key.len());
            SSL_SESSION_set_protocol_version(s, c_int::from(m.version));
            SSL_SESSION_set_time(s, (now() - m.age) as c_long);
            SSL_SESSION_set_timeout(s, m.timeout as c_long);
            ok.then_some(self.sessions.len() - 1)
        }
    }
    fn add(&mut self, s: usize) -> bool {
        // SAFETY: live context and session.
        unsafe { ffi::SSL_CTX_add_session(self.ctx.as_ptr(), self.sessions[s]) == 1 }
    }
    fn remove(&mut self, s: usize) -> bool {
        // SAFETY: live context and session.
        unsafe { ffi::SSL_CTX_remove_session(self.ctx.as_ptr(), self.sessions[s]) == 1 }
    }
    fn resumable(&self, s: usize) -> bool {
        // SAFETY: a live session.
        unsafe { SSL_SESSION_is_resumable(self.sessions[s]) == 1 }
    }
    fn time_of(&self, s: usize) -> u64 {
        // SAFETY: a live session.
        u64::try_from(unsafe { SSL_SESSION_get_time(self.sessions[s]) }).unwrap()
    }
    fn number(&self) -> u64 {
        self.ctrl(SESS_NUMBER, 0)
    }
    fn stats(&self) -> [u64; 7] {
        [
            SESS_ACCEPT,
            SESS_ACCEPT_GOOD,
            SESS_HIT,
            SESS_CB_HIT,
            SESS_MISSES,
            SESS_TIMEOUTS,
            SESS_CACHE_FULL,
        ]
        .map(|cmd| self.ctrl(cmd, 0))
    }
    fn set_mode(&mut self, bits: u64) -> u64 {
        self.ctrl(SET_SESS_CACHE_MODE, bits as c_long)
    }
    fn mode(&self) -> u64 {
        self.ctrl(GET_SESS_CACHE_MODE, 0)
    }
    fn set_size(&mut self, size: u64) -> u64 {
        self.ctrl(SET_SESS_CACHE_SIZE, size as c_long)
    }
    fn size(&self) -> u64 {
        self.ctrl(GET_SESS_CACHE_SIZE, 0)
    }
    fn set_timeout(&mut self, t: u64) -> u64 {
        // SAFETY: a live context.
        u64::try_from(unsafe { SSL_CTX_set_timeout(self.ctx.as_ptr(), t as c_long) }).unwrap()
    }
    fn timeout(&self) -> u64 {
        // SAFETY: a live context.
        u64::try_from(unsafe { SSL_CTX_get_timeout(self.ctx.as_ptr()) }).unwrap()
    }
    fn flush(&mut self, t: u64) {
        // SAFETY: a live context.
        unsafe { SSL_CTX_flush_sessions(self.ctx.as_ptr(), t as c_long) }
    }
    fn with_external(&mut self) {
        type Map = Arc<Mutex<HashMap<Vec<u8>, SslSession>>>;
        let map: Map = Arc::default();
        let mut b = Self::builder(Tickets::Stateful);
        let (new, get, gone) = (map.clone(), map.clone(), map);
        b.set_new_session_callback(move |_, session| {
            new.lock().unwrap().insert(session.id().to_vec(), session);
        });
        // SAFETY: the map holds only sessions this context made.
        unsafe {
            b.set_get_session_callback(move |_, id| get.lock().unwrap().get(id).cloned());
        }
        b.set_remove_session_callback(move |_, session| {
            gone.lock().unwrap().remove(session.id());
        });
        self.ctx = b.build();
    }
    fn server_in(&mut self, max: SslVersion, sid_ctx: &[u8]) -> SslContext {
        // SAFETY: a live context; the length is the slice's.
        let set = unsafe {
            ffi::SSL_CTX_set_session_id_context(
                self.ctx.as_ptr(),
                sid_ctx.as_ptr(),
                sid_ctx.len() as c_uint,
            )
        };
        assert_eq!(set, 1);
        self.server(max, Tickets::Stateful)
    }
    fn server(&mut self, max: SslVersion, _: Tickets) -> SslContext {
        // The cache is the context's own; the version bound is the client's.
        let _ = max;
        self.ctx.clone()
    }
    fn connect(
        &mut self,
        server: &SslContext,
        client: &SslContext,
        offer: Option<&SslSession>,
    ) -> (bool, SslSession) {
        connect_reporting(server, client, offer, None)
    }
    fn early_server(&mut self) -> SslContext {
        // SAFETY: a live context.
        let set = unsafe { ffi::SSL_CTX_set_max_early_data(self.ctx.as_ptr(), EARLY_MAX) };
        assert_eq!(set, 1);
        self.ctx.clone()
    }
    fn connect_early(
        &mut self,
        server: &SslContext,
        client: &SslContext,
        offer: &SslSession,
        early: &[u8],
    ) -> Early {
        connect_early(server, client, offer, early, None).0
    }
}

/// tlscache-policy.
struct Ours {
    cache: Arc<SessionCache>,
    sessions: Vec<Arc<Session>>,
    tickets: Tickets,
    shards: Option<usize>,
}

impl Ours {
    fn new(shards: Option<usize>, tickets: Tickets) -> Self {
        let mut b = SessionCache::builder().session_id_context(CTX);
        if let Some(n) = shards {
            b = b.shards(n);
        }
        Self {
            cache: Arc::new(b.build().unwrap()),
            sessions: Vec::new(),
            tickets,
            shards,
        }
    }
}

/// An external store over a map, as OpenSSL's callbacks above keep one.
#[derive(Default)]
struct MapStore(Mutex<HashMap<SessionId, Arc<Session>>>);

impl ExternalStore for MapStore {
    fn new_session(&self, session: &Arc<Session>) -> Result<(), StoreError> {
        self.0
            .lock()
            .unwrap()
            .insert(*session.id(), session.clone());
        Ok(())
    }
    fn get_session(&self, id: &SessionId, _: &SidCtx) -> Result<Option<Fetched>, StoreError> {
        Ok(self.0.lock().unwrap().get(id).cloned().map(Fetched::Shared))
    }
    fn take_session(&self, id: &SessionId, _: &SidCtx) -> Result<Option<Fetched>, StoreError> {
        Ok(self.0.lock().unwrap().remove(id).map(Fetched::Shared))
    }
    fn remove_session(&self, session: &Arc<Session>, _: Removal) -> Result<(), StoreError> {
        self.0.lock().unwrap().remove(session.id());
        Ok(())
    }
}

impl Subject for Ours {
    fn make(&mut self, m: Made<'_>) -> Option<usize> {
        let s = Session::builder(m.id, vec![7; 48])
            .sid_ctx(m.ctx)
            .version(ProtocolVersion(m.version))
            .time(now() - m.age)
            .timeout(m.timeout)
            .build()
            .ok()?;
        self.sessions.push(s);
        Some(self.sessions.len() - 1)
    }
    fn add(&mut self, s: usize) -> bool {
        self.cache.add_session(&self.sessions[s])
    }
    fn remove(&mut self, s: usize) -> bool {
        self.cache.remove_session(&self.sessions[s])
    }
    fn resumable(&self, s: usize) -> bool {
        self.sessions[s].is_resumable()
    }
    fn time_of(&self, s: usize) -> u64 {
        self.sessions[s].time()
    }
    fn number(&self) -> u64 {
        self.cache.sess_number()
    }
    fn stats(&self) -> [u64; 7] {
        let s = self.cache.stats();
        [
            s.accept,
            s.accept_good,
            s.hits,
            s.cb_hits,
            s.misses,
            s.timeouts,
            s.cache_full,
        ]
    }
    fn set_mode(&mut self, bits: u64) -> u64 {
        self.cache.set_mode(CacheMode::from_bits(bits)).bits()
    }
    fn mode(&self) -> u64 {
        self.cache.mode().bits()
    }
    fn set_size(&mut self, size: u64) -> u64 {
        self.cache.set_cache_size(size)
    }
    fn size(&self) -> u64 {
        self.cache.cache_size()
    }
    fn set_timeout(&mut self, t: u64) -> u64 {
        self.cache.set_timeout(t)
    }
    fn timeout(&self) -> u64 {
        self.cache.timeout()
    }
    fn flush(&mut self, t: u64) {
        self.cache.flush_sessions(t);
    }
    fn with_external(&mut self) {
        let mut b = SessionCache::builder()
            .session_id_context(CTX)
            .external_store(Arc::new(MapStore::default()));
        if let Some(n) = self.shards {
            b = b.shards(n);
        }
        self.cache = Arc::new(b.build().unwrap());
    }
    fn server_in(&mut self, _: SslVersion, sid_ctx: &[u8]) -> SslContext {
        // The client bounds the version, as on libssl's side.
        let mut b = SslContext::builder(SslMethod::tls_server()).unwrap();
        certified(&mut b);
        tlscache_openssl::install(&mut b, self.cache.clone(), sid_ctx).unwrap();
        b.build()
    }
    fn raw_hello(&mut self, server: &SslContext, hello: &[u8]) -> u8 {
        self.cache.handshake_started(Side::Server);
        raw_hello(server, hello)
    }
    fn server(&mut self, max: SslVersion, tickets: Tickets) -> SslContext {
        let mut b = SslContext::builder(SslMethod::tls_server()).unwrap();
        certified(&mut b);
        b.set_max_proto_version(Some(max)).unwrap();
        if tickets == Tickets::Stateful {
            tlscache_openssl::install(&mut b, self.cache.clone(), CTX).unwrap();
        } else {
            b.set_session_id_context(CTX).unwrap();
        }
        b.build()
    }
    fn connect(
        &mut self,
        server: &SslContext,
        client: &SslContext,
        offer: Option<&SslSession>,
    ) -> (bool, SslSession) {
        if self.tickets == Tickets::Stateful {
            return connect_reporting(server, client, offer, Some(&self.cache));
        }
        // A stack with its own stateless tickets tells the cache how each
        // handshake went; the cache is never asked for a session.
        self.cache.handshake_started(Side::Server);
        let (reused, session) = connect_reporting(server, client, offer, None);
        self.cache.handshake_finished(
            Side::Server,
            if reused {
                Handshake::ResumedStateless
            } else {
                Handshake::Full
            },
        );
        (reused, session)
    }
    fn early_server(&mut self) -> SslContext {
        let mut b = SslContext::builder(SslMethod::tls_server()).unwrap();
        certified(&mut b);
        b.set_max_early_data(EARLY_MAX).unwrap();
        tlscache_openssl::install(&mut b, self.cache.clone(), CTX).unwrap();
        b.build()
    }
    fn connect_early(
        &mut self,
        server: &SslContext,
        client: &SslContext,
        offer: &SslSession,
        early: &[u8],
    ) -> Early {
        connect_early(server, client, offer, early, Some(&self.cache)).0
    }
}

/// Observations, in order, by label.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn see(&mut self, label: impl Into<String>, value: impl std::fmt::Debug) {
        self.0.push((label.into(), format!("{value:?}")));
    }

    fn stats(&mut self, at: &str, s: &dyn Subject) {
        let names = [
            "accept",
            "accept_good",
            "hits",
            "cb_hits",
            "misses",
            "timeouts",
            "cache_full",
        ];
        for (name, v) in names.iter().zip(s.stats()) {
            self.see(format!("{at}: {name}"), v);
        }
        self.see(format!("{at}: number"), s.number());
    }
}

type Scenario = fn(&mut dyn Subject, &mut Seen);

fn defaults(s: &mut dyn Subject, o: &mut Seen) {
    o.see("default mode", s.mode());
    o.see("default size", s.size());
    o.see("default timeout", s.timeout());
    o.stats("new", s);
}

fn modes(s: &mut dyn Subject, o: &mut Seen) {
    o.see("set BOTH returns", s.set_mode(0x3));
    o.see("set odd bits returns", s.set_mode(0x2 | 0x8000));
    o.see("get odd bits", s.mode());
    o.see("set timeout returns", s.set_timeout(77));
    o.see("get timeout", s.timeout());
    o.see("set size returns", s.set_size(5));
    o.see("get size", s.size());
}

fn adds(s: &mut dyn Subject, o: &mut Seen) {
    let a = s.make(made(1)).unwrap();
    let b = s.make(made(1)).unwrap();
    o.see("add new", s.add(a));
    o.see("add identical", s.add(a));
    o.see("number after identical", s.number());
    o.see("add same id, other object", s.add(b));
    o.see("number after replacement", s.number());
    o.see("replaced one resumable", s.resumable(a));
    o.stats("adds", s);
}

fn removes(s: &mut dyn Subject, o: &mut Seen) {
    let a = s.make(made(1)).unwrap();
    let b = s.make(made(1)).unwrap();
    let c = s.make(made(2)).unwrap();
    s.add(a);
    o.see("remove present", s.remove(a));
    o.see("removed one resumable", s.resumable(a));
    o.see("remove absent", s.remove(c));
    o.see("absent one marked", s.resumable(c));
    s.add(a);
    s.add(b);
    o.see("remove the replaced object", s.remove(a));
    o.see("number after", s.number());
    o.see("replacement still resumable", s.resumable(b));
}

fn full(s: &mut dyn Subject, o: &mut Seen) {
    s.set_size(4);
    // Made one second apart and alike otherwise: oldest first either way.
    for n in 1..=6u8 {
        let m = Made {
            age: 60 - u64::from(n),
            ..made(n)
        };
        let x = s.make(m).unwrap();
        o.see(format!("add {n} to a full cache"), s.add(x));
        o.see(format!("number after add {n}"), s.number());
    }
    o.stats("full", s);
    for n in 1..=6u8 {
        o.see(format!("kept {n}"), s.probe(&[n; 32], 0x0303));
    }
}

fn evicts_soonest_expiry(s: &mut dyn Subject, o: &mut Seen) {
    s.set_size(3);
    // The older session expires last.
    for (n, timeout) in [(1u8, 900), (2, 30)] {
        let x = s.make(Made { timeout, ..made(n) }).unwrap();
        s.add(x);
    }
    let x = s.make(made(3)).unwrap();
    s.add(x);
    o.see(
        "evict: kept the long-lived older one",
        s.probe(&[1; 32], 0x0303),
    );
    o.see(
        "evict: kept the short-lived newer one",
        s.probe(&[2; 32], 0x0303),
    );
}

fn flushes(s: &mut dyn Subject, o: &mut Seen) {
    let ages = [(1u8, 100, 50), (2, 100, 150), (3, 10, 100)];
    for (n, timeout, age) in ages {
        let x = s
            .make(Made {
                age,
                timeout,
                ..made(n)
            })
            .unwrap();
        s.add(x);
    }
    s.flush(now());
    o.see("flush now: number", s.number());
    s.flush(now() + 75);
    o.see("flush in 75 s: number", s.number());
    o.stats("flushes", s);
    let x = s.make(made(4)).unwrap();
    s.add(x);
    s.flush(0);
    o.see("flush 0: number", s.number());
    o.see("flush 0: flushed one resumable", s.resumable(x));
}

fn lengths(s: &mut dyn Subject, o: &mut Seen) {
    let long_id = [1u8; 33];
    let long_ctx = [2u8; 33];
    o.see(
        "33-byte id accepted",
        s.make(Made {
            id: &long_id,
            ..made(1)
        })
        .is_some(),
    );
    o.see(
        "33-byte context accepted",
        s.make(Made {
            ctx: &long_ctx,
            ..made(1)
        })
        .is_some(),
    );
    let empty = s.make(Made { id: &[], ..made(1) });
    o.see("empty id accepted", empty.is_some());
    o.see("empty id added", empty.map(|x| s.add(x)));
}

fn update_time(s: &mut dyn Subject, o: &mut Seen) {
    s.set_mode(0x2 | 0x400);
    let x = s
        .make(Made {
            age: 100,
            ..made(1)
        })
        .unwrap();
    let made_at = s.time_of(x);
    s.add(x);
    o.see("UPDATE_TIME: add moved the time", s.time_of(x) != made_at);
}

/// TLS 1.2 handshakes: a full one, resumptions, an unknown session.
fn tls12(s: &mut dyn Subject, o: &mut Seen) {
    let server = s.server(SslVersion::TLS1_2, Tickets::Stateful);
    let client = client(SslVersion::TLS1_2);
    let (reused, session) = s.connect(&server, &client, None);
    o.see("tls12 first resumed", reused);
    o.stats("tls12 full", s);
    for i in 0..2 {
        o.see(
            format!("tls12 resumption {i}"),
            s.connect(&server, &client, Some(&session)).0,
        );
    }
    o.stats("tls12 resumed", s);
    s.flush(0);
    o.see(
        "tls12 flushed session resumes",
        s.connect(&server, &client, Some(&session)).0,
    );
    o.stats("tls12 after flush", s);
}

fn tls12_modes(s: &mut dyn Subject, o: &mut Seen) {
    let server = s.server(SslVersion::TLS1_2, Tickets::Stateful);
    let client = client(SslVersion::TLS1_2);
    for (name, mode) in [
        ("NO_INTERNAL_STORE", 0x202),
        ("NO_INTERNAL_LOOKUP", 0x102),
        ("OFF", 0x0),
    ] {
        s.set_mode(mode);
        let (_, session) = s.connect(&server, &client, None);
        o.see(format!("{name}: stored"), s.number());
        o.see(
            format!("{name}: resumes"),
            s.connect(&server, &client, Some(&session)).0,
        );
        o.stats(name, s);
        s.flush(0);
    }
}

fn expiry(s: &mut dyn Subject, o: &mut Seen) {
    let server = s.server(SslVersion::TLS1_2, Tickets::Stateful);
    let client = client(SslVersion::TLS1_2);
    s.set_timeout(1);
    let (_, session) = s.connect(&server, &client, None);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    o.see(
        "expired session resumes",
        s.connect(&server, &client, Some(&session)).0,
    );
    o.stats("expiry", s);
}

fn other_context(s: &mut dyn Subject, o: &mut Seen) {
    let server = s.server(SslVersion::TLS1_2, Tickets::Stateful);
    let client = client(SslVersion::TLS1_2);
    let (_, session) = s.connect(&server, &client, None);
    // A session of another context under the same id, added directly.
    s.flush(0);
    let foreign = s
        .make(Made {
            id: session.id(),
            ctx: b"admin",
            ..made(0)
        })
        .unwrap();
    s.add(foreign);
    o.see(
        "other context resumes",
        s.connect(&server, &client, Some(&session)).0,
    );
    o.stats("other context", s);
    o.see("other context still cached", s.probe(session.id(), 0x0303));
}

fn auto_flush(s: &mut dyn Subject, o: &mut Seen) {
    for (name, mode) in [("auto flush", 0x2), ("NO_AUTO_CLEAR", 0x82)] {
        s.set_mode(mode);
        let server = s.server(SslVersion::TLS1_2, Tickets::Stateful);
        let client = client(SslVersion::TLS1_2);
        let good = s.stats()[1];
        // Up to 254 good handshakes (mod 256) first.
        let before = (254 + 256 - good % 256) % 256;
        for _ in 0..before {
            s.connect(&server, &client, None);
        }
        let stale = s
            .make(Made {
                age: 500,
                timeout: 10,
                ..made(9)
            })
            .unwrap();
        s.add(stale);
        let n = s.number();
        s.connect(&server, &client, None); // the 255th
        o.see(
            format!("{name}: after the 255th"),
            s.number() as i64 - n as i64,
        );
        s.connect(&server, &client, None); // the 256th
        o.see(
            format!("{name}: after the 256th"),
            s.number() as i64 - n as i64,
        );
        o.see(format!("{name}: stale one resumable"), s.resumable(stale));
        o.see(format!("{name}: timeouts"), s.stats()[5]);
        s.flush(0);
    }
}

fn tls13_stateful(s: &mut dyn Subject, o: &mut Seen) {
    let server = s.server(SslVersion::TLS1_3, Tickets::Stateful);
    let client = client(SslVersion::TLS1_3);
    let (_, ticket) = s.connect(&server, &client, None);
    // A copy: the client marks the session it resumed non-resumable.
    let replay = SslSession::from_der(&ticket.to_der().unwrap()).unwrap();
    o.stats("tls13 stateful full", s);
    o.see(
        "tls13 ticket resumes",
        s.connect(&server, &client, Some(&ticket)).0,
    );
    o.see(
        "tls13 ticket offered again by the client",
        s.connect(&server, &client, Some(&ticket)).0,
    );
    o.see(
        "tls13 ticket replayed",
        s.connect(&server, &client, Some(&replay)).0,
    );
    o.stats("tls13 stateful resumed", s);
}

/// TLS 1.3 early data on stateful tickets: a ticket carries early data
/// once; replayed, it resumes nothing and its early data is refused.
fn tls13_early_data(s: &mut dyn Subject, o: &mut Seen) {
    let server = s.early_server();
    let client = client(SslVersion::TLS1_3);
    let (_, ticket) = s.connect(&server, &client, None);
    // The client marks a session it resumed with non-resumable once a new
    // ticket replaces it, and then offers nothing: a replay is a copy.
    let replay = SslSession::from_der(&ticket.to_der().unwrap()).unwrap();
    o.stats("early data, full", s);
    o.see(
        "early data: first use",
        s.connect_early(&server, &client, &ticket, b"early"),
    );
    o.stats("early data, first use", s);
    o.see(
        "early data: replayed ticket",
        s.connect_early(&server, &client, &replay, b"early"),
    );
    o.stats("early data, replayed", s);
}

fn tls13_stateless(s: &mut dyn Subject, o: &mut Seen) {
    let server = s.server(SslVersion::TLS1_3, Tickets::Stateless);
    let client = client(SslVersion::TLS1_3);
    let (_, ticket) = s.connect(&server, &client, None);
    o.see(
        "tls13 stateless resumes",
        s.connect(&server, &client, Some(&ticket)).0,
    );
    o.stats("tls13 stateless", s);
}

/// An internal miss (here: no internal lookup) goes to the external
/// store, whose session is counted as a callback hit and copied in.
fn external(s: &mut dyn Subject, o: &mut Seen) {
    s.with_external();
    let server = s.server(SslVersion::TLS1_2, Tickets::Stateful);
    let client = client(SslVersion::TLS1_2);
    let (_, session) = s.connect(&server, &client, None);
    o.see("external: stored", s.number());
    for (name, mode) in [
        ("no internal lookup", 0x102),
        ("no internal at all", 0x302),
        ("internal", 0x2),
    ] {
        s.set_mode(mode);
        o.see(
            format!("external, {name}: resumes"),
            s.connect(&server, &client, Some(&session)).0,
        );
        o.stats(&format!("external, {name}"), s);
    }
    s.flush(0);
    o.see(
        "external: resumes after a flush",
        s.connect(&server, &client, Some(&session)).0,
    );
    o.stats("external, flushed", s);
}

/// A TLS 1.3 ClientHello whose `pre_shared_key` identity is `identity`,
/// with a binder no one could verify: what anyone who saw a TLS 1.2
/// session id in the clear can send (a server looks an identity up
/// before it checks the binder).
fn psk_hello(identity: &[u8]) -> Vec<u8> {
    fn ext(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut v = kind.to_be_bytes().to_vec();
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }
    fn u16s(values: &[u16]) -> Vec<u8> {
        let mut v = ((2 * values.len()) as u16).to_be_bytes().to_vec();
        for x in values {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v
    }
    let mut share = vec![0x00, 0x1d, 0x00, 0x20, 9]; // x25519, the base point
    share.resize(4 + 32, 0);
    let mut identities = (identity.len() as u16).to_be_bytes().to_vec();
    identities.extend_from_slice(identity);
    identities.extend_from_slice(&[0; 4]); // obfuscated ticket age
    let mut psk = (identities.len() as u16).to_be_bytes().to_vec();
    psk.extend_from_slice(&identities);
    psk.extend_from_slice(&33u16.to_be_bytes());
    psk.push(32);
    psk.extend_from_slice(&[0x5a; 32]); // the made-up binder
    let mut key_share = (share.len() as u16).to_be_bytes().to_vec();
    key_share.extend_from_slice(&share);
    let extensions = [
        ext(0x000a, &u16s(&[0x001d, 0x0017])),
        ext(0x000d, &u16s(&[0x0403, 0x0804, 0x0401, 0x0503, 0x0805])),
        ext(0x002b, &[2, 3, 4]), // supported_versions: TLS 1.3
        ext(0x0033, &key_share),
        ext(0x002d, &[1, 1]), // psk_dhe_ke
        ext(0x0029, &psk),    // pre_shared_key, last as it must be
    ]
    .concat();
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x11; 32]); // random
    body.push(32);
    body.extend_from_slice(&[0x22; 32]); // legacy session id
    body.extend_from_slice(&u16s(&[0x1301, 0x1302, 0x1303]));
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

fn raw_hello(server: &SslContext, hello: &[u8]) -> u8 {
    use std::io::{Read, Write};
    let (s_sock, mut c_sock) = std::os::unix::net::UnixStream::pair().unwrap();
    let server = server.clone();
    let server_side = std::thread::spawn(move || {
        // The client hangs up mid-handshake: an error, expected.
        let _ = openssl::ssl::Ssl::new(&server).unwrap().accept(s_sock);
    });
    c_sock.write_all(hello).unwrap();
    let mut header = [0u8; 5];
    c_sock.read_exact(&mut header).unwrap();
    drop(c_sock);
    server_side.join().unwrap();
    header[0]
}

/// A TLS 1.3 ticket offered in another session-id context, and a TLS 1.2
/// session's id offered as a TLS 1.3 ticket: neither resumes, and
/// neither costs the session its later resumption where it belongs.
fn single_use_refusals(s: &mut dyn Subject, o: &mut Seen) {
    let front = s.server_in(SslVersion::TLS1_3, CTX);
    let client13 = client(SslVersion::TLS1_3);
    let (_, ticket) = s.connect(&front, &client13, None);
    let admin = s.server_in(SslVersion::TLS1_3, b"admin");
    o.see(
        "ticket in another context resumes",
        s.connect(&admin, &client13, Some(&ticket)).0,
    );
    let front = s.server_in(SslVersion::TLS1_3, CTX);
    o.see(
        "ticket back home resumes",
        s.connect(&front, &client13, Some(&ticket)).0,
    );
    o.stats("ticket contexts", s);
    s.flush(0);

    let server12 = s.server_in(SslVersion::TLS1_2, CTX);
    let client12 = client(SslVersion::TLS1_2);
    let (_, session) = s.connect(&server12, &client12, None);
    let answer = s.raw_hello(&server12, &psk_hello(session.id()));
    o.see("TLS 1.2 id as a ticket: answer record", answer);
    o.see("TLS 1.2 id as a ticket: still cached", s.number());
    o.see(
        "TLS 1.2 id as a ticket: session resumes after",
        s.connect(&server12, &client12, Some(&session)).0,
    );
    o.stats("TLS 1.2 id as a ticket", s);
}

/// The scenarios, and whether their server is stateless.
const SCENARIOS: &[(&str, Scenario, Tickets)] = &[
    ("defaults", defaults, Tickets::Stateful),
    ("modes", modes, Tickets::Stateful),
    ("adds", adds, Tickets::Stateful),
    ("removes", removes, Tickets::Stateful),
    ("full", full, Tickets::Stateful),
    ("evicts", evicts_soonest_expiry, Tickets::Stateful),
    ("flushes", flushes, Tickets::Stateful),
    ("lengths", lengths, Tickets::Stateful),
    ("update time", update_time, Tickets::Stateful),
    ("tls12", tls12, Tickets::Stateful),
    ("tls12 modes", tls12_modes, Tickets::Stateful),
    ("expiry", expiry, Tickets::Stateful),
    ("other context", other_context, Tickets::Stateful),
    ("auto flush", auto_flush, Tickets::Stateful),
    ("tls13 stateful", tls13_stateful, Tickets::Stateful),
    ("tls13 stateless", tls13_stateless, Tickets::Stateless),
    ("tls13 early data", tls13_early_data, Tickets::Stateful),
    ("external", external, Tickets::Stateful),
    (
        "single-use refusals",
        single_use_refusals,
        Tickets::Stateful,
    ),
];

/// Observations allowed to differ: a label (or, ending in `*`, a label
/// prefix), the title of its entry in the policy crate's list of
/// differences or this crate's, and whether only a cache of several
/// shards may differ (one shard must match OpenSSL).
const DOCUMENTED: &[(&str, &str, bool)] = &[
    ("evict: kept the long-lived older one", "Eviction.", false),
    ("evict: kept the short-lived newer one", "Eviction.", false),
    // Which session a full cache of several shards evicts.
    ("kept *", "Eviction.", true),
    ("empty id accepted", "Session ids", false),
    ("empty id added", "Session ids", false),
    ("UPDATE_TIME: add moved the time", "Mode bits.", false),
    ("tls13 stateful resumed: number", "Single use.", false),
    ("tls13 ticket replayed", "Single use.", false),
    ("tls13 stateful resumed: hits", "Single use.", false),
    ("tls13 stateful resumed: misses", "Single use.", false),
    ("ticket contexts: number", "Single use.", false),
    ("OFF: misses", "A mode without `SERVER`.", false),
];

/// Runs every scenario on both sides; returns (equal, documented, total)
/// and every undocumented difference.
fn compare(shards: Option<usize>) -> (usize, usize, usize, Vec<String>) {
    let docs = [
        include_str!("../../policy/src/lib.rs"),
        include_str!("../src/lib.rs"),
    ]
    .concat();
    let (mut equal, mut documented, mut total) = (0, 0, 0);
    let mut wrong = Vec::new();
    for &(name, scenario, tickets) in SCENARIOS {
        let mut theirs = Seen::default();
        scenario(&mut Libssl::new(tickets), &mut theirs);
        let mut ours = Seen::default();
        scenario(&mut Ours::new(shards, tickets), &mut ours);
        assert_eq!(
            theirs.0.len(),
            ours.0.len(),
            "{name}: both sides observe the same things"
        );
        let mut seen = BTreeMap::new();
        for ((label, a), (label_b, b)) in theirs.0.iter().zip(&ours.0) {
            assert_eq!(label, label_b);
            assert!(
                seen.insert(label.clone(), ()).is_none(),
                "{name}: label {label} twice"
            );
            total += 1;
            if a == b {
                equal += 1;
                continue;
            }
            let documented_here = DOCUMENTED.iter().find(|&&(l, _, sharded)| {
                let matches = match l.strip_suffix('*') {
                    Some(prefix) => label.starts_with(prefix),
                    None => l == label,
                };
                matches && (!sharded || shards != Some(1))
            });
            match documented_here {
                Some((_, entry, _)) => {
                    assert!(
                        docs.contains(&format!("**{entry}")),
                        "the docs list no entry {entry:?}"
                    );
                    documented += 1;
                }
                None => wrong.push(format!("{name}: {label}: libssl {a}, tlscache {b}")),
            }
        }
    }
    (equal, documented, total, wrong)
}

#[test]
fn tlscache_policy_observes_what_libssl_does() {
    for shards in [None, Some(1)] {
        let (equal, documented, total, wrong) = compare(shards);
        println!(
            "shards {shards:?}: {equal} equal, {documented} documented differences, {total} observations"
        );
        assert!(
            wrong.is_empty(),
            "undocumented differences:\n{}",
            wrong.join("\n")
        );
        assert!(total >= 50, "{total} observations");
        assert_eq!(equal + documented, total);
    }
}
