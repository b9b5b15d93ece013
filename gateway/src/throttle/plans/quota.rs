//! Quotas: a count per API key and period, in memory (memory store) or in Redis (Redis store,
//! so it survives restarts and is shared by all nodes).
//!
//! A node reserves quota units in small leases and spends them locally, so the hot path does not
//! call Redis per message: the counter in the store is always the units handed out, never less
//! than what was admitted, so the quota is never exceeded. Units a node reserved but did not
//! spend are given back when the key goes idle on that node.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::period::{Period, Window};
use crate::config::OnRedisError;
use crate::throttle::shared::SharedBucketError;

/// How long a refusal (quota spent) or a store failure is remembered before the store is asked
/// again, in milliseconds.
const RECHECK_MS: i64 = 1_000;

/// Where quota counts live.
#[async_trait]
pub(crate) trait QuotaStore: Send + Sync + fmt::Debug {
    /// Hands out up to `want` units of `key`'s quota for `window` (at most `limit` in total);
    /// answers how many (0: the quota is spent).
    async fn reserve(
        &self,
        key: &str,
        window: Window,
        limit: u64,
        want: u64,
    ) -> Result<u64, SharedBucketError>;

    /// Gives back `units` handed out for `window` and not used.
    async fn release(&self, key: &str, window: Window, units: u64)
    -> Result<(), SharedBucketError>;
}

/// Counts in this process: one entry per key (keys come from `api_keys`, so their number is
/// bounded by the configuration); a new period resets the entry.
#[derive(Debug, Default)]
pub(crate) struct MemoryQuota {
    counts: Mutex<HashMap<String, (i64, u64)>>,
}

impl MemoryQuota {
    fn counts(&self) -> MutexGuard<'_, HashMap<String, (i64, u64)>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl QuotaStore for MemoryQuota {
    async fn reserve(
        &self,
        key: &str,
        window: Window,
        limit: u64,
        want: u64,
    ) -> Result<u64, SharedBucketError> {
        let mut counts = self.counts();
        let entry = counts.entry(key.to_string()).or_insert((window.start, 0));
        if entry.0 != window.start {
            *entry = (window.start, 0);
        }
        let granted = want.min(limit.saturating_sub(entry.1));
        entry.1 += granted;
        Ok(granted)
    }

    async fn release(
        &self,
        key: &str,
        window: Window,
        units: u64,
    ) -> Result<(), SharedBucketError> {
        if let Some(entry) = self.counts().get_mut(key)
            && entry.0 == window.start
        {
            entry.1 = entry.1.saturating_sub(units);
        }
        Ok(())
    }
}

/// The outcome of spending one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spend {
    /// Go on.
    Allow,
    /// The quota is spent; ask again after this many milliseconds.
    Spent(i64),
}

#[derive(Debug, Default)]
struct LeaseState {
    window: Option<Window>,
    credit: u64,
    granted: u64,
    /// Wall-clock ms before which the store is not asked again (spent or failing).
    quiet_until: i64,
    failing: bool,
}

/// One key's quota on this node.
#[derive(Debug)]
pub(crate) struct QuotaLease {
    store: Arc<dyn QuotaStore>,
    key: String,
    limit: u64,
    period: Period,
    max_lease: u64,
    on_error: OnRedisError,
    state: Mutex<LeaseState>,
    refill: tokio::sync::Mutex<()>,
}

impl QuotaLease {
    /// `limit` units per `period` for `key`, reserved at most `max_lease` at a time.
    pub(crate) fn new(
        store: Arc<dyn QuotaStore>,
        key: String,
        limit: u64,
        period: Period,
        max_lease: u64,
        on_error: OnRedisError,
    ) -> Self {
        Self {
            store,
            key,
            limit,
            period,
            max_lease: max_lease.max(1),
            on_error,
            state: Mutex::default(),
            refill: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spends one unit at wall-clock `now_ms`.
    pub(crate) async fn spend(&self, now_ms: i64) -> Spend {
        let window = self.period.window(now_ms.div_euclid(1000));
        if let Some(decision) = self.local(window, now_ms) {
            return decision;
        }
        let _refilling = self.refill.lock().await;
        if let Some(decision) = self.local(window, now_ms) {
            return decision;
        }
        let want = self
            .state()
            .granted
            .saturating_mul(2)
            .clamp(1, self.max_lease);
        match self
            .store
            .reserve(&self.key, window, self.limit, want)
            .await
        {
            Ok(0) => {
                let mut s = self.state();
                s.failing = false;
                s.quiet_until = (now_ms + RECHECK_MS).min(window.end * 1000);
                Spend::Spent(s.quiet_until - now_ms)
            }
            Ok(granted) => {
                let mut s = self.state();
                *s = LeaseState {
                    window: Some(window),
                    credit: granted - 1,
                    granted,
                    quiet_until: 0,
                    failing: false,
                };
                Spend::Allow
            }
            Err(error) => {
                tracing::warn!(key = %self.key, %error, policy = ?self.on_error, "quota store unavailable");
                let mut s = self.state();
                s.failing = true;
                s.quiet_until = now_ms + RECHECK_MS;
                drop(s);
                self.degraded()
            }
        }
    }

    fn local(&self, window: Window, now_ms: i64) -> Option<Spend> {
        let mut s = self.state();
        if s.window != Some(window) {
            // A new period: what was left of the old one's lease is void.
            s.window = Some(window);
            s.credit = 0;
            s.granted = 0;
            if !s.failing {
                s.quiet_until = 0;
            }
        }
        if now_ms < s.quiet_until {
            return Some(if s.failing {
                drop(s);
                self.degraded()
            } else {
                Spend::Spent(s.quiet_until - now_ms)
            });
        }
        if s.credit > 0 {
            s.credit -= 1;
            return Some(Spend::Allow);
        }
        None
    }

    fn degraded(&self) -> Spend {
        match self.on_error {
            OnRedisError::Closed => Spend::Spent(RECHECK_MS),
            OnRedisError::Open | OnRedisError::Local => Spend::Allow,
        }
    }

    /// Units reserved and not spent, with their period (given back when the key is evicted).
    pub(crate) fn unspent(&self) -> Option<(Window, u64)> {
        let s = self.state();
        s.window.filter(|_| s.credit > 0).map(|w| (w, s.credit))
    }

    /// The key in the store.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The store.
    pub(crate) fn store(&self) -> &Arc<dyn QuotaStore> {
        &self.store
    }
}

#[cfg(test)]
mod tests;
