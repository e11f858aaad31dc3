//! tlscache-policy: OpenSSL's session-cache contract on tlscache-core.
//!
//! One [`SessionCache`] is the session cache OpenSSL keeps per `SSL_CTX`:
//! the same modes, return values, callbacks, auto flush and counters, on a
//! sharded engine whose lookups take no lock. The contract comes from the
//! manual pages `SSL_CTX_add_session(3)` and
//! `SSL_CTX_set_session_cache_mode(3)`; where they are silent or disagree
//! with the code, this crate follows OpenSSL 3.0's `ssl/ssl_sess.c` and
//! `ssl/ssl_lib.c`.
//!
//! # OpenSSL to tlscache
//!
//! | OpenSSL | here |
//! | --- | --- |
//! | `SSL_SESSION` (refcounted) | `Arc<`[`Session`]`>` |
//! | `i2d_SSL_SESSION` / `d2i_SSL_SESSION` | [`Session::encode`] / [`Session::decode`] |
//! | `SSL_CTX_add_session` | [`SessionCache::add_session`] |
//! | `SSL_CTX_remove_session` | [`SessionCache::remove_session`]; by id, [`SessionCache::remove_session_id`] |
//! | `SSL_SESSION_set_ex_data` / `_get_` | [`SessionBuilder::ex_data`] / [`Session::ex_data`] |
//! | `SSL_CTX_set_session_cache_mode` / `_get_` | [`SessionCache::set_mode`] / [`SessionCache::mode`] |
//! | `SSL_SESS_CACHE_OFF`, `_CLIENT`, `_SERVER`, `_BOTH` | [`CacheMode::OFF`], [`CacheMode::CLIENT`], [`CacheMode::SERVER`], [`CacheMode::BOTH`] |
//! | `SSL_SESS_CACHE_NO_AUTO_CLEAR` | [`CacheMode::NO_AUTO_CLEAR`] |
//! | `SSL_SESS_CACHE_NO_INTERNAL_LOOKUP`, `_STORE`, `_NO_INTERNAL` | [`CacheMode::NO_INTERNAL_LOOKUP`], [`CacheMode::NO_INTERNAL_STORE`], [`CacheMode::NO_INTERNAL`] |
//! | `SSL_CTX_sess_set_cache_size` / `_get_` | [`SessionCache::set_cache_size`] / [`SessionCache::cache_size`] |
//! | `SSL_CTX_set_timeout` / `_get_` | [`SessionCache::set_timeout`] / [`SessionCache::timeout`] |
//! | `SSL_CTX_set_session_id_context` | [`SessionCache::set_session_id_context`] |
//! | `SSL_CTX_sess_set_new_cb`, `_get_cb`, `_remove_cb` | [`ExternalStore::new_session`], [`ExternalStore::get_session`], [`ExternalStore::remove_session`] |
//! | the get callback's `int *copy` | [`Fetched::Shared`] (`1`) / [`Fetched::Owned`] (`0`) |
//! | `ssl_get_prev_session` + `lookup_sess_in_cache` | [`SessionCache::lookup`] |
//! | stateful TLS 1.3 tickets with anti-replay | [`SessionCache::lookup_once`]; checking the version too, [`SessionCache::lookup_once_version`] |
//! | `ssl_get_new_session` (context, timeout, time) | [`SessionCache::session_builder`] |
//! | `ssl_update_cache` + `tls_finish_handshake` | [`SessionCache::handshake_finished`] |
//! | `ssl_update_cache`'s store alone (a stack handing sessions over apart from the handshake's end) | [`SessionCache::new_session`], then [`Handshake::Full`] |
//! | `sess_accept`, `sess_connect` at handshake start | [`SessionCache::handshake_started`] |
//! | `SSL_CTX_flush_sessions` | [`SessionCache::flush_sessions`] |
//! | `SSL_CTX_sess_number`, `_connect`, `_connect_good`, `_accept`, `_accept_good`, `_hits`, `_cb_hits`, `_misses`, `_timeouts`, `_cache_full` | [`SessionCache::stats`] ([`SessionStats`]); [`SessionCache::sess_number`] |
//! | `SSL_set_session` on the client (the application picks) | [`SessionCache::client_session`] (per peer, each once) |
//!
//! # Where this cache differs from OpenSSL 3.0
//!
//! - **Eviction.** OpenSSL keeps its list ordered by expiry and evicts the
//!   session that expires soonest. Here a shard evicts its least recently
//!   used session. A size below [`POOLED_PER_SHARD`](tlscache_core::POOLED_PER_SHARD)
//!   sessions a shard is shared by all shards: the cache fills to N − 1
//!   before anything goes, as OpenSSL's does, and the victim is the least
//!   recently used of the shard the new session went to (or of the next
//!   shard round, if it holds nothing else). A larger size is split evenly
//!   over the shards, so a shard can evict while others have room. With
//!   one shard ([`SessionCacheBuilder::shards`]) eviction is exact LRU.
//! - **Size.** Any size works with any shard count. OpenSSL 3.0 evicts
//!   while `sess_number >= cache_size` after counting the new session, so
//!   a full cache of size N holds N − 1 sessions (size 1 holds one). We
//!   keep that bound. A smaller size evicts at once rather than on the next
//!   add, and every eviction counts as `cache_full`. A size past what a
//!   shard can address ([`MAX_SHARD_ENTRIES`](tlscache_core::MAX_SHARD_ENTRIES))
//!   is unbounded. Under concurrent adds a small (shared) bound may be
//!   passed for as long as an add takes to evict.
//! - **Removal is final.** A lookup returns nothing that
//!   [`remove_session`](SessionCache::remove_session) has marked, even if
//!   it found the session a moment before the removal.
//! - **Single use.** OpenSSL 3.0 leaves a stateful TLS 1.3 ticket in its
//!   cache after it resumes (it takes one out only when early data makes
//!   replay matter). A TLS stack that resumes tickets through
//!   [`SessionCache::lookup_once`] consumes them, so each resumes at most
//!   once: the cache then holds one session fewer per resumption than
//!   OpenSSL's, and a replayed ticket (a copy of one that resumed) is a
//!   counted miss where OpenSSL resumes it. It consumes only a session that resumes (right context, and with
//!   [`SessionCache::lookup_once_version`] right version; not expired,
//!   resumable), decided under the shard lock with the removal. With an
//!   external store that [shares sessions](ExternalStore::shares_sessions)
//!   the store's atomic take also has to yield the session, local hits
//!   included: a fleet-wide authority OpenSSL's callbacks do not have. A
//!   store's take consumes its copy before the context is compared.
//! - **`hits`.** Counted when a lookup hands out a session that resumes,
//!   for a stateless resumption reported as [`Handshake::ResumedStateless`],
//!   and for a client resumption. OpenSSL counts after its own version
//!   check; [`SessionCache::lookup`] does not see the negotiated version,
//!   so a session the stack then refuses for its version has been counted.
//! - **Session ids** are 1 to 32 bytes. OpenSSL's `SSL_CTX_add_session`
//!   stores a session with an empty id (no lookup finds it); here such a
//!   session cannot be built ([`SessionError::EmptyId`]), and an empty id
//!   is never looked up.
//! - **Sessions from the future.** A session created more than
//!   [`MAX_CLOCK_SKEW`] seconds ahead of the clock does not resume; OpenSSL
//!   does not check.
//! - **A failing store.** An error, panic or answer slower than the
//!   external budget is counted and treated as a miss.
//! - **Client sessions** with a [peer](Session::peer) are kept in a
//!   per-peer list, not the id-keyed cache: [`SessionStats::number`] does
//!   not count them, and [`flush_sessions`](SessionCache::flush_sessions)
//!   with a nonzero time leaves them to be skipped when handed out.
//! - **Mode bits.** [`CacheMode::UPDATE_TIME`] (0x400) does what OpenSSL
//!   3.2 and later do with it (OpenSSL 3.0 ignores it). Bits this crate
//!   gives no meaning are kept and reported back, and change nothing.
//! - **The auto flush is spread.** On the 256th handshake every session
//!   expired by then leaves the cache for every later lookup, store,
//!   removal and [`sess_number`](SessionCache::sess_number), as in
//!   OpenSSL, but that handshake does no sweeping: each shard sweeps its
//!   part at its next write (or all at once before a count), and only then
//!   marks those sessions non-resumable and reports them to the external
//!   store's remove. A handshake pays for one shard's part at most.
//!
//! Expired sessions stay in the cache, counted by
//! [`sess_number`](SessionCache::sess_number), until a lookup finds them
//! (a timeout) or a flush removes them, as in OpenSSL; the flush, every
//! 256th handshake or on demand, costs O(expired), not O(sessions).
//!
//! # A proxy wiring a cache
//!
//! ```
//! use std::sync::Arc;
//! use tlscache_policy::{CacheMode, Handshake, SessionCache, Side};
//!
//! let cache = SessionCache::builder()
//!     .mode(CacheMode::SERVER)
//!     .cache_size(20_480)
//!     .timeout(300)
//!     .session_id_context(b"frontend-443")
//!     .build()?;
//!
//! // A ClientHello offers a session id: resume or do a full handshake.
//! let offered = [7u8; 32];
//! cache.handshake_started(Side::Server);
//! match cache.lookup(&offered, b"frontend-443") {
//!     Some(session) => {
//!         let _resume_from: &[u8] = session.state();
//!         cache.handshake_finished(Side::Server, Handshake::Resumed);
//!     }
//!     None => {
//!         // Full handshake; the TLS stack hands us the new session's state.
//!         let session = cache.session_builder(&offered, b"master secret".to_vec()).build()?;
//!         cache.handshake_finished(Side::Server, Handshake::New(&session));
//!     }
//! }
//!
//! // The next connection with that id resumes.
//! assert!(cache.lookup(&offered, b"frontend-443").is_some());
//! let stats = cache.stats();
//! assert_eq!((stats.hits, stats.misses, stats.accept_good), (1, 1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The allocator
//!
//! A cache frees the sessions it lets go of in bursts, often on another
//! thread than the one that made them, and on glibc's `malloc` a free past
//! its small per-thread cache takes the arena's lock. So the cache's last
//! handle on a session is not freed: the state is wiped at once and the
//! memory kept by the thread that collected it (up to 256 sessions a
//! thread) for its next new session of the same size class (a session's
//! memory is rounded up to one of a few classes, see [`Session`]). In the
//! latency probe (`latency --tickets tlscache-policy tlscache`, see
//! `docs/performance.md`) that took the policy's ticket writes' p99.9
//! from 16–25 µs to 5–7 µs. When the machine is busy glibc's arena still
//! shows (12.6–25 µs, against 5.4–10.7 µs with jemalloc preloaded), so a
//! proxy on glibc gains from linking jemalloc or mimalloc as its global
//! allocator (or raising `GLIBC_TUNABLES=glibc.malloc.tcache_count`).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod builder;
mod cache;
mod client;
mod clock;
mod codec;
mod config;
mod external;
#[cfg(feature = "metrics")]
mod metrics;
mod mode;
mod session;
mod spare;
mod stats;

pub use builder::{ConfigError, SessionCacheBuilder};
pub use cache::{Handshake, SessionCache, Side, MAX_CLOCK_SKEW};
pub use client::DEFAULT_TICKETS_PER_PEER;
pub use clock::SystemClock;
pub use codec::DecodeError;
pub use config::{DEFAULT_CACHE_SIZE, DEFAULT_EXTERNAL_BUDGET, DEFAULT_TIMEOUT};
pub use external::{ExternalStore, Fetched, Removal, StoreError};
#[cfg(feature = "metrics")]
pub use metrics::SessionMetrics;
pub use mode::CacheMode;
pub use session::{
    ExData, PeerKey, ProtocolVersion, Session, SessionBuilder, SessionError, SessionId, SidCtx,
    MAX_SESSION_ID_LEN, MAX_SID_CTX_LEN, SESSION_DEFAULT_TIMEOUT,
};
pub use stats::SessionStats;
