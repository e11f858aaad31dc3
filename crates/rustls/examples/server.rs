//! A TLS server on rustls whose sessions live in tlscache, for real
//! clients such as `openssl s_client -reconnect` and `openssl s_time`.
//!
//! `cargo run -p tlscache-rustls --example rustls-server -- [--port N]
//! [--connections N] [--cache tlscache|rustls]`
//!
//! It listens on 127.0.0.1 (port 0: any free port; the first line printed
//! says which) with a certificate made at start, completes each handshake,
//! says goodbye and closes. On exit (after `--connections` connections, or
//! on Ctrl-C / SIGTERM) it prints its handshake counts and the cache's
//! counters. `--cache rustls` uses rustls's own default session cache
//! instead, for comparison.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{HandshakeKind, ServerConfig, ServerConnection};
use tlscache_policy::{CacheMode, SessionCache, Side};
use tlscache_rustls::ServerStore;

struct Args {
    port: u16,
    connections: u64,
    ours: bool,
}

/// The arguments, or `None` for `--help`.
fn args() -> Result<Option<Args>, String> {
    let mut args = Args {
        port: 0,
        connections: 0,
        ours: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => args.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--connections" => {
                args.connections = value()?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            "--cache" => match value()?.as_str() {
                "tlscache" => args.ours = true,
                "rustls" => args.ours = false,
                other => return Err(format!("--cache: tlscache or rustls, not {other:?}")),
            },
            "--help" | "-h" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(args))
}

#[derive(Default)]
struct Counts {
    full: AtomicU64,
    resumed: AtomicU64,
    failed: AtomicU64,
}

fn report(ours: bool, counts: &Counts, cache: &SessionCache) {
    println!(
        "handshakes: full {}, resumed {}, failed {}",
        counts.full.load(Ordering::Relaxed),
        counts.resumed.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed)
    );
    if ours {
        println!("tlscache: {:?}", cache.stats());
    }
    let _ = std::io::stdout().flush();
}

fn serve(mut stream: TcpStream, config: Arc<ServerConfig>, cache: &SessionCache, counts: &Counts) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let Ok(mut conn) = ServerConnection::new(config) else {
        return;
    };
    cache.handshake_started(Side::Server);
    while conn.is_handshaking() {
        if conn.complete_io(&mut stream).is_err() {
            break;
        }
    }
    if conn.is_handshaking() {
        // A client that gave up or spoke nonsense: counted, not logged. (A
        // client that hangs up right after its Finished, before reading
        // the TLS 1.3 tickets, has still completed its handshake.)
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    tlscache_rustls::handshake_finished(cache, Side::Server, &conn);
    match conn.handshake_kind() {
        Some(HandshakeKind::Resumed) => &counts.resumed,
        _ => &counts.full,
    }
    .fetch_add(1, Ordering::Relaxed);
    conn.send_close_notify();
    let _ = conn.complete_io(&mut stream);
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

const USAGE: &str = "usage: rustls-server [--port N] [--connections N] [--cache tlscache|rustls]
  --port N            port on 127.0.0.1 (default 0: any free port, printed first)
  --connections N     exit after N connections (default 0: run until Ctrl-C)
  --cache KIND        tlscache (default) or rustls's own cache";

fn main() -> ExitCode {
    let args = match args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("rustls-server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rustls-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    let cache = Arc::new(
        SessionCache::builder()
            .mode(CacheMode::SERVER)
            .session_id_context(b"tlscache-rustls-example")
            .build()?,
    );
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![made.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der())),
        )?;
    if args.ours {
        config.session_storage = Arc::new(ServerStore::new(cache.clone()));
    }
    let config = Arc::new(config);
    let counts = Arc::new(Counts::default());

    let listener = TcpListener::bind(("127.0.0.1", args.port))?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    {
        let (cache, counts) = (cache.clone(), counts.clone());
        ctrlc::set_handler(move || {
            report(args.ours, &counts, &cache);
            std::process::exit(0);
        })?;
    }

    let mut workers = Vec::new();
    let mut accepted = 0;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let (config, cache, counts) = (config.clone(), cache.clone(), counts.clone());
        workers.push(std::thread::spawn(move || {
            serve(stream, config, &cache, &counts)
        }));
        workers.retain(|w| !w.is_finished());
        accepted += 1;
        if accepted == args.connections {
            break;
        }
    }
    for worker in workers {
        let _ = worker.join();
    }
    report(args.ours, &counts, &cache);
    Ok(())
}
