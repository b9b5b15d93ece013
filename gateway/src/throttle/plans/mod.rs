//! Usage plans: each API key of a plan gets the plan's rate and burst, and its quota, for
//! itself (as in API Gateway, limits are per key). Entries are made on a key's first request
//! and evicted once idle, giving back quota units reserved and not spent.

pub(crate) mod period;
pub(crate) mod quota;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use self::quota::{QuotaLease, QuotaStore};
use super::bucket::Bucket;
use super::gcra::{Gcra, Limit};
use super::lease::ClusterBucket;
use super::shared::SharedBuckets;
use crate::config::OnRedisError;
use crate::config::UsagePlanConfig;

/// A key unused this long (nanoseconds), with a full bucket, is evicted.
const IDLE_NS: u64 = 60_000_000_000;
/// Eviction runs at most this often (nanoseconds).
const SWEEP_NS: u64 = 30_000_000_000;

/// One key's buckets on this node.
#[derive(Debug)]
pub(super) struct PlanEntry {
    pub(super) bucket: Option<Bucket>,
    pub(super) quota: Option<QuotaLease>,
    last_used: AtomicU64,
}

impl PlanEntry {
    fn idle(&self, now: u64) -> bool {
        let bucket_full = match &self.bucket {
            Some(Bucket::Local(gcra)) => gcra.is_full(now),
            _ => true,
        };
        bucket_full && now.saturating_sub(self.last_used.load(Ordering::Relaxed)) >= IDLE_NS
    }
}

/// Where a plan's buckets come from.
#[derive(Debug)]
pub(super) struct PlanBackends {
    /// Shared rate buckets (`scope: cluster` with Redis).
    pub(super) shared: Option<Arc<dyn SharedBuckets>>,
    /// Quota counts.
    pub(super) quotas: Arc<dyn QuotaStore>,
    /// Largest quota lease (1 for an in-process store).
    pub(super) quota_max_lease: u64,
    /// `throttling.cluster.lease`.
    pub(super) lease: Duration,
    /// `throttling.cluster.on_redis_error`.
    pub(super) on_error: OnRedisError,
}

/// The plans and the entries of the keys seen lately.
#[derive(Debug)]
pub(super) struct Plans {
    plans: HashMap<String, UsagePlanConfig>,
    backends: PlanBackends,
    entries: DashMap<String, Arc<PlanEntry>>,
    last_sweep: AtomicU64,
}

impl Plans {
    pub(super) fn new(plans: &BTreeMap<String, UsagePlanConfig>, backends: PlanBackends) -> Self {
        Self {
            plans: plans.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            backends,
            entries: DashMap::new(),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// Whether `plan` has any limit.
    pub(super) fn limits(&self, plan: &str) -> bool {
        self.plans.contains_key(plan)
    }

    /// The entry named `name` (`plan:<plan>:<key id>`) of `plan`, made if needed.
    pub(super) fn entry(&self, plan: &str, name: &str, now: u64) -> Option<Arc<PlanEntry>> {
        let config = self.plans.get(plan)?;
        self.sweep(now);
        let found = self.entries.get(name).map(|e| Arc::clone(&e));
        let entry = match found {
            Some(entry) => entry,
            None => Arc::clone(
                &self
                    .entries
                    .entry(name.to_string())
                    .or_insert_with(|| Arc::new(self.make(name, config))),
            ),
        };
        entry.last_used.store(now, Ordering::Relaxed);
        Some(entry)
    }

    fn make(&self, name: &str, config: &UsagePlanConfig) -> PlanEntry {
        let b = &self.backends;
        let bucket = config.rate().map(|(rate, burst)| {
            let limit = Limit::new(rate, burst);
            match &b.shared {
                Some(shared) => Bucket::Cluster(ClusterBucket::new(
                    name.to_string(),
                    limit,
                    b.lease,
                    Arc::clone(shared),
                    b.on_error,
                )),
                None => Bucket::Local(Gcra::new(limit)),
            }
        });
        let quota = config.quota.map(|q| {
            QuotaLease::new(
                Arc::clone(&b.quotas),
                name.to_string(),
                q.limit,
                q.period,
                b.quota_max_lease.min(q.limit / 1000).max(1),
                b.on_error,
            )
        });
        PlanEntry {
            bucket,
            quota,
            last_used: AtomicU64::new(0),
        }
    }

    /// Drops idle entries (at most every `SWEEP_NS`), giving back their unspent quota units.
    fn sweep(&self, now: u64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SWEEP_NS
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.entries.retain(|_, entry| {
            if Arc::strong_count(entry) > 1 || !entry.idle(now) {
                return true;
            }
            if let Some(quota) = &entry.quota
                && let Some((window, units)) = quota.unspent()
            {
                let (store, key) = (Arc::clone(quota.store()), quota.key().to_string());
                tokio::spawn(async move {
                    if let Err(error) = store.release(&key, window, units).await {
                        tracing::debug!(%key, %error, units, "could not give back unspent quota");
                    }
                });
            }
            false
        });
    }

    /// Entries held now (for tests of eviction).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
