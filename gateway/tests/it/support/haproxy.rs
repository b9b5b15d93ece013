//! A private HAProxy in front of gateway nodes, as a production cluster runs them: least connections,
//! WebSocket tunnels, `/readyz` health checks (a draining node leaves the pool), and a stats
//! page the tests read to wait until the pool is what they expect.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wsgate_connection_store::conformance::servers::free_port;
use wsgate_connection_store::conformance::unique_suffix;

/// How long a server takes to change state in the pool at most (checks every 100 ms, one failed
/// check takes it out, two good ones bring it back), with slack for a loaded machine.
pub const POOL_DEADLINE: Duration = Duration::from_secs(20);

/// `haproxy -db` on a free loopback port; stopped when dropped.
pub struct Haproxy {
    child: Child,
    pub addr: SocketAddr,
    stats: SocketAddr,
    dir: PathBuf,
}

impl Haproxy {
    /// Balances `servers` (gateway nodes, named `n1`, `n2`, … in order). Fails the test with a
    /// clear message when `haproxy` is not installed (scripts/test.sh installs it).
    pub async fn start(servers: &[SocketAddr]) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let stats = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let dir = std::env::temp_dir().join(format!("wsgate-haproxy-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("haproxy.cfg");
        std::fs::write(&config, config_text(addr, stats, servers)).expect("write config");
        let log = std::fs::File::create(dir.join("haproxy.log")).expect("log file");
        let child = Command::new(executable())
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start haproxy ({error}); install it (Debian: apt-get install haproxy)"
                )
            });
        let mut proxy = Self {
            child,
            addr,
            stats,
            dir,
        };
        proxy.wait_up(servers.len()).await;
        proxy
    }

    /// `ws://addr{path}` through the balancer.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// `http://addr` through the balancer (for the callback API).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The servers the pool holds as UP now, by name.
    pub async fn up(&self) -> Vec<String> {
        let url = format!("http://{}/stats;csv", self.stats);
        let Ok(response) = super::http().get(url).send().await else {
            return Vec::new();
        };
        let text = response.text().await.unwrap_or_default();
        // CSV columns: pxname, svname, …, status is the 18th.
        text.lines()
            .filter(|line| line.starts_with("gateways,n"))
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                (fields.get(17) == Some(&"UP")).then(|| fields[1].to_string())
            })
            .collect()
    }

    /// Waits until exactly `count` servers are UP.
    pub async fn wait_up(&mut self, count: usize) {
        let deadline = tokio::time::Instant::now() + POOL_DEADLINE;
        loop {
            if self.up().await.len() == count {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "haproxy exited ({status}); log:\n{}",
                    std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "haproxy: {count} servers not up within {POOL_DEADLINE:?} (up: {:?}); log:\n{}",
                self.up().await,
                std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `haproxy` on the PATH, else Debian's `/usr/sbin/haproxy` (not on a user's PATH).
fn executable() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/haproxy");
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("haproxy").is_file()));
    if on_path || !sbin.is_file() {
        PathBuf::from("haproxy")
    } else {
        sbin
    }
}

/// The configuration: the settings of `deploy/compose/haproxy.cfg`, on loopback ports with
/// faster health checks.
fn config_text(addr: SocketAddr, stats: SocketAddr, servers: &[SocketAddr]) -> String {
    let mut text = format!(
        "global
    maxconn 4000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # An upgraded WebSocket is a tunnel: idle clients stay connected.
    timeout tunnel 1h
    timeout http-keep-alive 10s

frontend stats
    bind {stats}
    stats enable
    stats uri /stats

frontend wsgate
    bind {addr}
    default_backend gateways

backend gateways
    balance leastconn
    # /readyz answers 503 from the moment a node starts draining: it leaves the pool at once.
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 100ms fall 1 rise 2
    # A request whose connection failed (a node that just exited) is tried on another server;
    # never a 503, which a callback may answer after its post was delivered.
    retry-on conn-failure empty-response
    retries 2
    option redispatch
"
    );
    for (i, server) in servers.iter().enumerate() {
        text.push_str(&format!("    server n{} {server} check\n", i + 1));
    }
    text
}
