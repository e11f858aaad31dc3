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
//! | new session ([`ExternalStore::new_session`](tlscache_policy::ExternalStore::new_session)) | `SET key value PX remaining-lifetime` |
//! | lookup after a local miss ([`ExternalStore::get_session`](tlscache_policy::ExternalStore::get_session)) | `GET key` |
//! | single-use lookup ([`ExternalStore::take_session`](tlscache_policy::ExternalStore::take_session)) | `GETDEL key` (Redis ≥ 6.2): a ticket resumes once across the fleet |
//! | [`remove_session`](tlscache_policy::SessionCache::remove_session) | `DEL key` |
//!
//! The key is the prefix, then the session-id context's length as one
//! byte, the context, and the session id: binary-safe and unambiguous. The
//! value is [`Session::encode`](tlscache_policy::Session::encode). A session's remaining lifetime is counted
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
//! nodes and routes every key to its slot's master. Each command names one
//! key, so keys spread over all slots. Do not put a hash tag (`{...}`) in
//! the prefix: that would send every session to one slot, and so to one
//! master.
//!
//! - **Slots that move** (a reshard, a failover): a `MOVED` answer is
//!   followed once on a new connection, which reads the new slot map; an
//!   `ASK` answer (a slot half migrated) once with `ASKING` on the node
//!   named. Sessions keep resuming while slots move.
//! - **A master that goes down** (killed, or hung: it accepts connections
//!   and never answers): the first command for one of its slots fails
//!   within the connect or command timeout, and marks the master down
//!   through the slot map the store keeps. Every later call for its slots
//!   fails at once, counted in `errors`, as a miss (a dropped store, for a
//!   new session), until the store's own thread finds it answering a
//!   `PING` (every `retry_after`) or a new slot map moves its slots
//!   elsewhere. While a master is down, calls take only connections that
//!   thread has made ready (making one means connecting to every master,
//!   a timeout or two for a hung one), so a handshake waits at most one
//!   timeout. A store that makes its very first connection while a master
//!   hangs waits for that connection. The other masters' slots keep
//!   sharing. Its sessions are lost to the fleet until
//!   a replica takes over (each proxy's local cache still resumes its
//!   own), and its TLS 1.3 tickets cannot be taken, so they do not resume
//!   anywhere. With Redis's default `cluster-require-full-coverage yes`,
//!   once the cluster marks the master failed (`cluster-node-timeout`)
//!   every node refuses every command (`CLUSTERDOWN`): every lookup is a
//!   counted miss until the slots are served again. Run the cluster with
//!   `cluster-require-full-coverage no` to keep the other slots sharing.
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

mod builder;
#[cfg(feature = "metrics")]
mod metrics;
mod pool;
mod stats;
mod store;
mod topology;

pub use builder::{
    ConfigError, RedisStoreBuilder, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_IDLE_CONNECTIONS, DEFAULT_PREFIX, DEFAULT_RETRY_AFTER,
};
#[cfg(feature = "metrics")]
pub use metrics::RedisMetrics;
pub use stats::RedisStats;
pub use store::RedisStore;
