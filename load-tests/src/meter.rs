//! Per-share counters and histograms, cut into timeline samples and a measurement window.

use crate::clock::wall_ms;
use crate::hist::{HistData, Recorder, new_hist};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// What a share is doing; samples are attributed to the phase current when they are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before anything started.
    Setup,
    /// Opening connections (not measured unless the scenario measures connects).
    Connect,
    /// Load runs but is not counted.
    Warmup,
    /// The measurement window.
    Measure,
    /// Connections held open with no load.
    Hold,
    /// Load stopped; waiting for in-flight work.
    Drain,
    /// Finished.
    Done,
}

/// One timeline sample: what happened since the previous sample.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    /// Wall-clock time of the cut, ms since the epoch.
    pub t_ms: u64,
    /// Length of the interval, ms.
    pub dt_ms: u64,
    /// Phase the interval is attributed to.
    pub phase: Phase,
    /// Connections open at the cut.
    pub open: i64,
    /// Operations completed in the interval (messages, deliveries, connects in a storm).
    pub ops: u64,
    /// Failed operations in the interval.
    pub errs: u64,
    /// Connections established in the interval.
    pub conn_ops: u64,
    /// Failed connection attempts in the interval.
    pub conn_errs: u64,
    /// Operation latencies in the interval.
    pub lat: HistData,
    /// Handshake latencies in the interval.
    pub conn_lat: HistData,
}

/// Aggregated counts and histograms over a span of time.
pub struct Agg {
    /// Operations.
    pub ops: u64,
    /// Failed operations.
    pub errs: u64,
    /// Connections established.
    pub conn_ops: u64,
    /// Failed connection attempts.
    pub conn_errs: u64,
    /// Operation latencies.
    pub lat: Histogram<u64>,
    /// Handshake latencies.
    pub conn_lat: Histogram<u64>,
    /// Secondary latencies (for example the HTTP round trip of a push).
    pub aux: Histogram<u64>,
    /// Seconds covered.
    pub secs: f64,
}

impl Default for Agg {
    fn default() -> Self {
        Self::new()
    }
}

impl Agg {
    /// Empty.
    pub fn new() -> Self {
        Self {
            ops: 0,
            errs: 0,
            conn_ops: 0,
            conn_errs: 0,
            lat: new_hist(),
            conn_lat: new_hist(),
            aux: new_hist(),
            secs: 0.0,
        }
    }

    /// Adds a portable aggregate (from another share) into this one; `secs` is summed.
    pub fn absorb(&mut self, d: &AggData) {
        self.ops += d.ops;
        self.errs += d.errs;
        self.conn_ops += d.conn_ops;
        self.conn_errs += d.conn_errs;
        d.lat.add_to(&mut self.lat);
        d.conn_lat.add_to(&mut self.conn_lat);
        d.aux.add_to(&mut self.aux);
        self.secs += d.secs;
    }

    /// The portable form.
    pub fn data(&self) -> AggData {
        AggData {
            ops: self.ops,
            errs: self.errs,
            conn_ops: self.conn_ops,
            conn_errs: self.conn_errs,
            lat: HistData::from_hist(&self.lat),
            conn_lat: HistData::from_hist(&self.conn_lat),
            aux: HistData::from_hist(&self.aux),
            secs: self.secs,
        }
    }
}

/// [`Agg`] in a form that crosses process boundaries.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AggData {
    /// Operations.
    pub ops: u64,
    /// Failed operations.
    pub errs: u64,
    /// Connections established.
    pub conn_ops: u64,
    /// Failed connection attempts.
    pub conn_errs: u64,
    /// Operation latencies.
    pub lat: HistData,
    /// Handshake latencies.
    pub conn_lat: HistData,
    /// Secondary latencies.
    pub aux: HistData,
    /// Seconds covered.
    pub secs: f64,
}

struct State {
    phase: Phase,
    since: Instant,
    last_cut: Instant,
    last: [u64; 4],
    total: Agg,
    window: Agg,
}

/// Counters and histograms of one share of a scenario.
pub struct Meter {
    /// Operation latencies.
    pub lat: Recorder,
    /// Handshake latencies.
    pub conn_lat: Recorder,
    /// Secondary latencies.
    pub aux: Recorder,
    ops: AtomicU64,
    errs: AtomicU64,
    conn_ops: AtomicU64,
    conn_errs: AtomicU64,
    open: AtomicI64,
    errors: Mutex<BTreeMap<String, u64>>,
    state: Mutex<State>,
}

impl Default for Meter {
    fn default() -> Self {
        Self::new()
    }
}

impl Meter {
    /// A meter in the `Setup` phase.
    pub fn new() -> Self {
        let now = Instant::now();
        Self {
            lat: Recorder::new(16),
            conn_lat: Recorder::new(16),
            aux: Recorder::new(16),
            ops: AtomicU64::new(0),
            errs: AtomicU64::new(0),
            conn_ops: AtomicU64::new(0),
            conn_errs: AtomicU64::new(0),
            open: AtomicI64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            state: Mutex::new(State {
                phase: Phase::Setup,
                since: now,
                last_cut: now,
                last: [0; 4],
                total: Agg::new(),
                window: Agg::new(),
            }),
        }
    }

    /// One operation completed.
    pub fn op(&self) {
        self.ops.fetch_add(1, Relaxed);
    }

    /// One connection established (and now open).
    pub fn conn_up(&self) {
        self.conn_ops.fetch_add(1, Relaxed);
        self.open.fetch_add(1, Relaxed);
    }

    /// A connection closed.
    pub fn conn_down(&self) {
        self.open.fetch_sub(1, Relaxed);
    }

    /// A connection attempt failed, classified by `kind`.
    pub fn conn_error(&self, kind: &str) {
        self.conn_errs.fetch_add(1, Relaxed);
        self.count_error(kind);
    }

    /// An operation failed, classified by `kind`.
    pub fn op_error(&self, kind: &str) {
        self.errs.fetch_add(1, Relaxed);
        self.count_error(kind);
    }

    fn count_error(&self, kind: &str) {
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *e.entry(kind.to_owned()).or_insert(0) += 1;
    }

    /// Operations completed so far.
    pub fn ops_total(&self) -> u64 {
        self.ops.load(Relaxed)
    }

    /// Connections established so far.
    pub fn conn_ops_total(&self) -> u64 {
        self.conn_ops.load(Relaxed)
    }

    /// Connections open now.
    pub fn open_now(&self) -> i64 {
        self.open.load(Relaxed)
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).phase
    }

    /// Cuts a timeline sample (attributed to the current phase).
    pub fn sample(&self) -> Sample {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.cut(&mut st)
    }

    /// Cuts a sample for the phase that ends, then enters `next`.
    pub fn set_phase(&self, next: Phase) -> Sample {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = self.cut(&mut st);
        let now = Instant::now();
        if st.phase == Phase::Measure {
            st.window.secs += now.duration_since(st.since).as_secs_f64();
        }
        st.total.secs += now.duration_since(st.since).as_secs_f64();
        st.phase = next;
        st.since = now;
        s
    }

    fn cut(&self, st: &mut State) -> Sample {
        let now = Instant::now();
        let cur = [
            self.ops.load(Relaxed),
            self.errs.load(Relaxed),
            self.conn_ops.load(Relaxed),
            self.conn_errs.load(Relaxed),
        ];
        let d: Vec<u64> = cur
            .iter()
            .zip(st.last.iter())
            .map(|(c, l)| c.saturating_sub(*l))
            .collect();
        st.last = cur;
        let lat = self.lat.take();
        let conn_lat = self.conn_lat.take();
        let aux = self.aux.take();
        let measuring = st.phase == Phase::Measure;
        let add = |agg: &mut Agg| {
            agg.ops += d[0];
            agg.errs += d[1];
            agg.conn_ops += d[2];
            agg.conn_errs += d[3];
            let _ = agg.lat.add(&lat);
            let _ = agg.conn_lat.add(&conn_lat);
            let _ = agg.aux.add(&aux);
        };
        add(&mut st.total);
        if measuring {
            add(&mut st.window);
        }
        let dt = now.duration_since(st.last_cut);
        st.last_cut = now;
        Sample {
            t_ms: wall_ms(),
            dt_ms: u64::try_from(dt.as_millis()).unwrap_or(u64::MAX),
            phase: st.phase,
            open: self.open.load(Relaxed),
            ops: d[0],
            errs: d[1],
            conn_ops: d[2],
            conn_errs: d[3],
            lat: HistData::from_hist(&lat),
            conn_lat: HistData::from_hist(&conn_lat),
        }
    }

    /// The whole run and the measurement window, plus error counts by kind.
    pub fn finish(&self) -> (AggData, AggData, BTreeMap<String, u64>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.cut(&mut st);
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (st.total.data(), st.window.data(), errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_only_measure_phase() {
        let m = Meter::new();
        m.set_phase(Phase::Warmup);
        m.op();
        m.lat.record(0, 5);
        m.set_phase(Phase::Measure);
        m.op();
        m.op();
        m.lat.record(0, 7);
        let s = m.set_phase(Phase::Drain);
        assert_eq!(s.ops, 2);
        assert_eq!(s.phase, Phase::Measure);
        m.op();
        let (total, window, _) = m.finish();
        assert_eq!(total.ops, 4);
        assert_eq!(window.ops, 2);
        assert_eq!(window.lat.count(), 1);
        assert!(window.secs >= 0.0);
    }
}
