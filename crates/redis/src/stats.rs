//! What a store has done.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a [`RedisStore`](crate::RedisStore) has done, counted since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisStats {
    /// Lookups and takes sent to Redis.
    pub lookups: u64,
    /// Of those, the ones that found a session.
    pub hits: u64,
    /// New sessions stored.
    pub stores: u64,
    /// New sessions that could not be stored (Redis slow or down).
    pub dropped_stores: u64,
    /// Sessions deleted by an explicit removal.
    pub removes: u64,
    /// Calls that failed: a command error or timeout, no connection, a
    /// call refused while waiting to reconnect, or a value that is not a
    /// session.
    pub errors: u64,
    /// Connections made (the first, and every reconnection).
    pub connects: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) lookups: AtomicU64,
    pub(crate) hits: AtomicU64,
    pub(crate) stores: AtomicU64,
    pub(crate) dropped_stores: AtomicU64,
    pub(crate) removes: AtomicU64,
    /// Values that were not sessions (the pool counts failed calls).
    pub(crate) undecodable: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
