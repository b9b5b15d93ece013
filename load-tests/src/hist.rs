//! HDR histograms in microseconds: a sharded recorder, a portable form, and percentile summaries.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// Highest recordable value: 10 minutes in microseconds. Larger values saturate.
pub const HIGHEST_US: u64 = 600_000_000;
/// Significant figures kept by every histogram.
pub const SIGFIG: u8 = 3;

/// A new, empty histogram with the crate-wide bounds.
pub fn new_hist() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts, so this cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_US, SIGFIG).expect("constant bounds are valid")
}

/// A histogram that many tasks record into: a few mutex-guarded shards picked by a hint
/// (for example the connection index), merged when the sampler takes an interval.
pub struct Recorder {
    shards: Box<[Mutex<Histogram<u64>>]>,
}

impl Recorder {
    /// A recorder with `shards` shards (at least one).
    pub fn new(shards: usize) -> Self {
        let shards = (0..shards.max(1)).map(|_| Mutex::new(new_hist())).collect();
        Self { shards }
    }

    /// Records one value in microseconds (clamped to `1..=HIGHEST_US`).
    pub fn record(&self, hint: usize, us: u64) {
        let shard = &self.shards[hint % self.shards.len()];
        let mut h = shard.lock().unwrap_or_else(|p| p.into_inner());
        h.saturating_record(us.clamp(1, HIGHEST_US));
    }

    /// Records one value, adding the synthetic samples that coordinated-omission correction
    /// implies when the expected interval between samples is known (`expected_us > 0`).
    pub fn record_correct(&self, hint: usize, us: u64, expected_us: u64) {
        let shard = &self.shards[hint % self.shards.len()];
        let mut h = shard.lock().unwrap_or_else(|p| p.into_inner());
        let v = us.clamp(1, HIGHEST_US);
        if h.record_correct(v, expected_us).is_err() {
            h.saturating_record(v);
        }
    }

    /// Takes everything recorded since the last call, leaving the shards empty.
    pub fn take(&self) -> Histogram<u64> {
        let mut out = new_hist();
        for shard in self.shards.iter() {
            let mut h = shard.lock().unwrap_or_else(|p| p.into_inner());
            if !h.is_empty() {
                let _ = out.add(&*h);
                h.reset();
            }
        }
        out
    }
}

/// A histogram in a form that crosses process boundaries as JSON: `(value, count)` pairs of
/// the non-empty buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistData {
    /// Non-empty buckets as `[highest equivalent value in µs, count]`.
    pub buckets: Vec<(u64, u64)>,
}

impl HistData {
    /// The portable form of `h`.
    pub fn from_hist(h: &Histogram<u64>) -> Self {
        let buckets = h
            .iter_recorded()
            .map(|v| {
                (
                    h.highest_equivalent(v.value_iterated_to()),
                    v.count_at_value(),
                )
            })
            .collect();
        Self { buckets }
    }

    /// Adds these buckets into `h`.
    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for &(v, c) in &self.buckets {
            h.saturating_record_n(v.clamp(1, HIGHEST_US), c);
        }
    }

    /// Rebuilds a histogram.
    pub fn to_hist(&self) -> Histogram<u64> {
        let mut h = new_hist();
        self.add_to(&mut h);
        h
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|&(_, c)| c).sum()
    }
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatSummary {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min_us: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest sample.
    pub max_us: u64,
}

impl LatSummary {
    /// Summarises `h` (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// The quantiles drawn in the percentile-distribution chart.
pub const CURVE_QUANTILES: &[f64] = &[
    0.0, 0.1, 0.25, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.975, 0.98,
    0.985, 0.99, 0.9925, 0.995, 0.9975, 0.999, 0.99925, 0.9995, 0.99975, 0.9999, 0.99999,
];

/// `(quantile, value in µs)` points for a percentile-distribution curve.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    CURVE_QUANTILES
        .iter()
        .map(|&q| (q, h.value_at_quantile(q)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_form_round_trips() {
        let r = Recorder::new(4);
        for i in 1..=1000u64 {
            r.record(usize::try_from(i).unwrap_or(0), i * 10);
        }
        let h = r.take();
        assert_eq!(h.len(), 1000);
        assert!(r.take().is_empty());
        let d = HistData::from_hist(&h);
        let back = d.to_hist();
        assert_eq!(back.len(), 1000);
        assert_eq!(
            back.value_at_quantile(0.99),
            h.value_at_quantile(0.99),
            "bucket values survive"
        );
        let s = LatSummary::of(&back);
        assert!(s.p50_us <= s.p99_us && s.p99_us <= s.max_us);
    }

    #[test]
    fn correction_adds_samples() {
        let r = Recorder::new(1);
        r.record_correct(0, 1000, 100);
        assert!(r.take().len() > 1);
    }
}
