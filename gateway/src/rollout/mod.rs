//! Deployments cluster-wide: which deployment each stage serves, decided in the deployment
//! store (memory for one node, Redis for several) and followed by every node.
//!
//! An apply stores an immutable deployment (the live part of a configuration: `api` and
//! `throttling`) and moves stage pointers to it (or makes it a stage's canary); a rollback,
//! promote or drop moves pointers only. Every change is compare-and-set on the pointers'
//! version, then published; each node reads the version every `deployments.check_interval`
//! and on every notification, and when it moved builds the definitions the pointers name on
//! top of its own start configuration and swaps them in (no socket is touched). A node that
//! starts reads the pointers before it serves; its file seeds the store only when the store has
//! none. See `docs/deployments.md`.
//!
//! - `switch`: pointers → the definitions this node serves; the follow loop and heartbeats.
//! - `ops`: apply, rollback, promote, drop and the listing (what the admin API calls).
//! - `client`: `wsgate apply`, `rollback`, `deployments`, `canary` (through the admin API).

pub(crate) mod client;
mod ops;
pub(crate) mod own;
mod switch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wsgate_connection_store::{DeploymentStore, StoredDeployment};

use crate::bus::channels::Channels;
use crate::config::Config;
use crate::deployment::{self, Builder, Definition, Deployment};
use crate::error::ReloadError;
use crate::state::Shared;

pub(crate) use ops::ApplyRequest;
pub(crate) use switch::{initial, run};

/// How often a node writes what it serves into the store even when nothing changed.
const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// Heartbeats older than this are not listed (and are deleted).
const HEARTBEAT_HORIZON_MS: i64 = 15_000;

/// The definitions built from stored deployments, by id, with their creation time.
pub(crate) type Built = HashMap<String, (Arc<Definition>, i64)>;

/// The deployment store of one gateway and what follows it.
pub(crate) struct Rollout {
    shared: Arc<Shared>,
    builder: Builder,
    store: Arc<dyn DeploymentStore>,
    /// Publishes pointer changes (Redis); `None` for the memory store.
    notify: Option<Arc<dyn Channels>>,
    /// The channel changes are published on.
    channel: String,
    /// One change or switch at a time on this node; holds the definitions built so far.
    one: tokio::sync::Mutex<Built>,
    /// The pointer version this node could not switch to, and why (until the next change).
    failed: Mutex<Option<(u64, String)>>,
}

impl std::fmt::Debug for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollout")
            .field("store", &self.store)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Rollout {
    /// Follows `store` for `shared`, building with `builder`; `built` are the definitions the
    /// start built (see [`initial`]).
    pub(crate) fn new(
        shared: Arc<Shared>,
        builder: Builder,
        store: Arc<dyn DeploymentStore>,
        notify: Option<(Arc<dyn Channels>, String)>,
        built: Built,
    ) -> Self {
        let (notify, channel) = match notify {
            Some((channels, channel)) => (Some(channels), channel),
            None => (None, String::new()),
        };
        Self {
            shared,
            builder,
            store,
            notify,
            channel,
            one: tokio::sync::Mutex::new(built),
            failed: Mutex::new(None),
        }
    }

    /// The identity of the main definition in force.
    pub(crate) fn current(&self) -> Deployment {
        self.shared.definition().deployment.clone()
    }

    /// The main definition in force (of the newest deployment a stage serves).
    pub(crate) fn in_force(&self) -> Arc<Definition> {
        self.shared.definition()
    }

    /// The gateway's start configuration (what fixed keys are compared with).
    pub(crate) fn start_config(&self) -> &Config {
        &self.shared.config
    }
}

/// The channel pointer changes are published on, under the store's `prefix`.
pub(crate) fn channel(prefix: &str) -> String {
    format!("{{{prefix}}}:deploy:changed")
}

/// The definition of `stored` on a node started with `start`: its live part over the start
/// configuration, checked as a start or reload would check it, with the stored identity.
///
/// # Errors
/// Why this node cannot serve it (the one line a start would print, or the fixed keys).
pub(crate) fn build_stored(
    builder: &Builder,
    start: &Config,
    stored: &StoredDeployment,
    previous: &Definition,
) -> Result<Definition, ReloadError> {
    let id = &stored.info.id;
    let live: serde_json::Value = serde_json::from_str(&stored.definition)
        .map_err(|e| ReloadError::Invalid(format!("deployment {id}: not JSON: {e}")))?;
    let config = start
        .with_live(&live)
        .map_err(|e| ReloadError::Invalid(format!("deployment {id}: {e}")))?;
    refuse_fixed_keys(start, &config)?;
    let throttle = deployment::throttle_after(&config, previous);
    let mut definition = builder
        .build(config, throttle, Some(previous))
        .map_err(|e| ReloadError::Invalid(format!("deployment {id}: {e}")))?;
    definition.deployment = Deployment::stored(&stored.info);
    Ok(definition)
}

/// 409 when `config` differs from the start configuration `start` in a key fixed at start.
pub(super) fn refuse_fixed_keys(start: &Config, config: &Config) -> Result<(), ReloadError> {
    let keys = deployment::restart_keys(start, config);
    if keys.is_empty() {
        Ok(())
    } else {
        Err(ReloadError::NeedsRestart(deployment::describe_keys(&keys)))
    }
}

/// The hash part of a deployment id (`{hash}-{created_at_ms}`).
pub(crate) fn hash_of_id(id: &str) -> &str {
    id.split('-').next().unwrap_or(id)
}
