//! tlscache-openssl: a tlscache-policy [`SessionCache`](tlscache_policy::SessionCache) as an OpenSSL
//! `SSL_CTX`'s session cache.
//!
//! [`install`] does what nginx and HAProxy do for their own shared caches:
//! it turns OpenSSL's internal cache off
//! (`SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL`) and installs the
//! new-, get- and remove-session callbacks, so that every server session
//! goes through the tlscache cache. Sessions are kept as DER
//! (`i2d_SSL_SESSION`), under their id, in the context given.
//!
//! It also sets `SSL_OP_NO_TICKET`. Without it OpenSSL resumes TLS 1.2 by
//! stateless tickets and TLS 1.3 by stateless tickets too, and no cache is
//! ever asked. With it, TLS 1.2 resumes by session id and TLS 1.3 issues
//! stateful tickets, which the get callback takes (single use, through
//! [`SessionCache::lookup_once`](tlscache_policy::SessionCache::lookup_once)).
//!
//! TLS 1.3 early data works as with OpenSSL's own cache: set
//! `SSL_CTX_set_max_early_data` and read it with `SSL_read_early_data`. A
//! ticket carries early data once; a replayed ticket resumes nothing and
//! its early data is refused. The cache's single-use take is that replay
//! protection, so [`install`] also sets `SSL_OP_NO_ANTI_REPLAY`: OpenSSL's
//! own protection removes the session from its internal cache after the
//! get callback returned it, and with no internal cache that removal
//! fails and would refuse every ticket offered with early data.
//!
//! Counters: OpenSSL counts handshakes itself; the cache counts what it
//! sees (lookups, hits, misses, timeouts, new sessions). A proxy that wants
//! the cache's `accept`/`accept_good` and its auto flush reports
//! handshakes with [`SessionCache::handshake_started`](tlscache_policy::SessionCache::handshake_started) and
//! [`handshake_finished`].
//!
//! # Where this differs from OpenSSL's own cache
//!
//! Besides the cache's own list (the policy crate's "Where this cache
//! differs from OpenSSL 3.0"), which `tests/differential.rs` checks
//! against libssl handshake by handshake:
//!
//! - **A mode without `SERVER`.** OpenSSL's server sends an empty session
//!   id when its context's mode lacks `SSL_SESS_CACHE_SERVER`, so the
//!   client has nothing to offer next time. [`install`] sets the context's
//!   mode once (`SERVER | NO_INTERNAL`) while the cache's mode can change
//!   later, so with the cache's mode lacking `SERVER` sessions still carry
//!   ids: nothing is stored, and the client's offer of one is a counted
//!   miss where OpenSSL counts nothing.
//!
//! ```
//! use std::sync::Arc;
//! use openssl::ssl::{SslContext, SslMethod};
//! use tlscache_policy::{CacheMode, SessionCache};
//!
//! let cache = Arc::new(SessionCache::builder().mode(CacheMode::SERVER).build()?);
//! let mut ctx = SslContext::builder(SslMethod::tls_server())?;
//! tlscache_openssl::install(&mut ctx, cache.clone(), b"frontend-443")?;
//! // ... certificate and key, then ctx.build() and accept as usual.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod handshake;
mod install;

pub use handshake::handshake_finished;
pub use install::{install, InstallError};
