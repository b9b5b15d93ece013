//! What the admin page shows of the cluster: every registered node with whether its lease is
//! alive, and this node's own lease health.

use serde::Serialize;
use wsgate_connection_store::StoreError;

use super::Cluster;

/// Nodes listed at most.
const MAX_NODES: usize = 64;

/// One registered node.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeView {
    /// Its id.
    pub id: String,
    /// Its lease exists right now.
    pub alive: bool,
    /// It is this node.
    #[serde(rename = "self")]
    pub this: bool,
}

/// The cluster as this node sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClusterView {
    /// Registered nodes (alive, or dead and not reaped yet), at most 64, sorted by id.
    pub nodes: Vec<NodeView>,
    /// More nodes are registered than listed.
    pub truncated: bool,
    /// This node's lease is certainly held (renewed within `cluster.lease_ttl`).
    pub lease_held: bool,
    /// Renewals have succeeded without a gap for this long.
    pub lease_healthy_seconds: u64,
    /// `cluster.lease_ttl`.
    pub lease_ttl_seconds: f64,
}

impl Cluster {
    /// The registered nodes and this node's lease.
    ///
    /// # Errors
    /// When Redis cannot be read.
    pub(crate) async fn view(&self) -> Result<ClusterView, StoreError> {
        let mut ids = self.members.lease_nodes().await?;
        ids.sort_unstable();
        let truncated = ids.len() > MAX_NODES;
        ids.truncate(MAX_NODES);
        let alive =
            futures_util::future::try_join_all(ids.iter().map(|id| self.members.lease_alive(id)))
                .await?;
        let nodes = (ids.into_iter().zip(alive))
            .map(|(id, alive)| NodeView {
                this: id == self.node_id,
                id,
                alive,
            })
            .collect();
        Ok(ClusterView {
            nodes,
            truncated,
            lease_held: self.lease.certainly_held(),
            lease_healthy_seconds: self.lease.healthy_for().as_secs(),
            lease_ttl_seconds: self.config.lease_ttl.as_secs_f64(),
        })
    }
}
