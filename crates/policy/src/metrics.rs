//! The counters as `metrics` facade metrics (feature `metrics`).

use metrics::{Counter, Gauge};

use crate::SessionStats;

/// Reads one counter from a snapshot.
type Read = fn(&SessionStats) -> u64;

/// A metric: its name, its help text, and how to read it.
type Metric = (&'static str, &'static str, Read);

/// Names, help texts and readers of the counters, in Prometheus's style
/// (`_total` for counters).
const COUNTERS: &[Metric] = &[
    (
        "tlscache_sess_connect_total",
        "Client handshakes started (SSL_CTX_sess_connect).",
        |s| s.connect,
    ),
    (
        "tlscache_sess_connect_good_total",
        "Client handshakes finished (SSL_CTX_sess_connect_good).",
        |s| s.connect_good,
    ),
    (
        "tlscache_sess_accept_total",
        "Server handshakes started (SSL_CTX_sess_accept).",
        |s| s.accept,
    ),
    (
        "tlscache_sess_accept_good_total",
        "Server handshakes finished (SSL_CTX_sess_accept_good).",
        |s| s.accept_good,
    ),
    (
        "tlscache_sess_hits_total",
        "Sessions resumed (SSL_CTX_sess_hits).",
        |s| s.hits,
    ),
    (
        "tlscache_sess_cb_hits_total",
        "Sessions the external store supplied (SSL_CTX_sess_cb_hits).",
        |s| s.cb_hits,
    ),
    (
        "tlscache_sess_misses_total",
        "Internal lookups that found nothing (SSL_CTX_sess_misses).",
        |s| s.misses,
    ),
    (
        "tlscache_sess_timeouts_total",
        "Sessions found but expired (SSL_CTX_sess_timeouts).",
        |s| s.timeouts,
    ),
    (
        "tlscache_sess_cache_full_total",
        "Sessions evicted to make room (SSL_CTX_sess_cache_full).",
        |s| s.cache_full,
    ),
    (
        "tlscache_external_errors_total",
        "External store calls that failed or panicked.",
        |s| s.external_errors,
    ),
    (
        "tlscache_external_slow_total",
        "External store calls slower than the cache's budget.",
        |s| s.external_slow,
    ),
];

/// Gauges: values that go down as well as up.
const GAUGES: &[Metric] = &[
    (
        "tlscache_sess_number",
        "Sessions in the internal cache (SSL_CTX_sess_number).",
        |s| s.number,
    ),
    (
        "tlscache_client_peers",
        "Peers with client sessions in the per-peer store.",
        |s| s.client_peers,
    ),
];

/// A cache's counters registered with the installed `metrics` recorder,
/// labelled `cache="NAME"`: `tlscache_sess_accept_total` and the rest of
/// OpenSSL's `SSL_CTX_sess_*` family as counters, `tlscache_sess_number`
/// and `tlscache_client_peers` as gauges.
///
/// Nothing is added to the lookup path: the cache keeps its own striped
/// counters, and [`publish`](Self::publish) copies a
/// [`stats`](crate::SessionCache::stats) snapshot into the metrics, at a
/// scrape or on a timer.
///
/// ```
/// use tlscache_policy::{SessionCache, SessionMetrics};
///
/// let cache = SessionCache::builder().build()?;
/// // After installing a recorder (metrics-exporter-prometheus, say):
/// let metrics = SessionMetrics::new("frontend");
/// // Before each scrape:
/// metrics.publish(&cache.stats());
/// # Ok::<(), tlscache_policy::ConfigError>(())
/// ```
pub struct SessionMetrics {
    counters: Vec<(Counter, Read)>,
    gauges: Vec<(Gauge, Read)>,
}

impl SessionMetrics {
    /// Registers the metrics, labelled `cache="name"`, with the recorder
    /// installed now (a recorder installed later does not see them).
    pub fn new(name: &str) -> Self {
        let counters = COUNTERS
            .iter()
            .map(|&(metric, help, read)| {
                metrics::describe_counter!(metric, help);
                (metrics::counter!(metric, "cache" => name.to_owned()), read)
            })
            .collect();
        let gauges = GAUGES
            .iter()
            .map(|&(metric, help, read)| {
                metrics::describe_gauge!(metric, help);
                (metrics::gauge!(metric, "cache" => name.to_owned()), read)
            })
            .collect();
        Self { counters, gauges }
    }

    /// Sets every metric from `stats`.
    pub fn publish(&self, stats: &SessionStats) {
        for (counter, read) in &self.counters {
            counter.absolute(read(stats));
        }
        for (gauge, read) in &self.gauges {
            // Exact below 2^53 sessions.
            gauge.set(read(stats) as f64);
        }
    }
}
