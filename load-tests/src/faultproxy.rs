//! `wsgate-load faultproxy`: a TCP proxy that can stall or reset what it carries, for fault
//! runs where network namespaces are not available (`load-tests/scripts/cluster-lib.sh`).
//!
//! Modes, set with `PUT /mode` on the control listener (body `pass`, `stall` or `reset`):
//!
//! - `pass`: bytes flow both ways.
//! - `stall`: nothing flows and new connections wait before reaching the upstream; bytes stay
//!   in the socket buffers and flow again on `pass`, as after a healed partition (the closest a
//!   proxy gets to packets dropped without RST).
//! - `reset`: every connection, open or new, is closed with a TCP reset; then back to `pass`.
//!
//! Both listeners are loopback-only. Each connection copies through a 16 KiB buffer per
//! direction, so memory per connection is bounded.

use crate::httpd::{read_body, resp};
use crate::net::listen;
use anyhow::Result;
use hyper::{Method, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// What the proxy does to its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward.
    Pass,
    /// Forward nothing until the next `Pass`.
    Stall,
    /// Reset every connection (a pulse: the mode returns to `Pass`, `epoch` tells them apart).
    Reset {
        /// Increases with every reset.
        epoch: u64,
    },
}

impl Mode {
    fn parse(text: &str, epoch: u64) -> Option<Self> {
        match text.trim() {
            "pass" => Some(Self::Pass),
            "stall" => Some(Self::Stall),
            "reset" => Some(Self::Reset { epoch }),
            _ => None,
        }
    }
}

/// A started proxy.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The control listener.
    pub control: SocketAddr,
}

/// Starts the proxy's listeners on the current runtime.
pub fn start(listen_addr: SocketAddr, upstream: SocketAddr, control: SocketAddr) -> Result<Proxy> {
    crate::net::ensure_loopback(&upstream)?;
    let data = listen(listen_addr, 1024)?;
    let ctl = listen(control, 64)?;
    let out = Proxy {
        addr: data.local_addr()?,
        control: ctl.local_addr()?,
    };
    let (tx, rx) = watch::channel(Mode::Pass);
    let tx = Arc::new(tx);
    tokio::spawn(async move {
        let mut epoch = 0u64;
        while let Ok((s, _)) = ctl.accept().await {
            epoch += 1;
            let tx = tx.clone();
            tokio::spawn(crate::httpd::serve(s, move |req| {
                let tx = tx.clone();
                async move {
                    if req.method() != Method::PUT || req.uri().path() != "/mode" {
                        return resp(StatusCode::NOT_FOUND, "");
                    }
                    let body = read_body(req.into_body(), 64).await.unwrap_or_default();
                    match std::str::from_utf8(&body)
                        .ok()
                        .and_then(|t| Mode::parse(t, epoch))
                    {
                        Some(m) => {
                            tx.send_replace(m);
                            resp(StatusCode::NO_CONTENT, "")
                        }
                        None => resp(StatusCode::BAD_REQUEST, "body: pass, stall or reset\n"),
                    }
                }
            }));
        }
    });
    tokio::spawn(async move {
        loop {
            match data.accept().await {
                Ok((client, _)) => {
                    tokio::spawn(carry(client, upstream, rx.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    });
    Ok(out)
}

/// Runs the proxy until the process ends; prints `{"listening":..,"control":..}` first.
pub async fn run(listen_addr: SocketAddr, upstream: SocketAddr, control: SocketAddr) -> Result<()> {
    let p = start(listen_addr, upstream, control)?;
    println!(
        "{}",
        serde_json::json!({"listening": p.addr.to_string(), "control": p.control.to_string()})
    );
    std::future::pending::<()>().await;
    Ok(())
}

/// Closes `s` with a reset.
fn reset(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

async fn wait_pass(rx: &mut watch::Receiver<Mode>, seen_reset: &mut Option<u64>) -> bool {
    loop {
        let m = *rx.borrow_and_update();
        match m {
            Mode::Pass => return true,
            Mode::Reset { epoch } if *seen_reset != Some(epoch) => {
                *seen_reset = Some(epoch);
                return false;
            }
            Mode::Reset { .. } => return true,
            Mode::Stall => {
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}

async fn carry(client: TcpStream, upstream: SocketAddr, mut rx: watch::Receiver<Mode>) {
    let _ = client.set_nodelay(true);
    // A reset that happened before this connection does not apply to it.
    let mut seen_reset = match *rx.borrow_and_update() {
        Mode::Reset { epoch } => Some(epoch),
        _ => None,
    };
    if !wait_pass(&mut rx, &mut seen_reset).await {
        return reset(client);
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut a = vec![0u8; 16 * 1024];
    let mut b = vec![0u8; 16 * 1024];
    loop {
        let passing = matches!(*rx.borrow(), Mode::Pass | Mode::Reset { .. });
        tokio::select! {
            r = cr.read(&mut a), if passing => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => if sw.write_all(&a[..n]).await.is_err() { break },
            },
            r = sr.read(&mut b), if passing => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => if cw.write_all(&b[..n]).await.is_err() { break },
            },
            c = rx.changed() => {
                if c.is_err() {
                    break;
                }
                if let Mode::Reset { epoch } = *rx.borrow_and_update()
                    && seen_reset != Some(epoch)
                {
                    let (Ok(c), Ok(s)) = (cr.reunite(cw), sr.reunite(sw)) else { return };
                    reset(c);
                    reset(s);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes() {
        assert_eq!(Mode::parse("pass\n", 1), Some(Mode::Pass));
        assert_eq!(Mode::parse("stall", 1), Some(Mode::Stall));
        assert_eq!(Mode::parse("reset", 4), Some(Mode::Reset { epoch: 4 }));
        assert_eq!(Mode::parse("drop", 1), None);
    }
}
