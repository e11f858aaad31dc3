//! The one place the engine gets its synchronisation primitives from.
//!
//! Under `cfg(loom)` every atomic, [`Arc`] and mutex is loom's, so the loom
//! models check the engine's real code; otherwise they are `std`'s.
//! crossbeam-epoch follows along through its own `loom` feature and
//! `cfg(crossbeam_loom)`.

#[cfg(loom)]
pub use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicPtr, AtomicU32, AtomicU64},
    Mutex, MutexGuard,
};

#[cfg(not(loom))]
pub use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicPtr, AtomicU32, AtomicU64},
    Mutex, MutexGuard,
};

pub(crate) use crossbeam_epoch as epoch;
pub(crate) use std::sync::atomic::Ordering;

/// Locks `mutex`, ignoring poisoning.
///
/// Every critical section in this crate leaves the shard consistent before it
/// can unwind (user closures run before the shard is mutated), so a poisoned
/// lock still guards valid state.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
