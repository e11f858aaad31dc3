//! `proxy-load`: concurrent TLS clients against the proxy, with tlscache
//! and with rustls's own session cache in the same run.
//!
//! `cargo run --release -p tlscache-proxy --bin proxy-load -- --clients 64
//! --seconds 5` starts an echo upstream and, for each cache in turn, a
//! proxy in this process; the clients (rustls, resuming through
//! tlscache's client store) connect, send a line, read it back and
//! connect again. It prints handshakes per second, resumed and full, for
//! each cache. Clients and proxy share the machine's cores, and the
//! handshakes' cryptography dominates: read the table as what the cache
//! costs inside a whole handshake, not as the cache's own speed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tlscache_proxy::load::{client_cache, client_config, echo_upstream, run_clients};
use tlscache_proxy::{CacheKind, Identity, Proxy, Settings};

/// Concurrent TLS clients against tlscache-proxy, per session cache.
#[derive(Parser, Debug)]
#[command(name = "proxy-load")]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    clients: u32,
    /// Seconds each cache runs.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// TLS version the clients offer: 1.2, 1.3 or both.
    #[arg(long, default_value = "1.3", value_parser = ["1.2", "1.3", "both"])]
    tls: String,
    /// Caches to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "tlscache,rustls", value_parser = parse_cache)]
    caches: Vec<CacheKind>,
    /// Worker threads (default: one per core), shared by clients and proxy.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

fn parse_cache(s: &str) -> Result<CacheKind, String> {
    s.parse()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let threads = args.threads;
    tlscache_proxy::run_main("proxy-load", threads, run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match args.tls.as_str() {
        "1.2" => &[&rustls::version::TLS12],
        "1.3" => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let (upstream, echo) = echo_upstream().await?;
    let clients = args.clients as usize;
    let mut rows = Vec::new();
    for &cache in &args.caches {
        eprintln!(
            "proxy-load: {} for {} s, {clients} clients, TLS {}",
            cache.label(),
            args.seconds,
            args.tls
        );
        let proxy = Proxy::start(Settings {
            listen: "127.0.0.1:0".parse()?,
            upstream,
            identity: Identity::Generated,
            cache,
            cache_size: 20_480,
            redis: None,
            metrics: None,
        })
        .await?;
        let config = client_config(proxy.certificate(), versions, client_cache(2 * clients)?)?;
        let (report, error) = run_clients(
            config,
            proxy.local_addr(),
            clients,
            Duration::from_secs(args.seconds),
        )
        .await;
        let counts = proxy.shutdown(Duration::from_secs(5)).await;
        if let Some(error) = error {
            eprintln!("proxy-load: {}: first failure: {error}", cache.label());
        }
        rows.push((cache, report, counts));
    }
    echo.abort();
    println!(
        "| cache | clients | TLS | handshakes/s | resumed/s | full/s | resumed | failed (clients / proxy) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (cache, r, counts) in rows {
        let secs = r.elapsed.as_secs_f64();
        println!(
            "| {} | {clients} | {} | {:.0} | {:.0} | {:.0} | {:.1}% | {} / {} |",
            cache.label(),
            args.tls,
            r.per_second(),
            r.resumed as f64 / secs,
            r.full as f64 / secs,
            100.0 * r.resumed_share(),
            r.failed,
            counts.failed
        );
    }
    Ok(())
}
