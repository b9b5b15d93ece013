//! A configuration → a [`Definition`]. Built whole beside the one in force, so a failure leaves
//! that one untouched; what carries state across a reload is taken over from the previous
//! definition instead of being made anew: a stage's access log writer when its settings did not
//! change (two writers on one file would interleave and rotate it twice), the per-address
//! connection counts (their slots are held by open connections), the throttle buckets when
//! neither `throttling` nor the route keys changed, and each route's admin counters.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::{Definition, Deployment};
use crate::access_log::AccessLog;
use crate::activity::Activity;
use crate::auth::{Security, SecurityError};
use crate::config::{Config, ConfigError};
use crate::integration::{self, Clients, lambda::Aws};
use crate::routing::SelectionExpression;
use crate::throttle::Throttle;

/// Why a configuration could not be made into a definition (what a start would fail with).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    /// A key is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Authorizer keys, API keys or other security settings could not be loaded.
    #[error(transparent)]
    Security(#[from] SecurityError),
}

/// What every definition of a gateway is built with: the clients, the AWS settings, the
/// response cache and the admin counters (made once at start).
#[derive(Debug)]
pub(crate) struct Builder {
    /// The integrations' HTTP and broker clients.
    pub clients: Clients,
    /// Lambda functions by ARN.
    pub aws: Aws,
    /// The response cache (its routes are fixed at start).
    pub response_cache: Option<Arc<crate::cache::ResponseCache>>,
    /// This gateway's own counts.
    pub activity: Arc<Activity>,
}

impl Builder {
    /// Builds the definition of `config` with `throttle`; `previous` is the one in force, whose
    /// stateful parts are taken over where they still apply.
    ///
    /// # Errors
    /// The same error a start with `config` would fail with.
    pub(crate) fn build(
        &self,
        config: Config,
        throttle: Arc<Throttle>,
        previous: Option<&Definition>,
    ) -> Result<Definition, BuildError> {
        let selection = SelectionExpression::parse(&config.api.route_selection_expression)
            .map_err(|e| ConfigError::Invalid {
                key: "api.route_selection_expression".into(),
                message: e.to_string(),
            })?;
        let models = crate::validate::Models::compile(&config.api)?;
        let access_logs = access_logs(&config, previous)?;
        let stages = integration::build_stages(
            &config.api,
            &models,
            &self.clients,
            &self.aws,
            config.limits.integration_response_bytes(),
            self.response_cache.as_ref(),
            integration::Observers {
                access_logs: &access_logs,
                activity: &self.activity,
                previous: previous.map(|p| &p.stages),
            },
        )
        .map_err(|message| ConfigError::Invalid {
            key: "api.routes".into(),
            message,
        })?;
        let security = Security::build(&config, &self.clients.general, &self.aws, &|var| {
            std::env::var(var).ok()
        })?;
        let security = match previous {
            Some(previous) => security.keeping_counts_of(&previous.security),
            None => security,
        };
        let routes: Vec<&str> = config.api.routes.keys().map(String::as_str).collect();
        crate::telemetry::init_series(
            config.api.stages.keys().map(String::as_str),
            &routes,
            matches!(config.store, crate::config::StoreConfig::Redis(_)),
        );
        Ok(Definition {
            deployment: Deployment::of(&config),
            config,
            selection,
            stages,
            security,
            throttle,
            access_logs,
        })
    }
}

/// The throttle of `config` after `previous`: the same buckets when nothing they are made of
/// changed (local buckets keep their tokens), else new ones on the same Redis connection (local
/// buckets start full).
pub(crate) fn throttle_after(config: &Config, previous: &Definition) -> Arc<Throttle> {
    let old = &previous.config;
    let same_keys = old.api.stages.keys().eq(config.api.stages.keys())
        && old.api.routes.keys().eq(config.api.routes.keys());
    if same_keys && same(&old.throttling, &config.throttling) {
        Arc::clone(&previous.throttle)
    } else {
        Arc::new(previous.throttle.rebuilt(&config.throttling, &config.api))
    }
}

/// The access log of each stage that has one: the previous writer when the stage's settings are
/// unchanged, else a new one.
fn access_logs(
    config: &Config,
    previous: Option<&Definition>,
) -> Result<HashMap<String, Arc<AccessLog>>, ConfigError> {
    let mut logs = HashMap::new();
    for (stage, settings) in &config.api.stages {
        let Some(wanted) = &settings.access_log else {
            continue;
        };
        let kept = previous.and_then(|p| {
            let before = p.config.api.stages.get(stage)?.access_log.as_ref()?;
            same(before, wanted).then(|| p.access_logs.get(stage).cloned())?
        });
        let log = match kept {
            Some(log) => log,
            None => Arc::new(AccessLog::start(stage, wanted)?),
        };
        logs.insert(stage.clone(), log);
    }
    Ok(logs)
}

/// Whether two settings serialize alike.
fn same<T: Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}
