//! Pooled connections to Redis, with timeouts and a back-off after
//! failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Cmd, FromRedisValue, RedisResult};
use tlscache_policy::StoreError;

use crate::stats::bump;

/// Where the sessions live.
pub(crate) enum Target {
    Node(redis::Client),
    Cluster(ClusterClient),
}

/// One connection, to a node or to a cluster.
pub(crate) enum Conn {
    Node(redis::Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    pub(crate) fn run<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Conn::Node(c) => cmd.query(c),
            Conn::Cluster(c) => cmd.query(c),
        }
    }
}

/// Idle connections for reuse, and the back-off state. Every call borrows
/// a connection (or makes one) and gives it back; the idle list's lock is
/// held only to pop or push.
pub(crate) struct Pool {
    pub(crate) target: Target,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) retry_after: Duration,
    pub(crate) max_idle: usize,
    pub(crate) idle: Mutex<Vec<Conn>>,
    pub(crate) origin: Instant,
    /// Nanoseconds after `origin` before which calls fail at once; 0 while
    /// Redis answers. `Relaxed` throughout: it guards no other data, and a
    /// stale read only makes one call try Redis, or give up, a moment early.
    pub(crate) down_until: AtomicU64,
    /// Calls that failed, for the store's stats.
    pub(crate) errors: AtomicU64,
    /// Connections made, for the store's stats.
    pub(crate) connects: AtomicU64,
}

impl Pool {
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs `f` on a pooled connection. Fails at once while backing off;
    /// a failure that may mean Redis is gone starts a back-off and drops
    /// the idle connections (they would fail the same way).
    pub(crate) fn call<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let outcome = self.try_call(f);
        if outcome.is_err() {
            bump(&self.errors);
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
        bump(&self.connects);
        Ok(conn)
    }
}
