//! The side-by-side table and the machine-readable report.

use std::fmt::Write;

use crate::run::Outcome;
use crate::workload::Workload;

/// A whole run: the machine, the workload and, per thread count, each
/// engine's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Cores and CPU model, as far as the OS tells.
    pub machine: String,
    /// What was run (its `threads` is the first count of the sweep).
    pub workload: Workload,
    /// One run per thread count, in the order run.
    pub runs: Vec<Run>,
}

/// Every engine at one thread count.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Run {
    /// Threads driving each engine.
    pub threads: usize,
    /// One outcome per engine, tlscache first.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// A report for `workload` on this machine, with no outcomes yet.
    pub fn new(workload: Workload) -> Self {
        Self {
            machine: machine(),
            workload,
            runs: Vec::new(),
        }
    }
}

/// A markdown table of `run`, one row per engine, with each engine's
/// throughput set against tlscache's (measured in the same run).
pub fn table(run: &Run) -> String {
    let base = run
        .outcomes
        .iter()
        .find(|o| o.engine == "tlscache")
        .map(|o| o.ops_per_sec);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| engine | connections/s | hit ratio | p50 | p99 | p99.9 | sessions | bytes/session | tlscache ÷ engine |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for o in &run.outcomes {
        let ratio = base.map_or("–".to_string(), |b| format!("{:.2}×", b / o.ops_per_sec));
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {} | {} | {} | {} | {} | {} |",
            o.engine,
            si(o.ops_per_sec),
            o.hit_ratio(),
            ns(o.p50_ns),
            ns(o.p99_ns),
            ns(o.p999_ns),
            o.sessions.map_or("–".to_string(), |n| n.to_string()),
            o.bytes_per_session
                .map_or("–".to_string(), |b| format!("{b:.0}")),
            ratio
        );
    }
    out
}

/// For the tiered engines of `run`, a markdown table of what each tier
/// did: the share of lookups the proxies' own caches answered, and how
/// Redis fared with the rest. `None` when no engine is tiered.
pub fn tiers_table(run: &Run) -> Option<String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| engine | lookups | local hit ratio | Redis lookups | Redis hit ratio | Redis errors | stores dropped |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut any = false;
    for o in &run.outcomes {
        let Some(t) = o.tiers else { continue };
        any = true;
        let ratio = |hits: u64, of: u64| {
            if of == 0 {
                "–".to_string()
            } else {
                format!("{:.3}", hits as f64 / of as f64)
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            o.engine,
            o.lookups,
            ratio(t.local_hits, o.lookups),
            t.remote_lookups,
            ratio(t.remote_hits, t.remote_lookups),
            t.remote_errors,
            t.dropped_stores
        );
    }
    any.then_some(out)
}

fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn ns(x: u64) -> String {
    if x >= 10_000 {
        format!("{:.1} µs", x as f64 / 1e3)
    } else {
        format!("{x} ns")
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{cores} cores, {model}")
}
