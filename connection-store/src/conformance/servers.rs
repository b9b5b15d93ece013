//! Private Redis servers for tests: a `redis-server` process that a test may kill, freeze and
//! restart, and a three-master Redis Cluster built from `redis-server --cluster-enabled yes`.
//! Every process is killed when its owner is dropped, also after a panic.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::unique_suffix;

/// How long to wait for a server or cluster to come up before failing the test.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A loopback port nothing listens on (at least right now), below 55535 so that the Redis
/// Cluster bus port (`port + 10000`) exists and is free too.
pub fn free_port() -> u16 {
    loop {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = listener.local_addr().map(|a| a.port()) else {
            continue;
        };
        if port < 55_535 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn spawn_redis(port: u16, extra: &[String]) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start `redis-server` ({e}); install it and put it on PATH to run the Redis tests")
        })
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends a signal (`STOP`, `CONT`) to a process.
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

async fn wait_ping(url: &str, child: &mut Option<Child>) {
    let client = redis::Client::open(url).expect("valid url");
    let deadline = tokio::time::Instant::now() + READY_DEADLINE;
    loop {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING").exec_async(&mut conn).await.is_ok()
        {
            return;
        }
        if let Some(child) = child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("redis-server at {url} exited early: {status}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis-server at {url} did not answer PING within {READY_DEADLINE:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A `redis-server` child process on a fixed port, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.restart().await;
        server
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and waits for the process to exit.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Freezes (`true`, SIGSTOP) or resumes (`false`, SIGCONT) the server.
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            signal(child.id(), if frozen { "STOP" } else { "CONT" });
        }
    }

    /// Starts the server again on the same port (a killed server has lost its data).
    pub async fn restart(&mut self) {
        self.kill();
        self.child = Some(spawn_redis(self.port, &[]));
        wait_ping(&self.url(), &mut self.child).await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A three-master Redis Cluster (no replicas) of child processes, killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts three `redis-server --cluster-enabled yes`, joins them with
    /// `redis-cli --cluster create`, and waits until every node reports `cluster_state:ok`.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("wsgate-cluster-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).expect("create cluster dir");
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 3 {
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let mut cluster = Self {
            ports: ports.clone(),
            children: Vec::new(),
            dir,
        };
        for port in &ports {
            let extra = [
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-config-file".to_owned(),
                cluster
                    .dir
                    .join(format!("nodes-{port}.conf"))
                    .display()
                    .to_string(),
                "--cluster-node-timeout".to_owned(),
                "2000".to_owned(),
                "--dir".to_owned(),
                cluster.dir.display().to_string(),
            ];
            cluster.children.push(Some(spawn_redis(*port, &extra)));
        }
        for (i, url) in cluster.urls().iter().enumerate() {
            wait_ping(url, &mut cluster.children[i]).await;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let output = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        cluster.wait_ok().await;
        cluster
    }

    /// The seed URLs, one per master.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    async fn wait_ok(&self) {
        let deadline = tokio::time::Instant::now() + READY_DEADLINE;
        for url in self.urls() {
            let client = redis::Client::open(url.as_str()).expect("valid url");
            loop {
                let info: Option<String> = match client.get_multiplexed_async_connection().await {
                    Ok(mut conn) => redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async(&mut conn)
                        .await
                        .ok(),
                    Err(_) => None,
                };
                if info.is_some_and(|i| i.contains("cluster_state:ok")) {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "cluster node {url} not ok within {READY_DEADLINE:?}"
                );
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            kill(child);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
