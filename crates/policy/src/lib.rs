//! tlscache-policy: OpenSSL's session-cache contract on tlscache-core.
//!
//! TODO docs
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod builder;
mod cache;
mod client;
mod clock;
mod external;
mod mode;
mod session;
mod stats;

pub use builder::{
    ConfigError, SessionCacheBuilder, DEFAULT_CACHE_SIZE, DEFAULT_EXTERNAL_BUDGET, DEFAULT_TIMEOUT,
};
pub use cache::{Handshake, SessionCache, Side, MAX_CLOCK_SKEW};
pub use client::DEFAULT_TICKETS_PER_PEER;
pub use clock::SystemClock;
pub use external::{ExternalStore, Fetched, StoreError};
pub use mode::CacheMode;
pub use session::{
    PeerKey, ProtocolVersion, Session, SessionBuilder, SessionError, SessionId, SidCtx,
    MAX_SESSION_ID_LEN, MAX_SID_CTX_LEN, SESSION_DEFAULT_TIMEOUT,
};
pub use stats::SessionStats;
