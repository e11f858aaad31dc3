//! The proxy with real clients: Debian's `openssl s_client` over TLS 1.2
//! and TLS 1.3, rustls clients resuming through tlscache's client store,
//! bytes through the upstream both ways, and the binary's command line.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[path = "../../redis/tests/common/mod.rs"]
mod redis_server;

use tlscache_proxy::load::{client_cache, client_config, connect, echo_upstream, run_clients};
use tlscache_proxy::{CacheKind, Identity, Proxy, Settings};

async fn proxy(upstream: SocketAddr, cache: CacheKind) -> Proxy {
    proxy_on(upstream, cache, None).await
}

async fn proxy_on(upstream: SocketAddr, cache: CacheKind, redis: Option<String>) -> Proxy {
    Proxy::start(Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream,
        identity: Identity::Generated,
        cache,
        cache_size: 20_480,
        redis,
        metrics: None,
    })
    .await
    .unwrap()
}

/// Runs `openssl s_client` against `addr` with `args`: sends a line,
/// waits for the echo (so that TLS 1.3 tickets, sent before it, have
/// arrived), then closes its input. Its output.
fn s_client(addr: SocketAddr, args: &[&str]) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client runs (tools/test installs openssl)");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"ping through the proxy\n").unwrap();
    let echoed = loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line == "ping through the proxy" => break true,
            Ok(_) => {}
            Err(_) => break false,
        }
    };
    drop(stdin);
    let status = child.wait().unwrap();
    let out = reader.join().unwrap();
    assert!(echoed, "no echo through the proxy:\n{out}");
    assert!(status.success(), "s_client failed:\n{out}");
    out
}

fn count(out: &str, prefix: &str) -> usize {
    out.lines().filter(|l| l.starts_with(prefix)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_resumes_tls12_by_session_id() {
    let (upstream, echo) = echo_upstream().await.unwrap();
    let proxy = proxy(upstream, CacheKind::Tlscache).await;
    let addr = proxy.local_addr();
    let out = tokio::task::spawn_blocking(move || s_client(addr, &["-tls1_2", "-reconnect"]))
        .await
        .unwrap();
    // -reconnect: one full handshake, then five that offer its session.
    assert_eq!(count(&out, "New, "), 1, "{out}");
    assert_eq!(count(&out, "Reused, "), 5, "{out}");
    let stats = proxy.cache().stats();
    assert_eq!(stats.hits, 5);
    assert_eq!(stats.accept_good, 6);
    let counts = proxy.shutdown(Duration::from_secs(5)).await;
    assert_eq!((counts.full, counts.resumed, counts.failed), (1, 5, 0));
    echo.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_resumes_a_tls13_ticket_once() {
    let (upstream, echo) = echo_upstream().await.unwrap();
    let proxy = proxy(upstream, CacheKind::Tlscache).await;
    let addr = proxy.local_addr();
    let dir = std::env::temp_dir().join(format!("tlscache-proxy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sess = dir.join("tls13.pem");
    let sess_arg = sess.to_str().unwrap().to_owned();
    let run = move |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            s_client(addr, &args)
        })
    };
    let first = run(vec!["-tls1_3".into(), "-sess_out".into(), sess_arg.clone()])
        .await
        .unwrap();
    assert!(first.contains("New, TLSv1.3"), "{first}");
    assert!(Path::new(&sess).exists(), "s_client saved a ticket");
    let again = || vec!["-tls1_3".into(), "-sess_in".into(), sess_arg.clone()];
    let reuse = run(again()).await.unwrap();
    assert!(reuse.contains("Reused, TLSv1.3"), "first reuse:\n{reuse}");
    // The same ticket again: taken by the first reuse, so a full handshake.
    let replay = run(again()).await.unwrap();
    assert!(replay.contains("New, TLSv1.3"), "second reuse:\n{replay}");
    let counts = proxy.shutdown(Duration::from_secs(5)).await;
    assert_eq!((counts.full, counts.resumed, counts.failed), (2, 1, 0));
    let _ = std::fs::remove_dir_all(&dir);
    echo.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_round_trip_through_the_upstream() {
    let (upstream, echo) = echo_upstream().await.unwrap();
    let proxy = proxy(upstream, CacheKind::Tlscache).await;
    let config = client_config(
        proxy.certificate(),
        &[&rustls::version::TLS13],
        client_cache(8).unwrap(),
    )
    .unwrap();
    // Larger than a TLS record and a socket buffer's first read.
    let payload: Vec<u8> = (0..256 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    connect(&config, proxy.local_addr(), &payload)
        .await
        .unwrap();
    let counts = proxy.shutdown(Duration::from_secs(5)).await;
    assert_eq!(counts.bytes_up, payload.len() as u64);
    assert_eq!(counts.bytes_down, payload.len() as u64);
    echo.abort();
}

/// 64 rustls clients resume in a loop for a few seconds, over TLS 1.3 and
/// over TLS 1.2: no handshake fails, nearly all resume, and the proxy,
/// the clients and the cache count the same handshakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_resume_in_a_loop() {
    let (upstream, echo) = echo_upstream().await.unwrap();
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let proxy = proxy(upstream, CacheKind::Tlscache).await;
        let config =
            client_config(proxy.certificate(), versions, client_cache(128).unwrap()).unwrap();
        let (report, error) =
            run_clients(config, proxy.local_addr(), 64, Duration::from_secs(3)).await;
        assert_eq!(report.failed, 0, "first failure: {error:?}");
        assert!(report.resumed + report.full >= 64, "{report:?}");
        assert!(report.resumed_share() > 0.9, "{report:?}");
        let cache = proxy.cache().clone();
        let counts = proxy.shutdown(Duration::from_secs(5)).await;
        assert_eq!(
            (counts.resumed, counts.full, counts.failed),
            (report.resumed, report.full, 0)
        );
        let stats = cache.stats();
        assert_eq!(stats.hits, report.resumed);
        assert_eq!(stats.accept_good, report.resumed + report.full);
    }
    echo.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustls_own_cache_resumes_too_for_comparison() {
    let (upstream, echo) = echo_upstream().await.unwrap();
    let proxy = proxy(upstream, CacheKind::Rustls).await;
    let config = client_config(
        proxy.certificate(),
        &[&rustls::version::TLS13],
        client_cache(128).unwrap(),
    )
    .unwrap();
    let (report, error) = run_clients(config, proxy.local_addr(), 16, Duration::from_secs(1)).await;
    assert_eq!(report.failed, 0, "first failure: {error:?}");
    assert!(report.resumed > 0, "{report:?}");
    // The tlscache cache saw none of it.
    assert_eq!(proxy.cache().stats().accept, 0);
    proxy.shutdown(Duration::from_secs(5)).await;
    echo.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_with_rustls_cache_is_refused() {
    let err = Proxy::start(Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: "127.0.0.1:1".parse().unwrap(),
        identity: Identity::Generated,
        cache: CacheKind::Rustls,
        cache_size: 0,
        redis: Some("redis://127.0.0.1:1".into()),
        metrics: None,
    })
    .await
    .err()
    .expect("refused");
    assert_eq!(err.to_string(), "--redis needs --cache tlscache");
}

/// The binary: `--help`, a bad flag, and SIGTERM after a connection,
/// which prints the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_stops_on_sigterm_and_prints_its_counts() {
    let bin = env!("CARGO_BIN_EXE_tlscache-proxy");
    let help = Command::new(bin).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--upstream",
        "--cert",
        "--key",
        "--cache",
        "--redis",
        "--threads",
    ] {
        assert!(help.contains(flag), "--help lists {flag}:\n{help}");
    }
    let bad = Command::new(bin)
        .args(["--upstream", "127.0.0.1:1", "--cache", "nope"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tlscache or rustls"));

    let (upstream, echo) = echo_upstream().await.unwrap();
    let mut child = Command::new(bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream.to_string(),
            "--threads",
            "2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let addr: SocketAddr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .parse()
        .unwrap();
    let one = tokio::task::spawn_blocking(move || s_client(addr, &["-tls1_3"]))
        .await
        .unwrap();
    assert!(one.contains("New, TLSv1.3"), "{one}");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(
        rest.contains("handshakes: full 1, resumed 0, failed 0"),
        "{rest}"
    );
    assert!(rest.contains("accept_good: 1"), "{rest}");
    echo.abort();
}

/// Two proxies on one redis-server: a TLS 1.2 session made at one resumes
/// at the other, and a TLS 1.3 ticket issued by one resumes once in the
/// fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_share_sessions_through_redis() {
    let server = redis_server::RedisServer::start();
    let (upstream, echo) = echo_upstream().await.unwrap();
    let a = proxy_on(upstream, CacheKind::Tlscache, Some(server.url())).await;
    let b = proxy_on(upstream, CacheKind::Tlscache, Some(server.url())).await;
    let (at_a, at_b) = (a.local_addr(), b.local_addr());
    let dir = std::env::temp_dir().join(format!("tlscache-proxy-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let run = |addr: SocketAddr, args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            s_client(addr, &args)
        })
    };
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();

    let tls12 = path("tls12.pem");
    let made = run(at_a, s(&["-tls1_2", "-sess_out", &tls12]))
        .await
        .unwrap();
    assert!(made.contains("New, TLSv1.2"), "{made}");
    let elsewhere = run(at_b, s(&["-tls1_2", "-sess_in", &tls12]))
        .await
        .unwrap();
    assert!(
        elsewhere.contains("Reused, TLSv1.2"),
        "at the other proxy:\n{elsewhere}"
    );
    let again = run(at_a, s(&["-tls1_2", "-sess_in", &tls12]))
        .await
        .unwrap();
    assert!(
        again.contains("Reused, TLSv1.2"),
        "a session id resumes again:\n{again}"
    );

    let tls13 = path("tls13.pem");
    let made = run(at_a, s(&["-tls1_3", "-sess_out", &tls13]))
        .await
        .unwrap();
    assert!(made.contains("New, TLSv1.3"), "{made}");
    let elsewhere = run(at_b, s(&["-tls1_3", "-sess_in", &tls13]))
        .await
        .unwrap();
    assert!(
        elsewhere.contains("Reused, TLSv1.3"),
        "at the other proxy:\n{elsewhere}"
    );
    let replay = run(at_a, s(&["-tls1_3", "-sess_in", &tls13]))
        .await
        .unwrap();
    assert!(
        replay.contains("New, TLSv1.3"),
        "the ticket was taken fleet-wide, its issuer included:\n{replay}"
    );

    let redis = b.redis().unwrap().stats();
    assert!(redis.hits >= 2, "{redis:?}");
    let (ca, cb) = (
        a.shutdown(Duration::from_secs(5)).await,
        b.shutdown(Duration::from_secs(5)).await,
    );
    assert_eq!((ca.resumed, cb.resumed), (1, 2), "{ca} / {cb}");
    assert_eq!(ca.failed + cb.failed, 0);
    let _ = std::fs::remove_dir_all(&dir);
    echo.abort();
}
