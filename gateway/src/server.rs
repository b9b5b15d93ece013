//! Starting and stopping a gateway: build the shared state from config, serve the routers on
//! already-bound listeners (so tests use port 0), flush last-active times in batches, and drain
//! in stages on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wsgate_connection_store::{
    AckLimits, AckStore, ConnectionStore, DeploymentStore, GroupStore, MemoryDeployments,
    MemoryStore, RedisStore, RedisStoreOptions,
};

use crate::accept::{self, Accepting, Serving, Which};
use crate::admin;
use crate::bus::redis_bus::{RedisBus, RedisTarget};
use crate::callback::{self, auth::CallbackAuth};
use crate::cluster::{self, Cluster, ClusterBus};
use crate::config::{Config, StoreConfig};
use crate::deployment::{self, Deployment};
use crate::domains::{Domains, LiveDomains};
use crate::error::ReloadError;
use crate::groups::{Groups, MeteredGroups, PresenceRoutes};
use crate::integration;
use crate::ops;
use crate::registry::Registry;
use crate::reload::Reloader;
use crate::state::Shared;
use crate::store::GatewayStore;
use crate::tls::LiveTls;
use crate::ws::connect;

/// How often last-active times are written to the store.
const TOUCH_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Upper bound on stopping the broker consumers at shutdown.
const CONSUMERS_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound on waiting for the cluster tasks (a renewal in flight) at shutdown.
const CLUSTER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The HTTP client for integrations could not be built.
    #[error("cannot build the integration HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The connection store could not be reached.
    #[error("store: cannot connect to the connection store: {0}")]
    Store(#[source] wsgate_connection_store::StoreError),
    /// The OTLP exporter could not be built.
    #[error(transparent)]
    Tracing(#[from] crate::traces::TraceError),
    /// The cluster (bus or lease) could not be joined.
    #[error("store: cannot join the cluster: {0}")]
    Cluster(#[source] cluster::JoinError),
    /// The group channels could not be set up.
    #[error("store: cannot subscribe to the group channels: {0}")]
    Groups(#[source] crate::bus::BusError),
    /// The throttling buckets could not reach Redis.
    #[error("throttling: cannot connect to Redis: {0}")]
    Throttle(#[source] crate::throttle::shared::SharedBucketError),
    /// The response cache could not be set up on Redis.
    #[error("{0}")]
    Cache(String),
    /// A listener's address could not be read.
    #[error("listener: {0}")]
    Listener(#[source] std::io::Error),
    /// Authorizer keys, API keys or other security settings could not be loaded.
    #[error(transparent)]
    Security(#[from] crate::auth::SecurityError),
    /// The deployment store could not be read, or what it says cannot be served here.
    #[error("{0}")]
    Deployments(String),
}

impl From<deployment::BuildError> for StartError {
    fn from(error: deployment::BuildError) -> Self {
        match error {
            deployment::BuildError::Config(e) => Self::Config(e),
            deployment::BuildError::Security(e) => Self::Security(e),
        }
    }
}

/// The sockets a gateway serves on.
#[derive(Debug)]
pub struct Listeners {
    /// The main listener (clients, and the callback API unless disabled there).
    pub main: TcpListener,
    /// A separate callback listener (`callback.listen`).
    pub callback: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses in `config`.
    ///
    /// # Errors
    /// The bind error, naming the config key.
    pub async fn bind(config: &Config) -> Result<Self, String> {
        let main = accept::listen(config.listen)
            .map_err(|e| format!("listen: cannot bind {}: {e}", config.listen))?;
        let callback = match config.callback.listen {
            Some(addr) => Some(
                accept::listen(addr)
                    .map_err(|e| format!("callback.listen: cannot bind {addr}: {e}"))?,
            ),
            None => None,
        };
        Ok(Self { main, callback })
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
    cluster: Option<Arc<Cluster>>,
    accepting: Arc<Accepting>,
    stop_accepting: CancellationToken,
    background: JoinSet<()>,
    cluster_tasks: JoinSet<()>,
    consumers: crate::consumer::Consumers,
    /// Re-reads the configuration file and swaps the API definition.
    reloader: Arc<Reloader>,
    /// What the main listener serves, for in-memory connections of the fuzz targets.
    #[cfg(feature = "fuzzing")]
    main: crate::fuzzing::Opaque<Serving>,
}

/// The store (wrapped for metrics and the fence), the group records, the seen ids of
/// acknowledged routes, the deployments and, with Redis, the joined cluster and the
/// deployment notifications.
struct Built {
    records: Arc<dyn ConnectionStore>,
    groups: Arc<dyn GroupStore>,
    acks: Arc<dyn AckStore>,
    deployments: Arc<dyn DeploymentStore>,
    joined: Option<(Arc<Cluster>, cluster::Receivers)>,
    notify: Option<Notify>,
}

/// Deployment change notifications: the channels, the channel name and what arrives on it.
type Notify = (
    Arc<dyn crate::bus::channels::Channels>,
    String,
    tokio::sync::mpsc::Receiver<Bytes>,
);

/// Notifications queued before the follow loop reads them (more are dropped: the loop reads
/// the store's version anyway, one notification is as good as many).
const NOTIFY_QUEUE: usize = 8;

async fn build_store(config: &Config, node_id: &str) -> Result<Built, StartError> {
    let fence = Arc::new(AtomicBool::new(false));
    let wrap = |inner: Arc<dyn ConnectionStore>| -> Arc<dyn ConnectionStore> {
        Arc::new(GatewayStore::new(
            inner,
            node_id.to_owned(),
            Arc::clone(&fence),
        ))
    };
    let redis = match &config.store {
        StoreConfig::Memory => {
            let memory = Arc::new(MemoryStore::with_ack_limits(AckLimits {
                max_ids: config.limits.ack_ids,
                max_bytes: config.limits.ack_id_bytes,
            }));
            let groups: Arc<dyn GroupStore> =
                Arc::new(MeteredGroups::new(Arc::clone(&memory) as _));
            let acks: Arc<dyn AckStore> = Arc::clone(&memory) as _;
            return Ok(Built {
                records: wrap(memory),
                groups,
                acks,
                deployments: Arc::new(MemoryDeployments::new()),
                joined: None,
                notify: None,
            });
        }
        StoreConfig::Redis(redis) => redis,
    };
    let options = RedisStoreOptions {
        timeout: redis.timeout,
        record_ttl: Some(config.limits.max_connection_duration + Duration::from_secs(3600)),
    };
    let seeds = redis.seeds();
    let connect = || async {
        if redis.is_cluster() {
            RedisStore::connect_cluster_with(&seeds, &redis.prefix, options.clone()).await
        } else {
            let url = seeds.first().map(String::as_str).unwrap_or_default();
            RedisStore::connect_with(url, &redis.prefix, options.clone()).await
        }
        .map_err(StartError::Store)
    };
    let store = connect().await?;
    let records = wrap(Arc::new(store.clone()));
    let groups: Arc<dyn GroupStore> = Arc::new(MeteredGroups::new(Arc::new(store.clone())));
    let acks: Arc<dyn AckStore> = Arc::new(store.clone());
    let target = RedisTarget::new(seeds.clone(), redis.is_cluster(), redis.timeout);
    let shared = config.deployments.scope == crate::config::DeploymentScope::Cluster;
    let deployments: Arc<dyn DeploymentStore> = if shared {
        Arc::new(store.clone())
    } else {
        // The node's own deployments; what it serves is still told to the others.
        Arc::new(crate::rollout::own::OwnDeployments::new(Arc::new(
            store.clone(),
        )))
    };
    let notify = if shared {
        let (tx, rx) = tokio::sync::mpsc::channel(NOTIFY_QUEUE);
        let channel = crate::rollout::channel(&redis.prefix);
        let fail = |e: crate::bus::BusError| {
            StartError::Deployments(format!(
                "store: cannot subscribe to the deployment notifications: {e}"
            ))
        };
        let channels = crate::bus::redis_channels::RedisChannels::connect(target.clone(), &tx)
            .await
            .map_err(fail)?;
        crate::bus::channels::Channels::subscribe(&channels, &channel)
            .await
            .map_err(fail)?;
        let channels: Arc<dyn crate::bus::channels::Channels> = Arc::new(channels);
        Some((channels, channel, rx))
    } else {
        None
    };
    // The lease's own connection (see `Cluster::leases`).
    let leases = connect().await?;
    let joined = Cluster::join(
        node_id.to_owned(),
        config.cluster.clone(),
        store,
        leases,
        Arc::clone(&records),
        Arc::clone(&fence),
        |inbox| async move {
            let bus = RedisBus::connect(target, &redis.prefix, node_id, inbox).await?;
            Ok(Arc::new(bus) as Arc<dyn ClusterBus>)
        },
    )
    .await
    .map_err(StartError::Cluster)?;
    Ok(Built {
        records,
        groups,
        acks,
        deployments,
        joined: Some(joined),
        notify,
    })
}

impl Gateway {
    /// Starts serving `config` on `listeners`.
    ///
    /// # Errors
    /// A [`StartError`] naming what could not be set up.
    pub async fn start(config: Config, listeners: Listeners) -> Result<Self, StartError> {
        let node_id = config.effective_node_id();
        let client = integration::http_client().map_err(StartError::HttpClient)?;
        let clients = integration::Clients {
            general: client.clone(),
            h1: integration::h1::Client::new()
                .with_max_connections(config.limits.backend_connections)
                .with_hosts(crate::config::HostPolicy::from_config(&config)?),
            // Always made (it opens nothing until used): a reload may add an HTTP/2 route.
            h2: Some(integration::http2_client().map_err(StartError::HttpClient)?),
            brokers: Default::default(),
        };
        // Installed before the routes are built: they register their metric handles.
        crate::telemetry::prometheus();
        let aws = integration::lambda::Aws::new(&config.aws, &clients);
        let response_cache = crate::cache::ResponseCache::build(&config).map_err(|message| {
            crate::config::ConfigError::Invalid {
                key: "api.routes".into(),
                message,
            }
        })?;
        let builder = deployment::Builder {
            clients,
            aws,
            response_cache: response_cache.clone(),
            activity: Arc::new(crate::activity::Activity::default()),
        };
        let throttle = crate::throttle::Throttle::from_config(&config)
            .await
            .map_err(StartError::Throttle)?;
        let definition = builder.build(config.clone(), Arc::new(throttle), None)?;
        builder.aws.check_in_background();
        let Built {
            records: store,
            groups: group_store,
            acks: ack_store,
            deployments: deployment_store,
            joined,
            notify,
        } = build_store(&config, &node_id).await?;
        // What the store's stage pointers say (the file seeds them when there are none).
        let (serving, built) =
            crate::rollout::initial(&*deployment_store, (&builder, &config), definition)
                .await
                .map_err(StartError::Deployments)?;
        let mut stages: Vec<String> = serving.stages.keys().cloned().collect();
        stages.sort();
        let acks = crate::acks::Acks::new(ack_store, node_id.clone());
        let registry = Arc::new(Registry::default());
        let tracker = TaskTracker::new();
        let live_routes = Arc::new(std::sync::OnceLock::<std::sync::Weak<Shared>>::new());
        let traces = crate::traces::Traces::start(&config.tracing)?;
        let presence = PresenceRoutes {
            stages: {
                let live_routes = Arc::clone(&live_routes);
                Arc::new(move |stage: &str| {
                    let shared = live_routes.get()?.upgrade()?;
                    shared.definition_for(stage, false).stage(stage).cloned()
                })
            },
            tracker: tracker.clone(),
            traces: traces.clone(),
        };
        let (groups, group_receivers) = Groups::build(
            &config,
            &node_id,
            group_store,
            Arc::clone(&registry),
            presence,
        )
        .await
        .map_err(StartError::Groups)?;
        let groups = Arc::new(groups);
        let local_addr = listeners.main.local_addr().map_err(StartError::Listener)?;
        let callback_addr = match &listeners.callback {
            Some(l) => Some(l.local_addr().map_err(StartError::Listener)?),
            None => None,
        };
        let bound = Arc::new(crate::state::Bound::default());
        if !config.ignored_env.is_empty() {
            tracing::warn!(variables = ?config.ignored_env, "WSGATE_* environment variables that name no config section were ignored");
        }
        let callback_auth = CallbackAuth::from_config(
            &config,
            Arc::clone(serving.main.security.trusted_proxies()),
            &|var| std::env::var(var).ok(),
        )
        .map_err(crate::auth::SecurityError::from)?;
        if matches!(callback_auth, CallbackAuth::None) {
            tracing::warn!(
                "callback.auth is `none`: anyone who reaches the callback API can push to and close connections"
            );
        }
        let activity = Arc::clone(&builder.activity);
        crate::reload::report(&serving.main.deployment);
        let shared = Arc::new(Shared::new(
            config,
            node_id,
            serving,
            store,
            registry,
            tracker,
            Arc::clone(&groups),
            Arc::clone(&bound),
            activity,
            traces,
            acks,
        ));
        let _ = live_routes.set(Arc::downgrade(&shared));
        let mut cluster_tasks = JoinSet::new();
        let cluster = joined.map(|(cluster, receivers)| {
            cluster.spawn(&shared, receivers, &mut cluster_tasks);
            cluster
        });
        groups.spawn(group_receivers, &mut cluster_tasks);
        if let Some(cache) = &response_cache {
            let redis = cluster.as_ref().map(|c| c.redis());
            (cache
                .attach(&shared.config, &shared.node_id, redis, &mut cluster_tasks)
                .await)
                .map_err(|e| StartError::Cache(e.to_string()))?;
        }
        let api = Arc::new(callback::Api::new(
            Arc::clone(&shared),
            cluster.clone(),
            callback_auth,
        ));

        let consumers = crate::consumer::Consumers::start(&shared, cluster.clone(), &builder.aws);

        let stop_accepting = CancellationToken::new();
        let mut background = JoinSet::new();
        let tls: Option<LiveTls> = match &shared.config.tls {
            Some(tls) => Some(Arc::new(arc_swap::ArcSwap::from_pointee(
                crate::tls::server_config(tls, &shared.config.domains)?,
            ))),
            None => None,
        };
        let (notify, notified) = match notify {
            Some((channels, channel, rx)) => (Some((channels, channel)), Some(rx)),
            None => (None, None),
        };
        let rollout = Arc::new(crate::rollout::Rollout::new(
            Arc::clone(&shared),
            builder,
            deployment_store,
            notify,
            built,
        ));
        background.spawn(crate::rollout::run(
            Arc::clone(&rollout),
            notified,
            shared.config.deployments.check_interval,
            stop_accepting.clone(),
        ));
        let domains: LiveDomains = Arc::new(arc_swap::ArcSwap::from_pointee(Domains::new(
            &shared.config.domains,
        )));
        let accepting = Arc::new(Accepting::new(stop_accepting.clone(), Arc::clone(&bound)));
        let reloader = Arc::new(Reloader::new(
            Arc::clone(&rollout),
            tls.clone(),
            Arc::clone(&accepting),
            Arc::clone(&domains),
        ));
        let operators = (shared.config.admin).is_enabled(&shared.config.callback);
        let management = operators.then(|| {
            Arc::new(crate::management::Management::new(
                Arc::clone(&api),
                Arc::clone(&rollout),
                Arc::clone(&bound),
                Arc::clone(&domains),
            ))
        });
        let admin = operators.then(|| {
            let samples = Arc::new(admin::samples::Samples::default());
            background.spawn(admin::samples::run(
                Arc::clone(&samples),
                Arc::clone(&shared),
                stop_accepting.clone(),
            ));
            Arc::new(admin::Admin::new(
                Arc::clone(&api),
                samples,
                Arc::clone(&reloader),
                Arc::clone(&rollout),
            ))
        });
        let admin_router = admin::router(admin).merge(crate::management::router(management));
        let serving = |router: Router, proxy_protocol: bool| Serving {
            router,
            domains: Arc::clone(&domains),
            proxy_protocol,
            max_http_connections: shared.config.limits.max_http_connections,
            handshake_timeout: shared.config.limits.handshake_timeout,
            send_buffer: shared.config.limits.socket_send_buffer_bytes,
            tls: tls.clone(),
            stop: stop_accepting.clone(),
        };
        let listening = |e: std::io::Error| StartError::Listener(e);
        let main_serving = serving(
            main_router(&shared, &api, admin_router.clone()),
            shared.config.listen_proxy_protocol,
        );
        #[cfg(feature = "fuzzing")]
        let fuzz_serving = main_serving.clone();
        let main_configured = shared.config.listen;
        (accepting.serve(Which::Main, listeners.main, main_configured, main_serving))
            .map_err(listening)?;
        if let Some(listener) = listeners.callback {
            let router = callback::router()
                .with_state(Arc::clone(&api))
                .merge(ops::router().with_state(Arc::clone(&shared)))
                .merge(admin_router)
                .fallback(callback::unknown_path);
            let configured = shared
                .config
                .callback
                .listen
                .unwrap_or(callback_addr.unwrap_or(local_addr));
            let serving = serving(router, shared.config.callback.listen_proxy_protocol);
            (accepting.serve(Which::Callback, listener, configured, serving)).map_err(listening)?;
        }
        background.spawn(flush_touches(Arc::clone(&shared), stop_accepting.clone()));
        background.spawn(crate::telemetry::keep_up(stop_accepting.clone()));
        tracing::info!(
            listen = %local_addr,
            callback = ?callback_addr,
            node_id = %shared.node_id,
            stages = ?stages,
            deployment = %reloader.current().id,
            "wsgate is serving"
        );
        Ok(Self {
            shared,
            cluster,
            accepting,
            stop_accepting,
            background,
            cluster_tasks,
            consumers,
            reloader,
            #[cfg(feature = "fuzzing")]
            main: crate::fuzzing::Opaque(fuzz_serving),
        })
    }

    /// The main listener's address (where a reload that changed `listen` moved it).
    pub fn local_addr(&self) -> SocketAddr {
        // Set when the main loop started, before the gateway was returned.
        self.shared
            .bound
            .main()
            .unwrap_or(self.shared.config.listen)
    }

    /// The callback listener's address, when there is one (where a reload that changed
    /// `callback.listen` moved it).
    pub fn callback_addr(&self) -> Option<SocketAddr> {
        self.shared.bound.callback()
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// Remembers `path` as the configuration file that [`Gateway::reload`], `SIGHUP`,
    /// `wsgate reload` and the file watch re-read, and starts the watch when `reload.watch` is
    /// on. Once per gateway; later calls change nothing.
    pub fn set_config_file(&mut self, path: std::path::PathBuf) {
        if !self.reloader.set_file(path.clone()) {
            return;
        }
        let settings = &self.shared.config.reload;
        if settings.watch {
            let watching = crate::reload::watch::spawn(
                Arc::clone(&self.reloader),
                path,
                settings.debounce,
                self.stop_accepting.clone(),
            );
            match watching {
                Ok(task) => {
                    self.background.spawn(async move {
                        let _ = task.await;
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "reload.watch: cannot watch the configuration file; SIGHUP and `wsgate reload` still work");
                }
            }
        }
    }

    /// Re-reads the configuration file (see [`Gateway::set_config_file`]) and serves its API
    /// definition from now on, without closing any connection.
    ///
    /// # Errors
    /// Why nothing changed (also logged): the file is not valid, a key fixed at start
    /// changed, or there is no file.
    pub async fn reload(&self) -> Result<Deployment, ReloadError> {
        self.reloader.reload().await
    }

    /// Serves the API definition of `config` from now on, as [`Gateway::reload`] does with a
    /// configuration already read.
    ///
    /// # Errors
    /// See [`Gateway::reload`].
    pub async fn apply(&self, config: Config) -> Result<Deployment, ReloadError> {
        self.reloader.apply(config).await
    }

    /// What reloads this gateway, for a task that outlives the borrow (a signal handler).
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle(Arc::clone(&self.reloader))
    }

    /// The deployment served now.
    pub fn deployment(&self) -> Deployment {
        self.reloader.current()
    }

    /// Connections held by this node right now.
    pub fn connection_count(&self) -> usize {
        self.shared.registry.len()
    }

    /// Drains: readiness goes 503, no new connections, every socket closed with 1001 and its
    /// `$disconnect` run, all within `shutdown.drain_timeout`.
    pub async fn shutdown(mut self) {
        let drain_timeout = self.shared.config.shutdown.drain_timeout;
        self.shared.start_draining();
        tracing::info!(connections = self.shared.registry.len(), "draining");
        // Consumers stop first: a message read while connections close would find them gone.
        self.consumers.stop(CONSUMERS_STOP_TIMEOUT).await;
        self.stop_accepting.cancel();
        self.shared.sessions_cancel.cancel();
        self.shared.tracker.close();
        if tokio::time::timeout(drain_timeout, self.shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.shared.registry.len(),
                "drain timeout reached; closing the rest abruptly"
            );
        }
        // The lease is renewed until every connection is closed, so no other node reaps them;
        // it is given back once no renewal can be in flight any more.
        self.shared.groups.stop();
        if let Some(cluster) = &self.cluster {
            cluster.stop();
            let _ = tokio::time::timeout(CLUSTER_STOP_TIMEOUT, async {
                while self.cluster_tasks.join_next().await.is_some() {}
            })
            .await;
            self.cluster_tasks.abort_all();
            cluster.release().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.background.join_next().await.is_some() {}
        })
        .await;
        self.background.abort_all();
        self.accepting.wait(Duration::from_secs(1)).await;
        // Last: the spans of the connections closed above go out too.
        self.shared.traces.shutdown().await;
        tracing::info!("stopped");
    }

    /// Serves one in-memory connection from `peer` as the main listener serves an accepted
    /// socket without TLS or PROXY protocol (the fuzz targets' way in).
    #[cfg(feature = "fuzzing")]
    pub(crate) async fn serve_io<S>(&self, stream: S, peer: SocketAddr)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (stream, heads) = crate::raw_head::tap(stream);
        accept::serve_http(
            hyper_util::rt::TokioIo::new(stream),
            (peer, None),
            heads,
            self.main.0.clone(),
        )
        .await;
    }

    /// Serves until `signal` resolves, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}

/// Reloads a running [`Gateway`] (see [`Gateway::reload`]); cheap to clone.
#[derive(Debug, Clone)]
pub struct ReloadHandle(Arc<Reloader>);

impl ReloadHandle {
    /// See [`Gateway::reload`].
    ///
    /// # Errors
    /// See [`Gateway::reload`].
    pub async fn reload(&self) -> Result<Deployment, ReloadError> {
        self.0.reload().await
    }
}

/// The main listener's routes; the callback API and the admin page (`admin`) are there unless
/// `callback.on_main_listener` is off.
fn main_router(shared: &Arc<Shared>, api: &Arc<callback::Api>, admin: Router) -> Router {
    let mut router = ops::router()
        .route("/{stage}", any(connect::upgrade))
        .route("/{stage}/", any(connect::upgrade))
        .with_state(Arc::clone(shared));
    if shared.config.callback.on_main_listener {
        router = router
            .merge(callback::router().with_state(Arc::clone(api)))
            .merge(admin);
    }
    router.fallback(callback::unknown_path)
}

async fn flush_touches(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(TOUCH_FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {
                let batch = shared.registry.take_touched();
                if !batch.is_empty()
                    && let Err(error) = shared.store.touch(&batch).await
                {
                    tracing::warn!(%error, count = batch.len(), "cannot record last-active times");
                }
            }
        }
    }
}
