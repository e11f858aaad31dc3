//! Pooled connections to Redis, with timeouts and a back-off after
//! failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, RedisResult, RetryMethod};
use tlscache_policy::StoreError;

use crate::stats::bump;
use crate::topology::{ask, Job, Topology};

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
    /// Runs `cmd`. On a cluster, an `ASK` answer (the key's slot is being
    /// migrated and the key has left) is followed once: `ASKING` and the
    /// command again, on the node named. A `MOVED` answer is the pool's
    /// to follow (see [`Pool::call`]): it needs a new slot map.
    pub(crate) fn run<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Conn::Node(c) => cmd.query(c),
            Conn::Cluster(c) => match cmd.query(c) {
                Err(e) if matches!(e.retry_method(), RetryMethod::AskRedirect) => {
                    let Some((host, port)) = e.redirect_node() else {
                        return Err(e);
                    };
                    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.to_owned(),
                        port,
                    });
                    // One node connection serves both, in order.
                    c.route_command(&redis::cmd("ASKING"), route.clone())?;
                    let value = c.route_command(cmd, route)?;
                    Ok(T::from_redis_value(value)?)
                }
                other => other,
            },
        }
    }
}

/// Slots of a Redis Cluster.
pub(crate) const SLOTS: usize = 16384;

/// The cluster slot of `key`: CRC16 (XMODEM) of the key, or of its hash
/// tag (the bytes between its first `{` and the next `}`, if any), modulo
/// 16384, as Redis computes it.
pub(crate) fn key_slot(key: &[u8]) -> usize {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &byte in hashed {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    usize::from(crc) % SLOTS
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
    /// Shared with a cluster's maker thread, which adds connections.
    pub(crate) idle: Arc<Mutex<Vec<Conn>>>,
    pub(crate) origin: Instant,
    /// Nanoseconds after `origin` before which calls fail at once; 0 while
    /// Redis answers. `Relaxed` throughout: it guards no other data, and a
    /// stale read only makes one call try Redis, or give up, a moment early.
    pub(crate) down_until: AtomicU64,
    /// On a cluster: back-offs per master and per slot (a dead master
    /// costs its own slots and no others), and the maker thread.
    pub(crate) cluster: Option<ClusterPool>,
    /// Calls that failed, for the store's stats.
    pub(crate) errors: AtomicU64,
    /// Connections made, for the store's stats (the maker's included).
    pub(crate) connects: Arc<AtomicU64>,
}

/// A cluster pool's own parts (see `topology`).
pub(crate) struct ClusterPool {
    pub(crate) topology: Arc<Topology>,
    pub(crate) jobs: Mutex<Sender<Job>>,
}

impl Pool {
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs `f` on a pooled connection, for `key` (`None`: no key, such as
    /// `PING`). Fails at once while backing off. A failure that may mean
    /// Redis is gone starts a back-off and drops the idle connections
    /// (they would fail the same way); on a cluster, a command for a key
    /// backs off only the key's slot. A `MOVED` answer (the slot has moved
    /// to another master) is followed once, on a new connection, which
    /// reads the cluster's new slot map.
    pub(crate) fn call<T>(
        &self,
        key: Option<&[u8]>,
        f: impl Fn(&mut Conn) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let outcome = self.try_call(key, f);
        if outcome.is_err() {
            bump(&self.errors);
        }
        outcome
    }

    /// Whether `until` (a `down_until`) has passed; the error if not.
    fn check_up(&self, until: u64, what: &str) -> Result<(), StoreError> {
        if until == u64::MAX {
            return Err(StoreError::new(format!(
                "{what} is down until it answers a probe"
            )));
        }
        if until != 0 {
            let now = self.now();
            if now < until {
                return Err(StoreError::new(format!(
                    "{what} failed a moment ago; trying again in {:?}",
                    Duration::from_nanos(until - now)
                )));
            }
        }
        Ok(())
    }

    fn try_call<T>(
        &self,
        key: Option<&[u8]>,
        f: impl Fn(&mut Conn) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.check_up(self.down_until.load(Ordering::Relaxed), "Redis")?;
        let slot = match (&self.cluster, key) {
            (Some(cluster), Some(key)) => {
                let slot = key_slot(key);
                let until = cluster.topology.down_until(slot);
                // The message is made only for a slot that is down.
                if until != 0 {
                    self.check_up(until, &format!("Redis Cluster slot {slot} (or its master)"))?;
                }
                Some((cluster, slot))
            }
            _ => None,
        };
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.fresh()?,
        };
        let mut outcome = f(&mut conn);
        if matches!(&outcome, Err(e) if matches!(e.retry_method(), RetryMethod::MovedRedirect)) {
            // The slot map this connection holds is out of date.
            drop(conn);
            conn = self.fresh()?;
            outcome = f(&mut conn);
        }
        match outcome {
            Ok(value) => {
                self.down_until.store(0, Ordering::Relaxed);
                if let Some((cluster, slot)) = slot {
                    cluster.topology.up(slot);
                }
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
                    match slot {
                        Some((cluster, slot)) => {
                            cluster.topology.down(slot, self.until());
                            // The master may have failed over; and the
                            // dropped connection wants replacing.
                            ask(&cluster.jobs, Job::Map);
                            ask(&cluster.jobs, Job::Refill);
                        }
                        None => self.back_off(),
                    }
                }
                Err(StoreError::new(e))
            }
        }
    }

    /// A new connection; failing to make one backs the whole pool off. On
    /// a cluster with a master down, the maker thread makes it instead
    /// (that may take a timeout per master that does not answer), and the
    /// call fails at once.
    fn fresh(&self) -> Result<Conn, StoreError> {
        if let Some(cluster) = &self.cluster {
            if cluster.topology.any_down() {
                ask(&cluster.jobs, Job::Refill);
                return Err(StoreError::new(
                    "no idle connection while a Redis Cluster master is down; one is being made",
                ));
            }
        }
        let conn = self.connect().map_err(|e| {
            self.back_off();
            StoreError::new(e)
        })?;
        if let Some(cluster) = &self.cluster {
            // A new connection may mean a new map (first use, MOVED).
            ask(&cluster.jobs, Job::Map);
        }
        Ok(conn)
    }

    /// The end of a back-off starting now.
    fn until(&self) -> u64 {
        self.now()
            .saturating_add(u64::try_from(self.retry_after.as_nanos()).unwrap_or(u64::MAX))
            .max(1)
    }

    fn back_off(&self) {
        self.down_until.store(self.until(), Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    #[test]
    fn key_slots_are_redis_cluster_slots() {
        // CRC16/XMODEM's check value, and slots from the cluster spec.
        assert_eq!(key_slot(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        for key in [&b"a{b}c"[..], b"{}x", b"x{", b"{{a}}", b"\xff\x00{\x7b}"] {
            assert_eq!(
                Some(Slot::for_key(key)),
                Slot::new(key_slot(key) as u16),
                "{key:?}"
            );
        }
        for n in 0..2000u32 {
            let key = n.to_be_bytes();
            assert_eq!(Some(Slot::for_key(key)), Slot::new(key_slot(&key) as u16));
        }
    }
}
