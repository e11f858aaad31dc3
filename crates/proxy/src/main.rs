//! `tlscache-proxy`: terminates TLS on `--listen` and forwards the
//! plaintext to `--upstream`, with its sessions in tlscache.
//!
//! `cargo run --release -p tlscache-proxy -- --listen 127.0.0.1:8443
//! --upstream 127.0.0.1:8080` prints the address it listens on, then runs
//! until SIGTERM or Ctrl-C: it stops accepting, lets open connections
//! finish for up to `--grace` seconds, and prints its handshake counts and
//! the cache's counters.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tlscache_proxy::{CacheKind, Identity, Proxy, Settings};

/// A TLS-terminating TCP proxy whose TLS sessions live in tlscache.
#[derive(Parser, Debug)]
#[command(name = "tlscache-proxy", version)]
struct Args {
    /// Address to accept TLS clients on (port 0: any free port, printed
    /// first).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Address each connection's plaintext is forwarded to.
    #[arg(long)]
    upstream: SocketAddr,
    /// PEM certificate chain (with --key); without both, a self-signed
    /// certificate for localhost is made at start.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key (with --cert).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// The session cache: tlscache, or rustls's own for comparison.
    #[arg(long, default_value = "tlscache", value_parser = parse_cache)]
    cache: CacheKind,
    /// The tlscache cache's size in sessions (0: unbounded).
    #[arg(long, default_value_t = 20_480)]
    cache_size: u64,
    /// A Redis URL (redis://host:port) for a session tier shared with
    /// other proxies.
    #[arg(long)]
    redis: Option<String>,
    /// Serve the cache's counters for Prometheus on this address
    /// (GET /metrics).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Seconds open connections may take to finish at shutdown.
    #[arg(long, default_value_t = 5)]
    grace: u64,
}

fn parse_cache(s: &str) -> Result<CacheKind, String> {
    s.parse()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let threads = args.threads;
    tlscache_proxy::run_main("tlscache-proxy", threads, run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let identity = match (args.cert, args.key) {
        (Some(cert), Some(key)) => Identity::Files { cert, key },
        _ => Identity::Generated,
    };
    let proxy = Proxy::start(Settings {
        listen: args.listen,
        upstream: args.upstream,
        identity,
        cache: args.cache,
        cache_size: args.cache_size,
        redis: args.redis,
        metrics: args.metrics,
    })
    .await?;
    println!("listening on {}", proxy.local_addr());
    if let Some(addr) = proxy.metrics_addr() {
        println!("metrics on http://{addr}/metrics");
    }
    stopped().await?;
    println!("stopping: open connections have {} s", args.grace);
    let kind = args.cache;
    let cache = proxy.cache().clone();
    let redis = proxy.redis().cloned();
    let counts = proxy.shutdown(Duration::from_secs(args.grace)).await;
    println!("{counts}");
    if kind == CacheKind::Tlscache {
        println!("tlscache: {:?}", cache.stats());
    }
    if let Some(redis) = redis {
        println!("redis: {:?}", redis.stats());
    }
    Ok(())
}

/// Waits for SIGTERM or Ctrl-C.
async fn stopped() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => Ok(()),
        ctrl_c = tokio::signal::ctrl_c() => ctrl_c,
    }
}
