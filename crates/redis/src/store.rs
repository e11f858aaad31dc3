//! The store: tlscache-policy's external store on Redis.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tlscache_policy::{ExternalStore, Fetched, Removal, Session, SessionId, SidCtx, StoreError};

use crate::builder::{
    RedisStoreBuilder, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_CONNECTIONS,
    DEFAULT_PREFIX, DEFAULT_RETRY_AFTER,
};
use crate::pool::{Pool, Target};
use crate::stats::{bump, RedisStats, Stats};

/// Sessions shared through Redis: a [`tlscache_policy::ExternalStore`].
/// See the [crate documentation](crate) for what it sends, and how it
/// behaves when Redis is slow or down.
pub struct RedisStore {
    pub(crate) pool: Pool,
    pub(crate) prefix: Vec<u8>,
    pub(crate) stats: Stats,
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
        self.pool.call(None, |conn| {
            conn.run::<String>(&redis::cmd("PING")).map(drop)
        })
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
            errors: get(&s.undecodable) + get(&self.pool.errors),
            connects: get(&self.pool.connects),
        }
    }

    /// A lookup by `command` (`GET` or `GETDEL`), decoded.
    fn fetch(
        &self,
        command: &str,
        id: &SessionId,
        sid_ctx: &SidCtx,
    ) -> Result<Option<Fetched>, StoreError> {
        bump(&self.stats.lookups);
        let key = self.key(sid_ctx, id);
        let mut cmd = redis::cmd(command);
        cmd.arg(&key);
        let Some(bytes) = self
            .pool
            .call(Some(&key), |conn| conn.run::<Option<Vec<u8>>>(&cmd))?
        else {
            return Ok(None);
        };
        let session = Session::decode(&bytes).map_err(|e| {
            bump(&self.stats.undecodable);
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
        let key = self.key(&session.sid_ctx(), session.id());
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key).arg(&session.encode()[..]);
        match remaining_ms(session) {
            Some(0) => return Ok(()),
            Some(ms) => {
                cmd.arg("PX").arg(ms);
            }
            None => {}
        }
        match self.pool.call(Some(&key), |conn| conn.run::<()>(&cmd)) {
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
        let key = self.key(&session.sid_ctx(), session.id());
        let mut cmd = redis::cmd("DEL");
        cmd.arg(&key);
        self.pool.call(Some(&key), |conn| conn.run::<u64>(&cmd))?;
        bump(&self.stats.removes);
        Ok(())
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &matches!(self.pool.target, Target::Cluster(_)))
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
