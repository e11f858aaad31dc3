//! Building a session cache: the builder validates the settings and
//! assembles the engine, the counters and the external store.

use std::num::NonZeroU32;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tlscache_core::{BuildError, Cache, Clock, Expiry};

use crate::cache::SessionCache;
use crate::client::{ClientStore, DEFAULT_TICKETS_PER_PEER};
use crate::clock::SharedClock;
use crate::config::{
    capacity_for, Config, DEFAULT_CACHE_SIZE, DEFAULT_EXTERNAL_BUDGET, DEFAULT_TIMEOUT,
};
use crate::external::{on_removal, External, ExternalStore};
use crate::mode::CacheMode;
use crate::session::{Session, SessionError, SessionId, SidCtx};
use crate::stats::Counters;

/// Retirements the engine's shards let gather before a writer collects:
/// fewer than the engine's default, because a session is costly to drop
/// (its state zeroized, its memory freed), so a collection of 16 put
/// about 12 µs on one write in sixty under TLS 1.3 ticket traffic
/// (`cargo run --release -p tlscache-benches --bin latency -- --tickets
/// tlscache-policy`, one thread: write p99 8.9–10.8 µs at 16, 4.1–4.5 µs
/// at 4). The engine now spreads a collection's drops over the following
/// writes, lookups' collections included, and at 8 a new session costs
/// 7–12% fewer instructions than at 4 (`fixed tlscache-policy
/// insert_small`, cachegrind: 2,218 → 2,062 and 2,274 → 1,992 in two
/// pairs of builds; a ticket operation 1,799 → 1,640). Fourteen
/// alternated runs of the main job (`--engines tlscache,policy`) gave
/// the policy 2.50 → 2.69 M connections a second at a p99.9 of 23.3 →
/// 17.2 µs in `--preset proxy`, and 1.11 → 1.18 M at 52.1 → 48.4 µs in
/// `--preset tls13-tickets` (see docs/performance.md).
const COLLECT_EVERY: NonZeroU32 = NonZeroU32::new(8).expect("eight is not zero");

/// A setting no session cache can be built or run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The session-id context is not acceptable.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The engine refused the shard count (not a power of two, or more
    /// than it supports).
    #[error(transparent)]
    Engine(#[from] BuildError),
    /// A peer must be able to keep at least one client session.
    #[error("tickets per peer must be at least 1")]
    NoTicketsPerPeer,
}

/// Settings for a [`SessionCache`]; see [`SessionCache::builder`].
///
/// Defaults are OpenSSL 3.0's: mode [`CacheMode::SERVER`], cache size
/// [`DEFAULT_CACHE_SIZE`], timeout [`DEFAULT_TIMEOUT`], no session-id
/// context, no external store; and the system wall clock.
pub struct SessionCacheBuilder {
    mode: CacheMode,
    cache_size: u64,
    timeout: u64,
    sid_ctx: Vec<u8>,
    shards: Option<usize>,
    clock: Option<Arc<dyn Clock>>,
    external: Option<Arc<dyn ExternalStore>>,
    external_budget: Duration,
    client_peers: usize,
    tickets_per_peer: usize,
}

impl Default for SessionCacheBuilder {
    fn default() -> Self {
        Self {
            mode: CacheMode::SERVER,
            cache_size: DEFAULT_CACHE_SIZE,
            timeout: DEFAULT_TIMEOUT,
            sid_ctx: Vec::new(),
            shards: None,
            clock: None,
            external: None,
            external_budget: DEFAULT_EXTERNAL_BUDGET,
            client_peers: DEFAULT_CACHE_SIZE as usize,
            tickets_per_peer: DEFAULT_TICKETS_PER_PEER,
        }
    }
}

impl SessionCacheBuilder {
    /// The cache mode (`SSL_CTX_set_session_cache_mode`).
    pub fn mode(mut self, mode: CacheMode) -> Self {
        self.mode = mode;
        self
    }

    /// The cache size (`SSL_CTX_sess_set_cache_size`); 0 is unbounded.
    pub fn cache_size(mut self, size: u64) -> Self {
        self.cache_size = size;
        self
    }

    /// The timeout of new sessions in seconds (`SSL_CTX_set_timeout`); 0
    /// means the protocol default, [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, seconds: u64) -> Self {
        self.timeout = seconds;
        self
    }

    /// The session-id context (`SSL_CTX_set_session_id_context`), at most
    /// 32 bytes.
    pub fn session_id_context(mut self, sid_ctx: &[u8]) -> Self {
        self.sid_ctx = sid_ctx.to_vec();
        self
    }

    /// The engine's shard count (a power of two, any cache size); by
    /// default the core's ([`CacheBuilder::shards`](tlscache_core::CacheBuilder::shards): 4 to 8
    /// per core, by the size). One shard makes eviction exact LRU.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The time source, as time since the Unix epoch: the system clock by
    /// default, a [`ManualClock`](tlscache_core::ManualClock) in tests.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The external store (OpenSSL's new, get and remove callbacks).
    pub fn external_store(mut self, store: Arc<dyn ExternalStore>) -> Self {
        self.external = Some(store);
        self
    }

    /// How long an external call may take before it counts as slow and a
    /// lookup's answer as a miss; [`DEFAULT_EXTERNAL_BUDGET`] by default.
    pub fn external_budget(mut self, budget: Duration) -> Self {
        self.external_budget = budget;
        self
    }

    /// How many peers the client side keeps sessions for (least recently
    /// used peers go first).
    pub fn client_peers(mut self, peers: usize) -> Self {
        self.client_peers = peers;
        self
    }

    /// How many sessions the client side keeps per peer (oldest go first).
    pub fn tickets_per_peer(mut self, tickets: usize) -> Self {
        self.tickets_per_peer = tickets;
        self
    }

    /// Builds the cache, or says which setting is invalid.
    pub fn build(self) -> Result<SessionCache, ConfigError> {
        if self.tickets_per_peer == 0 {
            return Err(ConfigError::NoTicketsPerPeer);
        }
        let sid_ctx = SidCtx::new(&self.sid_ctx)?;
        let clock = self.clock.map_or(SharedClock::System, SharedClock::Given);
        let counters = Arc::new(Counters::new());
        let external = self.external.map(|store| External {
            shares: store.shares_sessions(),
            store,
            budget: self.external_budget,
            counters: Arc::clone(&counters),
        });

        let listener_counters = Arc::clone(&counters);
        let listener_external = external.clone();
        let mut sessions = Cache::builder()
            .expiry(Expiry::OnFlush)
            .collect_every(COLLECT_EVERY)
            .clock(clock.clone())
            .removal_listener(move |_id: &SessionId, session: &Arc<Session>, cause| {
                on_removal(
                    &listener_counters,
                    listener_external.as_ref(),
                    session,
                    cause,
                );
            });
        sessions = match capacity_for(self.cache_size) {
            Some(capacity) => sessions.capacity(capacity),
            None => sessions.unbounded(),
        };
        if let Some(shards) = self.shards {
            sessions = sessions.shards(shards);
        }
        let sessions = sessions.build()?;
        let client = ClientStore::new(self.client_peers, self.tickets_per_peer)?;
        Ok(SessionCache {
            sessions,
            client,
            mode: AtomicU64::new(self.mode.bits()),
            config: ArcSwap::from_pointee(Config {
                cache_size: self.cache_size,
                timeout: self.timeout,
                sid_ctx,
            }),
            setters: Mutex::new(()),
            counters,
            external,
            clock,
        })
    }
}
