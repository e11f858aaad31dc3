//! tlscache-rustls: rustls's session stores on a tlscache-policy
//! [`SessionCache`].
//!
//! - [`ServerStore`] is rustls's [`StoresServerSessions`]: TLS 1.2 session
//!   ids through [`SessionCache::lookup`], and TLS 1.3 stateful tickets
//!   through [`SessionCache::lookup_once`], so a ticket resumes at most
//!   once (across a fleet too, with an external store such as
//!   tlscache-redis).
//! - [`ClientStore`] is rustls's [`ClientSessionStore`]: TLS 1.3 tickets in
//!   the cache's per-peer client lists, keyed by server name, each handed
//!   out once.
//!
//! rustls does not tell a store when a handshake starts or how it ended, so
//! the counters that OpenSSL keeps per handshake (`accept`, `accept_good`)
//! and the auto flush every 256th handshake need the application: call
//! [`SessionCache::handshake_started`] when a connection starts and
//! [`handshake_finished`] when its handshake is done.
//!
//! # A server
//!
//! ```
//! use std::sync::Arc;
//! use tlscache_policy::{CacheMode, SessionCache};
//! use tlscache_rustls::ServerStore;
//!
//! let cache = Arc::new(
//!     SessionCache::builder()
//!         .mode(CacheMode::SERVER)
//!         .session_id_context(b"frontend-443")
//!         .build()?,
//! );
//! let store = Arc::new(ServerStore::new(cache.clone()));
//! // let mut config = rustls::ServerConfig::builder()...;
//! // config.session_storage = store;
//! # let _ = store;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::server::StoresServerSessions;
use rustls::{HandshakeKind, NamedGroup};
use tlscache_policy::{
    CacheMode, ConfigError, Handshake, PeerKey, ProtocolVersion, SessionCache, SessionError,
    SidCtx, Side,
};

/// Reports a finished handshake of a rustls connection to `cache`: a
/// resumption, or a full handshake (whose sessions the store already
/// has). Does nothing while the connection is still handshaking.
pub fn handshake_finished(cache: &SessionCache, side: Side, conn: &rustls::CommonState) {
    let outcome = match conn.handshake_kind() {
        Some(HandshakeKind::Resumed) => Handshake::Resumed,
        Some(HandshakeKind::Full | HandshakeKind::FullWithHelloRetryRequest) => Handshake::Full,
        None => return,
    };
    if conn.is_handshaking() {
        return;
    }
    cache.handshake_finished(side, outcome);
}

/// rustls's server session store on a [`SessionCache`].
///
/// rustls hands the store a key (a TLS 1.2 session id, or a TLS 1.3
/// stateful ticket's id) and its own encoded session; the store keeps that
/// as the state of a [`Session`](tlscache_policy::Session) in its
/// session-id context. A key a client made up (empty, or longer than 32
/// bytes, as a TLS 1.3 identity may be) is never found: a full handshake,
/// with nothing counted.
pub struct ServerStore {
    cache: Arc<SessionCache>,
    sid_ctx: SidCtx,
}

impl ServerStore {
    /// A store in the cache's current session-id context.
    pub fn new(cache: Arc<SessionCache>) -> Self {
        let sid_ctx = cache.session_id_context();
        Self { cache, sid_ctx }
    }

    /// A store in context `sid_ctx`: several server configurations sharing
    /// one cache, each with its own context, never resume each other's
    /// sessions (OpenSSL's `SSL_CTX_set_session_id_context`).
    pub fn with_context(cache: Arc<SessionCache>, sid_ctx: &[u8]) -> Result<Self, SessionError> {
        Ok(Self {
            cache,
            sid_ctx: SidCtx::new(sid_ctx)?,
        })
    }

    /// The cache behind this store.
    pub fn cache(&self) -> &Arc<SessionCache> {
        &self.cache
    }
}

impl StoresServerSessions for ServerStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        if !self.can_cache() {
            return false;
        }
        // rustls's keys are ids it made itself: 32 random bytes.
        let Ok(session) = self
            .cache
            .session_builder(&key, value)
            .sid_ctx(self.sid_ctx.as_bytes())
            .build()
        else {
            return false;
        };
        self.cache.new_session(Side::Server, &Arc::new(session));
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let session = self.cache.lookup(key, self.sid_ctx.as_bytes())?;
        Some(session.state().to_vec())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let session = self.cache.lookup_once(key, self.sid_ctx.as_bytes())?;
        Some(session.state().to_vec())
    }

    fn can_cache(&self) -> bool {
        self.cache.mode().contains(CacheMode::SERVER)
    }
}

impl fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerStore")
            .field("sid_ctx", &self.sid_ctx)
            .field("cache", &self.cache)
            .finish()
    }
}

/// A TLS 1.3 ticket, handed out once: rustls's values cannot be cloned.
struct Ticket(Mutex<Option<Tls13ClientSessionValue>>);

/// rustls's client session store on a [`SessionCache`] whose mode includes
/// [`CacheMode::CLIENT`].
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
        self.kx_hints.insert(server_name, Arc::new(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.kx_hints
            .get(&server_name.to_owned())
            .map(|group| *group)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.tls12.insert(server_name, Arc::new(value));
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
            self.cache.new_session(Side::Client, &Arc::new(session));
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
