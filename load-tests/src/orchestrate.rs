//! Runs a plan against one target with one or more workers, and gathers what they report.
//!
//! One worker runs in this process. More workers are child processes of this same binary
//! (`wsgate-load worker`), each holding its share of the connections, because one process
//! may hold at most ~20,000 open files here. A child reads its [`ShareSpec`] as the first
//! line of stdin, prints [`WorkerMsg`] JSON lines on stdout, and gets one `go` line on stdin
//! per barrier. Barriers line the workers up (all started, all connected, all held) and let
//! the orchestrator read the server's memory at those points.

use crate::clock::wall_ms;
use crate::control::{Control, WorkerMsg};
use crate::hist::{LatSummary, new_hist};
use crate::meter::{Agg, Phase, Sample};
use crate::procfs::{ProcSnap, snap};
use crate::progress::Progress;
use crate::scenario::{Node, Plan, ShareResult, ShareSpec, run_share};
use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How to run the workers.
#[derive(Clone, Debug)]
pub struct WorkerOpts {
    /// Worker count (1 runs in this process).
    pub workers: usize,
    /// Run even a single worker as a child process.
    pub force_processes: bool,
    /// This binary, re-executed for child workers.
    pub exe: PathBuf,
    /// Runtime threads of each child (0: the child decides).
    pub child_threads: usize,
    /// Source addresses to spread over.
    pub src_ips: u32,
    /// Timeline sample interval, ms.
    pub sample_ms: u64,
    /// Per-connection connect timeout, s.
    pub connect_timeout_s: f64,
    /// Seed.
    pub seed: u64,
}

/// One point of a timeline (all workers together).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the target's run started (end of the bin).
    pub t_s: f64,
    /// The phase most of the bin was in.
    pub phase: String,
    /// Connections open.
    pub open: i64,
    /// Operations per second.
    pub ops_per_s: f64,
    /// Connections established per second.
    pub conns_per_s: f64,
    /// Failed operations in the bin.
    pub errs: u64,
    /// Failed connection attempts in the bin.
    pub conn_errs: u64,
    /// Operation latency percentiles in the bin, µs.
    pub lat: LatSummary,
    /// Handshake latency percentiles in the bin, µs.
    pub conn_lat: LatSummary,
    /// Server RSS when the bin was closed, KiB (0 when unknown).
    pub rss_kib: u64,
}

#[derive(Default)]
struct Bin {
    ops: u64,
    errs: u64,
    conn_ops: u64,
    conn_errs: u64,
    open: HashMap<usize, i64>,
    phase_ms: HashMap<String, u64>,
    lat: Option<Histogram<u64>>,
    conn_lat: Option<Histogram<u64>>,
}

/// Bins samples from all workers by time and closes bins a few intervals behind the newest.
struct Timeline {
    start_ms: u64,
    bin_ms: u64,
    open: BTreeMap<u64, Bin>,
    last_open: HashMap<usize, i64>,
    points: Vec<TimelinePoint>,
}

impl Timeline {
    fn new(start_ms: u64, bin_ms: u64) -> Self {
        Self {
            start_ms,
            bin_ms: bin_ms.max(1),
            open: BTreeMap::new(),
            last_open: HashMap::new(),
            points: Vec::new(),
        }
    }

    fn add(&mut self, worker: usize, s: &Sample) {
        let idx = s.t_ms.saturating_sub(self.start_ms) / self.bin_ms;
        let b = self.open.entry(idx).or_default();
        b.ops += s.ops;
        b.errs += s.errs;
        b.conn_ops += s.conn_ops;
        b.conn_errs += s.conn_errs;
        b.open.insert(worker, s.open);
        let phase = serde_json::to_value(s.phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *b.phase_ms.entry(phase).or_insert(0) += s.dt_ms.max(1);
        if !s.lat.buckets.is_empty() {
            s.lat.add_to(b.lat.get_or_insert_with(new_hist));
        }
        if !s.conn_lat.buckets.is_empty() {
            s.conn_lat.add_to(b.conn_lat.get_or_insert_with(new_hist));
        }
    }

    /// Closes bins older than `keep` bins before the newest; returns the newly closed points.
    fn close(&mut self, keep: u64, rss_kib: u64) -> usize {
        let newest = self.open.keys().next_back().copied().unwrap_or(0);
        let closable: Vec<u64> = self
            .open
            .keys()
            .copied()
            .filter(|&k| k + keep <= newest)
            .collect();
        let n = closable.len();
        for k in closable {
            if let Some(b) = self.open.remove(&k) {
                for (w, o) in &b.open {
                    self.last_open.insert(*w, *o);
                }
                let secs = self.bin_ms as f64 / 1e3;
                let phase = b
                    .phase_ms
                    .iter()
                    .max_by_key(|(_, ms)| **ms)
                    .map(|(p, _)| p.clone())
                    .unwrap_or_default();
                self.points.push(TimelinePoint {
                    t_s: (k + 1) as f64 * secs,
                    phase,
                    open: self.last_open.values().sum(),
                    ops_per_s: b.ops as f64 / secs,
                    conns_per_s: b.conn_ops as f64 / secs,
                    errs: b.errs,
                    conn_errs: b.conn_errs,
                    lat: b.lat.as_ref().map(LatSummary::of).unwrap_or_default(),
                    conn_lat: b.conn_lat.as_ref().map(LatSummary::of).unwrap_or_default(),
                    rss_kib,
                });
            }
        }
        n
    }
}

/// Everything learned from one run against one target.
pub struct TargetRun {
    /// Whole run, all workers.
    pub total: Agg,
    /// Measurement window, all workers (`secs` is the mean window of the workers).
    pub window: Agg,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Scenario counters, summed.
    pub counters: BTreeMap<String, u64>,
    /// Scenario maxima.
    pub maxima: BTreeMap<String, f64>,
    /// The timeline.
    pub timeline: Vec<TimelinePoint>,
    /// Server processes at named points (`before`, `connected`, `held`, `measure`,
    /// `measure-end`, `after`) with the time in seconds since the run started.
    pub snaps: BTreeMap<String, (f64, ProcSnap)>,
    /// Connections open at each barrier, summed over workers.
    pub open_at: BTreeMap<String, i64>,
    /// Workers used.
    pub workers: usize,
}

enum Link {
    InProc {
        go: mpsc::Sender<()>,
        task: JoinHandle<()>,
    },
    Child {
        stdin: ChildStdin,
        _child: Box<Child>,
    },
}

impl Link {
    async fn go(&mut self) -> Result<()> {
        match self {
            Self::InProc { go, .. } => go.send(()).await.context("worker gone"),
            Self::Child { stdin, .. } => {
                stdin.write_all(b"go\n").await?;
                stdin.flush().await?;
                Ok(())
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Self::InProc { task, .. } = self {
            task.abort();
        }
    }
}

fn specs(plan: &Plan, nodes: &[Node], o: &WorkerOpts) -> Vec<ShareSpec> {
    let n = o.workers.max(1);
    (0..n)
        .map(|i| ShareSpec {
            plan: plan.share(i, n),
            nodes: nodes.to_vec(),
            worker: i,
            workers: n,
            conn_offset: plan.conn_offset(i, n),
            src_ips: o.src_ips,
            sample_ms: o.sample_ms,
            connect_timeout_s: o.connect_timeout_s,
            seed: o.seed.wrapping_add(i as u64 * 0x9E37_79B9),
        })
        .collect()
}

fn in_process(
    spec: ShareSpec,
    idx: usize,
    out: mpsc::Sender<(usize, WorkerMsg)>,
    barrier: Duration,
) -> Link {
    let (tx, mut rx) = mpsc::channel::<WorkerMsg>(256);
    let (go_tx, go_rx) = mpsc::channel(16);
    let fwd = out.clone();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if fwd.send((idx, m)).await.is_err() {
                break;
            }
        }
    });
    let done_tx = tx.clone();
    let task = tokio::spawn(async move {
        let ctl = Control::new(tx, go_rx, barrier);
        let msg = match run_share(spec, ctl).await {
            Ok(r) => WorkerMsg::Done(Box::new(r)),
            Err(e) => WorkerMsg::Failed {
                error: format!("{e:#}"),
            },
        };
        let _ = done_tx.send(msg).await;
    });
    Link::InProc { go: go_tx, task }
}

async fn child(
    spec: &ShareSpec,
    idx: usize,
    out: mpsc::Sender<(usize, WorkerMsg)>,
    o: &WorkerOpts,
) -> Result<Link> {
    let mut cmd = Command::new(&o.exe);
    cmd.arg("worker")
        .arg("--threads")
        .arg(o.child_threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting worker {}", o.exe.display()))?;
    let mut stdin = child.stdin.take().context("worker stdin")?;
    let stdout = child.stdout.take().context("worker stdout")?;
    let mut line = serde_json::to_string(spec)?;
    line.push('\n');
    stdin.write_all(line.as_bytes()).await?;
    stdin.flush().await?;
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut finished = false;
        while let Ok(Some(l)) = lines.next_line().await {
            match serde_json::from_str::<WorkerMsg>(&l) {
                Ok(m) => {
                    finished |= matches!(m, WorkerMsg::Done(_) | WorkerMsg::Failed { .. });
                    if out.send((idx, m)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = out
                        .send((
                            idx,
                            WorkerMsg::Failed {
                                error: format!("bad worker line ({e}): {l}"),
                            },
                        ))
                        .await;
                    return;
                }
            }
        }
        if !finished {
            let _ = out
                .send((
                    idx,
                    WorkerMsg::Failed {
                        error: "worker exited without a result".into(),
                    },
                ))
                .await;
        }
    });
    Ok(Link::Child {
        stdin,
        _child: Box::new(child),
    })
}

/// Runs `plan` against `nodes`; `pids` are the server processes to watch.
pub async fn run_target(
    plan: &Plan,
    nodes: &[Node],
    pids: &[u32],
    o: &WorkerOpts,
    bar: &Progress,
    label: &str,
) -> Result<TargetRun> {
    let n = o.workers.max(1);
    let bound = plan.time_bound(Duration::from_secs_f64(
        o.connect_timeout_s.clamp(0.1, 120.0),
    ));
    let start = Instant::now();
    let start_ms = wall_ms();
    let deadline = start + bound;
    let rel = |t: Instant| t.duration_since(start).as_secs_f64();
    let mut snaps = BTreeMap::new();
    snaps.insert("before".to_owned(), (0.0, snap(pids)));

    let (tx, mut rx) = mpsc::channel::<(usize, WorkerMsg)>(4096);
    let mut links = Vec::with_capacity(n);
    for (i, spec) in specs(plan, nodes, o).into_iter().enumerate() {
        if n == 1 && !o.force_processes {
            links.push(in_process(spec, i, tx.clone(), bound));
        } else {
            links.push(child(&spec, i, tx.clone(), o).await?);
        }
    }
    drop(tx);

    let mut timeline = Timeline::new(start_ms, o.sample_ms.max(10));
    let mut ready: HashMap<String, (usize, i64)> = HashMap::new();
    let mut open_at = BTreeMap::new();
    let mut results: Vec<ShareResult> = Vec::with_capacity(n);
    let mut last_msg = String::new();
    while results.len() < n {
        let Ok(msg) = tokio::time::timeout_at(deadline.into(), rx.recv()).await else {
            bail!("{label}: run did not finish within its time bound of {bound:?}");
        };
        let Some((idx, msg)) = msg else {
            bail!("{label}: all workers went away");
        };
        match msg {
            WorkerMsg::Sample(s) => {
                timeline.add(idx, &s);
                if timeline.close(2, snap(pids).rss_kib) > 0
                    && let Some(p) = timeline.points.last()
                {
                    last_msg = status(label, p, plan);
                }
                bar.update(start.elapsed().as_secs(), last_msg.clone());
            }
            WorkerMsg::Ready { name, open } => {
                let e = ready.entry(name.clone()).or_insert((0, 0));
                e.0 += 1;
                e.1 += open;
                if e.0 == n {
                    open_at.insert(name.clone(), e.1);
                    if !pids.is_empty() && name != "start" {
                        // Let the server finish registering the last connections.
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    let read = if plan.settles_rss() && !pids.is_empty() && name != "start" {
                        settled(pids).await
                    } else {
                        snap(pids)
                    };
                    snaps.insert(name.clone(), (rel(Instant::now()), read));
                    for l in &mut links {
                        l.go().await?;
                    }
                }
            }
            WorkerMsg::Mark { name } => {
                snaps
                    .entry(name)
                    .or_insert_with(|| (rel(Instant::now()), snap(pids)));
            }
            WorkerMsg::Done(r) => results.push(*r),
            WorkerMsg::Failed { error } => bail!("{label}: worker {idx} failed: {error}"),
        }
    }
    snaps.insert("after".to_owned(), (rel(Instant::now()), snap(pids)));
    timeline.close(0, snap(pids).rss_kib);
    drop(links);

    let mut total = Agg::new();
    let mut window = Agg::new();
    let mut errors = BTreeMap::new();
    let mut counters = BTreeMap::new();
    let mut maxima: BTreeMap<String, f64> = BTreeMap::new();
    for r in &results {
        total.absorb(&r.total);
        window.absorb(&r.window);
        for (k, v) in &r.errors {
            *errors.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &r.counters {
            *counters.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &r.maxima {
            let e = maxima.entry(k.clone()).or_insert(*v);
            *e = e.max(*v);
        }
    }
    let shares = results.len().max(1) as f64;
    window.secs /= shares;
    total.secs /= shares;
    Ok(TargetRun {
        total,
        window,
        errors,
        counters,
        maxima,
        timeline: timeline.points,
        snaps,
        open_at,
        workers: n,
    })
}

/// Reads of the server's RSS taken for one settled figure, and the time between two reads.
const SETTLE_READS: usize = 5;
const SETTLE_EVERY: Duration = Duration::from_millis(100);

/// The server's memory once it has stopped moving: the median RSS of [`SETTLE_READS`] reads
/// [`SETTLE_EVERY`] apart (CPU from the last read).
async fn settled(pids: &[u32]) -> ProcSnap {
    let mut reads = Vec::with_capacity(SETTLE_READS);
    for i in 0..SETTLE_READS {
        if i > 0 {
            tokio::time::sleep(SETTLE_EVERY).await;
        }
        reads.push(snap(pids));
    }
    let last = reads.last().copied().unwrap_or_default();
    let mut rss: Vec<u64> = reads.iter().map(|r| r.rss_kib).collect();
    rss.sort_unstable();
    ProcSnap {
        rss_kib: rss.get(rss.len() / 2).copied().unwrap_or(last.rss_kib),
        ..last
    }
}

fn status(label: &str, p: &TimelinePoint, plan: &Plan) -> String {
    let connects = matches!(plan, Plan::Idle(_) | Plan::ConnectStorm(_))
        || p.phase
            == serde_json::to_value(Phase::Connect)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
    let (rate, p99) = if connects || p.ops_per_s == 0.0 {
        (p.conns_per_s, p.conn_lat.p99_us)
    } else {
        (p.ops_per_s, p.lat.p99_us)
    };
    format!(
        "{label} {} open={} {:.0}/s p99={:.2}ms errs={}",
        p.phase,
        p.open,
        rate,
        p99 as f64 / 1e3,
        p.errs + p.conn_errs
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::HistData;

    fn sample(t_ms: u64, ops: u64, open: i64) -> Sample {
        Sample {
            t_ms,
            dt_ms: 100,
            phase: Phase::Measure,
            open,
            ops,
            errs: 0,
            conn_ops: 0,
            conn_errs: 0,
            lat: HistData {
                buckets: vec![(100, ops)],
            },
            conn_lat: HistData::default(),
        }
    }

    #[test]
    fn bins_merge_workers() {
        let mut t = Timeline::new(1_000, 100);
        t.add(0, &sample(1_050, 10, 5));
        t.add(1, &sample(1_060, 30, 7));
        t.add(0, &sample(1_150, 5, 5));
        assert_eq!(t.close(1, 0), 1);
        let p = &t.points[0];
        assert_eq!(p.open, 12);
        assert!((p.ops_per_s - 400.0).abs() < 1e-9);
        assert_eq!(p.lat.count, 40);
        assert_eq!(p.phase, "measure");
        assert_eq!(t.close(0, 0), 1);
    }
}
