//! [`DeploymentStore`] in memory, for a gateway that is its own cluster (`store: memory`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::StoreError;
use crate::deployments::{
    DeploymentInfo, DeploymentStore, NodeServing, Pointers, StagePointer, StoredDeployment,
};

/// Deployments, pointers and heartbeats behind one lock (every call is short and never awaits
/// while holding it).
#[derive(Debug, Default)]
pub struct MemoryDeployments {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    deployments: BTreeMap<String, StoredDeployment>,
    pointers: Pointers,
    nodes: BTreeMap<String, NodeServing>,
}

impl MemoryDeployments {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }
}

/// Newest first: by creation time, then id.
fn newest_first(a: &DeploymentInfo, b: &DeploymentInfo) -> std::cmp::Ordering {
    (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id))
}

#[async_trait]
impl DeploymentStore for MemoryDeployments {
    async fn put_deployment(
        &self,
        deployment: &StoredDeployment,
        keep: usize,
        protect: &BTreeSet<String>,
    ) -> Result<(), StoreError> {
        self.with(|state| {
            state
                .deployments
                .entry(deployment.info.id.clone())
                .or_insert_with(|| deployment.clone());
            let mut infos: Vec<DeploymentInfo> =
                state.deployments.values().map(|d| d.info.clone()).collect();
            infos.sort_by(newest_first);
            for old in infos.iter().skip(keep.max(1)) {
                if !protect.contains(&old.id) && old.id != deployment.info.id {
                    state.deployments.remove(&old.id);
                }
            }
        });
        Ok(())
    }

    async fn deployment(&self, id: &str) -> Result<Option<StoredDeployment>, StoreError> {
        Ok(self.with(|state| state.deployments.get(id).cloned()))
    }

    async fn deployments(&self) -> Result<Vec<DeploymentInfo>, StoreError> {
        let mut infos: Vec<DeploymentInfo> =
            self.with(|state| state.deployments.values().map(|d| d.info.clone()).collect());
        infos.sort_by(newest_first);
        Ok(infos)
    }

    async fn pointers(&self) -> Result<Pointers, StoreError> {
        Ok(self.with(|state| state.pointers.clone()))
    }

    async fn pointers_version(&self) -> Result<u64, StoreError> {
        Ok(self.with(|state| state.pointers.version))
    }

    async fn set_pointers(
        &self,
        expected: u64,
        stages: &BTreeMap<String, StagePointer>,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self.with(|state| {
            if state.pointers.version != expected {
                return None;
            }
            state.pointers.version += 1;
            state.pointers.stages = stages.clone();
            Some(state.pointers.version)
        }))
    }

    async fn heartbeat(&self, serving: &NodeServing) -> Result<(), StoreError> {
        self.with(|state| {
            state.nodes.insert(serving.node_id.clone(), serving.clone());
        });
        Ok(())
    }

    async fn nodes(&self, since_ms: i64) -> Result<Vec<NodeServing>, StoreError> {
        Ok(self.with(|state| {
            state.nodes.retain(|_, node| node.at_ms >= since_ms);
            state.nodes.values().cloned().collect()
        }))
    }
}
