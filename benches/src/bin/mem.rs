//! Bytes per entry of one engine at 1M entries, by resident-set growth.
//!
//! Run one engine per process so allocator state does not carry over:
//! `cargo run --release -p tlscache-benches --bin mem -- tlscache`
//! (or `quick_cache`, `moka`). Keys are 32 bytes; every entry shares one
//! 64-byte payload, so the figure is the engine's own overhead plus the key.

use std::sync::Arc;

use tlscache_benches::{keys, Engine, Key, Moka, QuickCache, Tlscache};

const ENTRIES: usize = 1_000_000;

fn rss_bytes() -> Result<u64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|e| format!("/proc/self/statm: {e}"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .ok_or("unexpected /proc/self/statm format")?;
    Ok(pages * 4096)
}

/// Inserts every key, lets the engine settle, and returns the entries it
/// holds and the resident set size with the engine still alive.
fn fill<E: Engine<64>>(
    engine: E,
    keys: &[Key],
    payload: &Arc<[u8; 64]>,
    settle: impl Fn(&E),
) -> (usize, u64) {
    for k in keys {
        engine.insert(*k, payload.clone());
    }
    settle(&engine);
    let held = keys.iter().filter(|k| engine.get(k)).count();
    let rss = rss_bytes().unwrap_or(0);
    drop(engine);
    (held, rss)
}

fn main() {
    let Some(name) = std::env::args().nth(1) else {
        eprintln!("usage: mem <tlscache|quick_cache|moka>");
        std::process::exit(2);
    };
    let keys = keys(ENTRIES, 7);
    let payload: Arc<[u8; 64]> = Arc::new([0; 64]);
    let before = match rss_bytes() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read memory use: {e}");
            std::process::exit(1);
        }
    };
    let (held, after) = match name.as_str() {
        "tlscache" => fill(Tlscache::<64>::new(ENTRIES), &keys, &payload, |_| {}),
        "quick_cache" => fill(QuickCache::<64>::new(ENTRIES), &keys, &payload, |_| {}),
        "moka" => fill(Moka::<64>::new(ENTRIES), &keys, &payload, |m| {
            m.0.run_pending_tasks()
        }),
        other => {
            eprintln!("unknown engine {other:?}; usage: mem <tlscache|quick_cache|moka>");
            std::process::exit(2);
        }
    };
    let per_entry = after.saturating_sub(before) as f64 / held.max(1) as f64;
    println!("{name}: {held} entries held, {per_entry:.1} bytes per entry (RSS delta)");
}
