//! The deployment store of a node with `deployments.scope: node` on a shared store: its
//! deployments and stage pointers in its own memory, its heartbeats (what it serves) in the
//! shared store, so that every node's admin page and `wsgate deployments` list what each node
//! of the cluster serves without the nodes sharing their deployments.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use wsgate_connection_store::{
    DeploymentInfo, DeploymentStore, MemoryDeployments, NodeServing, Pointers, StagePointer,
    StoreError, StoredDeployment,
};

/// Own deployments, shared heartbeats.
#[derive(Debug)]
pub(crate) struct OwnDeployments {
    own: MemoryDeployments,
    heartbeats: Arc<dyn DeploymentStore>,
}

impl OwnDeployments {
    /// Deployments in memory, heartbeats in `heartbeats`.
    pub(crate) fn new(heartbeats: Arc<dyn DeploymentStore>) -> Self {
        Self {
            own: MemoryDeployments::new(),
            heartbeats,
        }
    }
}

#[async_trait]
impl DeploymentStore for OwnDeployments {
    async fn put_deployment(
        &self,
        deployment: &StoredDeployment,
        keep: usize,
        protect: &BTreeSet<String>,
    ) -> Result<(), StoreError> {
        self.own.put_deployment(deployment, keep, protect).await
    }

    async fn deployment(&self, id: &str) -> Result<Option<StoredDeployment>, StoreError> {
        self.own.deployment(id).await
    }

    async fn deployments(&self) -> Result<Vec<DeploymentInfo>, StoreError> {
        self.own.deployments().await
    }

    async fn pointers(&self) -> Result<Pointers, StoreError> {
        self.own.pointers().await
    }

    async fn pointers_version(&self) -> Result<u64, StoreError> {
        self.own.pointers_version().await
    }

    async fn set_pointers(
        &self,
        expected_version: u64,
        stages: &BTreeMap<String, StagePointer>,
    ) -> Result<Option<u64>, StoreError> {
        self.own.set_pointers(expected_version, stages).await
    }

    async fn heartbeat(&self, serving: &NodeServing) -> Result<(), StoreError> {
        self.heartbeats.heartbeat(serving).await
    }

    async fn nodes(&self, since_ms: i64) -> Result<Vec<NodeServing>, StoreError> {
        self.heartbeats.nodes(since_ms).await
    }
}
