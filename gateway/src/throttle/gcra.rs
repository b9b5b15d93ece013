//! A lock-free GCRA token bucket (the "virtual scheduling" form): one atomic theoretical
//! arrival time (TAT) per bucket. `rate` tokens per second refill a bucket of `burst` tokens;
//! a full bucket admits `burst` requests at once. Time is passed in, so tests inject it.

use std::sync::atomic::{AtomicU64, Ordering};

/// A rate and burst, as emission interval and bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    /// Nanoseconds per token; 0 means the limit admits nothing.
    interval_ns: u64,
    /// Bucket size in tokens; 0 admits nothing.
    burst: u32,
}

impl Limit {
    /// `rate` tokens per second, `burst` at once. A zero rate or burst admits nothing (as a
    /// zero `ThrottlingBurstLimit` blocks a route in Amazon API Gateway).
    pub(crate) fn new(rate: f64, burst: u32) -> Self {
        if !(rate.is_finite() && rate > 0.0) || burst == 0 {
            return Self {
                interval_ns: 0,
                burst: 0,
            };
        }
        let interval = (1e9 / rate).round().clamp(1.0, u64::MAX as f64);
        Self {
            interval_ns: interval as u64,
            burst,
        }
    }

    /// True when nothing is ever admitted.
    pub(crate) fn blocks_all(&self) -> bool {
        self.interval_ns == 0
    }

    /// Nanoseconds per token.
    pub(crate) fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// Bucket size.
    pub(crate) fn burst(&self) -> u32 {
        self.burst
    }

    /// Nanoseconds a full bucket represents (`burst × interval`).
    fn capacity_ns(&self) -> u64 {
        self.interval_ns.saturating_mul(u64::from(self.burst))
    }
}

/// The outcome of taking tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// This many tokens were taken (at least 1, at most the number asked for).
    Granted(u32),
    /// None available; one will be after this many nanoseconds (`u64::MAX`: never).
    Denied {
        /// Nanoseconds until a token is available.
        retry_after_ns: u64,
    },
}

/// One bucket.
#[derive(Debug)]
pub(crate) struct Gcra {
    limit: Limit,
    tat: AtomicU64,
}

impl Gcra {
    /// A full bucket.
    pub(crate) fn new(limit: Limit) -> Self {
        Self {
            limit,
            tat: AtomicU64::new(0),
        }
    }

    /// Takes one token at `now` (nanoseconds on the caller's clock).
    pub(crate) fn try_take(&self, now: u64) -> Take {
        self.take_up_to(now, 1)
    }

    /// Takes as many tokens as are available, up to `want` (at least 1 is asked for).
    pub(crate) fn take_up_to(&self, now: u64, want: u32) -> Take {
        let limit = self.limit;
        if limit.blocks_all() {
            return Take::Denied {
                retry_after_ns: u64::MAX,
            };
        }
        let want = want.max(1);
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let base = tat.max(now);
            // Tokens in the bucket: how many intervals fit between `base` and `now + capacity`.
            let room = now.saturating_add(limit.capacity_ns()).saturating_sub(base);
            let available = room / limit.interval_ns;
            if available == 0 {
                let next = base.saturating_add(limit.interval_ns);
                return Take::Denied {
                    retry_after_ns: next
                        .saturating_sub(limit.capacity_ns())
                        .saturating_sub(now)
                        .max(1),
                };
            }
            let granted = u32::try_from(available.min(u64::from(want))).unwrap_or(want);
            let new_tat = base.saturating_add(limit.interval_ns * u64::from(granted));
            match self
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Take::Granted(granted),
                Err(current) => tat = current,
            }
        }
    }

    /// Gives one token back (a wider bucket refused the request it was taken for).
    pub(crate) fn refund(&self) {
        let interval = self.limit.interval_ns;
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(tat.saturating_sub(interval))
            });
    }

    /// True when the bucket is full at `now` (it can be dropped and made anew without any
    /// client noticing).
    pub(crate) fn is_full(&self, now: u64) -> bool {
        self.tat.load(Ordering::Acquire) <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn admitted(bucket: &Gcra, now: u64, tries: u32) -> u32 {
        (0..tries)
            .filter(|_| matches!(bucket.try_take(now), Take::Granted(_)))
            .count() as u32
    }

    #[test]
    fn full_bucket_admits_burst_then_refills_at_rate() {
        let bucket = Gcra::new(Limit::new(50.0, 10));
        assert_eq!(admitted(&bucket, SEC, 100), 10);
        // 20 ms per token: after 100 ms, five more.
        assert_eq!(admitted(&bucket, SEC + SEC / 10, 100), 5);
        // Idle for a minute: back to the burst, never more.
        assert_eq!(admitted(&bucket, 61 * SEC, 100), 10);
    }

    #[test]
    fn steady_offer_above_rate_admits_burst_plus_rate_times_time() {
        // Offered 200/s for 4 s against 50/s burst 10: 10 + 50 × 4 = 210.
        let bucket = Gcra::new(Limit::new(50.0, 10));
        let step = SEC / 200;
        let admitted = (0..800)
            .filter(|i| matches!(bucket.try_take(SEC + i * step), Take::Granted(_)))
            .count();
        assert!((209..=211).contains(&admitted), "{admitted}");
    }

    #[test]
    fn denial_says_when_a_token_returns() {
        let bucket = Gcra::new(Limit::new(10.0, 1));
        assert_eq!(bucket.try_take(0), Take::Granted(1));
        let Take::Denied { retry_after_ns } = bucket.try_take(0) else {
            panic!("second take must be denied");
        };
        assert_eq!(retry_after_ns, SEC / 10);
        assert_eq!(bucket.try_take(retry_after_ns), Take::Granted(1));
    }

    #[test]
    fn take_up_to_grants_what_is_there() {
        let bucket = Gcra::new(Limit::new(100.0, 20));
        assert_eq!(bucket.take_up_to(0, 15), Take::Granted(15));
        assert_eq!(bucket.take_up_to(0, 15), Take::Granted(5));
        assert!(matches!(bucket.take_up_to(0, 15), Take::Denied { .. }));
        assert_eq!(bucket.take_up_to(SEC / 10, 15), Take::Granted(10));
    }

    #[test]
    fn refund_returns_a_token() {
        let bucket = Gcra::new(Limit::new(1.0, 2));
        assert_eq!(admitted(&bucket, 0, 5), 2);
        bucket.refund();
        assert_eq!(admitted(&bucket, 0, 5), 1);
    }

    #[test]
    fn zero_rate_or_burst_blocks_everything() {
        for limit in [Limit::new(0.0, 10), Limit::new(10.0, 0)] {
            assert!(limit.blocks_all());
            assert_eq!(admitted(&Gcra::new(limit), 10 * SEC, 10), 0);
        }
    }

    #[test]
    fn fullness_is_reported_for_eviction() {
        let bucket = Gcra::new(Limit::new(10.0, 5));
        assert!(bucket.is_full(0));
        let _ = bucket.try_take(0);
        assert!(!bucket.is_full(0));
        assert!(bucket.is_full(SEC / 10));
    }
}
