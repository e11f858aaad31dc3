//! The cache's counters for Prometheus: `GET /metrics` over plain HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tlscache_policy::{SessionCache, SessionMetrics};
use tlscache_redis::{RedisMetrics, RedisStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::Error;

/// The `cache` label of the proxy's metrics.
pub const LABEL: &str = "tlscache-proxy";

/// A request's head may take this long and this many bytes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_MAX: usize = 8 * 1024;

/// What a scrape publishes from.
struct Sources {
    handle: PrometheusHandle,
    cache: Arc<SessionCache>,
    cache_metrics: SessionMetrics,
    redis: Option<(Arc<RedisStore>, RedisMetrics)>,
}

impl Sources {
    /// The counters as of now, in Prometheus's text format.
    fn render(&self) -> String {
        self.cache_metrics.publish(&self.cache.stats());
        if let Some((store, metrics)) = &self.redis {
            metrics.publish(&store.stats());
        }
        self.handle.render()
    }
}

/// Installs the process's Prometheus recorder and serves it on `at`.
pub(crate) async fn serve(
    at: SocketAddr,
    cache: Arc<SessionCache>,
    redis: Option<Arc<RedisStore>>,
) -> Result<(SocketAddr, JoinHandle<()>), Error> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| Error::Metrics(e.to_string()))?;
    let sources = Arc::new(Sources {
        handle,
        cache,
        cache_metrics: SessionMetrics::new(LABEL),
        redis: redis.map(|store| (store, RedisMetrics::new(LABEL))),
    });
    let listener = TcpListener::bind(at)
        .await
        .map_err(|e| Error::Listen(at, e))?;
    let addr = listener.local_addr().map_err(|e| Error::Listen(at, e))?;
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let sources = sources.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(tcp, &sources)).await;
            });
        }
    });
    Ok((addr, task))
}

/// Answers one request and closes.
async fn answer(mut tcp: TcpStream, sources: &Sources) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await?;
        if n == 0 || head.len() + n > REQUEST_MAX {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = if head.starts_with(b"GET /metrics ") {
        ("200 OK", sources.render())
    } else {
        ("404 Not Found", "GET /metrics\n".to_owned())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(response.as_bytes()).await?;
    tcp.shutdown().await
}
