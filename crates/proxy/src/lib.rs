//! tlscache-proxy: a TLS-terminating TCP proxy on tokio and tokio-rustls
//! whose sessions live in one tlscache [`SessionCache`] shared by every
//! worker thread.
//!
//! Each connection is a task: the TLS handshake (rustls, through
//! [`tokio_rustls`]), then the plaintext both ways to the upstream address
//! until either side closes. TLS 1.2 resumes by session id and TLS 1.3 by
//! stateful tickets, both through [`tlscache_rustls::ServerStore`] (a
//! ticket resumes once); every handshake is reported to the cache
//! ([`SessionCache::handshake_started`], then
//! [`tlscache_rustls::handshake_finished`]), so its `accept`,
//! `accept_good` and auto flush work as OpenSSL's do. With a Redis URL the
//! cache has a shared tier (tlscache-redis), and sessions resume across
//! proxies.
//!
//! The binary `tlscache-proxy` is the command line around [`Proxy`];
//! `proxy-load` drives it with many concurrent clients.
//!
//! ```no_run
//! use tlscache_proxy::{CacheKind, Identity, Proxy, Settings};
//!
//! # async fn run() -> Result<(), tlscache_proxy::Error> {
//! let proxy = Proxy::start(Settings {
//!     listen: "127.0.0.1:8443".parse().unwrap(),
//!     upstream: "127.0.0.1:8080".parse().unwrap(),
//!     identity: Identity::Generated,
//!     cache: CacheKind::Tlscache,
//!     cache_size: 20_480,
//!     redis: None,
//!     metrics: None,
//! })
//! .await?;
//! println!("listening on {}", proxy.local_addr());
//! // ... until it is time to stop:
//! let counts = proxy.shutdown(std::time::Duration::from_secs(5)).await;
//! println!("{counts}");
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod load;
mod metrics;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ServerSessionMemoryCache;
use rustls::{HandshakeKind, ServerConfig};
use tlscache_policy::{CacheMode, SessionCache, Side};
use tlscache_redis::RedisStore;
use tlscache_rustls::ServerStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A handshake that takes longer than this is dropped and counted failed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The session-id context of the proxy's sessions.
pub const SID_CTX: &[u8] = b"tlscache-proxy";

/// Entries of rustls's own cache with `--cache rustls` (rustls's default
/// size for its `ServerSessionMemoryCache`).
pub const RUSTLS_CACHE_ENTRIES: usize = 256;

/// Which session cache the proxy's TLS server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKind {
    /// tlscache-policy, through tlscache-rustls's `ServerStore`.
    Tlscache,
    /// rustls's own `ServerSessionMemoryCache`, for comparison.
    Rustls,
}

impl CacheKind {
    /// The name the command line takes.
    pub fn label(self) -> &'static str {
        match self {
            CacheKind::Tlscache => "tlscache",
            CacheKind::Rustls => "rustls",
        }
    }
}

impl FromStr for CacheKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tlscache" => Ok(CacheKind::Tlscache),
            "rustls" => Ok(CacheKind::Rustls),
            other => Err(format!("tlscache or rustls, not {other:?}")),
        }
    }
}

/// The server's certificate and key.
#[derive(Debug, Clone)]
pub enum Identity {
    /// A self-signed certificate for `localhost` and `127.0.0.1`, made at
    /// start.
    Generated,
    /// A PEM certificate chain and a PEM private key.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS #8, PKCS #1 or SEC1).
        key: PathBuf,
    },
}

/// What a proxy is started with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen for TLS clients (port 0: any free port).
    pub listen: SocketAddr,
    /// Where each connection's plaintext goes.
    pub upstream: SocketAddr,
    /// The server's certificate and key.
    pub identity: Identity,
    /// The session cache.
    pub cache: CacheKind,
    /// The tlscache cache's size (OpenSSL's `SSL_CTX_sess_set_cache_size`;
    /// 0 is unbounded). Unused with [`CacheKind::Rustls`].
    pub cache_size: u64,
    /// A Redis URL (`redis://host:port`) for a shared tier behind the
    /// local cache. Only with [`CacheKind::Tlscache`]. Its calls run on
    /// the handshaking worker thread and wait at most the store's command
    /// timeout.
    pub redis: Option<String>,
    /// Where to serve the cache's counters for Prometheus (`GET /metrics`,
    /// port 0: any free port). This installs the process's `metrics`
    /// recorder, so one proxy per process may have it.
    pub metrics: Option<SocketAddr>,
}

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate or key could not be made or read.
    #[error("certificate: {0}")]
    Certificate(String),
    /// rustls refused the certificate and key.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The session cache could not be built.
    #[error("session cache: {0}")]
    Cache(String),
    /// The Redis tier could not be set up or reached.
    #[error("redis: {0}")]
    Redis(String),
    /// `--redis` with rustls's own cache, which has no shared tier.
    #[error("--redis needs --cache tlscache")]
    RedisWithoutTlscache,
    /// The listening socket could not be opened.
    #[error("listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    /// The metrics recorder could not be installed (another is).
    #[error("metrics: {0}")]
    Metrics(String),
}

/// Connection counts, updated as connections finish their handshakes.
#[derive(Debug, Default)]
struct Counts {
    full: AtomicU64,
    resumed: AtomicU64,
    failed: AtomicU64,
    upstream_failed: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// A snapshot of a proxy's connection counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Handshakes completed in full.
    pub full: u64,
    /// Handshakes that resumed a session.
    pub resumed: u64,
    /// Handshakes that failed or timed out.
    pub failed: u64,
    /// Connections whose upstream could not be reached (after a good
    /// handshake).
    pub upstream_failed: u64,
    /// Plaintext bytes from clients to the upstream, of connections that
    /// have closed.
    pub bytes_up: u64,
    /// Plaintext bytes from the upstream to clients, of connections that
    /// have closed.
    pub bytes_down: u64,
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "handshakes: full {}, resumed {}, failed {}; upstream unreachable {}; bytes up {}, down {}",
            self.full, self.resumed, self.failed, self.upstream_failed, self.bytes_up, self.bytes_down
        )
    }
}

impl Counts {
    fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            full: get(&self.full),
            resumed: get(&self.resumed),
            failed: get(&self.failed),
            upstream_failed: get(&self.upstream_failed),
            bytes_up: get(&self.bytes_up),
            bytes_down: get(&self.bytes_down),
        }
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// A running proxy: its accept loop and connection tasks run on the tokio
/// runtime it was started on.
pub struct Proxy {
    addr: SocketAddr,
    cert: CertificateDer<'static>,
    cache: Arc<SessionCache>,
    redis: Option<Arc<RedisStore>>,
    counts: Arc<Counts>,
    stop: watch::Sender<Option<Duration>>,
    accept: tokio::task::JoinHandle<()>,
    metrics: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
}

impl Proxy {
    /// Binds `settings.listen` and starts accepting connections.
    pub async fn start(settings: Settings) -> Result<Proxy, Error> {
        let (chain, key) = identity(&settings.identity)?;
        let leaf = chain
            .first()
            .cloned()
            .ok_or_else(|| Error::Certificate("the certificate file holds none".into()))?;
        let redis = match (&settings.redis, settings.cache) {
            (None, _) => None,
            (Some(_), CacheKind::Rustls) => return Err(Error::RedisWithoutTlscache),
            (Some(url), CacheKind::Tlscache) => {
                let store = RedisStore::builder(url.as_str())
                    .build()
                    .map_err(|e| Error::Redis(e.to_string()))?;
                store.ping().map_err(|e| Error::Redis(e.to_string()))?;
                Some(Arc::new(store))
            }
        };
        let mut builder = SessionCache::builder()
            .mode(CacheMode::SERVER)
            .session_id_context(SID_CTX)
            .cache_size(settings.cache_size);
        if let Some(store) = &redis {
            builder = builder.external_store(store.clone());
        }
        let cache = Arc::new(builder.build().map_err(|e| Error::Cache(e.to_string()))?);
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.session_storage = match settings.cache {
            CacheKind::Tlscache => Arc::new(ServerStore::new(cache.clone())),
            CacheKind::Rustls => ServerSessionMemoryCache::new(RUSTLS_CACHE_ENTRIES),
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| Error::Listen(settings.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Listen(settings.listen, e))?;
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = watch::channel(None);
        let reporting = (settings.cache == CacheKind::Tlscache).then(|| cache.clone());
        let metrics = match settings.metrics {
            None => None,
            Some(at) => Some(metrics::serve(at, cache.clone(), redis.clone()).await?),
        };
        let accept = tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(Arc::new(config)),
            settings.upstream,
            reporting,
            counts.clone(),
            stopped,
        ));
        Ok(Proxy {
            addr,
            cert: leaf,
            cache,
            redis,
            counts,
            stop,
            accept,
            metrics,
        })
    }

    /// Where the metrics are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's leaf certificate, for clients to trust.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The session cache (with [`CacheKind::Rustls`], one that sees no
    /// traffic).
    pub fn cache(&self) -> &Arc<SessionCache> {
        &self.cache
    }

    /// The Redis tier, if there is one.
    pub fn redis(&self) -> Option<&Arc<RedisStore>> {
        self.redis.as_ref()
    }

    /// The connection counts so far.
    pub fn counts(&self) -> Snapshot {
        self.counts.snapshot()
    }

    /// Stops accepting, lets open connections finish for up to `grace`,
    /// closes the rest, and returns the final counts.
    pub async fn shutdown(self, grace: Duration) -> Snapshot {
        let _ = self.stop.send(Some(grace));
        let _ = self.accept.await;
        if let Some((_, task)) = self.metrics {
            task.abort();
        }
        self.counts.snapshot()
    }
}

/// Runs `main` on a multi-threaded tokio runtime of `threads` workers
/// (default: one per core): the exit code of a binary named `name`, which
/// prints its error on stderr.
pub fn run_main<F>(name: &str, threads: Option<u16>, main: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = threads {
        runtime.worker_threads(usize::from(threads));
    }
    let outcome = match runtime.build() {
        Ok(runtime) => runtime.block_on(main),
        Err(e) => Err(format!("tokio runtime: {e}").into()),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The certificate chain and key of `identity`.
fn identity(
    identity: &Identity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    match identity {
        Identity::Generated => {
            let made =
                rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                    .map_err(|e| Error::Certificate(e.to_string()))?;
            Ok((
                vec![made.cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der())),
            ))
        }
        Identity::Files { cert, key } => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| Error::Certificate(format!("{}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| Error::Certificate(format!("{}: {e}", key.display())))?;
            Ok((chain, key))
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    upstream: SocketAddr,
    cache: Option<Arc<SessionCache>>,
    counts: Arc<Counts>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let mut connections = JoinSet::new();
    let grace = loop {
        tokio::select! {
            changed = stop.changed() => {
                // A dropped sender stops the proxy at once.
                break if changed.is_ok() { *stop.borrow() } else { None }
                    .unwrap_or(Duration::ZERO);
            }
            accepted = listener.accept() => {
                // A failed accept (out of descriptors, a reset in the
                // queue) loses that connection only.
                if let Ok((tcp, _)) = accepted {
                    let _ = tcp.set_nodelay(true);
                    connections.spawn(serve(
                        tcp,
                        acceptor.clone(),
                        upstream,
                        cache.clone(),
                        counts.clone(),
                    ));
                }
            }
            // Reap finished connections as they go.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    };
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        connections.shutdown().await;
    }
}

/// One client connection: the handshake, then plaintext both ways.
async fn serve(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    upstream: SocketAddr,
    cache: Option<Arc<SessionCache>>,
    counts: Arc<Counts>,
) {
    if let Some(cache) = &cache {
        cache.handshake_started(Side::Server);
    }
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        // A client that gave up, spoke nonsense or stalled: counted.
        _ => {
            bump(&counts.failed, 1);
            return;
        }
    };
    let (_, conn) = tls.get_ref();
    if let Some(cache) = &cache {
        tlscache_rustls::handshake_finished(cache, Side::Server, conn);
    }
    match conn.handshake_kind() {
        Some(HandshakeKind::Resumed) => bump(&counts.resumed, 1),
        _ => bump(&counts.full, 1),
    }
    let Ok(mut up) = TcpStream::connect(upstream).await else {
        bump(&counts.upstream_failed, 1);
        return;
    };
    let _ = up.set_nodelay(true);
    if let Ok((to_upstream, to_client)) = tokio::io::copy_bidirectional(&mut tls, &mut up).await {
        bump(&counts.bytes_up, to_upstream);
        bump(&counts.bytes_down, to_client);
    }
}
