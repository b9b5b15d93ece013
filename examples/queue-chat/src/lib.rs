//! The queue-chat example: the chat app as a storage-first design. The gateway publishes
//! connects, disconnects and messages to NATS JetStream (`nats` integrations), a worker reads
//! them and publishes its answers back, and the gateway's JetStream consumer delivers those to
//! the connections. No HTTP backend, no callback API call.
//!
//! # Layout
//! - [`worker`]: the worker (members in a JetStream key-value bucket, one answer per recipient).
//! - [`nats_server`]: a private `nats-server` when none answers at the configured URL.
//! - [`start`] / [`Running`]: NATS, the worker, the gateway and the chat example's web page.

pub mod nats_server;
pub mod worker;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wsgate::{Config, Gateway, Listeners};
use wsgate_example_chat::dialable;
use wsgate_example_chat::page::{self, PageSettings};

use crate::nats_server::NatsServer;
use crate::worker::Worker;

/// The stage the page connects to; `wsgate.yaml` must define it.
pub const STAGE: &str = "prod";

/// The NATS URL written in the shipped `wsgate.yaml`, replaced by the one in use.
pub const CONFIG_NATS_URL: &str = "nats://127.0.0.1:4222";

/// The gateway configuration shipped with the example.
pub const DEFAULT_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/wsgate.yaml");

/// Where to listen, which NATS to use, what to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The gateway configuration (YAML).
    pub config: PathBuf,
    /// The gateway's listener; the configuration's `listen` when absent.
    pub listen: Option<SocketAddr>,
    /// The web page's listener.
    pub page_listen: SocketAddr,
    /// The NATS server (JetStream on); `None`: `nats://127.0.0.1:4222` if it answers, else a
    /// private `nats-server`.
    pub nats: Option<String>,
    /// Run the worker in this process (else run `queue-chat-worker` beside it).
    pub worker: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: PathBuf::from(DEFAULT_CONFIG),
            listen: None,
            page_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8081)),
            nats: None,
            worker: true,
        }
    }
}

impl Options {
    /// Everything on ephemeral loopback ports, with the shipped configuration (for tests).
    pub fn ephemeral(nats: String) -> Self {
        Self {
            listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            page_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            nats: Some(nats),
            ..Self::default()
        }
    }
}

/// The example, running.
#[derive(Debug)]
pub struct Running {
    gateway: Gateway,
    gateway_addr: SocketAddr,
    page_addr: SocketAddr,
    nats_url: String,
    worker: Option<JoinHandle<anyhow::Result<()>>>,
    stop_page: oneshot::Sender<()>,
    page: JoinHandle<std::io::Result<()>>,
    // Dropped last: stops a private NATS server.
    _nats_server: Option<NatsServer>,
}

/// Finds NATS (or starts one), prepares the streams, starts the worker, the gateway and the
/// page.
///
/// # Errors
/// An invalid configuration, no NATS and no `nats-server` to start, a port that cannot be
/// bound, a gateway that cannot start.
pub async fn start(options: Options) -> anyhow::Result<Running> {
    let (nats_url, nats_server) = match options.nats {
        Some(url) => (url, None),
        None if tokio::net::TcpStream::connect("127.0.0.1:4222")
            .await
            .is_ok() =>
        {
            (CONFIG_NATS_URL.to_string(), None)
        }
        None => {
            let server = NatsServer::start()
                .await
                .context("no NATS server answers at 127.0.0.1:4222 and none could be started")?;
            tracing::info!(url = %server.url(), "started a private nats-server");
            (server.url(), Some(server))
        }
    };
    // The streams must exist before the gateway's routes publish to them.
    let worker = Worker::connect(&nats_url).await?;
    let worker = options.worker.then(|| tokio::spawn(worker.run()));

    let text = std::fs::read_to_string(&options.config)
        .with_context(|| format!("reading {}", options.config.display()))?;
    let mut config = Config::from_yaml(&text.replace(CONFIG_NATS_URL, &nats_url))
        .with_context(|| format!("loading {}", options.config.display()))?;
    if let Some(listen) = options.listen {
        config.listen = listen;
    }
    if !config.api.stages.contains_key(STAGE) {
        anyhow::bail!(
            "{}: api.stages.{STAGE} is missing; the page connects to that stage",
            options.config.display()
        );
    }
    let page_listener = TcpListener::bind(options.page_listen)
        .await
        .with_context(|| format!("--page-listen: cannot bind {}", options.page_listen))?;
    let page_addr = page_listener.local_addr()?;
    let listeners = Listeners::bind(&config).await.map_err(anyhow::Error::msg)?;
    let gateway = Gateway::start(config, listeners)
        .await
        .context("starting the gateway")?;
    let gateway_addr = gateway.local_addr();
    let app = page::router(PageSettings {
        gateway: gateway_addr,
        stage: STAGE.to_string(),
        public_url: None,
    });
    let (stop_page, stopped) = oneshot::channel::<()>();
    let page = tokio::spawn(async move {
        axum::serve(page_listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(gateway = %gateway_addr, nats = %nats_url, "queue-chat example is running");
    Ok(Running {
        gateway,
        gateway_addr,
        page_addr,
        nats_url,
        worker,
        stop_page,
        page,
        _nats_server: nats_server,
    })
}

impl Running {
    /// The gateway's bound address.
    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway_addr
    }

    /// The web page.
    pub fn page_url(&self) -> String {
        format!("http://{}/", dialable(self.page_addr))
    }

    /// The WebSocket URL clients connect to.
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/{STAGE}", dialable(self.gateway_addr))
    }

    /// The NATS server in use.
    pub fn nats_url(&self) -> &str {
        &self.nats_url
    }

    /// Stops the in-process worker (as if its process died), leaving its unacknowledged
    /// messages to JetStream; answers whether one was running.
    pub fn kill_worker(&mut self) -> bool {
        match self.worker.take() {
            Some(worker) => {
                worker.abort();
                true
            }
            None => false,
        }
    }

    /// Starts a fresh in-process worker on the same streams.
    ///
    /// # Errors
    /// NATS unreachable.
    pub async fn start_worker(&mut self) -> anyhow::Result<()> {
        self.kill_worker();
        let worker = Worker::connect(&self.nats_url).await?;
        self.worker = Some(tokio::spawn(worker.run()));
        Ok(())
    }

    /// Stops the gateway (its `$disconnect` events still reach the queue), the worker and the
    /// page.
    pub async fn shutdown(mut self) {
        let worker = self.worker.take();
        self.gateway.shutdown().await;
        if let Some(worker) = worker {
            worker.abort();
        }
        let _ = self.stop_page.send(());
        match self.page.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the page server stopped with an error"),
            Err(error) => tracing::warn!(%error, "the page server task failed"),
        }
    }
}
