//! The metrics endpoint, scraped over HTTP after real handshakes. (Alone
//! in its test binary: it installs the process's metrics recorder.)

#[path = "../../redis/tests/common/mod.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::time::Duration;

use tlscache_proxy::load::{client_cache, client_config, echo_upstream, run_clients};
use tlscache_proxy::{CacheKind, Identity, Proxy, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

/// The value of `metric{cache="tlscache-proxy"}` in a scrape.
fn value(scrape: &str, metric: &str) -> u64 {
    let prefix = format!("{metric}{{cache=\"tlscache-proxy\"}} ");
    let line = scrape
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {metric} in:\n{scrape}"));
    line[prefix.len()..].trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_the_cache_and_redis_counters() {
    let server = redis_server::RedisServer::start();
    let (upstream, echo) = echo_upstream().await.unwrap();
    let proxy = Proxy::start(Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream,
        identity: Identity::Generated,
        cache: CacheKind::Tlscache,
        cache_size: 20_480,
        redis: Some(server.url()),
        metrics: Some("127.0.0.1:0".parse().unwrap()),
    })
    .await
    .unwrap();
    let config = client_config(
        proxy.certificate(),
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        client_cache(64).unwrap(),
    )
    .unwrap();
    let (report, error) = run_clients(config, proxy.local_addr(), 8, Duration::from_secs(1)).await;
    assert_eq!(report.failed, 0, "{error:?}");
    assert!(report.resumed > 0);

    let metrics = proxy.metrics_addr().unwrap();
    let scrape = get(metrics, "/metrics").await;
    assert!(scrape.starts_with("HTTP/1.1 200 OK"), "{scrape}");
    // No client is connecting any more: the scrape and stats() agree.
    let s = proxy.cache().stats();
    for (metric, want) in [
        ("tlscache_sess_connect_total", s.connect),
        ("tlscache_sess_connect_good_total", s.connect_good),
        ("tlscache_sess_accept_total", s.accept),
        ("tlscache_sess_accept_good_total", s.accept_good),
        ("tlscache_sess_hits_total", s.hits),
        ("tlscache_sess_cb_hits_total", s.cb_hits),
        ("tlscache_sess_misses_total", s.misses),
        ("tlscache_sess_timeouts_total", s.timeouts),
        ("tlscache_sess_cache_full_total", s.cache_full),
        ("tlscache_external_errors_total", s.external_errors),
        ("tlscache_external_slow_total", s.external_slow),
        ("tlscache_sess_number", s.number),
        ("tlscache_client_peers", s.client_peers),
    ] {
        assert_eq!(value(&scrape, metric), want, "{metric}");
    }
    assert_eq!(s.hits, report.resumed);
    assert_eq!(s.accept_good, report.resumed + report.full);
    let r = proxy.redis().unwrap().stats();
    for (metric, want) in [
        ("tlscache_redis_lookups_total", r.lookups),
        ("tlscache_redis_hits_total", r.hits),
        ("tlscache_redis_stores_total", r.stores),
        ("tlscache_redis_dropped_stores_total", r.dropped_stores),
        ("tlscache_redis_removes_total", r.removes),
        ("tlscache_redis_errors_total", r.errors),
        ("tlscache_redis_connects_total", r.connects),
    ] {
        assert_eq!(value(&scrape, metric), want, "{metric}");
    }
    assert!(r.stores > 0, "{r:?}");
    assert!(
        scrape.contains("# TYPE tlscache_sess_hits_total counter"),
        "{scrape}"
    );
    assert!(
        scrape.contains("# TYPE tlscache_sess_number gauge"),
        "{scrape}"
    );

    let other = get(metrics, "/").await;
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    proxy.shutdown(Duration::from_secs(5)).await;
    echo.abort();
}
