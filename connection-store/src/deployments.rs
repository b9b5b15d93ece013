//! The `DeploymentStore` seam: immutable deployments of an API definition and the per-stage
//! pointers to them, shared by every gateway node (memory for one node, Redis for several).
//!
//! A deployment is written once and never changed: its id, when it was made, a description,
//! the content hash and the definition text (JSON of the live part of a configuration). A
//! stage's pointer names the deployment it serves, optionally a canary deployment with the
//! percentage of new connections it gets, and the stage's previous deployments (newest first,
//! for rollbacks). The pointers of all stages change together, with compare-and-set on a
//! version number, so two operators racing cannot interleave their changes.
//!
//! Each node also heartbeats what it serves ([`NodeServing`]), which any node can list.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// At most this many previous deployments are kept in a stage's history.
pub const HISTORY_LIMIT: usize = 10;

/// A deployment's identity and description (what listings show).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentInfo {
    /// `{hash}-{created_at_ms}`, unique.
    pub id: String,
    /// When it was made, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// What the operator said about it (may be empty).
    pub description: String,
    /// The content hash of the definition (12 hex digits).
    pub hash: String,
}

/// A whole deployment: its identity and its definition text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredDeployment {
    /// Identity and description.
    #[serde(flatten)]
    pub info: DeploymentInfo,
    /// The definition (opaque to the store).
    pub definition: String,
}

/// A stage's canary: a second deployment that gets `percent` of the stage's new connections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Canary {
    /// The canary deployment's id.
    pub deployment: String,
    /// Share of new connections, in (0, 100].
    pub percent: f64,
}

/// What one stage serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagePointer {
    /// The deployment the stage serves.
    pub deployment: String,
    /// The canary, if one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// The deployments it served before, newest first (at most [`HISTORY_LIMIT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<String>,
}

impl StagePointer {
    /// Points at `deployment`, pushing the current one onto the history (bounded).
    pub fn moved_to(&self, deployment: &str) -> Self {
        let mut history = self.history.clone();
        if self.deployment != deployment {
            history.insert(0, self.deployment.clone());
            history.truncate(HISTORY_LIMIT);
        }
        Self {
            deployment: deployment.to_owned(),
            canary: None,
            history,
        }
    }
}

/// The pointers of every stage and their version (0: nothing was ever deployed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pointers {
    /// Incremented by every change.
    pub version: u64,
    /// Stage name → pointer.
    pub stages: BTreeMap<String, StagePointer>,
}

impl Pointers {
    /// Every deployment id the pointers name (served, canary or in a history).
    pub fn referenced(&self) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for pointer in self.stages.values() {
            ids.insert(pointer.deployment.clone());
            if let Some(canary) = &pointer.canary {
                ids.insert(canary.deployment.clone());
            }
            ids.extend(pointer.history.iter().cloned());
        }
        ids
    }
}

/// What one stage of one node serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServedStage {
    /// The deployment it serves.
    pub deployment: String,
    /// The canary deployment, if one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
}

/// A node's heartbeat: what it serves, as of `at_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeServing {
    /// The node.
    pub node_id: String,
    /// When it said so (ms since the Unix epoch).
    pub at_ms: i64,
    /// The pointer version it has applied.
    pub version: u64,
    /// Stage → what it serves.
    pub stages: BTreeMap<String, ServedStage>,
    /// Why it could not follow the pointers, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Deployments and stage pointers. Object-safe; implemented by [`crate::MemoryDeployments`]
/// and [`crate::RedisStore`], checked by `conformance::deployments`.
#[async_trait]
pub trait DeploymentStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `deployment` (an existing id is left as it is: deployments never change), then
    /// deletes the oldest deployments beyond the newest `keep`, except those in `protect`.
    ///
    /// # Errors
    /// Backend errors.
    async fn put_deployment(
        &self,
        deployment: &StoredDeployment,
        keep: usize,
        protect: &BTreeSet<String>,
    ) -> Result<(), StoreError>;

    /// The deployment `id`, if it is kept.
    ///
    /// # Errors
    /// Backend errors; [`StoreError::Malformed`] for an unreadable value.
    async fn deployment(&self, id: &str) -> Result<Option<StoredDeployment>, StoreError>;

    /// The kept deployments, newest first.
    ///
    /// # Errors
    /// Backend errors.
    async fn deployments(&self) -> Result<Vec<DeploymentInfo>, StoreError>;

    /// The pointers and their version.
    ///
    /// # Errors
    /// Backend errors; [`StoreError::Malformed`] for an unreadable value.
    async fn pointers(&self) -> Result<Pointers, StoreError>;

    /// The pointers' version alone (cheap: what nodes poll).
    ///
    /// # Errors
    /// Backend errors.
    async fn pointers_version(&self) -> Result<u64, StoreError>;

    /// Replaces every stage's pointer with `stages` if the version is still `expected`:
    /// `Some(new version)`, or `None` when someone changed them meanwhile (nothing written).
    ///
    /// # Errors
    /// Backend errors.
    async fn set_pointers(
        &self,
        expected: u64,
        stages: &BTreeMap<String, StagePointer>,
    ) -> Result<Option<u64>, StoreError>;

    /// Records what a node serves (replacing its previous heartbeat).
    ///
    /// # Errors
    /// Backend errors.
    async fn heartbeat(&self, serving: &NodeServing) -> Result<(), StoreError>;

    /// The heartbeats newer than `since_ms`, by node id; older ones are deleted.
    ///
    /// # Errors
    /// Backend errors.
    async fn nodes(&self, since_ms: i64) -> Result<Vec<NodeServing>, StoreError>;
}
