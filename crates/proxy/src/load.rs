//! Clients for a proxy: an echo upstream, rustls clients that resume
//! through tlscache's [`ClientStore`], and a load run of many concurrent
//! clients (the `proxy-load` binary and the tests use them).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore, SupportedProtocolVersion};
use tlscache_policy::{CacheMode, SessionCache};
use tlscache_rustls::ClientStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// Why one client connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, the handshake, or the echo failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The echo did not return what was sent.
    #[error("the upstream echoed {got} bytes that differ from the {sent} sent")]
    Echo {
        /// Bytes sent.
        sent: usize,
        /// Bytes read back.
        got: usize,
    },
    /// A client setting was refused.
    #[error("client setup: {0}")]
    Setup(String),
}

/// Starts a TCP echo server on a free loopback port: every byte read is
/// written back. It runs until the returned task is aborted.
pub async fn echo_upstream() -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = tcp.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    Ok((addr, task))
}

/// A client-side session cache whose server lists hold up to `tickets`
/// TLS 1.3 tickets: as many as clients resume from one cache at once.
pub fn client_cache(tickets: usize) -> Result<Arc<SessionCache>, ClientError> {
    SessionCache::builder()
        .mode(CacheMode::CLIENT)
        .tickets_per_peer(tickets)
        .build()
        .map(Arc::new)
        .map_err(|e| ClientError::Setup(e.to_string()))
}

/// A rustls client configuration that trusts `cert` and keeps its
/// sessions in `cache` (through [`ClientStore`]).
pub fn client_config(
    cert: &CertificateDer<'static>,
    versions: &[&'static SupportedProtocolVersion],
    cache: Arc<SessionCache>,
) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(cert.clone())
        .map_err(|e| ClientError::Setup(e.to_string()))?;
    let store = ClientStore::new(cache, 16).map_err(|e| ClientError::Setup(e.to_string()))?;
    let mut config = ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::store(Arc::new(store));
    Ok(Arc::new(config))
}

/// One connection to the proxy at `addr` as `localhost`: the handshake,
/// then `payload` sent and read back through the upstream echo. How the
/// handshake went.
pub async fn connect(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    payload: &[u8],
) -> Result<HandshakeKind, ClientError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").map_err(|e| ClientError::Setup(e.to_string()))?;
    let mut tls = TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await?;
    let kind = tls
        .get_ref()
        .1
        .handshake_kind()
        .unwrap_or(HandshakeKind::Full);
    tls.write_all(payload).await?;
    let mut back = vec![0; payload.len()];
    tls.read_exact(&mut back).await?;
    // Reading the echo also read the TLS 1.3 tickets sent before it.
    if back != payload {
        return Err(ClientError::Echo {
            sent: payload.len(),
            got: back.len(),
        });
    }
    let _ = tls.shutdown().await;
    Ok(kind)
}

/// What a load run saw, from the clients' side.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadReport {
    /// Connections that resumed a session.
    pub resumed: u64,
    /// Connections with a full handshake.
    pub full: u64,
    /// Connections that failed (handshake or echo).
    pub failed: u64,
    /// How long the clients ran.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Good handshakes per second.
    pub fn per_second(&self) -> f64 {
        (self.resumed + self.full) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The share of good handshakes that resumed.
    pub fn resumed_share(&self) -> f64 {
        self.resumed as f64 / (self.resumed + self.full).max(1) as f64
    }
}

/// Runs `clients` concurrent clients against `addr` for `duration`, each
/// connecting again as soon as its last connection closed. The first
/// error seen is kept in `first_error`.
pub async fn run_clients(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
) -> (LoadReport, Option<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for n in 0..clients {
        let (config, stop, counts, first_error) = (
            config.clone(),
            stop.clone(),
            counts.clone(),
            first_error.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let payload = format!("client {n}\n").into_bytes();
            while !stop.load(Ordering::Relaxed) {
                let at = match connect(&config, addr, &payload).await {
                    Ok(HandshakeKind::Resumed) => 0,
                    Ok(_) => 1,
                    Err(e) => {
                        let mut first = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        first.get_or_insert_with(|| e.to_string());
                        2
                    }
                };
                counts[at].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let report = LoadReport {
        resumed: counts[0].load(Ordering::Relaxed),
        full: counts[1].load(Ordering::Relaxed),
        failed: counts[2].load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    };
    let error = first_error.lock().unwrap_or_else(|p| p.into_inner()).take();
    (report, error)
}
