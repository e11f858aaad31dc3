//! A real redis-server per test, on a free loopback port, persistence off.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tlscache_policy::{CacheMode, Session, SessionCache};
use tlscache_redis::RedisStore;

/// A redis-server this test started; stopped (and its folder removed) on
/// drop.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    cluster: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// A plain server.
    pub fn start() -> Self {
        Self::start_as(false)
    }

    /// A one-node Redis Cluster holding every slot.
    pub fn start_cluster() -> Self {
        let server = Self::start_as(true);
        let mut conn = server.connection();
        redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(0)
            .arg(16383)
            .query::<()>(&mut conn)
            .expect("CLUSTER ADDSLOTSRANGE");
        wait_for("the cluster to be ok", || {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).ok()?;
            info.contains("cluster_state:ok").then_some(())
        });
        server
    }

    /// This node's id in its cluster.
    pub fn node_id(&self) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.connection())
            .expect("CLUSTER MYID")
    }

    /// Keys this node holds.
    pub fn keys(&self) -> u64 {
        redis::cmd("DBSIZE")
            .query(&mut self.connection())
            .expect("DBSIZE")
    }

    fn start_as(cluster: bool) -> Self {
        for _ in 0..5 {
            // A cluster node also listens on its port + 10000 (the bus).
            let port = std::iter::repeat_with(free_port)
                .find(|&p| !cluster || p <= 55_000)
                .expect("an endless supply of ports");
            let dir = std::env::temp_dir()
                .join(format!("tlscache-redis-test-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a scratch folder");
            let mut server = RedisServer {
                port,
                dir,
                cluster,
                child: None,
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// Starts the process on this server's port; whether it answers.
    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.cluster {
            // A master marked failed after 1 s, and the other masters'
            // slots still served while one is down (Redis's default stops
            // the whole cluster; see the crate docs).
            cmd.args(["--cluster-enabled", "yes"])
                .args(["--cluster-node-timeout", "1000"])
                .args(["--cluster-require-full-coverage", "no"]);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run redis-server ({e}); tools/test installs it (apt-get install redis-server)")
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            if self.try_connection().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn try_connection(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_millis(200))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()?;
        Some(conn)
    }

    /// A direct connection, to look at what the store wrote.
    pub fn connection(&self) -> redis::Connection {
        self.try_connection().expect("redis-server answers")
    }

    /// Kills the server (SIGKILL: no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty (persistence is off).
    pub fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "redis-server restarts on port {}", self.port);
    }

    /// Sends the server a signal by number (SIGSTOP 19, SIGCONT 18).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

/// A Redis Cluster of `masters` masters and no replicas on loopback
/// ports, made by `redis-cli --cluster create`; every slot is served when
/// this returns.
pub fn start_masters(masters: usize) -> Vec<RedisServer> {
    let nodes: Vec<RedisServer> = (0..masters).map(|_| RedisServer::start_as(true)).collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli runs (tools/test installs redis-server, which brings it)");
    assert!(
        out.status.success(),
        "redis-cli --cluster create: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for node in &nodes {
        let mut conn = node.connection();
        wait_for("every node to see the cluster ok", || {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).ok()?;
            info.contains("cluster_state:ok").then_some(())
        });
    }
    nodes
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Polls `check` for up to ten seconds.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(out) = check() {
            return out;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub const CTX: &[u8] = b"frontend-443";

/// One proxy: a local cache in front of its own store (its own pool).
pub fn proxy(store: RedisStore, mode: CacheMode) -> (SessionCache, Arc<RedisStore>) {
    let store = Arc::new(store);
    let cache = SessionCache::builder()
        .mode(mode)
        .session_id_context(CTX)
        .external_store(store.clone())
        // Room for a loaded machine: a slow answer would be thrown away.
        .external_budget(Duration::from_secs(1))
        .build()
        .expect("a valid cache");
    (cache, store)
}

/// A store on `server` with the tests' prefix and timeouts generous
/// enough for a loaded 2-core machine.
pub fn store_on(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .prefix(b"test:")
        .connect_timeout(Duration::from_millis(200))
        .command_timeout(Duration::from_millis(200))
        .build()
        .expect("a valid store")
}

/// A new server session on `cache`, as a full handshake makes it.
pub fn new_session(cache: &SessionCache, id: u32, timeout: u64) -> Arc<Session> {
    let mut sid = [0u8; 32];
    sid[..4].copy_from_slice(&id.to_be_bytes());
    cache
        .session_builder(&sid, format!("state of {id}").into_bytes())
        .timeout(timeout)
        .build()
        .expect("a valid session")
}
