//! Errors a cache's settings can have.

use thiserror::Error;

/// A setting that no cache can be built with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A bounded cache needs room for at least one entry.
    #[error("capacity must be at least 1 entry")]
    ZeroCapacity,
    /// The shard count must be a power of two.
    #[error("shard count {0} is not a power of two")]
    ShardsNotPowerOfTwo(usize),
    /// The shard count is above [`MAX_SHARDS`](crate::MAX_SHARDS).
    #[error("shard count {shards} exceeds the maximum of {max}")]
    TooManyShards {
        /// The shard count asked for.
        shards: usize,
        /// The largest shard count allowed.
        max: usize,
    },
    /// A shard can address at most about 2 billion entries
    /// ([`MAX_SHARD_ENTRIES`](crate::MAX_SHARD_ENTRIES)).
    #[error("capacity {capacity} exceeds {max} entries per shard; use more shards")]
    CapacityTooLarge {
        /// The capacity asked for.
        capacity: usize,
        /// The most one shard can hold.
        max: usize,
    },
    /// A weigher and a maximum weight go together.
    #[error("a weigher needs a maximum weight and a maximum weight needs a weigher")]
    WeigherWithoutMaxWeight,
    /// The maximum weight must leave each shard room for some weight.
    #[error("maximum weight {max_weight} is less than the shard count {shards}")]
    MaxWeightTooSmall {
        /// The maximum weight asked for.
        max_weight: u64,
        /// The shard count.
        shards: usize,
    },
}
