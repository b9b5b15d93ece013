//! Accepting connections: the listening sockets, the loop that accepts on each and serves what
//! it accepts (PROXY protocol header, TLS, HTTP/1 with upgrades), and moving a listener to the
//! address a reload names: the new socket is bound before the reload is applied (a bind that
//! fails refuses the reload), then accepts, and the old one stops accepting; the WebSockets it
//! accepted are not touched.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::Config;
use crate::domains::LiveDomains;
use crate::proxy_protocol::{self, Rewound};
use crate::raw_head;
use crate::state::Bound;
use crate::telemetry;
use crate::tls::LiveTls;
use crate::ws::connect::LocalAddr;

/// One of the gateway's listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    /// `listen`.
    Main,
    /// `callback.listen`.
    Callback,
}

impl Which {
    /// The configuration key of its address.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Self::Main => "listen",
            Self::Callback => "callback.listen",
        }
    }

    fn configured(self, config: &Config) -> Option<SocketAddr> {
        match self {
            Self::Main => Some(config.listen),
            Self::Callback => config.callback.listen,
        }
    }
}

/// A listener in force.
struct Slot {
    /// The address the configuration names (port 0 stays 0: compared with the next reload's).
    configured: SocketAddr,
    /// The address bound.
    bound: SocketAddr,
    /// What its loop serves (cloned for the loop that replaces it); its `stop` stops that
    /// loop.
    serving: Serving,
}

/// Sockets bound for a reload, served once it is applied ([`Accepting::switch`]); dropped
/// (closed) if it is not.
#[derive(Debug, Default)]
pub(crate) struct Moves(Vec<(Which, SocketAddr, TcpListener)>);

/// The gateway's accept loops.
pub(crate) struct Accepting {
    slots: Mutex<Vec<(Which, Slot)>>,
    /// Every accept loop, the stopped ones until their connections are done.
    loops: TaskTracker,
    /// The gateway's `stop_accepting`: each loop stops on a child of it.
    stop: CancellationToken,
    bound: Arc<Bound>,
}

impl std::fmt::Debug for Accepting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepting")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl Accepting {
    /// No loop yet; loops stop when `stop` is cancelled; `bound` is told their addresses.
    pub(crate) fn new(stop: CancellationToken, bound: Arc<Bound>) -> Self {
        Self {
            slots: Mutex::new(Vec::new()),
            loops: TaskTracker::new(),
            stop,
            bound,
        }
    }

    /// Accepts on `listener` (bound to what `configured` names) with `serving`.
    ///
    /// # Errors
    /// The listener's address cannot be read.
    pub(crate) fn serve(
        &self,
        which: Which,
        listener: TcpListener,
        configured: SocketAddr,
        serving: Serving,
    ) -> std::io::Result<SocketAddr> {
        let bound = listener.local_addr()?;
        let serving = Serving {
            stop: self.stop.child_token(),
            ..serving
        };
        self.loops.spawn(accept_loop(listener, serving.clone()));
        let slot = Slot {
            configured,
            bound,
            serving,
        };
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // The loop it replaces stops once the new one accepts.
        if let Some(at) = slots.iter().position(|(w, _)| *w == which) {
            let (_, old) = slots.swap_remove(at);
            old.serving.stop.cancel();
        }
        slots.push((which, slot));
        self.bound.set(which == Which::Callback, bound);
        Ok(bound)
    }

    /// Binds the addresses `config` names where they differ from the ones in force. A
    /// listener cannot be added or removed by a reload (that is `callback.listen` set or unset,
    /// refused as a key fixed at start before this is asked).
    ///
    /// # Errors
    /// The one line a start would print (`listen: cannot bind 127.0.0.1:80: …`).
    pub(crate) fn bind_changed(&self, config: &Config) -> Result<Moves, String> {
        let wanted: Vec<(Which, SocketAddr)> = {
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            (slots.iter())
                .filter_map(|(which, slot)| {
                    let addr = which.configured(config)?;
                    (addr != slot.configured).then_some((*which, addr))
                })
                .collect()
        };
        let mut moves = Moves::default();
        for (which, addr) in wanted {
            let listener =
                listen(addr).map_err(|e| format!("{}: cannot bind {addr}: {e}", which.key()))?;
            moves.0.push((which, addr, listener));
        }
        Ok(moves)
    }

    /// Serves on the sockets of `moves` and stops accepting on the ones they replace (what
    /// those accepted goes on).
    pub(crate) fn switch(&self, moves: Moves) {
        for (which, configured, listener) in moves.0 {
            let previous = {
                let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                (slots.iter())
                    .find(|(w, _)| *w == which)
                    .map(|(_, slot)| (slot.bound, slot.serving.clone()))
            };
            let Some((from, serving)) = previous else {
                continue;
            };
            match self.serve(which, listener, configured, serving) {
                Ok(to) => {
                    tracing::info!(listener = which.key(), %from, %to, "listener moved; connections accepted on the old address go on")
                }
                Err(error) => {
                    tracing::error!(listener = which.key(), %error, "cannot serve the new listener; the old one goes on")
                }
            }
        }
    }

    /// Waits up to `within` for every loop to end (after the gateway's `stop_accepting`).
    pub(crate) async fn wait(&self, within: Duration) {
        self.loops.close();
        let _ = tokio::time::timeout(within, self.loops.wait()).await;
    }
}

/// Pending connections the kernel queues per listener (capped by `net.core.somaxconn`).
/// `TcpListener::bind` uses 128, which a burst of handshakes overflows: the dropped SYNs are
/// retried only after a second.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `addr` with a deep accept backlog.
pub(crate) fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// What an accept loop serves, and how.
#[derive(Clone)]
pub(crate) struct Serving {
    pub(crate) router: Router,
    /// Custom domains: rewrites their requests to `/{stage}/…` before `router` sees them.
    pub(crate) domains: LiveDomains,
    /// `limits.max_http_connections`: connections the loop serves at once.
    pub(crate) max_http_connections: usize,
    /// Bounds the TLS handshake and the upgrade request's headers.
    pub(crate) handshake_timeout: Duration,
    /// `limits.socket_send_buffer_bytes`: SO_SNDBUF of each accepted socket.
    pub(crate) send_buffer: Option<usize>,
    /// The TLS settings in force (a reload swaps them), when TLS is on.
    pub(crate) tls: Option<LiveTls>,
    /// Every connection starts with a PROXY protocol header.
    pub(crate) proxy_protocol: bool,
    pub(crate) stop: CancellationToken,
}

/// Accepts and serves connections, at most `max_http_connections` at a time. Each accepted
/// connection holds a permit until hyper is done with it: when it closes, or when it is upgraded
/// to a WebSocket (those are bounded by `limits.max_connections` instead). With every permit
/// taken the loop does not call `accept`, so new connections wait in the kernel's accept backlog
/// (or are refused by the kernel once it is full) rather than being accepted and closed.
async fn accept_loop(listener: TcpListener, serving: Serving) {
    let connections = tokio_util::task::TaskTracker::new();
    let permits = Arc::new(Semaphore::new(serving.max_http_connections));
    loop {
        let permit = tokio::select! {
            () = serving.stop.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        if permits.available_permits() == 0 {
            tracing::debug!(
                limit = serving.max_http_connections,
                "limits.max_http_connections reached; not accepting until a connection ends"
            );
        }
        tokio::select! {
            () = serving.stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, serving.clone(), permit));
                }
                Err(error) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    // Closed now, not after the connections below: a moved listener's address is free at once.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serves one connection; `_permit` is its slot under `limits.max_http_connections`, given back
/// when this returns. On a PROXY protocol listener the header is read first (within
/// `limits.handshake_timeout`) and its source address stands for `peer` from then on; without
/// a valid header the connection is closed.
async fn serve_connection(
    mut stream: TcpStream,
    tcp_peer: SocketAddr,
    serving: Serving,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok().map(LocalAddr);
    if let Some(bytes) = serving.send_buffer
        && let Err(error) = socket2::SockRef::from(&stream).set_send_buffer_size(bytes)
    {
        tracing::debug!(peer = %tcp_peer, %error, "cannot set the socket send buffer");
    }
    let (stream, peer) = if serving.proxy_protocol {
        let read = proxy_protocol::read_header(&mut stream);
        match tokio::time::timeout(serving.handshake_timeout, read).await {
            Ok(Ok(header)) => (
                Rewound::new(header.rest, stream),
                header.source.unwrap_or(tcp_peer),
            ),
            Ok(Err(error)) => {
                metrics::counter!(telemetry::PROXY_HEADER_REFUSED_TOTAL).increment(1);
                tracing::debug!(peer = %tcp_peer, %error, "connection closed: no valid PROXY protocol header");
                return;
            }
            Err(_) => {
                metrics::counter!(telemetry::PROXY_HEADER_REFUSED_TOTAL).increment(1);
                tracing::debug!(peer = %tcp_peer, "connection closed: PROXY protocol header timed out");
                return;
            }
        }
    } else {
        (Rewound::new(Bytes::new(), stream), tcp_peer)
    };
    match serving.tls.as_ref().map(crate::tls::acceptor) {
        None => {
            let (stream, heads) = raw_head::tap(stream);
            serve_http(TokioIo::new(stream), (peer, local), heads, serving).await;
        }
        Some(acceptor) => {
            match tokio::time::timeout(serving.handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => {
                    let (stream, heads) = raw_head::tap(tls_stream);
                    serve_http(TokioIo::new(stream), (peer, local), heads, serving).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Serves HTTP/1 on `io`; `heads` gives each request the client's spelling of its header
/// names (see [`raw_head`]).
pub(crate) async fn serve_http<I>(
    io: I,
    (peer, local): (SocketAddr, Option<LocalAddr>),
    heads: raw_head::HeadReader,
    serving: Serving,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let Serving {
        router,
        domains,
        handshake_timeout,
        stop,
        ..
    } = serving;
    let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
        if let Some(raw) = heads.take(&request) {
            request.extensions_mut().insert(raw);
        }
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(local) = local {
            request.extensions_mut().insert(local);
        }
        let mapped = domains.load().route(&mut request);
        let router = router.clone();
        async move {
            let response = match mapped {
                Ok(()) => router.oneshot(request.map(Body::new)).await.into_response(),
                Err(unmapped) => unmapped.into_response(),
            };
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "HTTP connection ended with an error");
            }
        }
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
        }
    }
}
