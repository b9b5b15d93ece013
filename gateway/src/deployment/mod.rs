//! The API definition a gateway serves, swappable while it runs: routes, the route selection
//! expression, integrations, authorizers, models, templates, stage variables, per-stage
//! throttling and logging, built from one configuration into one [`Definition`] and published
//! through an [`ArcSwap`]. Every handshake and every message loads the definition in force once
//! (one atomic load, no lock) and uses it to the end; a reload builds a whole new definition
//! beside the old one and swaps it in, so nothing ever sees half of each. See
//! `docs/deployments.md`.
//!
//! How the swap is triggered lives above the state, in [`crate::reload`].
//!
//! - `id`: the deployment id (content hash and load time) nodes report.
//! - `build`: a configuration → a definition, reusing what must survive a reload (access log
//!   writers, per-address counts, throttle buckets, admin counters).
//! - `restart`: the keys that cannot change without a restart.
//! - `serving`: per stage, the definition served and the canary's (what [`Live`] holds).
//!
//! Which deployment each stage serves, cluster-wide, is decided in [`crate::rollout`].

mod build;
mod id;
mod restart;
mod serving;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

pub(crate) use self::build::{BuildError, Builder, throttle_after};
pub use self::id::Deployment;
pub(crate) use self::id::content_hash_of;
pub(crate) use self::restart::{describe as describe_keys, restart_keys};
pub(crate) use self::serving::{Pick, Serving};
use crate::auth::Security;
use crate::config::Config;
use crate::integration::StageRoutes;
use crate::routing::SelectionExpression;
use crate::throttle::Throttle;

/// One loaded API definition.
#[derive(Debug)]
pub(crate) struct Definition {
    /// The configuration it was built from (its fixed keys are always those of the start).
    pub config: Config,
    /// Its identity.
    pub deployment: Deployment,
    /// The parsed route selection expression.
    pub selection: SelectionExpression,
    /// Routes per stage.
    pub stages: HashMap<String, Arc<StageRoutes>>,
    /// Origin, per-address, authorizer and API key checks on `$connect`.
    pub security: Security,
    /// Throttling buckets.
    pub throttle: Arc<Throttle>,
    /// The access log writers per stage (kept so the next definition can reuse them).
    access_logs: HashMap<String, Arc<crate::access_log::AccessLog>>,
}

impl Definition {
    /// The routes of `stage`, if it exists.
    pub(crate) fn stage(&self, stage: &str) -> Option<&Arc<StageRoutes>> {
        self.stages.get(stage)
    }
}

/// The definitions in force.
pub(crate) type Live = ArcSwap<Serving>;
