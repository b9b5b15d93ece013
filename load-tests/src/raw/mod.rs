//! The `raw` baseline: plain tokio-tungstenite with a 4 KiB read buffer and write buffer 0,
//! speaking the same client-visible protocol as the gateway, on one port.
//!
//! * WebSocket (any path): `{"action":"whoami"}` → `{"connectionId":"<id>"}`;
//!   `{"action":"echo",...}` and `{"action":"echo_http",...}` (and binary frames) → echoed;
//!   `{"action":"ping"}` → `{"action":"pong"}`; anything else is ignored.
//! * HTTP on the same port: `POST /{stage}/@connections/{id}` (or `%40connections`) delivers
//!   the body as one frame → 200, unknown id → 410, full queue → 429, too large → 413;
//!   `GET /healthz` → 200; `GET /stats` → counters. `PUT /{stage}/@connections/{id}/groups/{g}`
//!   and `POST /{stage}/@groups/{g}` are a group fan-out one member at a time (see `groups`).
//!
//! With `upstream` set (`raw --upstream ADDR`, the `raw-proxy` target), echoes go through
//! the integration backend at ADDR instead (see `proxy`).
//!
//! A connection is told apart by its first bytes: a request starting with `GET ` (other than
//! `GET /healthz` or `GET /stats`) goes to the WebSocket handshake, everything else to the
//! HTTP server. Each connection is registered with a bounded queue (1024 frames) for push.

mod groups;
mod http;
mod proxy;
mod ws;

use crate::net::listen;
use anyhow::Result;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Settings of the raw server.
#[derive(Clone, Debug)]
pub struct RawConfig {
    /// Address to listen on (loopback only; port 0 picks one).
    pub listen: SocketAddr,
    /// Register connections for push (off: a bare idle/echo server).
    pub registry: bool,
    /// Frames queued per connection for push.
    pub queue: usize,
    /// Listen backlog.
    pub backlog: u32,
    /// With a backend address, `echo` messages go through it (`POST /echo-http`) and its
    /// answer is sent back: the raw proxy baseline (see `proxy`).
    pub upstream: Option<SocketAddr>,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            registry: true,
            queue: 1024,
            backlog: 4096,
            upstream: None,
        }
    }
}

const SHARDS: usize = 64;

/// Connection id → push queue, sharded.
struct Registry {
    shards: Vec<Mutex<HashMap<u64, mpsc::Sender<Message>>>>,
}

impl Registry {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, mpsc::Sender<Message>>> {
        &self.shards[usize::try_from(id).unwrap_or(0) % SHARDS]
    }

    fn insert(&self, id: u64, tx: mpsc::Sender<Message>) {
        self.shard(id)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
    }

    fn remove(&self, id: u64) {
        self.shard(id)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    fn get(&self, id: u64) -> Option<mpsc::Sender<Message>> {
        self.shard(id)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }
}

/// Counters of a raw server.
#[derive(Debug, Default, Serialize)]
pub struct RawStats {
    /// WebSocket connections accepted since start.
    pub accepted: u64,
    /// Open now.
    pub open: i64,
    /// Frames delivered to a queue by the callback endpoint.
    pub pushed: u64,
    /// Posts answered 410.
    pub gone: u64,
    /// Messages echoed.
    pub echoed: u64,
}

struct Shared {
    cfg: RawConfig,
    next_id: AtomicU64,
    registry: Option<Registry>,
    groups: groups::Groups,
    open: AtomicI64,
    pushed: AtomicU64,
    gone: AtomicU64,
    echoed: AtomicU64,
}

impl Shared {
    fn stats(&self) -> RawStats {
        RawStats {
            accepted: self.next_id.load(Relaxed),
            open: self.open.load(Relaxed),
            pushed: self.pushed.load(Relaxed),
            gone: self.gone.load(Relaxed),
            echoed: self.echoed.load(Relaxed),
        }
    }
}

/// A running raw server.
pub struct RawServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RawServer {
    /// `ws://ADDR/{stage}`.
    pub fn ws_url(&self, stage: &str) -> String {
        format!("ws://{}/{stage}", self.addr)
    }

    /// Counters.
    pub fn stats(&self) -> RawStats {
        self.shared.stats()
    }

    /// Stops accepting; open connections end when the runtime does.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Starts a raw server on the current runtime.
pub async fn start(cfg: RawConfig) -> Result<RawServer> {
    let listener = listen(cfg.listen, cfg.backlog)?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        registry: cfg.registry.then(Registry::new),
        groups: groups::Groups::default(),
        cfg,
        next_id: AtomicU64::new(0),
        open: AtomicI64::new(0),
        pushed: AtomicU64::new(0),
        gone: AtomicU64::new(0),
        echoed: AtomicU64::new(0),
    });
    let stop = CancellationToken::new();
    let task = tokio::spawn(accept_loop(listener, shared.clone(), stop.clone()));
    Ok(RawServer {
        addr,
        shared,
        stop,
        task,
    })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(dispatch(stream, shared.clone()));
                }
                // Out of file descriptors or similar: back off briefly.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
        }
    }
}

/// Whether the first bytes of a connection start a WebSocket upgrade.
fn is_websocket(head: &[u8]) -> bool {
    head.first() == Some(&b'G')
        && !head.starts_with(b"GET /healthz")
        && !head.starts_with(b"GET /stats")
}

async fn dispatch(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let mut head = [0u8; 16];
    let n = match tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut head)).await {
        Ok(Ok(n)) if n > 0 => n,
        _ => return,
    };
    if is_websocket(&head[..n]) {
        ws::serve(stream, shared).await;
    } else {
        crate::httpd::serve(stream, move |req| http::handle(req, shared.clone())).await;
    }
}

/// Runs a raw server until `max` elapses, Ctrl-C, or (with `lifeline`) stdin closes.
/// Prints `{"listening":"ADDR","pid":PID}` on stdout once listening.
pub async fn run_standalone(cfg: RawConfig, max: Duration, lifeline: bool) -> Result<()> {
    let server = start(cfg).await?;
    println!(
        "{}",
        serde_json::json!({"listening": server.addr.to_string(), "pid": std::process::id()})
    );
    let stdin_closed = async {
        if lifeline {
            use tokio::io::AsyncReadExt;
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = tokio::time::sleep(max) => {}
        () = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    if !lifeline {
        eprintln!(
            "raw: {}",
            serde_json::to_string(&server.stats()).unwrap_or_default()
        );
    }
    server.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_websocket_from_http() {
        assert!(is_websocket(b"GET /prod HTTP/1.1"));
        assert!(is_websocket(b"G"));
        assert!(!is_websocket(b"GET /healthz HTT"));
        assert!(!is_websocket(b"POST /prod/@conn"));
    }
}
