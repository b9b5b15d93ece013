//! The state the connection lifecycle shares: the configuration fixed at start, the API
//! definition in force (routes, connect-time checks, throttling; swapped by a reload, see
//! [`crate::deployment`]), the local registry, the connection store, the groups, the seen ids of
//! acknowledged routes, the byte budget, the connection permits, the shutdown signals and the
//! addresses the listeners are bound to now. The cluster and the callback API sit above it and
//! hold it; nothing here knows them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wsgate_connection_store::ConnectionStore;

use crate::activity::Activity;
use crate::config::Config;
use crate::deployment::{Definition, Live, Serving};
use crate::groups::Groups;
use crate::registry::{ByteBudget, QueueLimits, Registry};

/// Shared gateway state (behind an `Arc`).
#[derive(Debug)]
pub(crate) struct Shared {
    /// The configuration loaded at start: what its keys fixed at start say (listeners, limits,
    /// store...) holds for the gateway's life. The API definition's keys are read from
    /// [`Shared::definition`].
    pub config: Config,
    /// This node's id.
    pub node_id: String,
    /// `apiId` in events.
    pub api_id: Arc<str>,
    /// The API definitions in force (per stage, with canaries).
    pub live: Live,
    /// Connections held by this node.
    pub registry: Arc<Registry>,
    /// Connection records (memory or Redis).
    pub store: Arc<dyn ConnectionStore>,
    /// Named groups of connections.
    pub groups: Arc<Groups>,
    /// tungstenite settings derived from `limits`.
    pub ws_config: WebSocketConfig,
    /// The addresses the listeners are bound to now (for `domainName`; a reload may move
    /// them).
    pub bound: Arc<Bound>,
    /// Cancelled at shutdown; every session holds a child token.
    pub sessions_cancel: CancellationToken,
    /// Tracks session tasks so shutdown can wait for `$disconnect`.
    pub tracker: TaskTracker,
    /// Bytes queued on this node (`limits.node_queue_bytes`).
    pub budget: Arc<ByteBudget>,
    /// One permit per connection (`limits.max_connections`), taken before `$connect` and held
    /// until the connection's `$disconnect` is done.
    pub permits: Arc<tokio::sync::Semaphore>,
    /// This gateway's own counts (the admin page).
    pub activity: Arc<Activity>,
    /// OpenTelemetry spans (nothing when `tracing.enabled` is off).
    pub traces: crate::traces::Traces,
    /// The seen client message ids of acknowledged routes.
    pub acks: crate::acks::Acks,
    draining: AtomicBool,
}

impl Shared {
    /// Assembles the shared state.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: Config,
        node_id: String,
        serving: Serving,
        store: Arc<dyn ConnectionStore>,
        registry: Arc<Registry>,
        tracker: TaskTracker,
        groups: Arc<Groups>,
        bound: Arc<Bound>,
        activity: Arc<Activity>,
        traces: crate::traces::Traces,
        acks: crate::acks::Acks,
    ) -> Self {
        let limits = &config.limits;
        let budget = Arc::new(ByteBudget::new(limits.node_queue_bytes));
        let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(limits.read_buffer_bytes)
            .write_buffer_size(0)
            .max_write_buffer_size(limits.max_message_bytes.saturating_mul(2).max(64 * 1024))
            .max_message_size(Some(limits.max_message_bytes))
            .max_frame_size(Some(limits.max_frame_bytes));
        let api_id: Arc<str> = config
            .api
            .id
            .clone()
            .unwrap_or_else(|| config.api.name.clone())
            .into();
        Self {
            config,
            node_id,
            api_id,
            live: Live::from_pointee(serving),
            registry,
            store,
            groups,
            ws_config,
            bound,
            sessions_cancel: CancellationToken::new(),
            tracker,
            budget,
            permits,
            activity,
            traces,
            acks,
            draining: AtomicBool::new(false),
        }
    }

    /// The API definition in force: one atomic load (no lock); hold it for the whole handshake
    /// or message so that one sees one definition.
    pub(crate) fn definition(&self) -> Arc<Definition> {
        Arc::clone(&self.live.load().main)
    }

    /// The definition in force for a connection of `stage` on the canary side or not (see
    /// [`Serving::of`]); as [`Shared::definition`], hold it for the whole message.
    pub(crate) fn definition_for(&self, stage: &str, canary: bool) -> Arc<Definition> {
        Arc::clone(self.live.load().of(stage, canary))
    }

    /// A new connection of `stage`: its side (canary or not) and that side's definition;
    /// `None` when no stage of that name is served.
    pub(crate) fn pick(&self, stage: &str) -> Option<(Arc<Definition>, bool)> {
        let serving = self.live.load();
        if !serving.serves(stage) {
            return None;
        }
        let canary = serving.pick(stage);
        Some((Arc::clone(serving.of(stage, canary)), canary))
    }

    /// True when `stage` is served (see [`crate::deployment::Serving::serves`]): callback
    /// requests for other stages are answered as for an unknown stage.
    pub(crate) fn serves(&self, stage: &str) -> bool {
        self.live.load().serves(stage)
    }

    /// Everything in force.
    pub(crate) fn serving(&self) -> Arc<Serving> {
        self.live.load_full()
    }

    /// How much one connection's outbox may hold.
    pub(crate) fn outbox_limits(&self) -> QueueLimits {
        QueueLimits {
            messages: self.config.limits.outbound_queue_messages,
            bytes: self.config.limits.outbound_queue_bytes,
        }
    }

    /// True once shutdown has begun (`/readyz` answers 503, upgrades are refused).
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Starts draining.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

/// The addresses the listeners are bound to now (a reload may move them): what `domainName`
/// and the management API's `apiEndpoint` are made of.
#[derive(Debug, Default)]
pub(crate) struct Bound {
    main: Mutex<Option<SocketAddr>>,
    callback: Mutex<Option<SocketAddr>>,
}

impl Bound {
    /// The main listener's address.
    pub(crate) fn main(&self) -> Option<SocketAddr> {
        *self.main.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The callback listener's address, when there is one.
    pub(crate) fn callback(&self) -> Option<SocketAddr> {
        *self.callback.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records where a listener is bound now (`callback`: the callback listener).
    pub(crate) fn set(&self, callback: bool, addr: SocketAddr) {
        let slot = if callback { &self.callback } else { &self.main };
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
    }
}
