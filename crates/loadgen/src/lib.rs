//! tlscache-loadgen: a proxy-traffic load generator that drives tlscache
//! and its peers side by side.
//!
//! A [`Workload`] models what a TLS-terminating proxy asks of its session
//! cache: clients of zipf popularity open connections; a share of them
//! offers a session to resume ([`Engine::lookup`], or [`Engine::take`] for
//! single-use TLS 1.3 tickets); a miss costs a full handshake and stores a
//! new session ([`Engine::store`]). Every engine runs the same
//! pre-generated connections, one after another in the same process, so
//! the figures compare engines, not runs.
//!
//! ```
//! use std::sync::atomic::AtomicU64;
//! use tlscache_loadgen::{run, EngineKind, Preset, Workload};
//!
//! let mut w = Workload::preset(Preset::Proxy);
//! (w.ops, w.warmup, w.threads) = (2_000, 500, 2);
//! w.check()?;
//! let streams: Vec<_> = (0..w.threads).map(|t| w.streams(t)).collect();
//! let engine = EngineKind::Tlscache.build(w.capacity, w.timeout)?;
//! let outcome = run(&*engine, &w, &streams, &w.states(), &AtomicU64::new(0));
//! assert_eq!(outcome.connections, 4_000);
//! assert!(outcome.hits <= outcome.lookups);
//! # Ok::<(), String>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod memory;
pub mod plot;
mod report;
mod run;
mod workload;

pub use report::{table, tiers_table, Report, Run};
pub use run::{run, Outcome};
pub use tlscache_engines::{Engine, EngineKind, SessionId, State, Tiers, TwoTier};
pub use workload::{session_id, Conn, Preset, Workload};

/// The README's examples (the core's, the policy layer's and the Redis
/// tier's), compiled and run as doctests here, where every crate they use
/// is in scope.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
