//! One trait for every cache the load generator drives, and the adapters.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tlscache_core::{Blob, Clock, CoarseClock};
use tlscache_policy::{CacheMode, Handshake, SessionCache, Side};

/// A session id, as a TLS server hands them out: 32 bytes.
pub type SessionId = [u8; 32];

/// A session's resumption state, shared by handle like an `SSL_SESSION`.
pub type State = Arc<Vec<u8>>;

/// What a TLS-terminating proxy asks of its session cache. Every engine is
/// driven through this, on the same operation streams, in the same run.
pub trait Engine: Send + Sync {
    /// The name printed in reports.
    fn name(&self) -> &'static str;
    /// A resumption attempt: whether a live session for `id` was found.
    fn lookup(&self, id: &SessionId) -> bool;
    /// A single-use resumption (TLS 1.3 ticket): found and removed at once.
    fn take(&self, id: &SessionId) -> bool;
    /// A full handshake's new session, valid for `timeout`.
    fn store(&self, id: SessionId, state: &State, timeout: Duration);
    /// Sessions held now, if the engine can tell.
    fn sessions(&self) -> Option<u64>;
    /// For a tiered engine, what each tier has done so far.
    fn tiers(&self) -> Option<crate::Tiers> {
        None
    }
}

/// The engines a run can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum EngineKind {
    /// tlscache-core used directly.
    Tlscache,
    /// tlscache-policy: the full OpenSSL contract on the core.
    Policy,
    /// tlscache-core holding a copy of the state per session, in one
    /// allocation ([`tlscache_core::Blob`]), as a TLS stack's session
    /// objects are held: the per-session costs the policy layer pays (an
    /// allocation and a copy per store, a value of its own to count and to
    /// free per session), without the layer. The baseline that tells the
    /// layer's own cost from those.
    TlscacheCopy,
    /// quick_cache's concurrent cache.
    QuickCache,
    /// scc's `HashCache`: 32-way set-associative, each bucket under its
    /// own lock with its own LRU order (so it may evict before it is
    /// full), its bound rounded up to a power of two.
    Scc,
    /// moka's concurrent cache.
    Moka,
    /// One `Mutex<lru::LruCache>`: OpenSSL's one-lock design.
    MutexLru,
    /// rustls 0.23's `ServerSessionMemoryCache`.
    Rustls,
    /// OpenSSL's own internal session cache in one `SSL_CTX` (libssl
    /// through its public API: `SSL_CTX_add_session`,
    /// `SSL_has_matching_session_id`, `SSL_CTX_remove_session`).
    Openssl,
}

impl EngineKind {
    /// Every engine, tlscache first (the others are compared with it).
    pub const ALL: [EngineKind; 9] = [
        EngineKind::Tlscache,
        EngineKind::Policy,
        EngineKind::TlscacheCopy,
        EngineKind::QuickCache,
        EngineKind::Scc,
        EngineKind::Moka,
        EngineKind::MutexLru,
        EngineKind::Rustls,
        EngineKind::Openssl,
    ];

    /// The engine's name on a command line: `tlscache`, `policy`,
    /// `tlscache-copy`, `quick-cache`, `scc`, `moka`, `mutex-lru`, `rustls`,
    /// `openssl`.
    pub fn label(self) -> &'static str {
        match self {
            EngineKind::Tlscache => "tlscache",
            EngineKind::Policy => "policy",
            EngineKind::TlscacheCopy => "tlscache-copy",
            EngineKind::QuickCache => "quick-cache",
            EngineKind::Scc => "scc",
            EngineKind::Moka => "moka",
            EngineKind::MutexLru => "mutex-lru",
            EngineKind::Rustls => "rustls",
            EngineKind::Openssl => "openssl",
        }
    }

    /// An engine of this kind holding at most `capacity` sessions.
    pub fn build(self, capacity: usize, timeout: Duration) -> Result<Box<dyn Engine>, String> {
        Ok(match self {
            EngineKind::Tlscache => Box::new(Core::<Vec<u8>>(core_cache(capacity)?)),
            EngineKind::TlscacheCopy => Box::new(Core::<Blob>(core_cache(capacity)?)),
            EngineKind::Policy => Box::new(Policy(
                SessionCache::builder()
                    .mode(CacheMode::SERVER)
                    // OpenSSL's size N holds N - 1 sessions once full.
                    .cache_size(capacity as u64 + 1)
                    .build()
                    .map_err(|e| e.to_string())?,
            )),
            EngineKind::QuickCache => Box::new(QuickCache {
                cache: quick_cache::sync::Cache::new(capacity),
                clock: CoarseClock::new(),
            }),
            EngineKind::Scc => Box::new(Scc {
                // The same bound as the minimum, so that the table is
                // allocated once, before the run, as quick_cache's is.
                cache: scc::HashCache::with_capacity(capacity, capacity),
                clock: CoarseClock::new(),
            }),
            EngineKind::Moka => Box::new(Moka {
                cache: moka::sync::Cache::builder()
                    .max_capacity(capacity as u64)
                    .time_to_live(timeout)
                    .build(),
                clock: CoarseClock::new(),
            }),
            EngineKind::MutexLru => Box::new(MutexLru {
                cache: Mutex::new(lru::LruCache::new(
                    std::num::NonZeroUsize::new(capacity).ok_or("capacity must be at least 1")?,
                )),
                clock: CoarseClock::new(),
            }),
            EngineKind::Rustls => Box::new(Rustls {
                cache: rustls::server::ServerSessionMemoryCache::new(capacity),
                clock: CoarseClock::new(),
            }),
            EngineKind::Openssl => Box::new(crate::libssl::OpensslCache::new(capacity)?),
        })
    }
}

fn core_cache<V: Holds + ?Sized>(
    capacity: usize,
) -> Result<tlscache_core::Cache<SessionId, V>, String> {
    tlscache_core::Cache::builder()
        .capacity(capacity)
        .build()
        .map_err(|e| e.to_string())
}

/// What tlscache-core holds per session: the caller's shared state
/// (`tlscache`), or a copy of it in one allocation (`tlscache-copy`), as
/// the policy layer's sessions are.
trait Holds: tlscache_core::Thin + Send + Sync + 'static {
    const NAME: &'static str;
    fn hold(state: &State) -> Arc<Self>;
}

impl Holds for Vec<u8> {
    const NAME: &'static str = "tlscache";
    fn hold(state: &State) -> Arc<Self> {
        Arc::clone(state)
    }
}

impl Holds for Blob {
    const NAME: &'static str = "tlscache-copy";
    fn hold(state: &State) -> Arc<Self> {
        Blob::from_bytes(state)
    }
}

/// tlscache-core holding a `V` per session (see `Holds`).
struct Core<V: Holds + ?Sized>(tlscache_core::Cache<SessionId, V>);

impl<V: Holds + ?Sized> Engine for Core<V> {
    fn name(&self) -> &'static str {
        V::NAME
    }
    fn lookup(&self, id: &SessionId) -> bool {
        self.0.get(id).is_some()
    }
    fn take(&self, id: &SessionId) -> bool {
        self.0.take(id).is_some()
    }
    fn store(&self, id: SessionId, state: &State, timeout: Duration) {
        self.0.put_with_ttl(id, V::hold(state), timeout);
    }
    fn sessions(&self) -> Option<u64> {
        Some(self.0.len())
    }
}

/// The policy layer as a server uses it: the session is built from the
/// state (a copy, as a TLS stack's session object would be), stored by a
/// finished handshake, and looked up in the server's context.
struct Policy(SessionCache);

impl Engine for Policy {
    fn name(&self) -> &'static str {
        "tlscache-policy"
    }
    fn lookup(&self, id: &SessionId) -> bool {
        self.0.lookup(id, b"").is_some()
    }
    fn take(&self, id: &SessionId) -> bool {
        self.0.lookup_once(id, b"").is_some()
    }
    fn store(&self, id: SessionId, state: &State, timeout: Duration) {
        let built = self
            .0
            .session_builder(&id, &state[..])
            .timeout(timeout.as_secs())
            .build();
        if let Ok(session) = built {
            self.0
                .handshake_finished(Side::Server, Handshake::New(&session));
        }
    }
    fn sessions(&self) -> Option<u64> {
        Some(self.0.sess_number())
    }
}

/// A value with its own expiry, for engines without per-entry expiry: an
/// expired session must not resume in any engine. Every adapter reads the
/// clock tlscache-core reads by default, so no engine pays more for time.
#[derive(Clone)]
struct Expiring {
    state: State,
    /// Clock nanoseconds; `u64::MAX` is never.
    deadline: u64,
}

fn deadline(clock: &CoarseClock, timeout: Duration) -> u64 {
    let timeout = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    clock.now_nanos().saturating_add(timeout)
}

fn alive(clock: &CoarseClock, deadline: u64) -> bool {
    clock.now_nanos() < deadline
}

struct QuickCache {
    cache: quick_cache::sync::Cache<SessionId, Expiring>,
    clock: CoarseClock,
}

impl QuickCache {
    fn live(&self, found: Option<Expiring>) -> bool {
        found.is_some_and(|e| alive(&self.clock, e.deadline))
    }
}

impl Engine for QuickCache {
    fn name(&self) -> &'static str {
        "quick_cache"
    }
    fn lookup(&self, id: &SessionId) -> bool {
        self.live(self.cache.get(id))
    }
    fn take(&self, id: &SessionId) -> bool {
        self.live(self.cache.remove(id).map(|(_, e)| e))
    }
    fn store(&self, id: SessionId, state: &State, timeout: Duration) {
        let deadline = deadline(&self.clock, timeout);
        let state = Arc::clone(state);
        self.cache.insert(id, Expiring { state, deadline });
    }
    fn sessions(&self) -> Option<u64> {
        Some(self.cache.len() as u64)
    }
}

/// scc's `HashCache`. A lookup is `get_sync`, which moves the entry up
/// its bucket's LRU order (under the bucket's lock), as every other
/// engine's lookup records the access; `read_sync` would not.
struct Scc {
    cache: scc::HashCache<SessionId, Expiring>,
    clock: CoarseClock,
}

impl Engine for Scc {
    fn name(&self) -> &'static str {
        "scc"
    }
    fn lookup(&self, id: &SessionId) -> bool {
        self.cache
            .get_sync(id)
            .is_some_and(|e| alive(&self.clock, e.get().deadline))
    }
    fn take(&self, id: &SessionId) -> bool {
        self.cache
            .remove_sync(id)
            .is_some_and(|(_, e)| alive(&self.clock, e.deadline))
    }
    fn store(&self, id: SessionId, state: &State, timeout: Duration) {
        let expiring = Expiring {
            state: Arc::clone(state),
            deadline: deadline(&self.clock, timeout),
        };
        // A store replaces what the id held, as the other engines' do;
        // `put_sync` would keep the old session.
        match self.cache.entry_sync(id) {
            scc::hash_cache::Entry::Occupied(mut o) => drop(o.put(expiring)),
            scc::hash_cache::Entry::Vacant(v) => drop(v.put_entry(expiring)),
        }
    }
    fn sessions(&self) -> Option<u64> {
        Some(self.cache.len() as u64)
    }
}

struct Moka {
    cache: moka::sync::Cache<SessionId, Expiring>,
    clock: CoarseClock,
}

impl Engine for Moka {
    fn name(&self) -> &'static str {
        "moka"
    }
    fn lookup(&self, id: &SessionId) -> bool {
        self.cache
            .get(id)
            .is_some_and(|e| alive(&self.clock, e.deadline))
    }
    fn take(&self, id: &SessionId) -> bool {
        self.cache
            .remove(id)
            .is_some_and(|e| alive(&self.clock, e.deadline))
    }
    fn store(&self, id: SessionId, state: &State, timeout: Duration) {
        // moka's time-to-live is per cache (the workload's timeout); a
        // session's own, shorter one is checked on the way out.
        let deadline = deadline(&self.clock, timeout);
        let state = Arc::clone(state);
        self.cache.insert(id, Expiring { state, deadline });
    }
    fn sessions(&self) -> Option<u64> {
        self.cache.run_pending_tasks();
        Some(self.cache.entry_count())
    }
}

struct MutexLru {
    cache: Mutex<lru::LruCache<SessionId, Expiring>>,
    clock: CoarseClock,
}

impl MutexLru {
    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<SessionId, Expiring>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Engine for MutexLru {
    fn name(&self) -> &'static str {
        "Mutex<LruCache>"
    }
    fn lookup(&self, id: &SessionId) -> bool {
        // The handle is cloned under the lock, as a server would take its
        // reference to the session there.
        let found = self
            .lock()
            .get(id)
            .map(|e| (Arc::clone(&e.state), e.deadline));
        found.is_some_and(|(_, deadline)| alive(&self.clock, deadline))
    }
    fn take(&self, id: &SessionId) -> bool {
        let found = self.lock().pop(id);
        found.is_some_and(|e| alive(&self.clock, e.deadline))
    }
    fn store(&self, id: SessionId, state: &State, timeout: Duration) {
        let deadline = deadline(&self.clock, timeout);
        let state = Arc::clone(state);
        self.lock().put(id, Expiring { state, deadline });
    }
    fn sessions(&self) -> Option<u64> {
        Some(self.lock().len() as u64)
    }
}

/// rustls's own server cache. Its API stores and returns byte vectors (a
/// copy each way, as rustls uses it) and has no expiry (rustls checks a
/// session's age after the lookup), so the adapter prefixes each value
/// with its deadline and checks it, as the other expiry-less peers do.
struct Rustls {
    cache: std::sync::Arc<rustls::server::ServerSessionMemoryCache>,
    clock: CoarseClock,
}

impl Rustls {
    fn live(&self, value: Option<Vec<u8>>) -> bool {
        let Some(value) = value else {
            return false;
        };
        let deadline = value
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes);
        alive(&self.clock, deadline)
    }
}

impl Engine for Rustls {
    fn name(&self) -> &'static str {
        "rustls"
    }
    fn lookup(&self, id: &SessionId) -> bool {
        use rustls::server::StoresServerSessions;
        self.live(self.cache.get(id))
    }
    fn take(&self, id: &SessionId) -> bool {
        use rustls::server::StoresServerSessions;
        self.live(self.cache.take(id))
    }
    fn store(&self, id: SessionId, state: &State, timeout: Duration) {
        use rustls::server::StoresServerSessions;
        let deadline = deadline(&self.clock, timeout);
        let mut value = Vec::with_capacity(8 + state.len());
        value.extend_from_slice(&deadline.to_le_bytes());
        value.extend_from_slice(state);
        self.cache.put(id.to_vec(), value);
    }
    fn sessions(&self) -> Option<u64> {
        None // rustls does not say how many sessions it holds
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;

    /// The engine [`label`](EngineKind::label) names.
    fn from_str(s: &str) -> Result<Self, String> {
        EngineKind::ALL
            .into_iter()
            .find(|k| k.label() == s)
            .ok_or_else(|| {
                let labels: Vec<_> = EngineKind::ALL.iter().map(|k| k.label()).collect();
                format!("unknown engine {s:?}: one of {}", labels.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scc_stores_replaces_takes_once_and_honours_the_timeout() {
        let hour = Duration::from_secs(3600);
        let engine = EngineKind::Scc.build(100, hour).expect("an scc cache");
        let state = Arc::new(vec![7u8; 48]);
        let (a, b) = ([1u8; 32], [2u8; 32]);
        engine.store(a, &state, hour);
        assert!(engine.lookup(&a));
        assert!(engine.take(&a));
        assert!(!engine.take(&a), "single use");
        assert!(!engine.lookup(&a));
        // A second store replaces the first: its timeout of zero is the
        // one that counts.
        engine.store(b, &state, hour);
        engine.store(b, &state, Duration::ZERO);
        assert!(!engine.lookup(&b), "the replacement has expired");
        assert_eq!(engine.sessions(), Some(1), "one session under b");
        assert_eq!("scc".parse::<EngineKind>(), Ok(EngineKind::Scc));
    }
}
