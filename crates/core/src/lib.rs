//! tlscache-core: a sharded cache engine for TLS session caches.
//!
//! A [`Cache`] is a power-of-two array of shards. A key's randomly seeded
//! ahash picks its shard and its group in the shard's index. Reads are
//! lock-free: [`Cache::get`] pins a crossbeam-epoch guard, walks the shard's
//! index with atomic loads, treats an expired entry as a miss (by the
//! cache's [`Clock`], by default a [`CoarseClock`] that moves once a kernel
//! tick), records the access for the LRU in a small buffer of the calling
//! thread's own (a stripe of the shard; threads that share a stripe may
//! overwrite each other's records, so recording is lossy under
//! concurrency), and returns an [`Arc`] handle that keeps the value alive
//! after its entry leaves. Writes serialize per shard and keep the shard's
//! LRU (exact when single-threaded: a thread's accesses that do not fit its
//! buffer go to their entries' stamps, which the evictor reads; stamps are
//! kept as low halves, so this holds for entries used or placed within
//! their shard's last 2^31 stamps) and its
//! hierarchical expiry wheel (O(1) schedule and cancel, sweeps in
//! O(expired)).
//!
//! Unlinked entries are retired to crossbeam-epoch and freed once no reader
//! can still hold them; a value itself lives as long as any handle does. A
//! store to a present key swaps the value and deadline inside its entry,
//! and the replaced value goes through the epoch collector the same way.
//!
//! ```
//! use std::time::Duration;
//! use tlscache_core::{Arc, Cache, ManualClock, RemovalCause};
//!
//! let clock = ManualClock::new();
//! let cache: Cache<[u8; 32], Vec<u8>> = Cache::builder()
//!     .capacity(20_480)
//!     .time_to_live(Duration::from_secs(300))
//!     .clock(clock.clone())
//!     .removal_listener(|_id, _session, cause| {
//!         if cause == RemovalCause::Expired { /* tell the external tier */ }
//!     })
//!     .build()?;
//!
//! let id = [7u8; 32];
//! cache.insert(id, Arc::new(b"resumption state".to_vec()));
//! let held = cache.get(&id).expect("fresh");
//!
//! clock.advance(Duration::from_secs(301));
//! assert!(cache.get(&id).is_none()); // expired: a miss at once
//! cache.flush_expired();
//! assert!(cache.is_empty());
//! assert_eq!(&held[..], b"resumption state"); // the handle outlives it
//! # Ok::<(), tlscache_core::BuildError>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod access;
mod arena;
#[cfg(not(loom))]
mod blob;
mod builder;
mod cache;
mod clock;
mod doomed;
mod entry;
mod error;
mod index;
mod list;
mod listener;
mod lru;
mod shard;
mod stats;
mod sync;
mod threads;
mod wheel;

#[cfg(not(loom))]
pub use blob::{Blob, Tailed};
pub use builder::{
    CacheBuilder, Expiry, DEFAULT_CAPACITY, DEFAULT_COLLECT_EVERY, LARGE_SHARD,
    LARGE_SHARD_COLLECT_EVERY, MAX_SHARDS,
};
pub use cache::{Cache, POOLED_PER_SHARD};
pub use clock::{Clock, CoarseClock, ManualClock, MonotonicClock};
pub use entry::Thin;
pub use error::BuildError;
pub use listener::RemovalCause;
pub use shard::MAX_SHARD_ENTRIES;
pub use stats::CacheStats;
/// The reference-counted handle values are stored and handed out as:
/// `std::sync::Arc` (loom's under `cfg(loom)`, so that the loom models
/// check the engine's own counts). Re-exported so that callers name the
/// same type the cache does under either configuration.
pub use sync::Arc;
pub use threads::{count_on_stripe, thread_number, thread_stripe};
