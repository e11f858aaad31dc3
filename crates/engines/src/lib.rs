//! tlscache-engines: one interface, [`Engine`], over tlscache and every
//! session cache it is measured against, so that the load generator and
//! the benches drive them all the same way.
//!
//! - [`EngineKind`] names each engine and builds it: tlscache-core,
//!   tlscache-policy, quick_cache, scc's `HashCache`, moka, one
//!   `Mutex<lru::LruCache>`,
//!   rustls's `ServerSessionMemoryCache` and OpenSSL's own internal cache
//!   (libssl through its public API).
//! - [`TwoTier`] is the fleet setup: proxies with a local tlscache each,
//!   sharing sessions through a real Redis.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tlscache_engines::EngineKind;
//!
//! let engine = EngineKind::Tlscache.build(1_000, Duration::from_secs(300))?;
//! let state = Arc::new(vec![7u8; 48]);
//! engine.store([1; 32], &state, Duration::from_secs(300));
//! assert!(engine.lookup(&[1; 32]));
//! assert!(engine.take(&[1; 32]));
//! assert!(!engine.take(&[1; 32]));
//! assert_eq!("quick-cache".parse::<EngineKind>(), Ok(EngineKind::QuickCache));
//! # Ok::<(), String>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod engine;
mod external;
mod libssl;

pub use engine::{Engine, EngineKind, SessionId, State};
pub use external::{Tiers, TwoTier};
