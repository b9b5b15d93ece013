//! A TCP proxy between the browser and the gateway that the browser test cuts to simulate a
//! network loss: `cut` drops every proxied connection at once (the browser sees its WebSocket
//! end without a close frame, code 1006) and refuses new ones until `restore`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The proxy, listening on an ephemeral loopback port; stops when dropped.
pub(crate) struct Proxy {
    addr: SocketAddr,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    cut: watch::Sender<bool>,
    refused: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let upstream = Arc::new(Mutex::new(None::<SocketAddr>));
        let (cut, _) = watch::channel(false);
        let (refused_tx, refused) = watch::channel(0u64);
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&upstream),
            cut.clone(),
            refused_tx,
        ));
        Ok(Self {
            addr,
            upstream,
            cut,
            refused,
            task,
        })
    }

    /// Where the browser connects.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where connections are forwarded (until set, they are refused).
    pub(crate) fn forward_to(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap_or_else(PoisonError::into_inner) = Some(upstream);
    }

    /// The network is lost: every open connection is dropped, new ones are refused.
    pub(crate) fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// The network is back.
    pub(crate) fn restore(&self) {
        self.cut.send_replace(false);
    }

    /// Watches the number of connections refused so far.
    pub(crate) fn refused(&self) -> watch::Receiver<u64> {
        self.refused.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    cut: watch::Sender<bool>,
    refused: watch::Sender<u64>,
) {
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((inbound, _)) = listener.accept().await {
        let target = *upstream.lock().unwrap_or_else(PoisonError::into_inner);
        let (Some(target), false) = (target, *cut.borrow()) else {
            drop(inbound);
            refused.send_modify(|n| *n += 1);
            continue;
        };
        let mut cut = cut.subscribe();
        connections.spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            let mut inbound = inbound;
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = cut.wait_for(|cut| *cut) => {}
            }
        });
        // Forget the connections that ended.
        while connections.try_join_next().is_some() {}
    }
}
