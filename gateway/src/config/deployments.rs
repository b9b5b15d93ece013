//! `deployments:` section: whether deployments are the node's own or shared through the Redis
//! store, how many are kept and how often a node checks the stage pointers; see
//! `docs/deployments.md`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ConfigError, StoreConfig, duration};

/// Most deployments `deployments.keep` may ask for.
pub const MAX_KEPT_DEPLOYMENTS: usize = 1000;

/// Where a node's deployments and stage pointers live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentScope {
    /// In the node's memory: its file seeds them at start, `wsgate apply`, `rollback` and
    /// `canary` change this node only, and nodes sharing a Redis store may serve different
    /// definitions.
    #[default]
    Node,
    /// In the Redis store, shared by every node on its prefix: an apply through any node
    /// switches them all, and the store's pointers win over a node's file at start (the file
    /// only seeds an empty store). Needs `store: {kind: redis}`.
    Cluster,
}

/// `deployments:` settings (fixed at start).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeploymentsConfig {
    /// `node` (the default) keeps deployments in the node's memory; `cluster` shares them
    /// through the Redis store, so that every node serves what was last applied.
    pub scope: DeploymentScope,
    /// How many deployments the store keeps (the newest; those a stage serves, runs as a
    /// canary or may roll back to are kept as well). 1 to 1000.
    pub keep: usize,
    /// How often a node reads the stage pointers' version from the store (besides the
    /// notification every apply publishes), so it switches within this long of a deploy even
    /// when a notification is lost.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub check_interval: Duration,
    /// Largest definition `POST /@admin/api/deployments` (`wsgate apply`) accepts, in bytes.
    pub max_definition_bytes: usize,
}

impl Default for DeploymentsConfig {
    fn default() -> Self {
        Self {
            scope: DeploymentScope::Node,
            keep: 20,
            check_interval: Duration::from_secs(1),
            max_definition_bytes: 1024 * 1024,
        }
    }
}

impl DeploymentsConfig {
    /// Checks the bounds.
    ///
    /// # Errors
    /// The key at fault.
    pub(crate) fn validate(&self, store: &StoreConfig) -> Result<(), ConfigError> {
        if self.scope == DeploymentScope::Cluster && matches!(store, StoreConfig::Memory) {
            return Err(ConfigError::invalid(
                "deployments.scope",
                "cluster shares deployments through the Redis store: set store: {kind: redis}, or scope: node",
            ));
        }
        if self.keep == 0 || self.keep > MAX_KEPT_DEPLOYMENTS {
            return Err(ConfigError::invalid(
                "deployments.keep",
                format!("must be 1 to {MAX_KEPT_DEPLOYMENTS}"),
            ));
        }
        if self.check_interval < Duration::from_millis(10) {
            return Err(ConfigError::invalid(
                "deployments.check_interval",
                "must be at least 10ms",
            ));
        }
        if self.max_definition_bytes < 1024 {
            return Err(ConfigError::invalid(
                "deployments.max_definition_bytes",
                "must be at least 1024",
            ));
        }
        Ok(())
    }
}
