//! Settings for a store, checked when it is built.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::RedisError;

use crate::pool::{ClusterPool, Pool, Target};
use crate::stats::Stats;
use crate::store::RedisStore;
use crate::topology::{Maker, Topology};

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
    /// The cluster store's thread (which makes connections off the
    /// handshake path) could not be started.
    #[error("cannot start the cluster store's thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Settings for a [`RedisStore`]; see [`RedisStore::builder`].
pub struct RedisStoreBuilder {
    pub(crate) nodes: Vec<String>,
    pub(crate) cluster: bool,
    pub(crate) prefix: Vec<u8>,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) retry_after: Duration,
    pub(crate) idle_connections: usize,
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
        let idle = Arc::new(Mutex::new(Vec::new()));
        let connects = Arc::new(AtomicU64::new(0));
        let cluster = match &target {
            Target::Cluster(client) => {
                let topology = Arc::new(Topology::new());
                let (jobs, queue) = std::sync::mpsc::channel();
                Maker {
                    client: client.clone(),
                    idle: idle.clone(),
                    max_idle: self.idle_connections,
                    connects: connects.clone(),
                    topology: topology.clone(),
                    retry_after: self.retry_after,
                }
                .spawn(queue)
                .map_err(ConfigError::Thread)?;
                Some(ClusterPool {
                    topology,
                    jobs: Mutex::new(jobs),
                })
            }
            Target::Node(_) => None,
        };
        Ok(RedisStore {
            pool: Pool {
                target,
                connect_timeout: self.connect_timeout,
                command_timeout: self.command_timeout,
                retry_after: self.retry_after,
                max_idle: self.idle_connections,
                idle,
                origin: Instant::now(),
                down_until: AtomicU64::new(0),
                cluster,
                errors: AtomicU64::new(0),
                connects,
            },
            prefix: self.prefix,
            stats: Stats::default(),
        })
    }
}
