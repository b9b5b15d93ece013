//! Brokers for the broker integration tests: checks that the shared NATS, RabbitMQ and Redis are
//! reachable (failing with the broker's name when not), a private `nats-server` with JetStream
//! file storage that a test may kill and restart, and a TCP proxy that can cut every connection
//! to a broker and refuse new ones.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wsgate_connection_store::conformance::servers::free_port;

use super::DEADLINE;

/// The shared NATS server (with JetStream).
pub const NATS: &str = "nats://127.0.0.1:4222";
/// The shared RabbitMQ (guest/guest).
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The shared Redis.
pub const REDIS: &str = "redis://127.0.0.1:6379";

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Fails the test, naming the broker, when nothing answers at `addr`.
pub async fn require(broker: &str, addr: &str) {
    let reachable = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(
        reachable,
        "{broker} is not reachable at {addr}: start it (see scripts/test.sh) to run the broker tests"
    );
}

/// A connected NATS client for `url` (failing the test, naming NATS, when it is not there).
pub async fn nats_client(url: &str) -> async_nats::Client {
    async_nats::connect(url)
        .await
        .unwrap_or_else(|e| panic!("NATS at {url} is not reachable: {e}"))
}

/// A `nats-server -js` child process with file storage in its own directory, on a fixed port
/// (so it can be restarted where the gateway expects it), killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts clients.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("wsgate-nats-"));
        std::fs::create_dir_all(&dir).expect("create the JetStream directory");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        server.restart().await;
        server
    }

    /// `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Its stored streams stay on disk.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and storage, and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        let binary = if std::path::Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server"
        } else {
            "nats-server"
        };
        let child = Command::new(binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start nats-server ({e}): install it to run the NATS tests")
            });
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            // The server listens for clients once JetStream has recovered its streams.
            if let Ok(client) = async_nats::connect(self.url()).await
                && client.flush().await.is_ok()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server at {} did not come up within {DEADLINE:?}",
                self.url()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP proxy on a free loopback port in front of `upstream`: [`Proxy::cut`] closes every
/// connection through it and refuses new ones until [`Proxy::restore`].
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    upstream: String,
    /// `true` while cut: every relay stops and the listener is closed.
    cut: watch::Sender<bool>,
    listening: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts relaying to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let (cut, _) = watch::channel(false);
        let mut proxy = Self {
            port: 0,
            upstream: upstream.to_owned(),
            cut,
            listening: Arc::new(AtomicBool::new(false)),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        proxy.port = listener.local_addr().expect("addr").port();
        proxy.serve(listener);
        proxy
    }

    /// `127.0.0.1:{port}`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Closes every relayed connection and the listener (new connections are refused).
    pub async fn cut(&self) {
        self.cut.send_replace(true);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.listening.load(Ordering::SeqCst) {
            assert!(tokio::time::Instant::now() < deadline, "proxy did not stop");
            tokio::task::yield_now().await;
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        self.cut.send_replace(false);
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the proxy's port again");
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let mut cut = self.cut.subscribe();
        let upstream = self.upstream.clone();
        let listening = Arc::clone(&self.listening);
        listening.store(true, Ordering::SeqCst);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = cut.wait_for(|c| *c) => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                let upstream = upstream.clone();
                let mut cut = cut.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = cut.wait_for(|c| *c) => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
            drop(listener);
            listening.store(false, Ordering::SeqCst);
        });
    }
}
