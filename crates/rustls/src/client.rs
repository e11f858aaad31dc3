//! rustls's client session store.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;
use tlscache_policy::{ConfigError, PeerKey, ProtocolVersion, SessionCache, Side};

/// A TLS 1.3 ticket, handed out once: rustls's values cannot be cloned.
struct Ticket(Mutex<Option<Tls13ClientSessionValue>>);

/// rustls's client session store on a [`SessionCache`] whose mode includes
/// [`CacheMode::CLIENT`](tlscache_policy::CacheMode::CLIENT).
///
/// TLS 1.3 tickets go to the cache's per-peer lists (the peer is the
/// server name): newest first, each handed out once, at most
/// [`SessionCacheBuilder::tickets_per_peer`](tlscache_policy::SessionCacheBuilder::tickets_per_peer)
/// per server. The one TLS 1.2 session and the key-exchange hint rustls
/// keeps per server are in two small engine caches of `servers` entries
/// each.
pub struct ClientStore {
    cache: Arc<SessionCache>,
    tls12: tlscache_core::Cache<ServerName<'static>, Tls12ClientSessionValue>,
    kx_hints: tlscache_core::Cache<ServerName<'static>, NamedGroup>,
    next_id: AtomicU64,
}

impl ClientStore {
    /// A store on `cache` remembering TLS 1.2 sessions and key-exchange
    /// hints for up to `servers` servers.
    pub fn new(cache: Arc<SessionCache>, servers: usize) -> Result<Self, ConfigError> {
        Ok(Self {
            cache,
            tls12: tlscache_core::Cache::builder()
                .capacity(servers)
                .shards(1)
                .build()?,
            kx_hints: tlscache_core::Cache::builder()
                .capacity(servers)
                .shards(1)
                .build()?,
            next_id: AtomicU64::new(1),
        })
    }

    /// The cache behind this store.
    pub fn cache(&self) -> &Arc<SessionCache> {
        &self.cache
    }
}

fn peer(server_name: &ServerName<'_>) -> PeerKey {
    PeerKey::new(server_name.to_str().as_bytes())
}

impl ClientSessionStore for ClientStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.kx_hints.put(server_name, Arc::new(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.kx_hints
            .get(&server_name.to_owned())
            .map(|group| *group)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.tls12.put(server_name, Arc::new(value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.tls12
            .get(&server_name.to_owned())
            .map(|value| Tls12ClientSessionValue::clone(&value))
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.tls12.remove(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        // Client sessions are found by peer, not id; the id only has to be
        // valid and distinct.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let session = self
            .cache
            .session_builder(&id, Vec::new())
            .version(ProtocolVersion::TLS1_3)
            .peer(peer(&server_name))
            .ex_data(Arc::new(Ticket(Mutex::new(Some(value)))))
            .build();
        if let Ok(session) = session {
            self.cache.new_session(Side::Client, &session);
        }
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let session = self.cache.client_session(peer(server_name).as_bytes())?;
        let ticket = session.ex_data::<Ticket>()?;
        let value = ticket
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        value
    }
}

impl fmt::Debug for ClientStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStore")
            .field("cache", &self.cache)
            .field("tls12_servers", &self.tls12.len())
            .finish_non_exhaustive()
    }
}
