//! The tier's counters as `metrics` facade metrics (feature `metrics`).

use metrics::Counter;

use crate::RedisStats;

/// Reads one counter from a snapshot.
type Read = fn(&RedisStats) -> u64;

/// A metric: its name, its help text, and how to read it.
type Metric = (&'static str, &'static str, Read);

/// Names, help texts and readers of the counters.
const COUNTERS: &[Metric] = &[
    (
        "tlscache_redis_lookups_total",
        "Lookups and takes sent to Redis.",
        |s| s.lookups,
    ),
    (
        "tlscache_redis_hits_total",
        "Lookups and takes that found a session.",
        |s| s.hits,
    ),
    ("tlscache_redis_stores_total", "New sessions stored.", |s| {
        s.stores
    }),
    (
        "tlscache_redis_dropped_stores_total",
        "New sessions that could not be stored.",
        |s| s.dropped_stores,
    ),
    (
        "tlscache_redis_removes_total",
        "Sessions deleted by an explicit removal.",
        |s| s.removes,
    ),
    (
        "tlscache_redis_errors_total",
        "Calls that failed: an error, a timeout, no connection.",
        |s| s.errors,
    ),
    (
        "tlscache_redis_connects_total",
        "Connections made, reconnections included.",
        |s| s.connects,
    ),
];

/// A store's counters registered with the installed `metrics` recorder,
/// labelled `cache="NAME"` (`tlscache_redis_lookups_total` and so on).
/// Nothing is added to the store's calls: [`publish`](Self::publish)
/// copies a [`RedisStore::stats`](crate::RedisStore::stats) snapshot into
/// the metrics, at a scrape or on a timer.
pub struct RedisMetrics {
    counters: Vec<(Counter, Read)>,
}

impl RedisMetrics {
    /// Registers the metrics, labelled `cache="name"`, with the recorder
    /// installed now.
    pub fn new(name: &str) -> Self {
        let counters = COUNTERS
            .iter()
            .map(|&(metric, help, read)| {
                metrics::describe_counter!(metric, help);
                (metrics::counter!(metric, "cache" => name.to_owned()), read)
            })
            .collect();
        Self { counters }
    }

    /// Sets every metric from `stats`.
    pub fn publish(&self, stats: &RedisStats) {
        for (counter, read) in &self.counters {
            counter.absolute(read(stats));
        }
    }
}
