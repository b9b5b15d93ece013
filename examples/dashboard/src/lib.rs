//! The live-dashboard example: a publisher posts simulated figures to the group `dashboard`
//! several times a second with one callback per update, and every open page plots them.
//!
//! Two ways to run it:
//! - one gateway on the in-memory store (the default);
//! - two gateway nodes on Redis ([`Options::redis`]): the page connects to node A while the
//!   publisher posts through node B, so every update crosses nodes on the group's channel.
//!
//! # Layout
//! - [`backend`]: the `$connect` handler that puts each connection in the group.
//! - [`publisher`]: the simulated series and the posting loop.
//! - [`page`]: the HTML, JavaScript and CSS, with the gateway URL written in.
//! - [`start`] / [`Running`]: everything on given (or ephemeral) ports, and its shutdown.

pub mod backend;
pub mod page;
pub mod publisher;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wsgate::config::{RedisStoreConfig, StoreConfig};
use wsgate::{Config, Gateway, Listeners};

use crate::page::PageSettings;
use crate::publisher::Publisher;

/// The stage the page connects to; `wsgate.yaml` must define it.
pub const STAGE: &str = "prod";

/// The group every page joins and the publisher posts to.
pub const GROUP: &str = "dashboard";

/// The stage variable that holds the backend's base URL.
pub const BACKEND_VARIABLE: &str = "backend";

/// The gateway configuration shipped with the example.
pub const DEFAULT_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/wsgate.yaml");

/// Where to listen, which configuration to load, and how often to publish.
#[derive(Debug, Clone)]
pub struct Options {
    /// The gateway configuration (YAML; `WSGATE_*` environment variables apply).
    pub config: PathBuf,
    /// The (first) gateway's listener; the configuration's `listen` when absent.
    pub listen: Option<SocketAddr>,
    /// With [`Options::redis`]: the second node's listener (the publisher posts there).
    pub second_listen: SocketAddr,
    /// The backend's listener (the web page and the `$connect` handler).
    pub backend_listen: SocketAddr,
    /// Run two nodes on this Redis (`redis://host:port`) instead of one on the memory store.
    pub redis: Option<String>,
    /// Key prefix on Redis.
    pub redis_prefix: String,
    /// Updates published per second.
    pub rate: f64,
    /// The address the page connects to instead of the first node's (a proxy in front of it,
    /// as the browser test puts one to cut the network).
    pub page_gateway: Option<SocketAddr>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: PathBuf::from(DEFAULT_CONFIG),
            listen: None,
            second_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8091)),
            backend_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8083)),
            redis: None,
            redis_prefix: "wsgate-dashboard".into(),
            rate: 5.0,
            page_gateway: None,
        }
    }
}

impl Options {
    /// Everything on ephemeral loopback ports, with the shipped configuration (for tests).
    pub fn ephemeral() -> Self {
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self {
            listen: Some(any),
            second_listen: any,
            backend_listen: any,
            ..Self::default()
        }
    }
}

/// The gateway node(s), the backend and the publisher, running.
#[derive(Debug)]
pub struct Running {
    gateways: Vec<Gateway>,
    backend_addr: SocketAddr,
    published: watch::Receiver<u64>,
    stop_publisher: CancellationToken,
    publisher: JoinHandle<()>,
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

/// Loads the configuration with the backend's address written in and, with Redis, the store.
fn load(options: &Options, backend_addr: SocketAddr) -> anyhow::Result<Config> {
    let mut config = Config::load(&options.config)
        .with_context(|| format!("loading {}", options.config.display()))?;
    if let Some(listen) = options.listen {
        config.listen = listen;
    }
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
    if let Some(url) = &options.redis {
        config.store = StoreConfig::Redis(RedisStoreConfig {
            url: Some(url.clone()),
            urls: Vec::new(),
            cluster: false,
            prefix: options.redis_prefix.clone(),
            timeout: Duration::from_secs(2),
        });
    }
    Ok(config)
}

async fn start_gateway(
    mut config: Config,
    listen: SocketAddr,
    node_id: Option<&str>,
) -> anyhow::Result<Gateway> {
    config.listen = listen;
    config.node_id = node_id.map(str::to_owned);
    let listeners = Listeners::bind(&config).await.map_err(anyhow::Error::msg)?;
    Gateway::start(config, listeners)
        .await
        .context("starting the gateway")
}

/// Starts the backend, the gateway node(s) and the publisher, wired together.
///
/// # Errors
/// An unreadable or invalid configuration, a port that cannot be bound, an unreachable Redis,
/// or a gateway that cannot start.
pub async fn start(options: Options) -> anyhow::Result<Running> {
    let backend_listener = TcpListener::bind(options.backend_listen)
        .await
        .with_context(|| format!("--backend-listen: cannot bind {}", options.backend_listen))?;
    let backend_addr = backend_listener.local_addr()?;
    let config = load(&options, backend_addr)?;
    let first_listen = config.listen;
    let mut gateways = Vec::new();
    if options.redis.is_some() {
        gateways.push(start_gateway(config.clone(), first_listen, Some("dashboard-a")).await?);
        match start_gateway(config, options.second_listen, Some("dashboard-b")).await {
            Ok(second) => gateways.push(second),
            Err(error) => {
                for gateway in gateways {
                    gateway.shutdown().await;
                }
                return Err(error);
            }
        }
    } else {
        gateways.push(start_gateway(config, first_listen, None).await?);
    }
    // The page connects to the first node; the publisher posts through the last one.
    let page_gateway = options
        .page_gateway
        .unwrap_or_else(|| gateways[0].local_addr());
    let last = &gateways[gateways.len() - 1];
    let callback = dialable(last.callback_addr().unwrap_or(last.local_addr()));
    let publisher = match Publisher::new(format!("http://{callback}"), options.rate) {
        Ok(publisher) => publisher,
        Err(error) => {
            for gateway in gateways {
                gateway.shutdown().await;
            }
            return Err(error).context("building the callback API client");
        }
    };
    let app = backend::router().merge(page::router(PageSettings {
        gateway: page_gateway,
        stage: STAGE.to_string(),
        nodes: gateways.len(),
    }));
    let (stop_backend, stopped) = oneshot::channel::<()>();
    let backend = tokio::spawn(async move {
        axum::serve(backend_listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    let stop_publisher = CancellationToken::new();
    let published = publisher.published();
    let publisher = tokio::spawn(publisher.run(stop_publisher.clone()));
    tracing::info!(
        page_gateway = %page_gateway,
        publisher_gateway = %callback,
        backend = %backend_addr,
        nodes = gateways.len(),
        "dashboard example is running"
    );
    Ok(Running {
        gateways,
        backend_addr,
        published,
        stop_publisher,
        publisher,
        stop_backend,
        backend,
    })
}

impl Running {
    /// The web page.
    pub fn page_url(&self) -> String {
        format!("http://{}/", dialable(self.backend_addr))
    }

    /// The WebSocket URL the page connects to (the first node).
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/{STAGE}", dialable(self.gateways[0].local_addr()))
    }

    /// Each node's main address (the page's node first, the publisher's last).
    pub fn gateway_addrs(&self) -> Vec<SocketAddr> {
        self.gateways.iter().map(Gateway::local_addr).collect()
    }

    /// Watches the number of updates published so far.
    pub fn published(&self) -> watch::Receiver<u64> {
        self.published.clone()
    }

    /// Stops the publisher, the gateways (closing every page's connection) and the backend.
    pub async fn shutdown(self) {
        self.stop_publisher.cancel();
        let _ = self.publisher.await;
        for gateway in self.gateways {
            gateway.shutdown().await;
        }
        let _ = self.stop_backend.send(());
        match self.backend.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the backend stopped with an error"),
            Err(error) => tracing::warn!(%error, "the backend task failed"),
        }
    }
}
