//! Bytes per entry of one engine at 1M entries, by resident-set growth,
//! through tlscache-engines' `Engine` adapters.
//!
//! Run one engine per process so allocator state does not carry over:
//! `cargo run --release -p tlscache-benches --bin mem -- tlscache`
//! (or `tlscache-policy`, `quick_cache`, `scc`, `moka`, `mutex_lru`,
//! `rustls`).
//! Keys are 32 bytes; every entry shares one 64-byte state (engines that
//! copy states, as tlscache-policy and rustls do, pay for the copies), so
//! the figure is the engine's own overhead plus the key. A second argument
//! sets the state's length: `mem tlscache-policy 48`.

use std::process::ExitCode;

use tlscache_benches::{keys, label, rss_bytes, state, EngineKind, TTL};

const ENTRIES: usize = 1_000_000;

fn usage() -> String {
    let names: Vec<_> = EngineKind::ALL.iter().map(|k| label(*k)).collect();
    format!("usage: mem <{}> [STATE_BYTES]", names.join("|"))
}

fn main() -> ExitCode {
    let Some(name) = std::env::args().nth(1) else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    let Some(kind) = EngineKind::ALL.into_iter().find(|k| label(*k) == name) else {
        eprintln!("unknown engine {name:?}\n{}", usage());
        return ExitCode::from(2);
    };
    let keys = keys(ENTRIES, 7);
    let bytes = match std::env::args().nth(2).map(|a| a.parse::<usize>()) {
        None => 64,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("STATE_BYTES: {e}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let state = state(bytes);
    let before = match rss_bytes() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read memory use: {e}");
            return ExitCode::FAILURE;
        }
    };
    let engine = match kind.build(ENTRIES, TTL) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("cannot build {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    for k in &keys {
        engine.store(*k, &state, TTL);
    }
    // moka settles its bookkeeping when asked for its count.
    let _ = engine.sessions();
    let held = keys.iter().filter(|k| engine.lookup(k)).count();
    let after = rss_bytes().unwrap_or(0);
    drop(engine);
    let per_entry = after.saturating_sub(before) as f64 / held.max(1) as f64;
    println!("{name}: {held} entries held, {per_entry:.1} bytes per entry (RSS delta)");
    ExitCode::SUCCESS
}
