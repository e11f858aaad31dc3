//! The two-tier setup: proxies with their own local tlscache, sharing
//! sessions through Redis.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use tlscache_policy::{CacheMode, Handshake, SessionCache, Side};
use tlscache_redis::RedisStore;

use crate::engine::{Engine, SessionId, State};

/// What each tier did; see [`Engine::tiers`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tiers {
    /// Resumptions served from a proxy's own cache.
    pub local_hits: u64,
    /// Lookups that went on to Redis (local misses, and every single-use
    /// take, which Redis must confirm).
    pub remote_lookups: u64,
    /// Of those, the ones Redis answered with a session.
    pub remote_hits: u64,
    /// Redis calls that failed (timeouts, refused connections, backing off).
    pub remote_errors: u64,
    /// New sessions Redis did not get.
    pub dropped_stores: u64,
}

impl std::ops::Sub for Tiers {
    type Output = Tiers;
    fn sub(self, before: Tiers) -> Tiers {
        Tiers {
            local_hits: self.local_hits.saturating_sub(before.local_hits),
            remote_lookups: self.remote_lookups.saturating_sub(before.remote_lookups),
            remote_hits: self.remote_hits.saturating_sub(before.remote_hits),
            remote_errors: self.remote_errors.saturating_sub(before.remote_errors),
            dropped_stores: self.dropped_stores.saturating_sub(before.dropped_stores),
        }
    }
}

thread_local! {
    /// Which proxy this thread's current connection reached, and how many
    /// connections the thread has made.
    static ROUTE: Cell<(Option<usize>, usize)> = const { Cell::new((None, 0)) };
}

/// `proxies` proxies behind a round-robin load balancer, each a
/// tlscache-policy cache of `capacity` sessions in front of its own
/// connections to one Redis. A connection's lookup and the store after its
/// full handshake reach the same proxy; the next connection reaches the
/// next proxy, so a session resumes locally only when it comes back round.
pub struct TwoTier {
    proxies: Vec<(SessionCache, Arc<RedisStore>)>,
}

impl TwoTier {
    /// The setup on the Redis at `url`, under a key prefix of its own.
    pub fn new(url: &str, proxies: usize, capacity: usize) -> Result<Self, String> {
        if proxies == 0 {
            return Err("at least one proxy".into());
        }
        let prefix = format!("tlscache-loadgen:{}:", std::process::id());
        let proxies = (0..proxies)
            .map(|_| {
                let store = Arc::new(
                    RedisStore::builder(url)
                        .prefix(prefix.as_bytes())
                        .build()
                        .map_err(|e| e.to_string())?,
                );
                store
                    .ping()
                    .map_err(|e| format!("Redis at {url} does not answer: {e}"))?;
                let cache = SessionCache::builder()
                    .mode(CacheMode::SERVER)
                    .cache_size(capacity as u64 + 1)
                    .external_store(store.clone())
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok((cache, store))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { proxies })
    }

    /// The proxy this connection reached: a new one per connection, in
    /// turn (the lookup starts a connection).
    fn next(&self) -> &SessionCache {
        let n = ROUTE.with(|r| {
            let (_, count) = r.get();
            let n = count % self.proxies.len();
            r.set((Some(n), count + 1));
            n
        });
        &self.proxies[n].0
    }

    /// The proxy the current connection reached, or the next one for a
    /// connection that did not try to resume.
    fn current(&self) -> &SessionCache {
        match ROUTE.with(|r| r.replace((None, r.get().1)).0) {
            Some(n) => &self.proxies[n].0,
            None => {
                self.next();
                self.current()
            }
        }
    }
}

impl Engine for TwoTier {
    fn name(&self) -> &'static str {
        "tlscache-policy + Redis"
    }
    fn lookup(&self, id: &SessionId) -> bool {
        self.next().lookup(id, b"").is_some()
    }
    fn take(&self, id: &SessionId) -> bool {
        self.next().lookup_once(id, b"").is_some()
    }
    fn store(&self, id: SessionId, state: &State, timeout: Duration) {
        let cache = self.current();
        let built = cache
            .session_builder(&id, &state[..])
            .timeout(timeout.as_secs())
            .build();
        if let Ok(session) = built {
            cache.handshake_finished(Side::Server, Handshake::New(&session));
        }
    }
    fn sessions(&self) -> Option<u64> {
        Some(self.proxies.iter().map(|(c, _)| c.sess_number()).sum())
    }
    fn tiers(&self) -> Option<Tiers> {
        let mut t = Tiers::default();
        for (cache, store) in &self.proxies {
            let (c, s) = (cache.stats(), store.stats());
            t.local_hits += c.hits.saturating_sub(c.cb_hits);
            t.remote_lookups += s.lookups;
            t.remote_hits += s.hits;
            t.remote_errors += s.errors;
            t.dropped_stores += s.dropped_stores;
        }
        Some(t)
    }
}
