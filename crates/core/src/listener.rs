//! What the cache tells its owner when a value leaves.

use crate::sync::Arc;

/// Why a value left the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemovalCause {
    /// Removed by `remove` or `remove_if`.
    Removed,
    /// Replaced by an insert of the same key.
    Replaced,
    /// Evicted to keep the cache within its capacity or weight.
    Evicted,
    /// Its time-to-live ran out and a sweep (or a write to its key) took it.
    Expired,
    /// Taken by `take`.
    Taken,
    /// Removed by `clear`.
    Cleared,
}

/// A removal listener: called once for every value that leaves the cache,
/// after the shard lock is released, on the thread whose operation removed
/// it.
pub(crate) type Listener<K, V> = Box<dyn Fn(&K, &Arc<V>, RemovalCause) + Send + Sync>;
