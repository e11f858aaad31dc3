//! Counter snapshots.

/// A snapshot of a cache's counters, summed over its shards.
///
/// Shards keep their counters on their own cache lines and the snapshot reads
/// them one by one without a lock, so under concurrent traffic it is a
/// close, not an atomic, picture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Entries held, live or expired but not yet swept.
    pub len: u64,
    /// `get` calls that returned a value.
    pub hits: u64,
    /// `get` calls that found nothing live.
    pub misses: u64,
    /// Values stored (new keys and replacements).
    pub inserts: u64,
    /// Values evicted for capacity or weight.
    pub evictions: u64,
    /// Values removed because their time-to-live ran out.
    pub expirations: u64,
}

impl CacheStats {
    /// Hits over lookups, or 0 before the first lookup.
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }
}
