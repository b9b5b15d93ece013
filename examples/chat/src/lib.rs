//! The chat example: starts a wsgate gateway in-process from `wsgate.yaml` and the chat backend
//! (Lambda-proxy handlers plus the web page) beside it, wired to each other.
//!
//! # Layout
//! - [`backend`]: `$connect` / `$disconnect` / `sendmessage` handlers, the members, rooms as
//!   gateway groups (one callback per message).
//! - [`page`]: the HTML, JavaScript and CSS, with the gateway URL written in.
//! - [`start`] / [`Running`]: both servers on given (or ephemeral) ports, and their shutdown.

pub mod backend;
pub mod page;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use wsgate::{Config, Gateway, Listeners};

use crate::backend::{Chat, Members};
use crate::page::PageSettings;

/// The stage the page connects to; `wsgate.yaml` must define it.
pub const STAGE: &str = "prod";

/// The stage variable that holds the backend's base URL.
pub const BACKEND_VARIABLE: &str = "backend";

/// The gateway configuration shipped with the example.
pub const DEFAULT_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/wsgate.yaml");

/// Where to listen and which configuration to load.
#[derive(Debug, Clone)]
pub struct Options {
    /// The gateway configuration (YAML; `WSGATE_*` environment variables apply).
    pub config: PathBuf,
    /// The gateway's listener; the configuration's `listen` when absent.
    pub listen: Option<SocketAddr>,
    /// The backend's listener (the web page and the integration endpoints).
    pub backend_listen: SocketAddr,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: PathBuf::from(DEFAULT_CONFIG),
            listen: None,
            backend_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8081)),
        }
    }
}

impl Options {
    /// Both servers on ephemeral loopback ports, with the shipped configuration (for tests).
    pub fn ephemeral() -> Self {
        Self {
            listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            backend_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            ..Self::default()
        }
    }
}

/// The gateway and the backend, running.
#[derive(Debug)]
pub struct Running {
    gateway: Gateway,
    gateway_addr: SocketAddr,
    backend_addr: SocketAddr,
    chat: Arc<Chat>,
    stop_backend: oneshot::Sender<()>,
    backend: JoinHandle<std::io::Result<()>>,
}

/// The address to dial for a listener bound to `addr` (loopback for a wildcard bind).
pub fn dialable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let loopback = match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        };
        SocketAddr::new(loopback, addr.port())
    } else {
        addr
    }
}

/// Loads the configuration, starts the backend and the gateway, and wires them together.
///
/// # Errors
/// An unreadable or invalid configuration, a configuration without the `prod` stage, a port
/// that cannot be bound, or a gateway that cannot start.
pub async fn start(options: Options) -> anyhow::Result<Running> {
    let mut config = Config::load(&options.config)
        .with_context(|| format!("loading {}", options.config.display()))?;
    if let Some(listen) = options.listen {
        config.listen = listen;
    }
    let backend_listener = TcpListener::bind(options.backend_listen)
        .await
        .with_context(|| format!("--backend-listen: cannot bind {}", options.backend_listen))?;
    let backend_addr = backend_listener.local_addr()?;
    config
        .api
        .stages
        .get_mut(STAGE)
        .with_context(|| {
            format!(
                "{}: api.stages.{STAGE} is missing; the page connects to that stage",
                options.config.display()
            )
        })?
        .variables
        .insert(
            BACKEND_VARIABLE.to_string(),
            format!("http://{}", dialable(backend_addr)),
        );
    let listeners = Listeners::bind(&config).await.map_err(anyhow::Error::msg)?;
    let gateway = Gateway::start(config, listeners)
        .await
        .context("starting the gateway")?;
    let gateway_addr = gateway.local_addr();
    let callback_addr = dialable(gateway.callback_addr().unwrap_or(gateway_addr));
    let chat = match Chat::new(format!("http://{callback_addr}")) {
        Ok(chat) => chat,
        Err(error) => {
            gateway.shutdown().await;
            return Err(error).context("building the callback API client");
        }
    };
    let app = backend::router(Arc::clone(&chat)).merge(page::router(PageSettings {
        gateway: gateway_addr,
        stage: STAGE.to_string(),
        public_url: None,
    }));
    let (stop_backend, stopped) = oneshot::channel::<()>();
    let backend = tokio::spawn(async move {
        axum::serve(backend_listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(gateway = %gateway_addr, backend = %backend_addr, "chat example is running");
    Ok(Running {
        gateway,
        gateway_addr,
        backend_addr,
        chat,
        stop_backend,
        backend,
    })
}

impl Running {
    /// The gateway's bound address.
    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway_addr
    }

    /// The backend's bound address.
    pub fn backend_addr(&self) -> SocketAddr {
        self.backend_addr
    }

    /// The web page.
    pub fn page_url(&self) -> String {
        format!("http://{}/", dialable(self.backend_addr))
    }

    /// The WebSocket URL clients connect to.
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/{STAGE}", dialable(self.gateway_addr))
    }

    /// Watches the chat's members (connection id to name and room).
    pub fn members(&self) -> watch::Receiver<Members> {
        self.chat.subscribe()
    }

    /// Stops the gateway (closing every client and running its `$disconnect` against the
    /// still-running backend), then the backend.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
        let _ = self.stop_backend.send(());
        match self.backend.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the backend stopped with an error"),
            Err(error) => tracing::warn!(%error, "the backend task failed"),
        }
    }
}
