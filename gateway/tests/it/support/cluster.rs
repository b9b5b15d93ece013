//! Multi-node harness: gateway configs on a Redis (shared, private, or a Redis Cluster),
//! `wsgate` processes that a test can kill, freeze and terminate, and bounded polling.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use wsgate_connection_store::conformance::servers::free_port;
use wsgate_connection_store::conformance::unique_suffix;

use super::config;

/// Leases of 3 s renewed every second, a reaper every second: a dead node is reaped within
/// about 4 s. Redis calls time out after 500 ms so outages answer 503 quickly.
pub const TEST_PROFILE: &str =
    "cluster:\n  lease_ttl: 3s\n  reaper_interval: 1s\n  forward_timeout: 1s\n";

/// Upper bound for a dead node's connections to be reaped (lease + reaper + slack).
pub const REAP_DEADLINE: Duration = Duration::from_secs(15);

/// Pause between polls.
const POLL: Duration = Duration::from_millis(50);

/// `WSGATE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn shared_redis_url() -> String {
    std::env::var("WSGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix of its own for one test.
pub fn unique_prefix() -> String {
    format!("wsgate-it-{}", unique_suffix())
}

/// Deletes every key of a prefix on the shared Redis when dropped (also after a panic).
pub struct Cleanup {
    url: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        for pattern in [
            format!("{}:*", self.prefix),
            format!("{{{}}}:*", self.prefix),
        ] {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _ = redis::cmd("DEL").arg(keys).exec(&mut conn);
            }
        }
    }
}

/// The guard for `prefix` on the shared Redis.
pub fn cleanup(prefix: &str) -> Cleanup {
    Cleanup {
        url: shared_redis_url(),
        prefix: prefix.to_string(),
    }
}

/// `store:` on the shared Redis under a fresh prefix, and the guard that deletes its keys.
/// Keep the guard alive until the gateways using the prefix are gone.
pub fn shared_store() -> (String, Cleanup) {
    let url = shared_redis_url();
    let prefix = unique_prefix();
    let store = redis_store(&url, &prefix);
    (store, Cleanup { url, prefix })
}

/// `store:` for one Redis.
pub fn redis_store(url: &str, prefix: &str) -> String {
    format!("store:\n  kind: redis\n  url: {url}\n  prefix: {prefix}\n  timeout: 500ms\n")
}

/// `store:` for a Redis Cluster.
pub fn cluster_store(urls: &[String], prefix: &str) -> String {
    format!(
        "store:\n  kind: redis\n  urls: [{}]\n  prefix: {prefix}\n  timeout: 500ms\n",
        urls.join(", ")
    )
}

/// The standard test config on `store`, with the test cluster profile and `extra`.
pub fn node_config(backend: &str, store: &str, extra: &str) -> String {
    config(backend, &format!("{store}{TEST_PROFILE}{extra}"))
}

/// Polls `check` until it answers true, failing the test after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The status of a callback request (`method` POST, GET or DELETE) through the node at `base`.
pub async fn callback(
    client: &reqwest::Client,
    method: reqwest::Method,
    base: &str,
    id: &str,
    body: &str,
) -> u16 {
    client
        .request(method, format!("{base}/prod/@connections/{id}"))
        .body(body.to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("callback answered")
        .status()
        .as_u16()
}

/// A `wsgate` process (the real binary) on its own port; killed when dropped.
pub struct NodeProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub node_id: String,
    dir: PathBuf,
}

impl NodeProcess {
    /// Writes `yaml` (a test config whose `listen` is replaced) to a temporary file, starts
    /// `wsgate --config FILE` as node `node_id`, and waits until `/healthz` answers.
    pub async fn start(yaml: &str, node_id: &str) -> Self {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let yaml = yaml.replacen(
            "listen: 127.0.0.1:0",
            &format!("listen: {addr}\nnode_id: {node_id}"),
            1,
        );
        let dir = std::env::temp_dir().join(format!("wsgate-node-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("wsgate.yaml"), yaml).expect("write config");
        let mut node = Self {
            child: None,
            addr,
            node_id: node_id.to_string(),
            dir,
        };
        node.spawn();
        node.wait_healthy().await;
        node
    }

    /// Starts the process again, on the same port with the same configuration and node id, once
    /// the previous one has exited (see [`Self::wait_exit`]); its output goes on in the same log.
    pub async fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart: wsgate {} still runs",
            self.node_id
        );
        self.spawn();
        self.wait_healthy().await;
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("wsgate.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .arg("--config")
            .arg(self.dir.join("wsgate.yaml"))
            .env("RUST_LOG", "wsgate=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start wsgate");
        self.child = Some(child);
    }

    async fn wait_healthy(&mut self) {
        let client = super::http();
        let url = self.http_url("/readyz");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "wsgate {} exited early ({status}); log:\n{}",
                    self.node_id,
                    self.log()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "wsgate {} not ready; log:\n{}",
                self.node_id,
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The process's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("wsgate.log")).unwrap_or_default()
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://addr` for callbacks.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn signal(&self, name: &str) {
        let Some(child) = &self.child else {
            return;
        };
        let status = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// `kill -9`: the process dies at once, without draining.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`). A stop returns once every thread of the process
    /// is stopped: `kill` returns when the signal is queued, and a thread busy on another core
    /// can go on for a moment (long enough, on a loaded machine, to take one more bus frame).
    pub fn freeze(&self, frozen: bool) {
        self.signal(if frozen { "STOP" } else { "CONT" });
        if frozen && let Some(child) = &self.child {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !all_threads_stopped(child.id()) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "wsgate {} did not stop",
                    self.node_id
                );
                std::thread::yield_now();
            }
        }
    }

    /// The process's resident memory (`VmRSS` from /proc), in bytes.
    pub fn rss_bytes(&self) -> usize {
        let pid = self.child.as_ref().expect("wsgate runs").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let kib: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kib * 1024
    }

    /// The configuration file it was started with (a test may rewrite it and reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("wsgate.yaml")
    }

    /// SIGHUP: re-read the configuration file.
    pub fn hangup(&self) {
        self.signal("HUP");
    }

    /// SIGTERM: graceful drain.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "wsgate {} did not exit within {within:?}; log:\n{}",
                self.node_id,
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // SIGKILL ends a stopped process too; resuming first is only belt and braces.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill9();
        if std::env::var_os("WSGATE_TEST_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether every thread of process `pid` is in the stopped state (`T` in `/proc/PID/task/*/stat`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name, which is in parentheses.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
        })
    })
}
