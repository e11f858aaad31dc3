//! A cache's settings: OpenSSL's defaults, the configuration every
//! operation reads (swapped whole when a setter changes it), the engine
//! bound a cache size means, and the setters.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tlscache_core::MAX_SHARD_ENTRIES;

use crate::cache::SessionCache;
use crate::mode::CacheMode;
use crate::session::{SessionError, SidCtx};

/// OpenSSL's `SSL_SESSION_CACHE_MAX_SIZE_DEFAULT`.
pub const DEFAULT_CACHE_SIZE: u64 = 1024 * 20;

/// OpenSSL 3.0's default session timeout for TLS (`tls1_default_timeout`):
/// two hours, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 60 * 60 * 2;

/// How long an external store call may take before it counts as slow and
/// its answer as a miss: a handshake that waited longer has lost more than a
/// resumption saves.
pub const DEFAULT_EXTERNAL_BUDGET: Duration = Duration::from_millis(50);

/// The settings new sessions take and the setters change, swapped whole
/// when one changes (the mode is kept apart: see `SessionCache::mode`).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) cache_size: u64,
    pub(crate) timeout: u64,
    pub(crate) sid_ctx: SidCtx,
}

/// The engine's entry bound for an OpenSSL cache size.
///
/// OpenSSL 3.0's `SSL_CTX_add_session` puts the new session in its hash,
/// then evicts while `SSL_CTX_sess_number >= SSL_CTX_sess_get_cache_size`:
/// the new session is already counted, so a full cache of size N holds
/// N − 1 sessions (size 1 holds one: the loop finds no tail to evict). We
/// keep that bound. Size 0 is unbounded, and so is a size past what one
/// shard can address ([`MAX_SHARD_ENTRIES`], over two billion sessions):
/// no process holds that many, so the two cannot be told apart.
pub(crate) fn capacity_for(size: u64) -> Option<usize> {
    let capacity = usize::try_from(size.saturating_sub(1).max(1)).ok()?;
    (size != 0 && capacity <= MAX_SHARD_ENTRIES).then_some(capacity)
}

impl SessionCache {
    /// `SSL_CTX_get_session_cache_mode`: the mode, every bit as set.
    pub fn mode(&self) -> CacheMode {
        // Relaxed: the mode is a value of its own; whatever orders a
        // `set_mode` before an operation orders this load after it too.
        CacheMode::from_bits(self.mode.load(Ordering::Relaxed))
    }

    /// `SSL_CTX_set_session_cache_mode`: sets the mode and returns the
    /// previous one. Takes effect for operations that start afterwards.
    pub fn set_mode(&self, mode: CacheMode) -> CacheMode {
        let _setting = self.setters.lock().unwrap_or_else(PoisonError::into_inner);
        // Relaxed: see `mode`.
        CacheMode::from_bits(self.mode.swap(mode.bits(), Ordering::Relaxed))
    }

    /// `SSL_CTX_sess_get_cache_size`.
    pub fn cache_size(&self) -> u64 {
        self.config.load().cache_size
    }

    /// `SSL_CTX_sess_set_cache_size`: sets the size (0: unbounded) and
    /// returns the previous one. Every size works with every shard count:
    /// a full cache of size N holds N − 1 sessions, as OpenSSL's does (see
    /// the crate docs on how shards share the bound). A smaller size
    /// evicts at once, shard by shard, while lookups carry on; each
    /// eviction counts as `cache_full`.
    pub fn set_cache_size(&self, size: u64) -> u64 {
        let set: Result<u64, tlscache_core::BuildError> = self.try_update(|c| {
            self.sessions.set_capacity(capacity_for(size))?;
            Ok(std::mem::replace(&mut c.cache_size, size))
        });
        // A capacity `capacity_for` gives fits any power-of-two shard
        // count, the only kind a cache is built with; were the engine to
        // refuse one, the size would stay as it was.
        debug_assert!(set.is_ok(), "{set:?}");
        set.unwrap_or_else(|_| self.cache_size())
    }

    /// `SSL_CTX_get_timeout`: the timeout given to new sessions, in seconds.
    pub fn timeout(&self) -> u64 {
        self.config.load().timeout
    }

    /// `SSL_CTX_set_timeout`: sets the timeout of sessions made from now on
    /// (0: the protocol default, [`DEFAULT_TIMEOUT`]) and returns the
    /// previous one. Sessions already made keep theirs.
    pub fn set_timeout(&self, seconds: u64) -> u64 {
        self.update(|c| std::mem::replace(&mut c.timeout, seconds))
    }

    /// The session-id context new sessions get.
    pub fn session_id_context(&self) -> SidCtx {
        self.config.load().sid_ctx
    }

    /// `SSL_CTX_set_session_id_context`; more than 32 bytes is an error and
    /// changes nothing.
    pub fn set_session_id_context(&self, sid_ctx: &[u8]) -> Result<(), SessionError> {
        let sid_ctx = SidCtx::new(sid_ctx)?;
        self.update(|c| c.sid_ctx = sid_ctx);
        Ok(())
    }

    fn update<T>(&self, change: impl FnOnce(&mut Config) -> T) -> T {
        let unchanged: Result<T, std::convert::Infallible> = self.try_update(|c| Ok(change(c)));
        match unchanged {
            Ok(out) => out,
        }
    }

    /// Changes the configuration under the setters' lock; an `Err` from
    /// `change` leaves it as it was.
    fn try_update<T, E>(&self, change: impl FnOnce(&mut Config) -> Result<T, E>) -> Result<T, E> {
        let _setting = self.setters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut config = Config::clone(&self.config.load());
        let out = change(&mut config)?;
        self.config.store(Arc::new(config));
        Ok(out)
    }
}
