//! Throttling: token buckets at every level Amazon API Gateway has them, each level only
//! tightening the one above, enforced before any integration runs.
//!
//! - `gateway`: everything the gateway serves (messages, connection attempts, callback requests);
//! - `stages.<s>.default_route_settings` / `route_settings.<route>`: one bucket per route;
//! - `per_connection`: messages of one connection (always local to its node);
//! - `new_connections` (default 500/s) and `callback`;
//! - `usage_plans.<plan>`: a rate, burst and quota per API key of the plan ([`plans`]).
//!
//! A request takes a token from the narrowest bucket first; when a wider one refuses, the tokens
//! already taken are given back, so a throttled request costs no capacity elsewhere. With the
//! Redis store and `scope: cluster`, every bucket but `per_connection` is shared by all nodes
//! ([`lease`]). Throttled requests are counted in `wsgate_throttled_total{stage,route,scope}`.

mod bucket;
pub(crate) mod clock;
pub(crate) mod gcra;
pub(crate) mod lease;
mod outcome;
pub(crate) mod plans;
pub(crate) mod redis_gcra;
pub(crate) mod redis_quota;
pub(crate) mod shared;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use self::bucket::Bucket;
use self::clock::Clock;
use self::gcra::{Gcra, Limit};
use self::lease::{ClusterBucket, Decision};
use self::plans::quota::{MemoryQuota, QuotaLease, QuotaStore, Spend};
use self::plans::{PlanBackends, Plans};
use self::redis_gcra::RedisBuckets;
use self::shared::{SharedBucketError, SharedBuckets};
use crate::config::{ApiConfig, Config, StoreConfig};
use crate::telemetry;

pub(crate) use self::outcome::{Level, Throttled};
pub(crate) use crate::config::{RateLimit, Scope, ThrottlingConfig};

/// Route key used in metrics for callback API requests.
pub(crate) const CALLBACK_ROUTE: &str = "@connections";

/// What throttles one connection's messages besides the shared buckets: its own bucket and
/// its API key's usage plan. Made by [`Throttle::connection_bucket`].
#[derive(Debug)]
pub(crate) struct ConnectionBucket {
    bucket: Option<Bucket>,
    /// Usage plan and entry name (`plan:<plan>:<key id>`).
    plan: Option<(String, String)>,
}

/// Every bucket of a gateway.
#[derive(Debug)]
pub(crate) struct Throttle {
    clock: Clock,
    gateway: Option<Bucket>,
    new_connections: Option<Bucket>,
    callback: Option<Bucket>,
    per_connection: Option<Limit>,
    routes: HashMap<String, HashMap<String, Bucket>>,
    plans: Plans,
    /// Wall-clock epoch milliseconds at the clock's zero (quota periods).
    epoch_ms: i64,
    /// What it was built on, for [`Throttle::rebuilt`]: the Redis buckets (any scope) and the
    /// quota counts with whether they are shared (Redis).
    backends: (Option<Arc<dyn SharedBuckets>>, Arc<dyn QuotaStore>, bool),
}

fn limit_of((rate, burst): (f64, u32)) -> Limit {
    Limit::new(rate, burst)
}

impl Throttle {
    #[cfg(test)]
    /// No limits at all.
    pub(crate) fn unlimited() -> Self {
        Self {
            clock: Clock::new(),
            gateway: None,
            new_connections: None,
            callback: None,
            per_connection: None,
            routes: HashMap::new(),
            plans: Plans::new(
                &Default::default(),
                memory_backends(&ThrottlingConfig::default()),
            ),
            epoch_ms: chrono::Utc::now().timestamp_millis(),
            backends: (None, Arc::new(MemoryQuota::default()), false),
        }
    }

    /// Builds the buckets of `config`; aggregate buckets use `shared` when given and the scope is
    /// `cluster`; quotas are counted in `quotas` (in memory when `None`).
    pub(crate) fn build(
        config: &ThrottlingConfig,
        api: &ApiConfig,
        shared: Option<Arc<dyn SharedBuckets>>,
        quotas: Option<Arc<dyn QuotaStore>>,
        clock: Clock,
    ) -> Self {
        let (quotas, remote) = match quotas {
            Some(quotas) => (quotas, true),
            None => (memory_backends(config).quotas, false),
        };
        Self::build_on(config, api, shared, (quotas, remote), clock)
    }

    /// [`Throttle::build`] with the quota counts given, and whether they are shared (Redis).
    fn build_on(
        config: &ThrottlingConfig,
        api: &ApiConfig,
        shared: Option<Arc<dyn SharedBuckets>>,
        (quotas, remote): (Arc<dyn QuotaStore>, bool),
        clock: Clock,
    ) -> Self {
        let given = shared.clone();
        let shared = shared.filter(|_| config.scope == Scope::Cluster);
        let backends = (given, Arc::clone(&quotas), remote);
        let plan_backends = if remote {
            PlanBackends {
                shared: shared.clone(),
                quotas,
                quota_max_lease: 100,
                lease: config.cluster.lease,
                on_error: config.cluster.on_redis_error,
            }
        } else {
            PlanBackends {
                shared: shared.clone(),
                quotas,
                ..memory_backends(config)
            }
        };
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
            plans: Plans::new(&config.usage_plans, plan_backends),
            epoch_ms: chrono::Utc::now().timestamp_millis(),
            clock,
            backends,
        }
    }

    /// The buckets of `config` and `api` on the same Redis connection, quota counts and clock
    /// (a reload): quotas keep their counts, local buckets start full.
    pub(crate) fn rebuilt(&self, config: &ThrottlingConfig, api: &ApiConfig) -> Self {
        let (shared, quotas, remote) = &self.backends;
        Self::build_on(
            config,
            api,
            shared.clone(),
            (Arc::clone(quotas), *remote),
            self.clock.clone(),
        )
    }

    #[cfg(test)]
    /// Sets the wall-clock time (epoch ms) at the clock's zero, for tests of quota periods.
    pub(crate) fn with_epoch_ms(mut self, epoch_ms: i64) -> Self {
        self.epoch_ms = epoch_ms;
        self
    }

    fn wall_ms(&self, now: u64) -> i64 {
        self.epoch_ms
            .saturating_add(i64::try_from(now / 1_000_000).unwrap_or(i64::MAX))
    }

    /// Builds the buckets of a gateway configuration, connecting to the store's Redis when the
    /// store is Redis and the scope is `cluster`.
    ///
    /// # Errors
    /// Redis could not be reached.
    pub(crate) async fn from_config(config: &Config) -> Result<Self, SharedBucketError> {
        let t = &config.throttling;
        let redis = match &config.store {
            StoreConfig::Redis(redis) => Some(Arc::new(
                RedisBuckets::connect(
                    &redis.seeds(),
                    redis.is_cluster(),
                    &redis.prefix,
                    t.cluster.timeout,
                    redis.timeout,
                )
                .await?,
            )),
            StoreConfig::Memory => None,
        };
        let shared = redis.clone().map(|r| r as Arc<dyn SharedBuckets>);
        let quotas = redis.map(|r| r as Arc<dyn QuotaStore>);
        Ok(Self::build(t, &config.api, shared, quotas, Clock::new()))
    }

    /// What throttles one connection's messages on top of the shared buckets: a fresh bucket
    /// when `per_connection` is set, and `usage` = (usage plan, API key id) when the plan has
    /// limits.
    pub(crate) fn connection_bucket(
        &self,
        usage: Option<(&str, &str)>,
    ) -> Option<ConnectionBucket> {
        let bucket = self
            .per_connection
            .map(|limit| Bucket::Local(Gcra::new(limit)));
        let plan = usage
            .filter(|(plan, _)| self.plans.limits(plan))
            .map(|(plan, key)| (plan.to_string(), format!("plan:{plan}:{key}")));
        (bucket.is_some() || plan.is_some()).then_some(ConnectionBucket { bucket, plan })
    }

    fn route(&self, stage: &str, route: &str) -> Option<&Bucket> {
        self.routes.get(stage)?.get(route)
    }

    /// An upgrade request to `stage`: the `$connect` route, new connections, gateway.
    ///
    /// # Errors
    /// [`Throttled`] naming the level that refused.
    pub(crate) async fn check_connect(&self, stage: &str) -> Result<(), Throttled> {
        let chain = [
            (self.route(stage, "$connect"), Level::Route),
            (self.new_connections.as_ref(), Level::NewConnections),
            (self.gateway.as_ref(), Level::Gateway),
        ];
        self.check(&chain, None, stage, "$connect").await
    }

    /// An upgrade request to `stage` admitted with API key `key_id` of `plan`: the plan's rate,
    /// then its quota (checked after the authorizer and API key, before `$connect`).
    ///
    /// # Errors
    /// [`Throttled`] naming the level that refused.
    pub(crate) async fn check_usage_plan(
        &self,
        stage: &str,
        plan: Option<&str>,
        key_id: &str,
    ) -> Result<(), Throttled> {
        let Some(plan) = plan else { return Ok(()) };
        let name = format!("plan:{plan}:{key_id}");
        let Some(entry) = self.plans.entry(plan, &name, self.clock.now()) else {
            return Ok(());
        };
        let chain = [(entry.bucket.as_ref(), Level::UsagePlan)];
        self.check(&chain, entry.quota.as_ref(), stage, "$connect")
            .await
    }

    /// A message for `route` on a connection of `stage`: connection, route, gateway.
    ///
    /// # Errors
    /// [`Throttled`] naming the level that refused.
    pub(crate) async fn check_message(
        &self,
        stage: &str,
        route: &str,
        connection: Option<&ConnectionBucket>,
    ) -> Result<(), Throttled> {
        let entry = connection
            .and_then(|c| c.plan.as_ref())
            .and_then(|(plan, name)| self.plans.entry(plan, name, self.clock.now()));
        let chain = [
            (
                connection.and_then(|c| c.bucket.as_ref()),
                Level::Connection,
            ),
            (
                entry.as_ref().and_then(|e| e.bucket.as_ref()),
                Level::UsagePlan,
            ),
            (self.route(stage, route), Level::Route),
            (self.gateway.as_ref(), Level::Gateway),
        ];
        let quota = entry.as_ref().and_then(|e| e.quota.as_ref());
        self.check(&chain, quota, stage, route).await
    }

    /// A callback API request for `stage`: callback, gateway.
    ///
    /// # Errors
    /// [`Throttled`] naming the level that refused.
    pub(crate) async fn check_callback(&self, stage: &str) -> Result<(), Throttled> {
        let chain = [
            (self.callback.as_ref(), Level::Callback),
            (self.gateway.as_ref(), Level::Gateway),
        ];
        self.check(&chain, None, stage, CALLBACK_ROUTE).await
    }

    /// Takes a token from each bucket of `chain` in order, then a unit of `quota`; on a refusal
    /// gives back what was taken and counts the refusal.
    async fn check(
        &self,
        chain: &[(Option<&Bucket>, Level)],
        quota: Option<&QuotaLease>,
        stage: &str,
        route: &str,
    ) -> Result<(), Throttled> {
        // Read once, and only when some bucket applies.
        let mut now = None;
        for (i, (bucket, level)) in chain.iter().enumerate() {
            let Some(bucket) = bucket else { continue };
            let now = *now.get_or_insert_with(|| self.clock.now());
            if let Decision::Deny(retry_after_ns) = bucket.acquire(&self.clock, now).await {
                return Err(self.refuse(&chain[..i], *level, retry_after_ns, stage, route));
            }
        }
        if let Some(quota) = quota {
            let now = *now.get_or_insert_with(|| self.clock.now());
            if let Spend::Spent(retry_after_ms) = quota.spend(self.wall_ms(now)).await {
                let retry_after_ns = u64::try_from(retry_after_ms)
                    .unwrap_or(0)
                    .saturating_mul(1_000_000);
                return Err(self.refuse(chain, Level::Quota, retry_after_ns, stage, route));
            }
        }
        Ok(())
    }

    /// Gives back the tokens `taken`, counts the refusal and describes it.
    fn refuse(
        &self,
        taken: &[(Option<&Bucket>, Level)],
        level: Level,
        retry_after_ns: u64,
        stage: &str,
        route: &str,
    ) -> Throttled {
        let now = self.clock.now();
        for bucket in taken.iter().filter_map(|(b, _)| *b) {
            bucket.refund(now);
        }
        metrics::counter!(
            telemetry::THROTTLED_TOTAL,
            "stage" => stage.to_string(),
            "route" => route.to_string(),
            "scope" => level.label()
        )
        .increment(1);
        Throttled {
            level,
            retry_after: Duration::from_nanos(retry_after_ns),
        }
    }
}

/// In-process quotas, counted exactly (no leases).
fn memory_backends(config: &ThrottlingConfig) -> PlanBackends {
    PlanBackends {
        shared: None,
        quotas: Arc::new(MemoryQuota::default()),
        quota_max_lease: 1,
        lease: config.cluster.lease,
        on_error: config.cluster.on_redis_error,
    }
}

#[cfg(test)]
mod redis_tests;
#[cfg(test)]
mod tests;
