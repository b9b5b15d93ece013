//! Redis test support: the shared test Redis, key cleanup, and a private `redis-server` process
//! that tests can kill and restart.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wsgate_connection_store::conformance::unique_suffix;
use wsgate_connection_store::{RedisStore, RedisStoreOptions};

/// How long to wait for a server to come up before failing the test.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between readiness or recovery probes.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// `WSGATE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub(crate) fn shared_url() -> String {
    std::env::var("WSGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A random key prefix for one test.
pub(crate) fn unique_prefix() -> String {
    format!("wsgate-test-{}", unique_suffix())
}

/// A store on the shared test Redis under a fresh prefix, deleting its keys when dropped.
pub(crate) struct TestStore {
    pub(crate) store: RedisStore,
    pub(crate) prefix: String,
    pub(crate) url: String,
}

impl TestStore {
    pub(crate) async fn new(options: RedisStoreOptions) -> Self {
        let url = shared_url();
        let prefix = unique_prefix();
        let store = RedisStore::connect_with(&url, &prefix, options)
            .await
            .unwrap_or_else(|e| panic!("cannot reach WSGATE_TEST_REDIS_URL={url}: {e:?}"));
        Self { store, prefix, url }
    }

    /// A plain connection to the same Redis, for inspecting keys.
    pub(crate) async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .expect("valid url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    }

    pub(crate) fn record_key(&self, id: &str) -> String {
        format!("{}:conn:{id}", self.prefix)
    }

    pub(crate) fn node_key(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// Keys currently under this test's prefix.
    pub(crate) async fn keys(&self) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut self.raw().await)
            .await
            .expect("KEYS")
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop cannot await, and this must also run after a panic.
        let Ok(mut conn) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _ = redis::cmd("DEL").arg(keys).exec(&mut conn);
        }
    }
}

/// A loopback port nothing listens on (at least right now).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A `redis-server` child process on a fixed port, killed on drop.
pub(crate) struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    pub(crate) async fn start() -> Self {
        let port = free_port();
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and waits for the process to exit.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (a killed server has lost its data).
    pub(crate) async fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `redis-server` ({e}); install it and put it on PATH to run the Redis tests")
            });
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let client = redis::Client::open(self.url()).expect("valid url");
        let deadline = tokio::time::Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING").exec_async(&mut conn).await.is_ok()
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server on port {} exited early: {status}", self.port);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not answer PING within {READY_DEADLINE:?}",
                self.port
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
