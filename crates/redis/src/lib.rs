//! tlscache-redis: a session tier shared by a fleet, on Redis, behind each
//! proxy's local tlscache.
//!
//! A fleet of proxies behind one load balancer resumes a session only if
//! the proxy a client reaches next can find it. [`RedisStore`] is a
//! [`tlscache_policy::ExternalStore`]: each proxy keeps its
//! [`SessionCache`](tlscache_policy::SessionCache) in front (lookups there
//! take no lock and no round trip), and the cache asks Redis on a local
//! miss, hands it every new session, and takes single-use tickets from it
//! atomically.
//!
//! # What goes to Redis
//!
//! | cache event | Redis command |
//! | --- | --- |
//! | new session ([`ExternalStore::new_session`]) | `SET key value PX remaining-lifetime` |
//! | lookup after a local miss ([`ExternalStore::get_session`]) | `GET key` |
//! | single-use lookup ([`ExternalStore::take_session`]) | `GETDEL key` (Redis ≥ 6.2): a ticket resumes once across the fleet |
//! | [`remove_session`](tlscache_policy::SessionCache::remove_session) | `DEL key` |
//!
//! The key is the prefix, then the session-id context's length as one
//! byte, the context, and the session id: binary-safe and unambiguous. The
//! value is [`Session::encode`]. A session's remaining lifetime is counted
//! to the first second past `time + timeout`, OpenSSL's own deadline, by
//! this machine's wall clock.
//!
//! A session that leaves one proxy's local cache because it was full, timed
//! out or flushed is *not* deleted from Redis: the rest of the fleet may
//! still resume it, and Redis expires it on its own. Only an explicit
//! removal (the application's word that the session must never resume)
//! deletes it.
//!
//! # When Redis is slow or down
//!
//! Every command has a short timeout ([`RedisStoreBuilder::command_timeout`],
//! and [`RedisStoreBuilder::connect_timeout`] for a new connection), so a
//! handshake never waits longer than their sum. A failure drops the idle
//! connections and makes every call fail at once, without touching the
//! network, for [`RedisStoreBuilder::retry_after`]; the next call after
//! that reconnects. The cache counts each failure
//! ([`external_errors`](tlscache_policy::SessionStats::external_errors))
//! and treats it as a miss; a new session that could not be stored is
//! counted here as [`RedisStats::dropped_stores`]. Nothing panics, and the
//! local cache serves all along.
//!
//! Connections are pooled: a call borrows an idle connection (or makes one)
//! and gives it back, so there is no connection per lookup, and as many
//! calls run at once as there are handshake threads.
//!
//! # Redis Cluster
//!
//! [`RedisStore::cluster`] takes the addresses of some of the cluster's
//! nodes and routes every key to its slot's node, following `MOVED`
//! redirects. Each command names one key, so keys spread over all slots.
//! Do not put a hash tag (`{...}`) in the prefix: that would send every
//! session to one slot, and so to one node.
//!
//! # Wiring two tiers
//!
//! ```no_run
//! use std::sync::Arc;
//! use tlscache_policy::{CacheMode, SessionCache};
//! use tlscache_redis::RedisStore;
//!
//! let redis = Arc::new(RedisStore::builder("redis://10.0.0.5:6379").prefix(b"edge:").build()?);
//! let cache = SessionCache::builder()
//!     .mode(CacheMode::SERVER)
//!     .session_id_context(b"frontend-443")
//!     .external_store(redis.clone())
//!     .build()?;
//! // ... handshakes use `cache` as usual; on a local miss it asks Redis.
//! println!("{:?}", redis.stats());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Cmd, FromRedisValue, RedisError, RedisResult};
use tlscache_policy::{ExternalStore, Fetched, Removal, Session, SessionId, SidCtx, StoreError};

/// The key prefix unless one is set.
pub const DEFAULT_PREFIX: &[u8] = b"tlscache:";
/// How long making a connection may take unless set.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(20);
/// How long one command may take unless set.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(20);
/// How long calls fail at once after a failure, unless set.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_millis(250);
/// How many idle connections are kept unless set.
pub const DEFAULT_IDLE_CONNECTIONS: usize = 16;

/// A setting [`RedisStoreBuilder::build`] refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An address the redis client does not accept.
    #[error("invalid Redis address: {0}")]
    Address(#[source] RedisError),
    /// A cluster needs at least one node's address.
    #[error("a Redis cluster needs at least one node address")]
    NoNodes,
    /// A timeout of zero would fail every call.
    #[error("the {0} must be greater than zero")]
    ZeroTimeout(&'static str),
    /// The prefix holds a hash tag, which would put every key in one slot.
    #[error("the key prefix {0:?} holds a Redis Cluster hash tag ('{{' ... '}}')")]
    HashTagInPrefix(String),
}

/// Where the sessions live.
enum Target {
    Node(redis::Client),
    Cluster(ClusterClient),
}

/// One connection, to a node or to a cluster.
enum Conn {
    Node(redis::Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    fn run<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Conn::Node(c) => cmd.query(c),
            Conn::Cluster(c) => cmd.query(c),
        }
    }
}

/// Settings for a [`RedisStore`]; see [`RedisStore::builder`].
pub struct RedisStoreBuilder {
    nodes: Vec<String>,
    cluster: bool,
    prefix: Vec<u8>,
    connect_timeout: Duration,
    command_timeout: Duration,
    retry_after: Duration,
    idle_connections: usize,
}

impl RedisStoreBuilder {
    /// The bytes every key starts with ([`DEFAULT_PREFIX`]), so that
    /// several fleets or services can share one Redis.
    pub fn prefix(mut self, prefix: &[u8]) -> Self {
        self.prefix = prefix.to_vec();
        self
    }

    /// How long making a connection may take ([`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may take ([`DEFAULT_COMMAND_TIMEOUT`]). Keep it
    /// below the cache's external budget
    /// ([`SessionCacheBuilder::external_budget`](tlscache_policy::SessionCacheBuilder::external_budget)),
    /// or slow answers are counted slow and thrown away.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// After a failure, how long calls fail at once before the next one
    /// tries to reconnect ([`DEFAULT_RETRY_AFTER`]).
    pub fn retry_after(mut self, pause: Duration) -> Self {
        self.retry_after = pause;
        self
    }

    /// How many idle connections to keep for reuse
    /// ([`DEFAULT_IDLE_CONNECTIONS`]); about the number of handshake
    /// threads. More calls at once than this make extra connections, which
    /// close when they are done.
    pub fn idle_connections(mut self, n: usize) -> Self {
        self.idle_connections = n;
        self
    }

    /// The store, or which setting is invalid. Does not connect: a proxy
    /// starts even while Redis is down, and the first call connects.
    pub fn build(self) -> Result<RedisStore, ConfigError> {
        for (what, t) in [
            ("connect timeout", self.connect_timeout),
            ("command timeout", self.command_timeout),
        ] {
            if t.is_zero() {
                return Err(ConfigError::ZeroTimeout(what));
            }
        }
        if let Some(open) = self.prefix.iter().position(|&b| b == b'{') {
            if self.prefix[open..].contains(&b'}') {
                return Err(ConfigError::HashTagInPrefix(
                    String::from_utf8_lossy(&self.prefix).into_owned(),
                ));
            }
        }
        let target = if self.cluster {
            if self.nodes.is_empty() {
                return Err(ConfigError::NoNodes);
            }
            Target::Cluster(
                ClusterClient::builder(self.nodes)
                    .connection_timeout(self.connect_timeout)
                    .response_timeout(self.command_timeout)
                    // A retry sleeps; a handshake must not.
                    .retries(0)
                    .build()
                    .map_err(ConfigError::Address)?,
            )
        } else {
            let node = self.nodes.into_iter().next().ok_or(ConfigError::NoNodes)?;
            Target::Node(redis::Client::open(node).map_err(ConfigError::Address)?)
        };
        Ok(RedisStore {
            target,
            prefix: self.prefix,
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            retry_after: self.retry_after,
            max_idle: self.idle_connections,
            idle: Mutex::new(Vec::new()),
            origin: Instant::now(),
            down_until: AtomicU64::new(0),
            stats: Stats::default(),
        })
    }
}

/// What a [`RedisStore`] has done, counted since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisStats {
    /// Lookups and takes sent to Redis.
    pub lookups: u64,
    /// Of those, the ones that found a session.
    pub hits: u64,
    /// New sessions stored.
    pub stores: u64,
    /// New sessions that could not be stored (Redis slow or down).
    pub dropped_stores: u64,
    /// Sessions deleted by an explicit removal.
    pub removes: u64,
    /// Calls that failed: a command error or timeout, no connection, a
    /// call refused while waiting to reconnect, or a value that is not a
    /// session.
    pub errors: u64,
    /// Connections made (the first, and every reconnection).
    pub connects: u64,
}

#[derive(Default)]
struct Stats {
    lookups: AtomicU64,
    hits: AtomicU64,
    stores: AtomicU64,
    dropped_stores: AtomicU64,
    removes: AtomicU64,
    errors: AtomicU64,
    connects: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Sessions shared through Redis: a [`tlscache_policy::ExternalStore`].
/// See the [crate documentation](crate) for what it sends, and how it
/// behaves when Redis is slow or down.
pub struct RedisStore {
    target: Target,
    prefix: Vec<u8>,
    connect_timeout: Duration,
    command_timeout: Duration,
    retry_after: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Conn>>,
    origin: Instant,
    /// Nanoseconds after `origin` before which calls fail at once; 0 while
    /// Redis answers.
    down_until: AtomicU64,
    stats: Stats,
}

impl RedisStore {
    /// A store on one Redis server, such as `redis://127.0.0.1:6379` (any
    /// address the redis crate accepts, `rediss://` and `unix://` too).
    pub fn builder(address: impl Into<String>) -> RedisStoreBuilder {
        Self::settings(vec![address.into()], false)
    }

    /// A store on a Redis Cluster, given some of its nodes' addresses.
    pub fn cluster<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> RedisStoreBuilder {
        Self::settings(nodes.into_iter().map(Into::into).collect(), true)
    }

    fn settings(nodes: Vec<String>, cluster: bool) -> RedisStoreBuilder {
        RedisStoreBuilder {
            nodes,
            cluster,
            prefix: DEFAULT_PREFIX.to_vec(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            retry_after: DEFAULT_RETRY_AFTER,
            idle_connections: DEFAULT_IDLE_CONNECTIONS,
        }
    }

    /// The Redis key of the session with id `id` made in context `sid_ctx`.
    pub fn key(&self, sid_ctx: &SidCtx, id: &SessionId) -> Vec<u8> {
        let (ctx, id) = (sid_ctx.as_bytes(), id.as_bytes());
        let mut key = Vec::with_capacity(self.prefix.len() + 1 + ctx.len() + id.len());
        key.extend_from_slice(&self.prefix);
        // A context holds at most 32 bytes.
        key.push(ctx.len() as u8);
        key.extend_from_slice(ctx);
        key.extend_from_slice(id);
        key
    }

    /// Asks Redis for `PING`: whether it answers now. For health checks;
    /// the store never needs it.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.call(|conn| conn.run::<String>(&redis::cmd("PING")).map(drop))
    }

    /// The counts so far.
    pub fn stats(&self) -> RedisStats {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisStats {
            lookups: get(&s.lookups),
            hits: get(&s.hits),
            stores: get(&s.stores),
            dropped_stores: get(&s.dropped_stores),
            removes: get(&s.removes),
            errors: get(&s.errors),
            connects: get(&s.connects),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs `f` on a pooled connection. Fails at once while backing off;
    /// a failure that may mean Redis is gone starts a back-off and drops
    /// the idle connections (they would fail the same way).
    fn call<T>(&self, f: impl FnOnce(&mut Conn) -> RedisResult<T>) -> Result<T, StoreError> {
        let outcome = self.try_call(f);
        if outcome.is_err() {
            bump(&self.stats.errors);
        }
        outcome
    }

    fn try_call<T>(&self, f: impl FnOnce(&mut Conn) -> RedisResult<T>) -> Result<T, StoreError> {
        let until = self.down_until.load(Ordering::Relaxed);
        if until != 0 {
            let now = self.now();
            if now < until {
                return Err(StoreError::new(format!(
                    "Redis failed a moment ago; reconnecting in {:?}",
                    Duration::from_nanos(until - now)
                )));
            }
        }
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => match self.connect() {
                Ok(conn) => conn,
                Err(e) => {
                    self.back_off();
                    return Err(StoreError::new(e));
                }
            },
        };
        match f(&mut conn) {
            Ok(value) => {
                self.down_until.store(0, Ordering::Relaxed);
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < self.max_idle {
                    idle.push(conn);
                }
                Ok(value)
            }
            Err(e) => {
                // The connection may hold a late reply: never reuse it.
                drop(conn);
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                    self.back_off();
                }
                Err(StoreError::new(e))
            }
        }
    }

    fn back_off(&self) {
        let until = self
            .now()
            .saturating_add(u64::try_from(self.retry_after.as_nanos()).unwrap_or(u64::MAX));
        self.down_until.store(until.max(1), Ordering::Relaxed);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn connect(&self) -> RedisResult<Conn> {
        let conn = match &self.target {
            Target::Node(client) => {
                let conn = client.get_connection_with_timeout(self.connect_timeout)?;
                conn.set_read_timeout(Some(self.command_timeout))?;
                conn.set_write_timeout(Some(self.command_timeout))?;
                Conn::Node(conn)
            }
            Target::Cluster(client) => Conn::Cluster(Box::new(client.get_connection()?)),
        };
        bump(&self.stats.connects);
        Ok(conn)
    }

    /// A lookup by `command` (`GET` or `GETDEL`), decoded.
    fn fetch(
        &self,
        command: &str,
        id: &SessionId,
        sid_ctx: &SidCtx,
    ) -> Result<Option<Fetched>, StoreError> {
        bump(&self.stats.lookups);
        let mut cmd = redis::cmd(command);
        cmd.arg(self.key(sid_ctx, id));
        let Some(bytes) = self.call(|conn| conn.run::<Option<Vec<u8>>>(&cmd))? else {
            return Ok(None);
        };
        let session = Session::decode(&bytes).map_err(|e| {
            bump(&self.stats.errors);
            StoreError::new(e)
        })?;
        bump(&self.stats.hits);
        Ok(Some(Fetched::Owned(session)))
    }
}

/// Milliseconds from now (by the wall clock) to the first second past
/// `time + timeout`; `None` when the session never times out, and 0 when
/// it already has.
fn remaining_ms(session: &Session) -> Option<u64> {
    let deadline_ms = session
        .expires_at()
        .and_then(|last| last.checked_add(1))
        .and_then(|end| end.checked_mul(1000))?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Some(deadline_ms.saturating_sub(now_ms))
}

impl ExternalStore for RedisStore {
    fn new_session(&self, session: &Arc<Session>) -> Result<(), StoreError> {
        if !session.is_resumable() {
            return Ok(());
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(session.sid_ctx(), session.id()))
            .arg(&session.encode()[..]);
        match remaining_ms(session) {
            Some(0) => return Ok(()),
            Some(ms) => {
                cmd.arg("PX").arg(ms);
            }
            None => {}
        }
        match self.call(|conn| conn.run::<()>(&cmd)) {
            Ok(()) => {
                bump(&self.stats.stores);
                Ok(())
            }
            Err(e) => {
                bump(&self.stats.dropped_stores);
                Err(e)
            }
        }
    }

    fn get_session(&self, id: &SessionId, sid_ctx: &SidCtx) -> Result<Option<Fetched>, StoreError> {
        self.fetch("GET", id, sid_ctx)
    }

    fn take_session(
        &self,
        id: &SessionId,
        sid_ctx: &SidCtx,
    ) -> Result<Option<Fetched>, StoreError> {
        self.fetch("GETDEL", id, sid_ctx)
    }

    fn remove_session(&self, session: &Arc<Session>, why: Removal) -> Result<(), StoreError> {
        // Only the application's own removal speaks for the fleet; see the
        // crate documentation.
        if why != Removal::Removed {
            return Ok(());
        }
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(session.sid_ctx(), session.id()));
        self.call(|conn| conn.run::<u64>(&cmd))?;
        bump(&self.stats.removes);
        Ok(())
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &matches!(self.target, Target::Cluster(_)))
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
