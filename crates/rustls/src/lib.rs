//! tlscache-rustls: rustls's session stores on a tlscache-policy
//! [`SessionCache`](tlscache_policy::SessionCache).
//!
//! - [`ServerStore`] is rustls's [`StoresServerSessions`](rustls::server::StoresServerSessions): TLS 1.2 session
//!   ids through [`SessionCache::lookup`](tlscache_policy::SessionCache::lookup), and TLS 1.3 stateful tickets
//!   through [`SessionCache::lookup_once`](tlscache_policy::SessionCache::lookup_once), so a ticket resumes at most
//!   once (across a fleet too, with an external store such as
//!   tlscache-redis).
//! - [`ClientStore`] is rustls's [`ClientSessionStore`](rustls::client::ClientSessionStore): TLS 1.3 tickets in
//!   the cache's per-peer client lists, keyed by server name, each handed
//!   out once.
//!
//! rustls does not tell a store when a handshake starts or how it ended, so
//! the counters that OpenSSL keeps per handshake (`accept`, `accept_good`)
//! and the auto flush every 256th handshake need the application: call
//! [`SessionCache::handshake_started`](tlscache_policy::SessionCache::handshake_started) when a connection starts and
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

mod client;
mod handshake;
mod server;

pub use client::ClientStore;
pub use handshake::handshake_finished;
pub use server::ServerStore;
