//! The reaper, on every node: each `reaper_interval`, for every registered node whose lease is
//! gone, claim it (one Lua script: only if the lease is still gone), remove its records one by
//! one and run `$disconnect` (status 1006) for each record this node removed. Records are
//! removed with `store.remove_owing`, which hands a record to one caller only and files a
//! durable "`$disconnect` owed" entry claimed by this node for `disconnect_claim_ttl`; the entry
//! is settled once the `$disconnect` has run. So with several reapers each connection still gets
//! one `$disconnect`, and a reaper that dies between removing and delivering loses nothing: the
//! same pass also claims owed entries whose claim expired (their claimer died) and delivers them.
//! A node whose lease comes back mid-reap is left alone from the next page on. A reaped
//! connection also leaves its groups in the store (with `$leave` events).
//!
//! A node reaps (and claims owed entries) only after its own renewals have succeeded for a
//! whole `lease_ttl`, so after a Redis outage the live nodes have renewed before anyone judges
//! them dead.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use wsgate_connection_store::{ConnectionRecord, LeaseClaim, StoreError};

use super::Cluster;
use crate::events::ConnectionMeta;
use crate::state::Shared;
use crate::telemetry;

/// `$disconnect` status and reason for connections of a node that died.
const LOST_STATUS: u16 = 1006;
const LOST_REASON: &str = "Going away: gateway node lost";
/// Records listed per page.
const PAGE: usize = 256;
/// `$disconnect` calls in flight per reaper; also the owed entries claimed at once, so that a
/// batch is delivered within one `$disconnect` retry window, well inside its claim.
const DISCONNECT_CONCURRENCY: usize = 32;

pub(super) async fn run(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let period = cluster.config.reaper_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut owed_pass: Option<JoinHandle<()>> = None;
    loop {
        tokio::select! {
            () = cluster.stop.cancelled() => break,
            _ = tick.tick() => {
                if cluster.lease.healthy_for() < cluster.config.lease_ttl {
                    continue;
                }
                // Beside the reaping, so a backlog of owed events never delays it; one at a time.
                if owed_pass.as_ref().is_none_or(JoinHandle::is_finished) {
                    owed_pass = Some(shared.tracker.spawn(deliver_owed(
                        Arc::clone(&shared),
                        Arc::clone(&cluster),
                    )));
                }
                if let Err(error) = reap_dead_nodes(&shared, &cluster).await {
                    tracing::warn!(%error, "reaper pass failed; trying again next period");
                }
            }
        }
    }
}

/// Claims owed `$disconnect`s whose claimer died without settling them, a batch at a time,
/// delivers and settles each batch before claiming the next.
async fn deliver_owed(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let claim_for = cluster.config.disconnect_claim_ttl;
    let mut delivered = 0_usize;
    while !cluster.stop.is_cancelled() {
        let batch = match shared
            .store
            .claim_owed(&cluster.node_id, claim_for, DISCONNECT_CONCURRENCY)
            .await
        {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "cannot claim owed $disconnects; trying again next period");
                break;
            }
        };
        let full = batch.len() == DISCONNECT_CONCURRENCY;
        delivered += batch.len();
        metrics::counter!(telemetry::OWED_CLAIMED_TOTAL).increment(batch.len() as u64);
        let deliveries = batch
            .into_iter()
            .map(|record| disconnect_and_settle(&shared, record));
        futures_util::future::join_all(deliveries).await;
        if !full {
            break;
        }
    }
    if delivered > 0 {
        tracing::warn!(
            delivered,
            "delivered $disconnects left owed by a node that died before sending them"
        );
    }
}

async fn reap_dead_nodes(shared: &Arc<Shared>, cluster: &Cluster) -> Result<(), StoreError> {
    for node in cluster.members.lease_nodes().await? {
        if node == cluster.node_id || cluster.members.lease_alive(&node).await? {
            continue;
        }
        if cluster
            .members
            .claim_dead(&node, super::TOMBSTONE_TTL)
            .await?
            == LeaseClaim::Alive
        {
            continue;
        }
        tracing::warn!(node = %node, "node lost; reaping its connections");
        let reaped = reap_node(shared, cluster, &node, true).await?;
        let forgotten = cluster.members.forget_dead(&node).await?;
        tracing::info!(node = %node, reaped, forgotten, "node reaped");
    }
    Ok(())
}

/// Removes `node`'s records page by page and runs `$disconnect` for each one removed here.
/// With `stop_if_alive`, stops as soon as the node holds a lease again.
async fn reap_node(
    shared: &Arc<Shared>,
    cluster: &Cluster,
    node: &str,
    stop_if_alive: bool,
) -> Result<usize, StoreError> {
    let limit = Arc::new(Semaphore::new(DISCONNECT_CONCURRENCY));
    let mut cursor = None;
    let mut reaped = 0;
    loop {
        let page = shared.store.list_node(node, cursor, PAGE).await?;
        // Checked after listing: a record on this page predates any lease taken after this.
        if stop_if_alive && cluster.members.lease_alive(node).await? {
            tracing::info!(node, "node came back while being reaped; stopping");
            break;
        }
        for id in page.ids {
            if node == cluster.node_id && shared.registry.get(&id).is_some() {
                continue;
            }
            // The permit first: the owed entry's claim starts when a delivery slot is free.
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                break;
            };
            let removed = shared
                .store
                .remove_owing(&id, &cluster.node_id, cluster.config.disconnect_claim_ttl)
                .await?;
            let Some(record) = removed else {
                continue;
            };
            reaped += 1;
            metrics::counter!(telemetry::REAPED_TOTAL).increment(1);
            let shared_for_task = Arc::clone(shared);
            shared.tracker.spawn(async move {
                let _permit = permit;
                disconnect_and_settle(&shared_for_task, record).await;
            });
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    Ok(reaped)
}

/// At start: records filed under this node id by an earlier process of the same id (killed and
/// restarted) have no socket any more; reap them like a dead node's.
pub(super) async fn reap_leftovers(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    match reap_node(&shared, &cluster, &cluster.node_id, false).await {
        Ok(0) => {}
        Ok(reaped) => tracing::warn!(
            reaped,
            "reaped records left by an earlier process of this node id"
        ),
        Err(error) => tracing::warn!(%error, "cannot reap records left by an earlier process"),
    }
}

/// `$disconnect` for a record removed with `remove_owing` (or claimed from an owed entry), then
/// the owed entry is settled: the event was delivered or given up on.
async fn disconnect_and_settle(shared: &Shared, record: ConnectionRecord) {
    let connection_id = record.connection_id.clone();
    disconnect(shared, record).await;
    crate::ws::settle(shared, &connection_id).await;
}

/// `$disconnect` for a reaped record, with the event fields the owner would have sent.
async fn disconnect(shared: &Shared, record: ConnectionRecord) {
    // The stage's primary: whether the connection was on a canary is not recorded.
    let live = shared.definition_for(&record.stage, false);
    let Some(routes) = live.stage(&record.stage) else {
        tracing::warn!(connection_id = %record.connection_id, stage = %record.stage, "reaped a connection of an unknown stage; no $disconnect");
        return;
    };
    let meta = ConnectionMeta {
        connection_id: record.connection_id,
        stage: record.stage,
        api_id: Arc::clone(&shared.api_id),
        domain_name: record
            .domain_name
            .or_else(|| live.config.api.domain_name.clone())
            .unwrap_or_else(|| shared.config.listen.to_string()),
        connected_at_ms: record.connected_at_ms,
        source_ip: record.source_ip,
        user_agent: record.user_agent,
        api_key: None,
        api_key_id: record.api_key_id,
        authorizer: record.authorizer,
        iam: None,
        cache_request: None,
        canary: false,
    };
    let meta = Arc::new(meta);
    let forgotten = shared.groups.try_forget_in_store(&meta).await.is_ok();
    crate::ws::run_disconnect(shared, routes, &meta, LOST_STATUS, LOST_REASON).await;
    if !forgotten {
        shared.groups.forget_in_store(&meta).await;
    }
}
