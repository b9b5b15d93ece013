//! Per-address limits on upgrade requests: concurrent connections and a handshake-rate token
//! bucket, checked before any authorizer, integration or store write.
//!
//! IPv6 clients are counted per /64 (one host usually holds a whole /64), IPv4-mapped IPv6 as
//! IPv4. Addresses with no open connection and a full bucket are idle and evicted, so the table
//! holds at most `max_tracked_ips` entries; when it is full of busy addresses, new addresses are
//! refused (fail closed) until some become idle.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::config::RateConfig;
pub(crate) use crate::error::IpRejection;

/// How often idle addresses are swept out even when the table is not full.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Entry {
    active: usize,
    tokens: f64,
    updated: Instant,
}

/// The per-address table.
#[derive(Debug)]
pub(crate) struct PerIpLimiter {
    max_connections: Option<usize>,
    rate: Option<RateConfig>,
    max_tracked: usize,
    entries: DashMap<IpAddr, Entry>,
    last_sweep: Mutex<Instant>,
}

/// Counts one connection against its address until dropped.
#[derive(Debug)]
pub(crate) struct IpSlot {
    limiter: Arc<PerIpLimiter>,
    key: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some(mut entry) = self.limiter.entries.get_mut(&self.key) {
            entry.active = entry.active.saturating_sub(1);
        }
    }
}

/// The address a client is counted under.
pub(crate) fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl PerIpLimiter {
    /// A table with the given limits (either may be absent).
    pub(crate) fn new(
        max_connections: Option<usize>,
        rate: Option<RateConfig>,
        max_tracked: usize,
    ) -> Self {
        Self {
            max_connections,
            rate,
            max_tracked,
            entries: DashMap::new(),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Admits one handshake from `ip`, or says why not.
    ///
    /// # Errors
    /// The [`IpRejection`].
    pub(crate) fn acquire(this: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, IpRejection> {
        let key = bucket_key(ip);
        let now = Instant::now();
        this.maybe_sweep(now);
        if !this.entries.contains_key(&key) && this.entries.len() >= this.max_tracked {
            this.sweep(now);
            if this.entries.len() >= this.max_tracked {
                return Err(IpRejection::TableFull);
            }
        }
        let burst = this.rate.map_or(0.0, |r| f64::from(r.burst));
        let mut entry = this.entries.entry(key).or_insert_with(|| Entry {
            active: 0,
            tokens: burst,
            updated: now,
        });
        if this.max_connections.is_some_and(|max| entry.active >= max) {
            return Err(IpRejection::TooManyConnections);
        }
        if let Some(rate) = this.rate {
            let elapsed = now.saturating_duration_since(entry.updated).as_secs_f64();
            entry.tokens = (entry.tokens + elapsed * rate.rate).min(burst);
            entry.updated = now;
            if entry.tokens < 1.0 {
                let wait = ((1.0 - entry.tokens) / rate.rate).ceil().max(1.0);
                return Err(IpRejection::RateLimited {
                    // Bounded by validation (rate > 0, burst ≥ 1); `as` saturates anyway.
                    retry_after_secs: wait.min(86_400.0) as u64,
                });
            }
            entry.tokens -= 1.0;
        }
        entry.active += 1;
        drop(entry);
        Ok(IpSlot {
            limiter: Arc::clone(this),
            key,
        })
    }

    #[cfg(test)]
    /// Addresses tracked now.
    pub(crate) fn tracked(&self) -> usize {
        self.entries.len()
    }

    fn maybe_sweep(&self, now: Instant) {
        let due = match self.last_sweep.try_lock() {
            Ok(mut last) if now.saturating_duration_since(*last) >= SWEEP_INTERVAL => {
                *last = now;
                true
            }
            _ => false,
        };
        if due {
            self.sweep(now);
        }
    }

    /// Evicts idle addresses.
    pub(crate) fn sweep(&self, now: Instant) {
        let rate = self.rate;
        self.entries.retain(|_, e| {
            let refilled = rate.is_none_or(|r| {
                let elapsed = now.saturating_duration_since(e.updated).as_secs_f64();
                e.tokens + elapsed * r.rate >= f64::from(r.burst)
            });
            e.active > 0 || !refilled
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn concurrent_limit_counts_open_slots() {
        let limiter = Arc::new(PerIpLimiter::new(Some(2), None, 10));
        let a = PerIpLimiter::acquire(&limiter, ip("10.0.0.1")).expect("first");
        let _b = PerIpLimiter::acquire(&limiter, ip("10.0.0.1")).expect("second");
        assert_eq!(
            PerIpLimiter::acquire(&limiter, ip("10.0.0.1")).err(),
            Some(IpRejection::TooManyConnections)
        );
        PerIpLimiter::acquire(&limiter, ip("10.0.0.2")).expect("other address");
        drop(a);
        PerIpLimiter::acquire(&limiter, ip("10.0.0.1")).expect("after a close");
    }

    #[test]
    fn rate_limit_empties_the_bucket() {
        let rate = RateConfig {
            rate: 0.5,
            burst: 2,
        };
        let limiter = Arc::new(PerIpLimiter::new(None, Some(rate), 10));
        for _ in 0..2 {
            drop(PerIpLimiter::acquire(&limiter, ip("10.0.0.1")).expect("burst"));
        }
        assert_eq!(
            PerIpLimiter::acquire(&limiter, ip("10.0.0.1")).err(),
            Some(IpRejection::RateLimited {
                retry_after_secs: 2
            })
        );
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        assert_eq!(bucket_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(bucket_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        let limiter = Arc::new(PerIpLimiter::new(Some(1), None, 10));
        let _a = PerIpLimiter::acquire(&limiter, ip("2001:db8::1")).expect("first");
        assert!(PerIpLimiter::acquire(&limiter, ip("2001:db8::2")).is_err());
    }

    #[test]
    fn idle_addresses_are_evicted_and_the_table_is_bounded() {
        let limiter = Arc::new(PerIpLimiter::new(Some(5), None, 3));
        let held = PerIpLimiter::acquire(&limiter, ip("10.0.0.1")).expect("a");
        for i in 2..=3 {
            drop(PerIpLimiter::acquire(&limiter, ip(&format!("10.0.0.{i}"))).expect("b"));
        }
        assert_eq!(limiter.tracked(), 3);
        // Full, but two entries are idle: they are swept out for the newcomer.
        let _d = PerIpLimiter::acquire(&limiter, ip("10.0.0.4")).expect("d");
        assert_eq!(limiter.tracked(), 2);
        let _e = PerIpLimiter::acquire(&limiter, ip("10.0.0.5")).expect("e");
        // Now three busy addresses: a fourth is refused.
        assert_eq!(
            PerIpLimiter::acquire(&limiter, ip("10.0.0.6")).err(),
            Some(IpRejection::TableFull)
        );
        drop(held);
        PerIpLimiter::acquire(&limiter, ip("10.0.0.6")).expect("after a close");
    }
}
