//! The report: a JSON document per invocation, a summary table, and an HTML page of charts.

pub mod html;
pub mod svg;

use crate::hist::{LatSummary, curve};
use crate::orchestrate::{TargetRun, TimelinePoint};
use crate::scenario::{Node, Plan};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Version of the report layout.
pub const FORMAT: u32 = 1;

/// Settings of the run that are not part of the plan.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    /// Workers requested (0: automatic).
    pub workers: usize,
    /// Source addresses spread over.
    pub src_ips: u32,
    /// Timeline interval, ms.
    pub sample_ms: u64,
    /// Per-connection connect timeout, s.
    pub connect_timeout_s: f64,
    /// Runtime threads of the load generator.
    pub threads: usize,
    /// CPUs the spawned servers were pinned to.
    pub server_cpus: Option<String>,
}

/// The machine.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs available.
    pub cpus: usize,
    /// Soft open-files limit per process.
    pub nofile_limit: u64,
    /// Kernel release.
    pub kernel: String,
}

/// Server-side figures from /proc.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServerStats {
    /// Server processes watched.
    pub processes: usize,
    /// RSS before the first connection, KiB.
    pub rss_before_kib: u64,
    /// RSS once all connections were open, KiB.
    pub rss_connected_kib: u64,
    /// RSS at the end of the hold (idle), KiB.
    pub rss_held_kib: u64,
    /// RSS once every connection was used (`ready` scenario; 0 otherwise), KiB.
    #[serde(default)]
    pub rss_ready_kib: u64,
    /// Connections open when RSS was read.
    pub conns_at_rss: i64,
    /// (RSS after − RSS before) ÷ connections, KiB.
    pub rss_kib_per_conn: f64,
    /// CPU seconds used in the measurement window.
    pub cpu_s_window: f64,
    /// CPU use in the window, percent of one core.
    pub cpu_pct_window: f64,
}

/// Results for one target.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TargetReport {
    /// Label.
    pub name: String,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Server processes.
    pub pids: Vec<u32>,
    /// Worker processes (1: in-process).
    pub workers: usize,
    /// `closed` (one in flight per client) or `open` (paced, latency from the schedule).
    pub loop_mode: String,
    /// Measurement window, s.
    pub window_s: f64,
    /// Headline metrics (compared across targets).
    pub summary: BTreeMap<String, f64>,
    /// Latency percentiles by name, µs.
    pub latency: BTreeMap<String, LatSummary>,
    /// Percentile curves by name: `[quantile, µs]`.
    pub curves: BTreeMap<String, Vec<(f64, u64)>>,
    /// Scenario counters.
    pub counters: BTreeMap<String, u64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Built-in backend event counts during this target's run.
    pub backend: BTreeMap<String, u64>,
    /// Server memory and CPU.
    pub server: ServerStats,
    /// Timeline.
    pub timeline: Vec<TimelinePoint>,
    /// Remarks.
    pub notes: Vec<String>,
}

/// One target's metrics divided by the baseline's.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ratio {
    /// The target.
    pub target: String,
    /// The baseline (the first target).
    pub baseline: String,
    /// `target ÷ baseline` per summary metric.
    pub metrics: BTreeMap<String, f64>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Always `wsgate-load`.
    pub tool: String,
    /// Tool version.
    pub version: String,
    /// Layout version.
    pub format: u32,
    /// Scenario name (`cross-node` for push through another node).
    pub scenario: String,
    /// Start time, ms since the epoch.
    pub started_unix_ms: u64,
    /// The plan.
    pub plan: Plan,
    /// Other settings.
    pub settings: Settings,
    /// The machine.
    pub machine: Machine,
    /// One entry per target, in run order.
    pub targets: Vec<TargetReport>,
    /// Each later target against the first.
    pub ratios: Vec<Ratio>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1e3
}

fn put_lat(summary: &mut BTreeMap<String, f64>, name: &str, l: &LatSummary) {
    if l.count == 0 {
        return;
    }
    summary.insert(format!("{name}_p50_ms"), ms(l.p50_us));
    summary.insert(format!("{name}_p99_ms"), ms(l.p99_us));
    summary.insert(format!("{name}_p999_ms"), ms(l.p999_us));
}

/// Builds the report of one target from its run.
pub fn build_target(
    plan: &Plan,
    name: &str,
    nodes: &[Node],
    pids: &[u32],
    run: &TargetRun,
    backend: BTreeMap<String, u64>,
    notes: Vec<String>,
) -> TargetReport {
    let w = &run.window;
    let secs = w.secs.max(1e-9);
    let mut summary = BTreeMap::new();
    let mut latency = BTreeMap::new();
    let mut curves = BTreeMap::new();
    let mut add_lat = |key: &str, h: &hdrhistogram::Histogram<u64>| {
        let l = LatSummary::of(h);
        if l.count > 0 {
            curves.insert(key.to_owned(), curve(h));
            latency.insert(key.to_owned(), l);
        }
    };
    let loop_mode;
    let mut per_op = ("ops", 0u64);
    match plan {
        Plan::Idle(p) => {
            add_lat("handshake", &run.total.conn_lat);
            summary.insert(
                "conns_open".into(),
                run.open_at.get("connected").copied().unwrap_or(0) as f64,
            );
            summary.insert("connect_errors".into(), run.total.conn_errs as f64);
            summary.insert("connects_per_sec".into(), w.conn_ops as f64 / secs);
            if let Some(l) = run.maxima.get("max_start_lag_ms") {
                summary.insert("max_start_lag_ms".into(), *l);
            }
            // Timed posts delivered while held (groups and broadcasts, see `scenario::idle`).
            add_lat("broadcast_delivery", &run.total.lat);
            add_lat("group_delivery", &run.total.aux);
            for k in ["group_delivery_max_ms", "broadcast_delivery_max_ms"] {
                if let Some(v) = run.maxima.get(k).filter(|v| **v > 0.0) {
                    summary.insert(k.into(), *v);
                }
            }
            loop_mode = if p.rate > 0.0 { "open" } else { "closed" };
        }
        Plan::ConnectStorm(p) => {
            add_lat("handshake", &w.conn_lat);
            summary.insert("connects_per_sec".into(), w.conn_ops as f64 / secs);
            summary.insert("connect_errors".into(), w.conn_errs as f64);
            per_op = ("connect", w.conn_ops);
            loop_mode = if p.rate > 0.0 { "open" } else { "closed" };
        }
        Plan::Upstream(p) => {
            add_lat("rtt", &w.lat);
            add_lat("handshake", &run.total.conn_lat);
            summary.insert("msgs_per_sec".into(), w.ops as f64 / secs);
            summary.insert(
                "errors".into(),
                (run.total.errs + run.total.conn_errs) as f64,
            );
            per_op = ("msg", w.ops);
            loop_mode = if p.rate > 0.0 { "open" } else { "closed" };
        }
        Plan::Push(p) => {
            add_lat("delivery", &w.lat);
            add_lat("http", &w.aux);
            add_lat("handshake", &run.total.conn_lat);
            summary.insert("deliveries_per_sec".into(), w.ops as f64 / secs);
            summary.insert("posts_per_sec".into(), w.aux.len() as f64 / secs);
            for k in ["lost", "posts_failed", "posts_gone"] {
                summary.insert(k.into(), run.counters.get(k).copied().unwrap_or(0) as f64);
            }
            per_op = ("push", w.aux.len());
            loop_mode = if p.rate > 0.0 { "open" } else { "closed" };
        }
        Plan::Fanout(_) => {
            add_lat("delivery", &w.lat);
            add_lat("http", &w.aux);
            crate::scenario::fanout::summarize(run, &mut summary);
            per_op = ("delivery", w.ops);
            loop_mode = "open";
        }
        Plan::Ready(_) => {
            add_lat("rtt", &run.total.lat);
            add_lat("delivery", &run.total.aux);
            add_lat("handshake", &run.total.conn_lat);
            crate::scenario::ready::summarize(run, &mut summary);
            loop_mode = "closed";
        }
    }
    for (k, l) in &latency {
        put_lat(&mut summary, k, l);
    }
    let server = server_stats(run, pids);
    if server.processes > 0 {
        // `ready` reports its two points itself.
        if server.rss_kib_per_conn > 0.0 && !matches!(plan, Plan::Ready(_)) {
            summary.insert("server_rss_kib_per_conn".into(), server.rss_kib_per_conn);
        }
        if server.cpu_s_window > 0.0 {
            summary.insert("server_cpu_pct".into(), server.cpu_pct_window);
            if per_op.1 > 0 {
                summary.insert(
                    format!("server_cpu_us_per_{}", per_op.0),
                    server.cpu_s_window * 1e6 / per_op.1 as f64,
                );
            }
        }
    }
    TargetReport {
        name: name.to_owned(),
        nodes: nodes.to_vec(),
        pids: pids.to_vec(),
        workers: run.workers,
        loop_mode: loop_mode.to_owned(),
        window_s: w.secs,
        summary,
        latency,
        curves,
        counters: run.counters.clone(),
        errors: run.errors.clone(),
        backend,
        server,
        timeline: run.timeline.clone(),
        notes,
    }
}

fn server_stats(run: &TargetRun, pids: &[u32]) -> ServerStats {
    let get = |k: &str| run.snaps.get(k).copied();
    let mut s = ServerStats {
        processes: pids.len(),
        ..ServerStats::default()
    };
    if pids.is_empty() {
        return s;
    }
    let before = get("before").map(|x| x.1.rss_kib).unwrap_or(0);
    s.rss_before_kib = before;
    s.rss_connected_kib = get("connected").map(|x| x.1.rss_kib).unwrap_or(0);
    s.rss_held_kib = get("held").map(|x| x.1.rss_kib).unwrap_or(0);
    s.rss_ready_kib = get("ready").map(|x| x.1.rss_kib).unwrap_or(0);
    let (rss, conns) = if s.rss_held_kib > 0 {
        (
            s.rss_held_kib,
            run.open_at.get("held").copied().unwrap_or(0),
        )
    } else {
        (
            s.rss_connected_kib,
            run.open_at.get("connected").copied().unwrap_or(0),
        )
    };
    s.conns_at_rss = conns;
    if conns > 0 && rss > 0 {
        s.rss_kib_per_conn = rss.saturating_sub(before) as f64 / conns as f64;
    }
    if let (Some((t0, a)), Some((t1, b))) = (get("measure"), get("measure-end"))
        && t1 > t0
    {
        s.cpu_s_window = (b.cpu_s - a.cpu_s).max(0.0);
        s.cpu_pct_window = s.cpu_s_window / (t1 - t0) * 100.0;
    }
    s
}

/// Each later target's summary divided by the first target's.
pub fn ratios(targets: &[TargetReport]) -> Vec<Ratio> {
    let Some(base) = targets.first() else {
        return Vec::new();
    };
    targets
        .iter()
        .skip(1)
        .map(|t| Ratio {
            target: t.name.clone(),
            baseline: base.name.clone(),
            metrics: t
                .summary
                .iter()
                .filter_map(|(k, v)| {
                    let b = base.summary.get(k)?;
                    (*b != 0.0).then(|| (k.clone(), v / b))
                })
                .collect(),
        })
        .collect()
}

/// A plain-text table: one row per metric, one column per target, then the ratios.
pub fn table(r: &Report) -> String {
    let mut keys: Vec<&String> = r.targets.iter().flat_map(|t| t.summary.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::new();
    let _ = write!(out, "{:<30}", r.scenario);
    for t in &r.targets {
        let _ = write!(out, " {:>14}", t.name);
    }
    for ra in &r.ratios {
        let _ = write!(out, " {:>14}", format!("{}/{}", ra.target, ra.baseline));
    }
    out.push('\n');
    for k in keys {
        let _ = write!(out, "{k:<30}");
        for t in &r.targets {
            match t.summary.get(k) {
                Some(v) => {
                    let _ = write!(out, " {:>14}", fmt_num(*v));
                }
                None => {
                    let _ = write!(out, " {:>14}", "-");
                }
            }
        }
        for ra in &r.ratios {
            match ra.metrics.get(k) {
                Some(v) => {
                    let _ = write!(out, " {:>14}", format!("{v:.3}x"));
                }
                None => {
                    let _ = write!(out, " {:>14}", "-");
                }
            }
        }
        out.push('\n');
    }
    out
}

/// A number with precision that suits its size.
pub fn fmt_num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Writes `<dir>/<stem>.json` and `<dir>/<stem>.html`; returns their paths.
pub fn write_files(r: &Report, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join(format!("{stem}.json"));
    let page = dir.join(format!("{stem}.html"));
    std::fs::write(&json, serde_json::to_vec_pretty(r)?)
        .with_context(|| format!("writing {}", json.display()))?;
    std::fs::write(&page, html::render(r))
        .with_context(|| format!("writing {}", page.display()))?;
    Ok((json, page))
}
