//! The binary as a user meets it: a short run prints the side-by-side
//! table; bad flags get a message, the usage and exit code 2.

use std::process::Command;

use tlscache_loadgen::{Preset, Workload};

fn loadgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tlscache-loadgen"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn a_short_run_prints_every_engine_side_by_side() {
    let json = std::env::temp_dir().join(format!("loadgen-{}.json", std::process::id()));
    let svg = json.with_extension("svg");
    let out = loadgen(&[
        "--ops",
        "3000",
        "--warmup",
        "1000",
        "--capacity",
        "2000",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    for engine in [
        "tlscache",
        "tlscache-policy",
        "tlscache-copy",
        "quick_cache",
        "scc",
        "moka",
        "Mutex<LruCache>",
        "OpenSSL internal",
    ] {
        assert!(
            table.contains(&format!("| {engine} |")),
            "{engine} missing:\n{table}"
        );
    }
    assert!(table.contains("| tlscache | ") && table.contains("| 1.00× |"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).ok();
    let drawing = std::fs::read_to_string(&svg).unwrap();
    std::fs::remove_file(&svg).ok();
    assert!(drawing.starts_with("<svg") && drawing.contains("tlscache-policy"));
    let outcomes = report["runs"][0]["outcomes"].as_array().unwrap();
    assert_eq!(
        outcomes.len(),
        9,
        "every engine, OpenSSL's own cache and scc included"
    );
    for o in outcomes {
        assert_eq!(o["connections"], 6000, "2 threads x 3000");
        assert!(o["hits"].as_u64().unwrap() <= o["lookups"].as_u64().unwrap());
        if let Some(n) = o["sessions"].as_u64() {
            // scc's `HashCache` rounds its bound up to a power of two
            // (its documented behaviour, shown in the sessions column);
            // every other engine holds at most the capacity.
            let bound = if o["engine"] == "scc" { 2048 } else { 2000 };
            assert!(n <= bound, "{}: {n} sessions", o["engine"]);
        }
    }
}

/// The table a successful run prints (the run's stderr if it fails).
fn table_of(args: &[&str]) -> String {
    let out = loadgen(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_thread_sweep_reports_each_count() {
    let text = table_of(&[
        "--ops",
        "2000",
        "--warmup",
        "500",
        "--threads",
        "1,3",
        "--engines",
        "moka",
    ]);
    assert!(
        text.contains("\n1 threads:\n") && text.contains("\n3 threads:\n"),
        "{text}"
    );
    assert_eq!(text.matches("| moka |").count(), 2);
}

#[test]
fn bad_flags_exit_2_with_usage() {
    for args in [
        &["--resume", "1.5"][..],
        &["--zipf", "0"],
        &["--threads", "0"],
        &["--threads", "2,0"],
        &["--min-size", "500", "--max-size", "100"],
        &["--capacity", "0"],
        &["--mass-expiry-secs", "0"],
        &["--preset", "nonsense"],
        &["--no-such-flag"],
        &["--engines", "tlscache,redis-of-course"],
    ] {
        let out = loadgen(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Usage:"), "{args:?}: {stderr}");
        assert_eq!(
            stderr
                .matches("For more information, try '--help'.")
                .count(),
            1,
            "{args:?}: the hint once: {stderr}"
        );
        assert_eq!(stderr.matches("Usage:").count(), 1, "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn equal_seeds_give_equal_connections() {
    let w = Workload::preset(Preset::Churn);
    let (a, b) = (w.streams(1), w.streams(1));
    let key = |s: &[tlscache_loadgen::Conn]| -> Vec<(u32, bool)> {
        s.iter()
            .take(10_000)
            .map(|c| (c.client, c.resume))
            .collect()
    };
    assert_eq!(key(&a.1), key(&b.1));
    assert_ne!(key(&a.1), key(&w.streams(0).1), "threads differ");
}

/// The two-tier setup against a real redis-server this test starts, and
/// a clear failure when nothing answers at the address.
#[test]
fn external_runs_two_proxies_on_a_real_redis() {
    use std::io::{Read, Write};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut server = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server runs (tools/test installs it)");
    let answers = || -> bool {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let mut reply = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok()
            && s.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !answers() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let url = format!("redis://127.0.0.1:{port}");
    let out = loadgen(&[
        "--ops",
        "2000",
        "--warmup",
        "500",
        "--capacity",
        "1000",
        "--external",
        &url,
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("| tlscache-policy + Redis |"), "{table}");
    assert!(
        table.contains("Tiers of the two-tier setup (2 proxies"),
        "{table}"
    );
    assert!(
        !table.contains("| quick_cache |"),
        "only tlscache and the policy beside it"
    );

    // Nothing listens there now.
    let out = loadgen(&["--ops", "100", "--warmup", "10", "--external", &url]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not answer"), "{err}");
}

/// A Redis that does not answer fails the run before any engine runs, not
/// after the others' work.
#[test]
fn a_bad_external_address_fails_before_any_work() {
    let out = loadgen(&[
        "--ops",
        "2000000",
        "--engines",
        "tlscache,quick-cache",
        "--external",
        "redis://127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not answer"), "{err}");
    assert!(out.stdout.is_empty(), "no table: nothing ran");
    assert!(!err.contains("preset:"), "the run never started: {err}");
}

#[test]
fn the_report_names_the_preset_as_the_flag_takes_it() {
    let table = table_of(&[
        "--preset",
        "tls13-tickets",
        "--engines",
        "tlscache",
        "--ops",
        "2000",
        "--warmup",
        "500",
        "--capacity",
        "1000",
    ]);
    assert!(table.starts_with("tls13-tickets preset, "), "{table}");
    assert!(!table.contains("Tls13Tickets"), "{table}");
}

/// rustls's cache takes a ticket in O(n): under single-use tickets it runs
/// fewer connections (2e9 / capacity a thread), and its row says so.
#[test]
fn an_engine_with_linear_takes_runs_fewer_connections_and_says_so() {
    let args = |capacity: &'static str, ops: &'static str| {
        [
            "--preset",
            "tls13-tickets",
            "--engines",
            "rustls",
            "--capacity",
            capacity,
            "--clients",
            "5000",
            "--warmup",
            "100",
            "--ops",
            ops,
        ]
    };
    // 400k entries: at most 5,000 connections a thread.
    let table = table_of(&args("400000", "6000"));
    assert!(
        table.contains("| rustls (fewer connections: O(n) takes) |"),
        "{table}"
    );
    let table = table_of(&args("100000", "1500"));
    assert!(table.contains("| rustls |"), "within the budget: {table}");
}
