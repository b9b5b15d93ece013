//! A private `nats-server` with JetStream on a loopback port it picks itself, for when no NATS server
//! answers at the configured URL (and for the tests): started as a child process with its store
//! in a fresh temporary directory, stopped and cleaned up when dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// Where `nats-server` is looked for when it is not on `PATH` (Debian installs it in /usr/sbin).
const FALLBACK_PATHS: &[&str] = &["/usr/sbin/nats-server", "/usr/local/bin/nats-server"];

/// How long a fresh server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running private NATS server.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    addr: SocketAddr,
    store: PathBuf,
}

impl NatsServer {
    /// Starts `nats-server -js` on a free loopback port and waits until it accepts connections.
    ///
    /// # Errors
    /// No `nats-server` binary, or one that does not start in time.
    pub async fn start() -> anyhow::Result<Self> {
        let binary = find_binary().context(
            "no nats-server binary on PATH or in /usr/sbin (install the Debian package nats-server)",
        )?;
        // The server picks its own port (`-p -1`) and writes it to a ports file: a port chosen
        // here and released before the server binds it could be taken meanwhile (by another
        // test's server among others), and the readiness check would then reach that one.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let store = std::env::temp_dir().join(format!(
            "wsgate-queue-chat-nats-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(store.join("jetstream"))
            .arg("--ports_file_dir")
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Self {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            store,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let ports_file = self.child.id().map(|pid| {
            let name = format!("nats-server_{pid}.ports");
            self.store.join(name)
        });
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("nats-server exited at start ({status})");
            }
            if self.addr.port() == 0
                && let Some(addr) = ports_file.as_deref().and_then(client_address)
            {
                self.addr = addr;
            }
            if self.addr.port() != 0 && tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("nats-server did not accept connections in time");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The client address in a ports file (`{"nats":["nats://127.0.0.1:PORT"]}`), once written.
fn client_address(path: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(path).ok()?;
    let ports: serde_json::Value = serde_json::from_str(&text).ok()?;
    ports["nats"][0]
        .as_str()?
        .strip_prefix("nats://")?
        .parse()
        .ok()
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

fn find_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        FALLBACK_PATHS
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .map(Path::to_path_buf)
    })
}
