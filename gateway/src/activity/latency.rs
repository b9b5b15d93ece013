//! A fixed-size, lock-free latency histogram in microseconds: 16 exact buckets below 16 µs,
//! then 8 buckets per power of two (at most 12.5 % relative error) up to about 36 minutes.
//! Recording is one atomic add; windows are the difference of two [`Snapshot`]s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two (as a number of mantissa bits).
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Values below this are counted exactly.
const LINEAR: u64 = 16;
/// The largest exponent kept; longer latencies land in the last bucket.
const MAX_EXP: u32 = 31;
/// Number of buckets.
pub(crate) const BUCKETS: usize = LINEAR as usize + (MAX_EXP as usize - 3) * SUB;

/// Counts per bucket since start.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
}

/// The counts of a [`Histogram`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot(Box<[u64]>);

/// Percentiles of a window, in milliseconds (`None` without samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub(crate) struct Percentiles {
    /// Samples in the window.
    pub count: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

fn index(micros: u64) -> usize {
    if micros < LINEAR {
        return usize::try_from(micros).unwrap_or(0);
    }
    let exp = (63 - micros.leading_zeros()).min(MAX_EXP);
    if exp == MAX_EXP && micros >= (1u64 << (MAX_EXP + 1)) {
        return BUCKETS - 1;
    }
    let sub = usize::try_from((micros >> (exp - SUB_BITS)) & (SUB as u64 - 1)).unwrap_or(0);
    LINEAR as usize + (exp as usize - 4) * SUB + sub
}

/// The middle of bucket `i`, in microseconds.
fn midpoint(i: usize) -> f64 {
    if i < LINEAR as usize {
        return i as f64;
    }
    let exp = (i - LINEAR as usize) / SUB + 4;
    let sub = (i - LINEAR as usize) % SUB;
    let width = (1u64 << (exp - SUB_BITS as usize)) as f64;
    (1u64 << exp) as f64 + width * (sub as f64 + 0.5)
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Histogram {
    /// Counts one latency.
    pub(crate) fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[index(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot(
            self.buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        )
    }
}

impl Snapshot {
    /// An empty snapshot (the state at start).
    pub(crate) fn empty() -> Self {
        Self(vec![0; BUCKETS].into_boxed_slice())
    }

    /// The percentiles of what was recorded between `earlier` and `self`.
    pub(crate) fn since(&self, earlier: &Self) -> Percentiles {
        let counts: Vec<u64> = (self.0.iter().zip(earlier.0.iter()))
            .map(|(now, then)| now.saturating_sub(*then))
            .collect();
        let count: u64 = counts.iter().sum();
        if count == 0 {
            return Percentiles::default();
        }
        let at = |q: f64| {
            // The rank of the q-quantile, 1-based, at least 1.
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return Some(midpoint(i).round() / 1000.0);
                }
            }
            None
        };
        Percentiles {
            count,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for micros in (0..100_000).chain([1 << 30, (1 << 32) - 1, 1 << 40, u64::MAX]) {
            let i = index(micros);
            assert!(i < BUCKETS, "{micros}");
            assert!(i >= last, "{micros}");
            last = i;
        }
        // Relative error of the midpoint stays within one sub-bucket.
        for micros in [17u64, 100, 1234, 50_000, 3_000_000] {
            let mid = midpoint(index(micros));
            assert!(
                (mid - micros as f64).abs() / (micros as f64) < 0.125,
                "{micros} {mid}"
            );
        }
    }

    #[test]
    fn percentiles_of_a_window() {
        let h = Histogram::default();
        let start = h.snapshot();
        assert_eq!(start.since(&Snapshot::empty()), Percentiles::default());
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p = h.snapshot().since(&start);
        assert_eq!(p.count, 100);
        let near = |v: Option<f64>, want: f64| {
            let v = v.expect("value");
            assert!((v - want).abs() / want < 0.13, "{v} vs {want}");
        };
        near(p.p50, 50.0);
        near(p.p90, 90.0);
        near(p.p99, 99.0);
        // A later window sees only what came after.
        let mid = h.snapshot();
        h.record(Duration::from_secs(2));
        let later = h.snapshot().since(&mid);
        assert_eq!(later.count, 1);
        near(later.p50, 2000.0);
    }
}
