//! A TLS server on OpenSSL whose sessions live in tlscache, for real
//! clients such as `openssl s_client -reconnect` and `openssl s_time`.
//!
//! `cargo run -p tlscache-openssl --example openssl-server -- [--port N]
//! [--connections N] [--cache tlscache|openssl]`
//!
//! It listens on 127.0.0.1 (port 0: any free port; the first line printed
//! says which) with a certificate made at start, completes each handshake
//! (one at a time, so each session is stored before the next connection
//! is accepted), says goodbye and closes. On exit (after `--connections` connections, or
//! on Ctrl-C / SIGTERM) it prints its handshake counts and the cache's
//! counters. `--cache openssl` uses OpenSSL's own internal cache instead,
//! for comparison; both turn session tickets off, so that resumption goes
//! through a cache.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslContext, SslMethod, SslOptions, SslSessionCacheMode, SslStream};
use openssl::x509::X509;
use tlscache_policy::{CacheMode, SessionCache, Side};

const SID_CTX: &[u8] = b"tlscache-openssl-example";

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
                "openssl" => args.ours = false,
                other => return Err(format!("--cache: tlscache or openssl, not {other:?}")),
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

/// The handshake, on the accepting thread: its session is stored (the
/// new-session callback runs at the end of OpenSSL's handshake, after the
/// server's last message) before the next connection is accepted, so a
/// client that reconnects the moment its handshake ends (`s_client
/// -reconnect`) finds it. A stalled client holds the loop for at most the
/// 5 s timeout.
fn handshake(
    stream: TcpStream,
    ctx: &SslContext,
    cache: &SessionCache,
    counts: &Counts,
) -> Option<SslStream<TcpStream>> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let ssl = Ssl::new(ctx).ok()?;
    cache.handshake_started(Side::Server);
    let Ok(tls) = ssl.accept(stream) else {
        // A client that gave up or spoke nonsense: counted, not logged.
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    tlscache_openssl::handshake_finished(cache, tls.ssl());
    if tls.ssl().session_reused() {
        &counts.resumed
    } else {
        &counts.full
    }
    .fetch_add(1, Ordering::Relaxed);
    Some(tls)
}

/// The rest of a connection, on a thread of its own: goodbye and close.
fn goodbye(mut tls: SslStream<TcpStream>) {
    // close_notify first: OpenSSL forgets the session of a connection
    // that ends without one.
    let _ = tls.shutdown();
    let mut sink = [0u8; 4096];
    while matches!(tls.read(&mut sink), Ok(n) if n > 0) {}
}

const USAGE: &str = "usage: openssl-server [--port N] [--connections N] [--cache tlscache|openssl]
  --port N            port on 127.0.0.1 (default 0: any free port, printed first)
  --connections N     exit after N connections (default 0: run until Ctrl-C)
  --cache KIND        tlscache (default) or OpenSSL's own cache";

fn main() -> ExitCode {
    let args = match args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("openssl-server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openssl-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    let cache = Arc::new(SessionCache::builder().mode(CacheMode::SERVER).build()?);
    let mut ctx = SslContext::builder(SslMethod::tls_server())?;
    let cert = X509::from_der(made.cert.der())?;
    let key = PKey::private_key_from_der(&made.signing_key.serialize_der())?;
    ctx.set_certificate(&cert)?;
    ctx.set_private_key(&key)?;
    // A client that drops the connection without close_notify must not
    // cost its session.
    ctx.set_options(SslOptions::IGNORE_UNEXPECTED_EOF);
    if args.ours {
        tlscache_openssl::install(&mut ctx, cache.clone(), SID_CTX)?;
    } else {
        ctx.set_session_id_context(SID_CTX)?;
        ctx.set_session_cache_mode(SslSessionCacheMode::SERVER);
        ctx.set_options(SslOptions::NO_TICKET);
    }
    let ctx = ctx.build();
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
        if let Some(tls) = handshake(stream, &ctx, &cache, &counts) {
            workers.push(std::thread::spawn(move || goodbye(tls)));
        }
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
