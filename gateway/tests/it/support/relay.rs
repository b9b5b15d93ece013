//! A TCP relay in front of a real service (Redis) that holds what its clients send once a write
//! matches the test's predicate, until the test releases it: the way to stop a gateway at one
//! exact store call, deterministically, without touching the service itself.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

type Predicate = dyn Fn(&[u8]) -> bool + Send + Sync;

/// The relay; its tasks stop when it is dropped.
pub struct Relay {
    port: u16,
    held: watch::Receiver<bool>,
    release: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

struct Gate {
    hold_when: Box<Predicate>,
    /// Writes that go through even while holding (and do not start it).
    pass_when: Box<Predicate>,
    /// Set at the first matching write: from then on every write waits for the release.
    held: watch::Sender<bool>,
    released: watch::Receiver<bool>,
}

impl Relay {
    /// Relays to `upstream` (`host:port`); the first client write for which `hold_when` is true,
    /// and every write after it on any connection, waits until [`Relay::release`].
    pub async fn start(
        upstream: &str,
        hold_when: impl Fn(&[u8]) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self::start_except(upstream, hold_when, |_| false).await
    }

    /// As [`Relay::start`], except that writes for which `pass_when` is true always go
    /// through (on a connection that is not already waiting behind a held write).
    pub async fn start_except(
        upstream: &str,
        hold_when: impl Fn(&[u8]) -> bool + Send + Sync + 'static,
        pass_when: impl Fn(&[u8]) -> bool + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let (held_tx, held) = watch::channel(false);
        let (release, released) = watch::channel(false);
        let gate = Arc::new(Gate {
            hold_when: Box::new(hold_when),
            pass_when: Box::new(pass_when),
            held: held_tx,
            released,
        });
        let upstream = upstream.to_string();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                connections.spawn(relay(client, server, Arc::clone(&gate)));
            }
        });
        Self {
            port,
            held,
            release,
            task,
        }
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Waits until a write is held.
    pub async fn held(&self) {
        let mut held = self.held.clone();
        held.wait_for(|held| *held).await.expect("relay running");
    }

    /// Lets every held write through, and all later ones.
    pub fn release(&self) {
        self.release.send_replace(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, gate: Arc<Gate>) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let down = tokio::io::copy(&mut from_server, &mut to_client);
    let up = async {
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            let read = match from_client.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            let chunk = &buffer[..read];
            let mut released = gate.released.clone();
            if !*released.borrow()
                && !(gate.pass_when)(chunk)
                && (*gate.held.borrow() || (gate.hold_when)(chunk))
            {
                gate.held.send_replace(true);
                if released.wait_for(|released| *released).await.is_err() {
                    return;
                }
            }
            if to_server.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = down => {}
        () = up => {}
    }
}
