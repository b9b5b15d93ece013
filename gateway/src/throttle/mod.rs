//! Throttling: token buckets at every level Amazon API Gateway has them, each level only
//! tightening the one above, enforced before any integration runs.
//!
//! - `gateway`: everything the gateway serves (messages, connection attempts, callback requests);
//! - `stages.<s>.default_route_settings` / `route_settings.<route>`: one bucket per route;
//! - `per_connection`: messages of one connection (always local to its node);
//! - `new_connections` (default 500/s) and `callback`.
//!
//! A request takes a token from the narrowest bucket first; when a wider one refuses, the tokens
//! already taken are given back, so a throttled request costs no capacity elsewhere. With the
//! Redis store and `scope: cluster`, every bucket but `per_connection` is shared by all nodes
//! ([`lease`]). Throttled requests are counted in `wsgate_throttled_total{stage,route,scope}`.

mod bucket;
pub mod clock;
pub mod config;
pub mod gcra;
pub mod lease;
pub mod redis_gcra;
pub mod shared;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use self::bucket::Bucket;
use self::clock::Clock;
use self::gcra::{Gcra, Limit};
use self::lease::{ClusterBucket, Decision};
use self::redis_gcra::RedisBuckets;
use self::shared::{SharedBucketError, SharedBuckets};
use crate::config::{ApiConfig, Config, StoreConfig};
use crate::telemetry;

pub use self::config::{
    ClusterThrottling, OnRedisError, RateLimit, RouteThrottle, Scope, StageThrottling,
    ThrottlingConfig,
};

/// Route key used in metrics for callback API requests.
pub const CALLBACK_ROUTE: &str = "@connections";

/// Which level refused a request (the `scope` label of `wsgate_throttled_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `throttling.gateway`.
    Gateway,
    /// A route's bucket (its own settings or the stage default).
    Route,
    /// `throttling.per_connection`.
    Connection,
    /// `throttling.new_connections`.
    NewConnections,
    /// `throttling.callback`.
    Callback,
}

impl Level {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Route => "route",
            Self::Connection => "connection",
            Self::NewConnections => "new_connections",
            Self::Callback => "callback",
        }
    }
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("throttled by the {} limit", level.label())]
pub struct Throttled {
    /// The level that refused.
    pub level: Level,
    /// When a token is back (saturates for limits that admit nothing).
    pub retry_after: Duration,
}

impl Throttled {
    /// Whole seconds for `Retry-After`: the wait rounded up, between 1 and 3600.
    pub fn retry_after_secs(&self) -> u64 {
        let whole = self.retry_after.as_secs();
        let secs = if self.retry_after.subsec_nanos() > 0 {
            whole.saturating_add(1)
        } else {
            whole
        };
        secs.clamp(1, 3600)
    }
}

/// Messages of one connection; made by [`Throttle::connection_bucket`].
#[derive(Debug)]
pub struct ConnectionBucket(Bucket);

/// Every bucket of a gateway.
#[derive(Debug)]
pub struct Throttle {
    clock: Clock,
    gateway: Option<Bucket>,
    new_connections: Option<Bucket>,
    callback: Option<Bucket>,
    per_connection: Option<Limit>,
    routes: HashMap<String, HashMap<String, Bucket>>,
}

fn limit_of((rate, burst): (f64, u32)) -> Limit {
    Limit::new(rate, burst)
}

impl Throttle {
    /// No limits at all.
    pub fn unlimited() -> Self {
        Self {
            clock: Clock::new(),
            gateway: None,
            new_connections: None,
            callback: None,
            per_connection: None,
            routes: HashMap::new(),
        }
    }

    /// Builds the buckets of `config`; aggregate buckets use `shared` when given and the scope is
    /// `cluster`.
    pub fn build(
        config: &ThrottlingConfig,
        api: &ApiConfig,
        shared: Option<Arc<dyn SharedBuckets>>,
        clock: Clock,
    ) -> Self {
        let shared = shared.filter(|_| config.scope == Scope::Cluster);
        let make = |name: String, limit: Limit| match &shared {
            Some(shared) => Bucket::Cluster(ClusterBucket::new(
                name,
                limit,
                config.cluster.lease,
                Arc::clone(shared),
                config.cluster.on_redis_error,
            )),
            None => Bucket::Local(Gcra::new(limit)),
        };
        let top = |name: &str, limit: Option<RateLimit>| {
            limit.map(|l| make(name.to_string(), Limit::new(l.rate_limit, l.burst_limit)))
        };
        let mut routes = HashMap::new();
        for stage in api.stages.keys() {
            let keys = api.routes.keys().map(String::as_str).chain(["$connect"]);
            let buckets: HashMap<String, Bucket> = keys
                .filter_map(|route| {
                    let limit = config.route_limit(stage, route)?;
                    let name = format!("route:{stage}:{route}");
                    Some((route.to_string(), make(name, limit_of(limit))))
                })
                .collect();
            if !buckets.is_empty() {
                routes.insert(stage.clone(), buckets);
            }
        }
        Self {
            gateway: top("gateway", config.gateway),
            new_connections: top("new_connections", config.new_connections),
            callback: top("callback", config.callback),
            per_connection: config
                .per_connection
                .map(|l| Limit::new(l.rate_limit, l.burst_limit)),
            routes,
            clock,
        }
    }

    /// Builds the buckets of a gateway configuration, connecting to the store's Redis when the
    /// store is Redis and the scope is `cluster`.
    ///
    /// # Errors
    /// Redis could not be reached.
    pub async fn from_config(config: &Config) -> Result<Self, SharedBucketError> {
        let t = &config.throttling;
        let shared: Option<Arc<dyn SharedBuckets>> = match &config.store {
            StoreConfig::Redis(redis) if t.scope == Scope::Cluster => Some(Arc::new(
                RedisBuckets::connect(
                    &redis.seeds(),
                    redis.is_cluster(),
                    &redis.prefix,
                    t.cluster.timeout,
                    redis.timeout,
                )
                .await?,
            )),
            _ => None,
        };
        Ok(Self::build(t, &config.api, shared, Clock::new()))
    }

    /// A fresh bucket for one connection's messages, when `per_connection` is set.
    pub fn connection_bucket(&self) -> Option<ConnectionBucket> {
        self.per_connection
            .map(|limit| ConnectionBucket(Bucket::Local(Gcra::new(limit))))
    }

    fn route(&self, stage: &str, route: &str) -> Option<&Bucket> {
        self.routes.get(stage)?.get(route)
    }

    /// An upgrade request to `stage`: the `$connect` route, new connections, gateway.
    ///
    /// # Errors
    /// [`Throttled`] naming the level that refused.
    pub async fn check_connect(&self, stage: &str) -> Result<(), Throttled> {
        let chain = [
            (self.route(stage, "$connect"), Level::Route),
            (self.new_connections.as_ref(), Level::NewConnections),
            (self.gateway.as_ref(), Level::Gateway),
        ];
        self.check(&chain, stage, "$connect").await
    }

    /// A message for `route` on a connection of `stage`: connection, route, gateway.
    ///
    /// # Errors
    /// [`Throttled`] naming the level that refused.
    pub async fn check_message(
        &self,
        stage: &str,
        route: &str,
        connection: Option<&ConnectionBucket>,
    ) -> Result<(), Throttled> {
        let chain = [
            (connection.map(|c| &c.0), Level::Connection),
            (self.route(stage, route), Level::Route),
            (self.gateway.as_ref(), Level::Gateway),
        ];
        self.check(&chain, stage, route).await
    }

    /// A callback API request for `stage`: callback, gateway.
    ///
    /// # Errors
    /// [`Throttled`] naming the level that refused.
    pub async fn check_callback(&self, stage: &str) -> Result<(), Throttled> {
        let chain = [
            (self.callback.as_ref(), Level::Callback),
            (self.gateway.as_ref(), Level::Gateway),
        ];
        self.check(&chain, stage, CALLBACK_ROUTE).await
    }

    async fn check(
        &self,
        chain: &[(Option<&Bucket>, Level)],
        stage: &str,
        route: &str,
    ) -> Result<(), Throttled> {
        // Read once, and only when some bucket applies.
        let mut now = None;
        for (i, (bucket, level)) in chain.iter().enumerate() {
            let Some(bucket) = bucket else { continue };
            let now = *now.get_or_insert_with(|| self.clock.now());
            if let Decision::Deny(retry_after_ns) = bucket.acquire(&self.clock, now).await {
                for (taken, _) in &chain[..i] {
                    if let Some(taken) = taken {
                        taken.refund(self.clock.now());
                    }
                }
                metrics::counter!(
                    telemetry::THROTTLED_TOTAL,
                    "stage" => stage.to_string(),
                    "route" => route.to_string(),
                    "scope" => level.label()
                )
                .increment(1);
                return Err(Throttled {
                    level: *level,
                    retry_after: Duration::from_nanos(retry_after_ns),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
