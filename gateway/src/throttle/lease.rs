//! A bucket shared by all nodes, with a local fast path: a node takes a small lease of tokens
//! from the shared bucket at a time and spends it locally until it runs out or `lease` has
//! passed; a refusal is remembered until the shared bucket said a token returns. So most
//! messages cost no Redis round trip, and the cluster never admits more than the shared bucket
//! granted (see docs/throttling.md for the bound).
//!
//! The lease size adapts to this node's demand: it doubles while leases run out before they
//! end, and shrinks to what was used when one ends unspent; it never exceeds
//! `rate × lease` nor half the burst, so several nodes can hold leases at once.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::clock::Clock;
use super::gcra::{Gcra, Limit, Take};
use super::shared::SharedBuckets;
use crate::config::OnRedisError;

/// How long a failed shared bucket is left alone before it is tried again.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

/// Whether a request may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Go on.
    Allow,
    /// Throttled; a token is back after this many nanoseconds (`u64::MAX`: never).
    Deny(u64),
}

#[derive(Debug, Default)]
struct LeaseState {
    /// Unspent leased tokens.
    credit: u32,
    /// Tokens granted by the last lease.
    granted: u32,
    /// Tokens spent from the last lease.
    used: u32,
    /// End of the current lease.
    expires: u64,
    /// The shared bucket said no token before this time.
    denied_until: u64,
    /// The shared bucket failed; use the fallback until this time.
    down_until: u64,
}

/// A shared bucket seen from one node.
#[derive(Debug)]
pub(crate) struct ClusterBucket {
    name: String,
    limit: Limit,
    lease_ns: u64,
    max_lease: u32,
    shared: Arc<dyn SharedBuckets>,
    state: Mutex<LeaseState>,
    refill: tokio::sync::Mutex<()>,
    on_error: OnRedisError,
    fallback: Gcra,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl ClusterBucket {
    /// The bucket `name` with `limit`, leasing tokens for `lease` at a time.
    pub(crate) fn new(
        name: String,
        limit: Limit,
        lease: Duration,
        shared: Arc<dyn SharedBuckets>,
        on_error: OnRedisError,
    ) -> Self {
        let per_lease = if limit.blocks_all() {
            1
        } else {
            nanos(lease).div_ceil(limit.interval_ns())
        };
        let max_lease = per_lease
            .min(u64::from(limit.burst() / 2))
            .clamp(1, u64::from(u32::MAX));
        Self {
            name,
            limit,
            lease_ns: nanos(lease),
            max_lease: u32::try_from(max_lease).unwrap_or(u32::MAX),
            shared,
            state: Mutex::default(),
            refill: tokio::sync::Mutex::new(()),
            on_error,
            fallback: Gcra::new(limit),
        }
    }

    fn state(&self) -> MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one token; `now` is `clock`'s reading when the request arrived.
    pub(crate) async fn acquire(&self, clock: &Clock, now: u64) -> Decision {
        if let Some(decision) = self.local(now) {
            return decision;
        }
        let _refilling = self.refill.lock().await;
        let now = clock.now();
        if let Some(decision) = self.local(now) {
            return decision;
        }
        let want = self.next_lease();
        match self.shared.take(&self.name, self.limit, want).await {
            Ok(Take::Granted(granted)) => {
                let mut s = self.state();
                s.credit = granted - 1;
                s.granted = granted;
                s.used = 1;
                s.expires = now.saturating_add(self.lease_ns);
                Decision::Allow
            }
            Ok(Take::Denied { retry_after_ns }) => {
                let mut s = self.state();
                s.credit = 0;
                s.denied_until = now.saturating_add(retry_after_ns);
                Decision::Deny(retry_after_ns)
            }
            Err(error) => {
                tracing::warn!(bucket = %self.name, %error, policy = ?self.on_error, "shared throttling bucket unavailable");
                self.state().down_until = now.saturating_add(nanos(RECHECK));
                self.degraded(now)
            }
        }
    }

    /// The decision that needs no shared call, if there is one.
    fn local(&self, now: u64) -> Option<Decision> {
        let mut s = self.state();
        if now < s.down_until {
            drop(s);
            return Some(self.degraded(now));
        }
        if now < s.denied_until {
            return Some(Decision::Deny(s.denied_until - now));
        }
        if now < s.expires && s.credit > 0 {
            s.credit -= 1;
            s.used += 1;
            return Some(Decision::Allow);
        }
        None
    }

    /// Tokens to ask for: double a lease that ran out, shrink to use when one ended unspent.
    fn next_lease(&self) -> u32 {
        let s = self.state();
        let want = if s.credit == 0 {
            s.granted.saturating_mul(2)
        } else {
            s.used
        };
        want.clamp(1, self.max_lease)
    }

    fn degraded(&self, now: u64) -> Decision {
        match self.on_error {
            OnRedisError::Open => Decision::Allow,
            OnRedisError::Closed => Decision::Deny(nanos(RECHECK)),
            OnRedisError::Local => match self.fallback.try_take(now) {
                Take::Granted(_) => Decision::Allow,
                Take::Denied { retry_after_ns } => Decision::Deny(retry_after_ns),
            },
        }
    }

    /// Gives back a token taken for a request that a wider bucket refused.
    pub(crate) fn refund(&self, now: u64) {
        let mut s = self.state();
        if now < s.down_until {
            drop(s);
            if self.on_error == OnRedisError::Local {
                self.fallback.refund();
            }
        } else if now < s.expires {
            s.credit += 1;
            s.used = s.used.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests;
