//! The membership sweep: group memberships left by a connection whose record is gone.
//!
//! A connection's end removes its record, runs `$disconnect`, and removes its memberships (the
//! stage's set, its groups' sets, its own list of groups) again and again while the store
//! refuses. A process that exits meanwhile (`shutdown.drain_timeout` ran out, a crash) drops
//! that retry, and with the record gone no reaper finds the connection any more. So at every
//! `cluster.index_sweep_interval` one node (the live node with the lowest id; two nodes that
//! both think so only do the work twice) pages through the connections of each stage
//! (`GroupStore::stage_connections`: a cleanup empties that set last, so whatever a cleanup cut
//! short leaves, the id is still listed there) and looks each id up. An id that is neither
//! open on this node nor recorded, on two passes in a row (a connection closing right now has
//! its own cleanup under way), leaves every group and its stage, with `$leave` events that
//! carry only its id and stage.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::StreamExt;
use wsgate_connection_store::StoreError;

use super::Cluster;
use crate::events::ConnectionMeta;
use crate::state::Shared;
use crate::telemetry;

/// Ids listed per page.
const PAGE: usize = 256;
/// Record lookups in flight at once.
const LOOKUPS: usize = 32;

/// `(stage, id)` found without a record on the last pass.
#[derive(Debug, Default)]
pub(super) struct Orphans {
    suspects: HashSet<(String, String)>,
}

impl Orphans {
    /// One pass, on the sweeping node only; a store error ends it until the next period.
    pub(super) async fn sweep(&mut self, shared: &Shared, cluster: &Cluster) {
        match is_sweeper(cluster).await {
            Ok(true) => {}
            Ok(false) => {
                self.suspects.clear();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "membership sweep skipped; trying again next period");
                return;
            }
        }
        match self.pass(shared).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::warn!(
                forgotten,
                "removed the group memberships of connections whose cleanup never finished"
            ),
            Err(error) => {
                tracing::warn!(%error, "membership sweep failed; trying again next period");
            }
        }
    }

    async fn pass(&mut self, shared: &Shared) -> Result<usize, StoreError> {
        let stages: Vec<String> = (shared.definition().config.api.stages.keys())
            .cloned()
            .collect();
        let mut seen = HashSet::new();
        let mut forgotten = 0;
        for stage in stages {
            let mut cursor = None;
            loop {
                let page = (shared.groups.store())
                    .stage_connections(&stage, cursor, PAGE)
                    .await?;
                for id in unrecorded(shared, page.ids).await? {
                    let key = (stage.clone(), id);
                    if self.suspects.remove(&key) {
                        forget(shared, &key.0, &key.1).await?;
                        forgotten += 1;
                    } else {
                        seen.insert(key);
                    }
                }
                cursor = page.next_cursor;
                if cursor.is_none() {
                    break;
                }
            }
        }
        self.suspects = seen;
        Ok(forgotten)
    }
}

/// True when no live node has a lower id than this one.
async fn is_sweeper(cluster: &Cluster) -> Result<bool, StoreError> {
    let mut nodes = cluster.members.lease_nodes().await?;
    nodes.sort_unstable();
    for node in nodes {
        if node >= cluster.node_id {
            break;
        }
        if cluster.members.lease_alive(&node).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The ids of `ids` neither open on this node nor recorded in the store.
async fn unrecorded(shared: &Shared, ids: Vec<String>) -> Result<Vec<String>, StoreError> {
    let looked: Vec<(String, Result<bool, StoreError>)> = futures_util::stream::iter(ids)
        .filter(|id| std::future::ready(shared.registry.get(id).is_none()))
        .map(|id| async move {
            let found = shared.store.get(&id).await.map(|r| r.is_some());
            (id, found)
        })
        .buffer_unordered(LOOKUPS)
        .collect()
        .await;
    let mut gone = Vec::new();
    for (id, found) in looked {
        match found {
            Ok(true) | Err(StoreError::Corrupt { .. }) => {}
            Ok(false) => gone.push(id),
            Err(error) => return Err(error),
        }
    }
    Ok(gone)
}

/// Removes the memberships of `id`, which has no record (so its event fields are gone too).
async fn forget(shared: &Shared, stage: &str, id: &str) -> Result<(), StoreError> {
    let live = shared.definition();
    let meta = ConnectionMeta {
        connection_id: id.to_owned(),
        stage: stage.to_owned(),
        api_id: Arc::clone(&shared.api_id),
        domain_name: (live.config.api.domain_name.clone())
            .unwrap_or_else(|| shared.config.listen.to_string()),
        connected_at_ms: 0,
        source_ip: String::new(),
        user_agent: None,
        api_key: None,
        api_key_id: None,
        authorizer: None,
        iam: None,
        cache_request: None,
        canary: false,
    };
    shared.groups.try_forget_in_store(&Arc::new(meta)).await?;
    metrics::counter!(telemetry::ORPHANS_SWEPT_TOTAL).increment(1);
    tracing::info!(
        connection_id = id,
        stage,
        "removed the memberships of a connection without a record"
    );
    Ok(())
}
