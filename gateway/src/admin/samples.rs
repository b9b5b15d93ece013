//! The admin page's short history: once a second the sampler reads this gateway's counters into
//! a ring of the last [`KEEP`] samples (rates and charts come from their differences), and every
//! [`WINDOW_STEP`] samples keeps a latency snapshot, so latency percentiles cover about the last
//! minute. Everything is bounded: about 120 small samples and 7 histogram snapshots.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::activity::Activity;
use crate::activity::latency::{Percentiles, Snapshot};

/// Samples kept (one a second: two minutes).
pub(crate) const KEEP: usize = 120;
/// Time between samples.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);
/// Samples between kept latency snapshots.
const WINDOW_STEP: usize = 10;
/// Latency snapshots kept: the window is 60 to 70 seconds.
const WINDOWS: usize = 7;
/// Rates are averaged over this many samples.
const RATE_SPAN: usize = 5;

/// One sample of the counters.
#[derive(Debug, Clone)]
struct Sample {
    at_ms: i64,
    messages_in: u64,
    messages_out: u64,
    errors: u64,
    connections: usize,
    /// Latency percentiles of the calls since the previous sample.
    latency: Percentiles,
}

/// One point of the charts: rates per second since the previous sample.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Point {
    /// Epoch milliseconds.
    pub t: i64,
    /// Messages from clients per second.
    pub messages_in: f64,
    /// Frames to clients per second.
    pub messages_out: f64,
    /// Errors per second.
    pub errors: f64,
    /// Connections held.
    pub connections: usize,
    /// Median integration latency of the second (ms).
    pub p50: Option<f64>,
    /// 99th percentile of the second (ms).
    pub p99: Option<f64>,
}

/// Current rates, per second.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rates {
    /// Seconds the rates are averaged over (0 before two samples exist).
    pub window_seconds: f64,
    /// Messages from clients.
    pub messages_in: f64,
    /// Frames to clients.
    pub messages_out: f64,
    /// Errors of every kind.
    pub errors: f64,
}

#[derive(Debug)]
struct Inner {
    samples: VecDeque<Sample>,
    previous: Snapshot,
    windows: VecDeque<Snapshot>,
    taken: usize,
}

/// The ring (see the module docs).
#[derive(Debug)]
pub(crate) struct Samples {
    inner: Mutex<Inner>,
}

impl Default for Samples {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                samples: VecDeque::with_capacity(KEEP),
                previous: Snapshot::empty(),
                windows: VecDeque::from([Snapshot::empty()]),
                taken: 0,
            }),
        }
    }
}

fn per_second(later: u64, earlier: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    ((later.saturating_sub(earlier) as f64 / seconds) * 100.0).round() / 100.0
}

impl Samples {
    /// Takes one sample of `activity` with `connections` held now.
    pub(crate) fn take(&self, activity: &Activity, connections: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let snapshot = activity.latency.snapshot();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let latency = snapshot.since(&inner.previous);
        let sample = Sample {
            at_ms: chrono::Utc::now().timestamp_millis(),
            messages_in: activity.messages_in.load(Relaxed),
            messages_out: activity.messages_out.load(Relaxed),
            errors: activity.errors_total(),
            connections,
            latency,
        };
        if inner.samples.len() == KEEP {
            inner.samples.pop_front();
        }
        inner.samples.push_back(sample);
        inner.taken += 1;
        if inner.taken.is_multiple_of(WINDOW_STEP) {
            if inner.windows.len() == WINDOWS {
                inner.windows.pop_front();
            }
            inner.windows.push_back(snapshot.clone());
        }
        inner.previous = snapshot;
    }

    /// The chart points, oldest first.
    pub(crate) fn points(&self) -> Vec<Point> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let samples = &inner.samples;
        (samples.iter().zip(samples.iter().skip(1)))
            .map(|(a, b)| {
                let seconds = (b.at_ms - a.at_ms) as f64 / 1000.0;
                Point {
                    t: b.at_ms,
                    messages_in: per_second(b.messages_in, a.messages_in, seconds),
                    messages_out: per_second(b.messages_out, a.messages_out, seconds),
                    errors: per_second(b.errors, a.errors, seconds),
                    connections: b.connections,
                    p50: b.latency.p50,
                    p99: b.latency.p99,
                }
            })
            .collect()
    }

    /// Rates over the last few samples.
    pub(crate) fn rates(&self) -> Rates {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let samples = &inner.samples;
        let (Some(last), Some(first)) = (
            samples.back(),
            samples.get(samples.len().saturating_sub(RATE_SPAN + 1)),
        ) else {
            return Rates::default();
        };
        let seconds = (last.at_ms - first.at_ms) as f64 / 1000.0;
        Rates {
            window_seconds: seconds,
            messages_in: per_second(last.messages_in, first.messages_in, seconds),
            messages_out: per_second(last.messages_out, first.messages_out, seconds),
            errors: per_second(last.errors, first.errors, seconds),
        }
    }

    /// Integration latency over the last minute or so (everything since start before that).
    pub(crate) fn latency(&self, activity: &Activity) -> Percentiles {
        let now = activity.latency.snapshot();
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .windows
            .front()
            .map_or_else(Percentiles::default, |oldest| now.since(oldest))
    }
}

/// Samples `activity` every [`INTERVAL`] until `stop`; `connections` reads the count held.
pub(crate) async fn run(
    samples: std::sync::Arc<Samples>,
    shared: std::sync::Arc<crate::state::Shared>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => samples.take(&shared.activity, shared.registry.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn the_ring_is_bounded_and_rates_come_from_differences() {
        let activity = Activity::default();
        let samples = Samples::default();
        assert_eq!(samples.rates().window_seconds, 0.0);
        for _ in 0..(KEEP + 10) {
            activity.messages_in.fetch_add(5, Ordering::Relaxed);
            activity.latency.record(Duration::from_millis(4));
            samples.take(&activity, 3);
        }
        let points = samples.points();
        assert_eq!(points.len(), KEEP - 1);
        assert!(points.iter().all(|p| p.connections == 3));
        assert!(points.iter().all(|p| p.p50.is_some()));
        let latency = samples.latency(&activity);
        assert!(latency.count >= 60 && latency.count <= 80, "{latency:?}");
        let inner = samples.inner.lock().expect("lock");
        assert_eq!(inner.windows.len(), WINDOWS);
    }
}
