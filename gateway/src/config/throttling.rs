//! The `throttling:` configuration section and its checks: every level may only tighten the
//! level above it, and a violation fails at startup naming the key.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::usage_plans::UsagePlanConfig;
use super::{ApiConfig, ApiKeyConfig, ConfigError, duration};

/// `throttling:` section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottlingConfig {
    /// One bucket for everything the gateway serves: client messages of every stage, connection
    /// attempts and callback API requests (AWS's account-level throttle). Absent: no limit.
    pub gateway: Option<RateLimit>,
    /// New connections (upgrade requests that reach `$connect`). Default 500/s, burst 500, as
    /// AWS's per-account default; `null` removes the limit.
    pub new_connections: Option<RateLimit>,
    /// Callback API (`@connections`) requests. Absent: no limit.
    pub callback: Option<RateLimit>,
    /// Messages from one connection. Absent: no limit.
    pub per_connection: Option<RateLimit>,
    /// Per-stage route throttling, mirroring a stage's `DefaultRouteSettings`/`RouteSettings`.
    pub stages: BTreeMap<String, StageThrottling>,
    /// `cluster` (default): with `store.kind: redis` every bucket except `per_connection` is
    /// shared by all nodes; `node`: each node enforces every limit on its own.
    pub scope: Scope,
    /// How nodes share buckets through Redis.
    pub cluster: ClusterThrottling,
    /// Usage plans by name (the `usage_plan` of `api_keys` entries): rate, burst and quota per key.
    pub usage_plans: BTreeMap<String, UsagePlanConfig>,
}

impl Default for ThrottlingConfig {
    fn default() -> Self {
        Self {
            gateway: None,
            new_connections: Some(RateLimit {
                rate_limit: 500.0,
                burst_limit: 500,
            }),
            callback: None,
            per_connection: None,
            stages: BTreeMap::new(),
            scope: Scope::Cluster,
            cluster: ClusterThrottling::default(),
            usage_plans: BTreeMap::new(),
        }
    }
}

/// A token bucket: `rate_limit` tokens per second, at most `burst_limit` at once.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Steady requests per second (0 blocks everything).
    pub rate_limit: f64,
    /// Requests admitted at once from a full bucket (0 blocks everything).
    pub burst_limit: u32,
}

/// A stage's route throttling.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StageThrottling {
    /// Applies to each route of the stage (each route gets its own bucket) unless the route has
    /// its own settings.
    pub default_route_settings: Option<RouteThrottle>,
    /// Per route key.
    pub route_settings: BTreeMap<String, RouteThrottle>,
}

/// `ThrottlingRateLimit` and `ThrottlingBurstLimit` of a route; a missing one is inherited from
/// the level above (stage default, then gateway).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RouteThrottle {
    /// Steady messages per second for the route.
    pub throttling_rate_limit: Option<f64>,
    /// Burst for the route.
    pub throttling_burst_limit: Option<u32>,
}

/// Where aggregate buckets live.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Shared by all nodes when the store is Redis (one node alone otherwise).
    #[default]
    Cluster,
    /// Each node alone.
    Node,
}

/// `throttling.cluster:` settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterThrottling {
    /// How long tokens a node takes from Redis stay usable. Larger: fewer Redis calls, looser
    /// accuracy (see docs/throttling.md).
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub lease: Duration,
    /// Upper bound on one Redis call of the limiter.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub timeout: Duration,
    /// What to do while Redis cannot be reached.
    pub on_redis_error: OnRedisError,
}

impl Default for ClusterThrottling {
    fn default() -> Self {
        Self {
            lease: Duration::from_millis(20),
            timeout: Duration::from_millis(100),
            on_redis_error: OnRedisError::Local,
        }
    }
}

/// Behaviour while Redis is unavailable.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnRedisError {
    /// Each node enforces the full limits by itself (the cluster admits up to N times a limit).
    #[default]
    Local,
    /// Admit everything (fail open).
    Open,
    /// Throttle everything that a cluster bucket covers (fail closed).
    Closed,
}

/// A resolved route limit (rate, burst).
pub(super) type Resolved = (f64, u32);

impl RateLimit {
    fn resolved(&self) -> Resolved {
        (self.rate_limit, self.burst_limit)
    }
}

fn invalid(key: String, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

fn check_values(at: &str, rate: Option<f64>, rate_key: &str) -> Result<(), ConfigError> {
    match rate {
        Some(r) if !(r.is_finite() && r >= 0.0) => Err(invalid(
            format!("{at}.{rate_key}"),
            "must be a number of requests per second, 0 or more",
        )),
        _ => Ok(()),
    }
}

/// Fails when `value` exceeds `parent` (naming both).
fn not_looser(
    key: String,
    value: Resolved,
    parent: Option<(&str, Resolved)>,
    names: (&str, &str),
) -> Result<(), ConfigError> {
    let Some((parent_at, (rate, burst))) = parent else {
        return Ok(());
    };
    if value.0 > rate {
        return Err(invalid(
            format!("{key}.{}", names.0),
            format!(
                "{} exceeds {parent_at} ({rate}); lower levels may only tighten",
                value.0
            ),
        ));
    }
    if value.1 > burst {
        return Err(invalid(
            format!("{key}.{}", names.1),
            format!(
                "{} exceeds {parent_at} ({burst}); lower levels may only tighten",
                value.1
            ),
        ));
    }
    Ok(())
}

const RATE: (&str, &str) = ("rate_limit", "burst_limit");
const ROUTE: (&str, &str) = ("throttling_rate_limit", "throttling_burst_limit");

impl ThrottlingConfig {
    /// Checks values and the hierarchy against the API's stages and routes.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the offending key.
    pub fn validate(&self, api: &ApiConfig, api_keys: &[ApiKeyConfig]) -> Result<(), ConfigError> {
        let gateway = self.gateway.map(|g| ("throttling.gateway", g.resolved()));
        let tops = [
            ("gateway", self.gateway),
            ("new_connections", self.new_connections),
            ("callback", self.callback),
            ("per_connection", self.per_connection),
        ];
        for (name, limit) in tops {
            let Some(limit) = limit else { continue };
            let at = format!("throttling.{name}");
            check_values(&at, Some(limit.rate_limit), RATE.0)?;
            // Connection attempts and callback requests are other kinds of request that also
            // take a gateway token, so only per-connection message limits sit under the gateway.
            if name == "per_connection" {
                not_looser(at, limit.resolved(), gateway, RATE)?;
            }
        }
        for (stage, settings) in &self.stages {
            let at = format!("throttling.stages.{stage}");
            if !api.stages.contains_key(stage) {
                return Err(invalid(at, format!("no stage `{stage}` in api.stages")));
            }
            let default_at = format!("{at}.default_route_settings");
            let default = match settings.default_route_settings {
                Some(d) => {
                    let resolved = resolve(&default_at, d, gateway.map(|g| g.1))?;
                    not_looser(default_at.clone(), resolved, gateway, ROUTE)?;
                    Some((default_at.as_str(), resolved))
                }
                None => None,
            };
            for (route, r) in &settings.route_settings {
                let route_at = format!("{at}.route_settings.{route}");
                if route == "$disconnect" {
                    return Err(invalid(route_at, "$disconnect is never throttled"));
                }
                if route != "$connect" && !api.routes.contains_key(route) {
                    return Err(invalid(
                        route_at,
                        format!("no route `{route}` in api.routes"),
                    ));
                }
                let parent = default.or(gateway);
                let resolved = resolve(&route_at, *r, parent.map(|p| p.1))?;
                not_looser(route_at, resolved, parent, ROUTE)?;
            }
        }
        super::usage_plans::validate(&self.usage_plans, gateway.map(|g| g.1), api_keys)?;
        if self.cluster.lease.is_zero() || self.cluster.timeout.is_zero() {
            let key = if self.cluster.lease.is_zero() {
                "lease"
            } else {
                "timeout"
            };
            return Err(invalid(
                format!("throttling.cluster.{key}"),
                "must be greater than zero",
            ));
        }
        Ok(())
    }

    /// The limit of `route` in `stage`, if the stage throttles it (`$disconnect` never).
    pub fn route_limit(&self, stage: &str, route: &str) -> Option<Resolved> {
        if route == "$disconnect" {
            return None;
        }
        let settings = self.stages.get(stage)?;
        let gateway = self.gateway.map(|g| g.resolved());
        let default = settings
            .default_route_settings
            .and_then(|d| merge(d, gateway));
        match settings.route_settings.get(route) {
            Some(r) => merge(*r, default.or(gateway)),
            None => default,
        }
    }
}

fn merge(own: RouteThrottle, parent: Option<Resolved>) -> Option<Resolved> {
    Some((
        own.throttling_rate_limit.or(parent.map(|p| p.0))?,
        own.throttling_burst_limit.or(parent.map(|p| p.1))?,
    ))
}

fn resolve(
    at: &str,
    own: RouteThrottle,
    parent: Option<Resolved>,
) -> Result<Resolved, ConfigError> {
    check_values(at, own.throttling_rate_limit, ROUTE.0)?;
    merge(own, parent).ok_or_else(|| {
        let missing = if own.throttling_rate_limit.is_none() {
            ROUTE.0
        } else {
            ROUTE.1
        };
        invalid(
            format!("{at}.{missing}"),
            "required: no level above (stage default route settings or throttling.gateway) sets it",
        )
    })
}

#[cfg(test)]
mod tests;
