//! Metrics (Prometheus text at `/metrics`) and logging setup. Metric names follow Prometheus
//! conventions; each maps to the CloudWatch metric of the same meaning (see docs/operations.md).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::{LogConfig, LogFormat};

/// `ConnectCount`: connection attempts that reached the `$connect` stage.
pub(crate) const CONNECT_TOTAL: &str = "wsgate_connect_total";
/// Gauge: the content hash of the deployment this node serves, as a number (its 12 hex digits
/// are 48 bits, exact in a float), one series whatever the number of reloads; see
/// `docs/deployments.md`.
pub(crate) const DEPLOYMENT_HASH: &str = "wsgate_deployment_hash";
/// Gauge: when the deployment this node serves was loaded (Unix seconds).
pub(crate) const DEPLOYMENT_LOADED: &str = "wsgate_deployment_loaded_timestamp_seconds";
/// Counter: reloads by `outcome` (`applied`, `refused`).
pub(crate) const RELOADS_TOTAL: &str = "wsgate_reloads_total";
/// Counter: new connections of a `stage` that picked its canary deployment.
pub(crate) const CANARY_CONNECTIONS_TOTAL: &str = "wsgate_canary_connections_total";
/// Gauge: the canary percentage of a `stage` this node applies (0: no canary).
pub(crate) const CANARY_PERCENT: &str = "wsgate_canary_percent";
/// Counter: switches to new stage pointers from the deployment store by `outcome`
/// (`applied`, `failed`).
pub(crate) const DEPLOYMENT_SWITCHES_TOTAL: &str = "wsgate_deployment_switches_total";
/// `MessageCount`: messages from clients (`direction="in"`) and to clients (`direction="out"`).
pub(crate) const MESSAGE_TOTAL: &str = "wsgate_message_total";
/// `IntegrationError`: integration answers with a 4xx/5xx status.
pub(crate) const INTEGRATION_ERROR_TOTAL: &str = "wsgate_integration_error_total";
/// Integration answers refused for being over their size cap, by stage and route.
pub(crate) const INTEGRATION_RESPONSE_TOO_LARGE_TOTAL: &str =
    "wsgate_integration_response_too_large_total";
/// `ClientError`: 4xx answered by the gateway before invoking an integration.
pub(crate) const CLIENT_ERROR_TOTAL: &str = "wsgate_client_error_total";
/// Messages refused by their route's request models (the "Bad request body" frame), by stage and
/// route; each is a `ClientError` too.
pub(crate) const VALIDATION_ERROR_TOTAL: &str = "wsgate_validation_error_total";
/// `ExecutionError`: integrations that could not be called (timeout, refused, malformed).
pub(crate) const EXECUTION_ERROR_TOTAL: &str = "wsgate_execution_error_total";
/// `IntegrationLatency`: seconds per integration call.
pub(crate) const INTEGRATION_LATENCY: &str = "wsgate_integration_latency_seconds";
/// Current connections on this node (open and in `$connect`).
pub(crate) const CONNECTIONS_CURRENT: &str = "wsgate_connections_current";
/// Connections closed, by close code (a client's application codes counted as `3xxx`/`4xxx`).
pub(crate) const DISCONNECT_TOTAL: &str = "wsgate_disconnect_total";
/// Callback API requests, by method and status.
pub(crate) const CALLBACK_TOTAL: &str = "wsgate_callback_requests_total";
/// Upgrade requests refused by the origin, per-address, authorizer or API key checks, by reason.
pub(crate) const CONNECT_REFUSED_TOTAL: &str = "wsgate_connect_refused_total";
/// Connections closed on a PROXY protocol listener for a missing, invalid or late header.
pub(crate) const PROXY_HEADER_REFUSED_TOTAL: &str = "wsgate_proxy_header_refused_total";
/// Integration connections refused because the host name resolved to a link-local or cloud
/// metadata address (`security.allow_metadata_hosts`).
pub(crate) const INTEGRATION_HOST_REFUSED_TOTAL: &str = "wsgate_integration_host_refused_total";
/// `CacheHitCount`: messages of a cached route answered from the response cache, by stage and
/// route.
pub(crate) const CACHE_HIT_TOTAL: &str = "wsgate_cache_hit_total";
/// `CacheMissCount`: messages of a cached route answered by the integration, by stage and route.
pub(crate) const CACHE_MISS_TOTAL: &str = "wsgate_cache_miss_total";
/// Response-cache operations on Redis that failed (the message was still answered), by `op`.
pub(crate) const CACHE_ERROR_TOTAL: &str = "wsgate_cache_errors_total";
/// Bytes held by this node's memory response cache.
pub(crate) const CACHE_BYTES: &str = "wsgate_cache_bytes";
/// Answers not cached for being over `cache.max_entry_bytes`, by stage and route.
pub(crate) const CACHE_TOO_LARGE_TOTAL: &str = "wsgate_cache_too_large_total";
/// JWKS documents fetched.
pub(crate) const JWKS_FETCH_TOTAL: &str = "wsgate_jwks_fetch_total";

/// Seconds per connection- and group-store call, by `op`.
pub(crate) const STORE_LATENCY: &str = "wsgate_store_operation_seconds";
/// Failed connection- and group-store calls, by `op`.
pub(crate) const STORE_ERROR_TOTAL: &str = "wsgate_store_errors_total";
/// Frames this node published on the cluster bus, by `kind`.
pub(crate) const BUS_PUBLISHED_TOTAL: &str = "wsgate_bus_published_total";
/// Frames this node received on the cluster bus, by `kind`.
pub(crate) const BUS_RECEIVED_TOTAL: &str = "wsgate_bus_received_total";
/// Cluster-bus failures, by `op` (`publish`, `decode`, `subscription_lost`, `resubscribe`, ...).
pub(crate) const BUS_ERROR_TOTAL: &str = "wsgate_bus_errors_total";
/// Frames dropped because the receive, ack or send queue was full.
pub(crate) const BUS_DROPPED_TOTAL: &str = "wsgate_bus_dropped_total";
/// Access log lines dropped because the stage's writer queue was full.
pub(crate) const ACCESS_LOG_DROPPED_TOTAL: &str = "wsgate_access_log_dropped_total";
/// Seconds per bus publish.
pub(crate) const BUS_PUBLISH_LATENCY: &str = "wsgate_bus_publish_seconds";
/// Callbacks forwarded to the owning node, by `method` and `outcome`.
pub(crate) const FORWARD_TOTAL: &str = "wsgate_cluster_forward_total";
/// How forwarded callbacks found their owner node: `source="cache"` (remembered) or `"record"`.
pub(crate) const FORWARD_OWNER_TOTAL: &str = "wsgate_cluster_forward_owner_total";
/// Seconds from forwarding a callback to the owner's answer, by `method`.
pub(crate) const FORWARD_LATENCY: &str = "wsgate_cluster_forward_seconds";
/// Lease renewals, by `outcome` (`held`, `reacquired`, `lost`, `error`).
pub(crate) const LEASE_TOTAL: &str = "wsgate_cluster_lease_renewals_total";
/// Connections of dead nodes reaped by this node (each got its `$disconnect`).
pub(crate) const REAPED_TOTAL: &str = "wsgate_cluster_reaped_connections_total";
/// Owed `$disconnect`s this node claimed after their first claimer died without settling them.
pub(crate) const OWED_CLAIMED_TOTAL: &str = "wsgate_cluster_owed_disconnects_claimed_total";
/// Connections without a record whose group memberships the membership sweep removed.
pub(crate) const ORPHANS_SWEPT_TOTAL: &str = "wsgate_cluster_orphan_memberships_swept_total";
/// Requests refused by a throttling bucket, by stage, route and the level (`scope`) that refused.
pub(crate) const THROTTLED_TOTAL: &str = "wsgate_throttled_total";
/// `$disconnect` calls tried again after a failure.
pub(crate) const DISCONNECT_RETRY_TOTAL: &str = "wsgate_disconnect_retries_total";
/// `$disconnect` calls given up after every attempt failed.
pub(crate) const DISCONNECT_FAILED_TOTAL: &str = "wsgate_disconnect_failed_total";
/// Connections whose queued inbound messages were dropped when `limits.inbound_drain_timeout`
/// ran out after the client left.
pub(crate) const INBOUND_DRAIN_CUT_TOTAL: &str = "wsgate_inbound_drain_cut_total";
/// Copies of an acknowledged route's message that did not reach the integration because the
/// id was seen, by `outcome` (`acknowledged`, `pending`, `waited`: waited for a first copy on
/// this node).
pub(crate) const ACK_DUPLICATE_TOTAL: &str = "wsgate_ack_duplicates_total";
/// Record removals tried again after a store error (the `$disconnect` waits for the outcome).
pub(crate) const REMOVE_RETRY_TOTAL: &str = "wsgate_store_remove_retries_total";

const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder, installed on first use (several gateways in one
/// process, as in tests, share it).
pub(crate) fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Fails only when another recorder was installed first; then `/metrics` shows nothing
        // from this library, which embedding programs choose by installing their own.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        describe_groups();
        handle
    })
}

/// How often histogram samples are folded into their buckets when nobody scrapes `/metrics`.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds the histogram samples recorded since the last scrape into their buckets every
/// [`UPKEEP_INTERVAL`] until `stop`. The recorder is built without the exporter's own upkeep
/// task (`build_recorder`), and without this or a scrape it keeps every sample (8 bytes each,
/// several per message): memory that grew with the messages handled (about 30 bytes a message in
/// the soak) on a gateway nobody scraped.
pub(crate) async fn keep_up(stop: tokio_util::sync::CancellationToken) {
    let handle = prometheus();
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        CONNECT_TOTAL,
        "Connection attempts that reached $connect (ConnectCount)"
    );
    describe_counter!(MESSAGE_TOTAL, "Messages from and to clients (MessageCount)");
    describe_counter!(
        CANARY_CONNECTIONS_TOTAL,
        "New connections that picked their stage's canary deployment"
    );
    describe_gauge!(
        CANARY_PERCENT,
        "Canary percentage of each stage on this node (0: none)"
    );
    describe_counter!(
        DEPLOYMENT_SWITCHES_TOTAL,
        "Switches to new stage pointers from the deployment store, by outcome"
    );
    describe_counter!(
        INTEGRATION_ERROR_TOTAL,
        "Integration answers with 4xx/5xx (IntegrationError)"
    );
    describe_counter!(
        INTEGRATION_RESPONSE_TOO_LARGE_TOTAL,
        "Integration answers over their size cap (not read further), by stage and route"
    );
    describe_counter!(
        CLIENT_ERROR_TOTAL,
        "4xx answered before invoking an integration (ClientError)"
    );
    describe_counter!(
        EXECUTION_ERROR_TOTAL,
        "Integrations that could not be called (ExecutionError)"
    );
    describe_histogram!(
        INTEGRATION_LATENCY,
        metrics::Unit::Seconds,
        "Integration latency (IntegrationLatency)"
    );
    describe_gauge!(CONNECTIONS_CURRENT, "Connections held by this node");
    describe_counter!(
        CACHE_HIT_TOTAL,
        "Messages answered from the response cache (CacheHitCount)"
    );
    describe_counter!(
        CACHE_MISS_TOTAL,
        "Messages of cached routes answered by the integration (CacheMissCount)"
    );
    describe_counter!(
        CACHE_ERROR_TOTAL,
        "Response-cache Redis operations that failed, by op"
    );
    describe_gauge!(
        CACHE_BYTES,
        "Bytes held by this node's memory response cache"
    );
    describe_counter!(
        CACHE_TOO_LARGE_TOTAL,
        "Answers not cached for being over cache.max_entry_bytes"
    );
    describe_counter!(
        DISCONNECT_TOTAL,
        "Connections closed, by close code (client-chosen application codes as 3xxx or 4xxx)"
    );
    describe_counter!(
        DISCONNECT_RETRY_TOTAL,
        "$disconnect calls tried again after a failure"
    );
    describe_counter!(
        DISCONNECT_FAILED_TOTAL,
        "$disconnect calls given up after every attempt failed"
    );
    describe_counter!(
        INBOUND_DRAIN_CUT_TOTAL,
        "Closed connections whose queued inbound messages were dropped after limits.inbound_drain_timeout"
    );
    describe_counter!(
        ACK_DUPLICATE_TOTAL,
        "Duplicate client messages on acknowledged routes kept from the integration, by outcome"
    );
    describe_counter!(
        REMOVE_RETRY_TOTAL,
        "Removals of an ended connection's record or group memberships tried again after a store error"
    );
    describe_counter!(
        CALLBACK_TOTAL,
        "Callback API requests, by method and status"
    );
    describe_counter!(
        THROTTLED_TOTAL,
        "Requests refused by throttling, by stage, route and scope"
    );
    describe_counter!(
        CONNECT_REFUSED_TOTAL,
        "Upgrade requests refused by origin, per-address, authorizer or API key checks"
    );
    describe_counter!(
        PROXY_HEADER_REFUSED_TOTAL,
        "Connections closed on a PROXY protocol listener for a missing, invalid or late header"
    );
    describe_counter!(
        INTEGRATION_HOST_REFUSED_TOTAL,
        "Integration connections refused: the host resolved to a link-local or metadata address"
    );
    describe_counter!(JWKS_FETCH_TOTAL, "JWKS documents fetched");
    describe_histogram!(
        STORE_LATENCY,
        metrics::Unit::Seconds,
        "Connection- and group-store call latency, by op"
    );
    describe_counter!(
        STORE_ERROR_TOTAL,
        "Failed connection- and group-store calls, by op"
    );
    describe_counter!(
        BUS_PUBLISHED_TOTAL,
        "Frames published on the cluster bus, by kind"
    );
    describe_counter!(
        BUS_RECEIVED_TOTAL,
        "Frames received on the cluster bus, by kind"
    );
    describe_counter!(BUS_ERROR_TOTAL, "Cluster-bus failures, by op");
    describe_counter!(
        BUS_DROPPED_TOTAL,
        "Cluster-bus frames dropped at a full queue"
    );
    describe_counter!(
        ACCESS_LOG_DROPPED_TOTAL,
        "Access log lines dropped at a full writer queue, by stage"
    );
    describe_histogram!(
        BUS_PUBLISH_LATENCY,
        metrics::Unit::Seconds,
        "Cluster-bus publish latency"
    );
    describe_counter!(
        FORWARD_TOTAL,
        "Callbacks forwarded to the owning node, by method and outcome"
    );
    describe_counter!(
        FORWARD_OWNER_TOTAL,
        "Forwarded callbacks by where their owner node came from (cache or record)"
    );
    describe_histogram!(
        FORWARD_LATENCY,
        metrics::Unit::Seconds,
        "Forwarded callback latency, by method"
    );
    describe_counter!(LEASE_TOTAL, "Node lease renewals, by outcome");
    describe_counter!(
        crate::traces::SPANS_DROPPED_TOTAL,
        "Trace spans dropped at a full export queue (tracing.batch.max_queue_spans)"
    );
    describe_counter!(
        crate::traces::EXPORT_ERRORS_TOTAL,
        "Trace exports that failed or timed out (their spans are lost), by protocol"
    );
    describe_counter!(
        REAPED_TOTAL,
        "Connections of dead nodes reaped by this node"
    );
    describe_counter!(
        OWED_CLAIMED_TOTAL,
        "Owed $disconnects claimed by this node after their first claimer died"
    );
    describe_counter!(
        ORPHANS_SWEPT_TOTAL,
        "Connections without a record whose group memberships this node's sweep removed"
    );
}

/// Creates the series whose labels are known at start (adding 0, so a series that exists keeps
/// its value) (per stage, per route, the
/// labelless ones), so dashboards and alerts see a node before its first event: `rate()` over
/// an absent series is empty, and a node without connections would be missing from a
/// `label_values(wsgate_connections_current, instance)` list. Series labelled by what happened
/// (a close code, an error's `op`) appear when it first happens.
pub(crate) fn init_series<'a>(
    stages: impl IntoIterator<Item = &'a str>,
    routes: &[&str],
    clustered: bool,
) {
    metrics::gauge!(CONNECTIONS_CURRENT).increment(0.0);
    metrics::gauge!(GROUPS_CURRENT).increment(0.0);
    metrics::gauge!(GROUP_MEMBERS_CURRENT).increment(0.0);
    metrics::counter!(CLIENT_ERROR_TOTAL).increment(0);
    metrics::counter!(DISCONNECT_FAILED_TOTAL).increment(0);
    for kind in ["group", "broadcast"] {
        metrics::counter!(GROUP_FANOUTS_TOTAL, "kind" => kind).increment(0);
        metrics::counter!(GROUP_DELIVERIES_TOTAL, "kind" => kind).increment(0);
        metrics::counter!(GROUP_DROPS_TOTAL, "kind" => kind).increment(0);
    }
    if clustered {
        metrics::counter!(REAPED_TOTAL).increment(0);
        metrics::counter!(OWED_CLAIMED_TOTAL).increment(0);
        metrics::counter!(ORPHANS_SWEPT_TOTAL).increment(0);
    }
    for stage in stages {
        metrics::counter!(CONNECT_TOTAL, "stage" => stage.to_string()).increment(0);
        for route in routes {
            metrics::counter!(THROTTLED_TOTAL, "stage" => stage.to_string(), "route" => route.to_string())
                .increment(0);
        }
    }
}

/// Installs the tracing subscriber (`RUST_LOG` overrides `log.level`). Text lines are coloured
/// only when stdout is a terminal and `NO_COLOR` is unset, so a file or a pipe gets plain text.
pub fn init_logging(config: &LogConfig) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_target(true);
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

// Groups.

/// Groups with members on this node.
pub(crate) const GROUPS_CURRENT: &str = "wsgate_groups_current";
/// Group memberships on this node.
pub(crate) const GROUP_MEMBERS_CURRENT: &str = "wsgate_group_members_current";
/// Group messages and broadcasts fanned out on this node, by `kind` (`group`, `broadcast`).
pub(crate) const GROUP_FANOUTS_TOTAL: &str = "wsgate_group_fanouts_total";
/// Messages queued for members by fan-outs, by `kind`.
pub(crate) const GROUP_DELIVERIES_TOTAL: &str = "wsgate_group_deliveries_total";
/// Members skipped because their outbound queue was full, by `kind`.
pub(crate) const GROUP_DROPS_TOTAL: &str = "wsgate_group_drops_total";
/// Group messages published to the other nodes, by `outcome` (`ok`, `error`).
pub(crate) const GROUP_PUBLISH_TOTAL: &str = "wsgate_group_publish_total";
/// Presence events, by `outcome` (`sent`, `failed`, `dropped`).
pub(crate) const GROUP_PRESENCE_TOTAL: &str = "wsgate_group_presence_events_total";

/// Describes every group metric.
fn describe_groups() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(GROUPS_CURRENT, "Groups with members on this node");
    describe_gauge!(GROUP_MEMBERS_CURRENT, "Group memberships on this node");
    describe_counter!(
        GROUP_FANOUTS_TOTAL,
        "Group messages and broadcasts fanned out on this node, by kind"
    );
    describe_counter!(
        GROUP_DELIVERIES_TOTAL,
        "Messages queued for group members by fan-outs, by kind"
    );
    describe_counter!(
        GROUP_DROPS_TOTAL,
        "Group members skipped because their outbound queue was full, by kind"
    );
    describe_counter!(
        GROUP_PUBLISH_TOTAL,
        "Group messages published to the other nodes, by outcome"
    );
    describe_counter!(GROUP_PRESENCE_TOTAL, "Group presence events, by outcome");
}
