//! One invocation: start the backend if needed, run the plan against each target in turn,
//! compare them, and write the report.

use crate::backend::{self, Backend};
use crate::clock::{wall_ms, wall_ns};
use crate::net::{conns_per_process, nofile_limit};
use crate::orchestrate::{WorkerOpts, run_target};
use crate::procfs::kernel_release;
use crate::progress::Progress;
use crate::report::{self, FORMAT, Machine, Report, Settings, build_target, ratios, table};
use crate::scenario::Plan;
use crate::targets::{SetupOpts, TargetSpec, setup};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// When to start the built-in integration backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendMode {
    /// When a wsgate target is in the list.
    Auto,
    /// Always.
    On,
    /// Never (the gateway's integrations point elsewhere).
    Off,
}

/// Everything one invocation needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The scenario.
    pub plan: Plan,
    /// Name in the report (`cross-node` for push through another node).
    pub scenario_name: String,
    /// Targets, run in this order; the first is the baseline of the ratios.
    pub targets: Vec<TargetSpec>,
    /// Worker processes (0: as many as the open-files limit requires).
    pub workers: usize,
    /// Runtime threads of each worker process (0: CPUs ÷ workers).
    pub threads: usize,
    /// Source addresses to spread over (0: none).
    pub src_ips: u32,
    /// Timeline interval, ms.
    pub sample_ms: u64,
    /// Per-connection connect timeout, s.
    pub connect_timeout_s: f64,
    /// Where to write the report (`None`: no files).
    pub out_dir: Option<PathBuf>,
    /// File stem (default `<scenario>-<unix ms>`).
    pub name: Option<String>,
    /// Draw the progress bar (only on a terminal).
    pub progress: bool,
    /// Print the summary table on stdout.
    pub print: bool,
    /// This binary (re-executed for workers and the raw server).
    pub exe: PathBuf,
    /// When to start the built-in backend.
    pub backend: BackendMode,
    /// Where the built-in backend listens.
    pub backend_listen: SocketAddr,
    /// `taskset -c LIST` for started servers.
    pub server_cpus: Option<String>,
    /// Stage path segment.
    pub stage: String,
    /// Seed for target selection (0: from the clock).
    pub seed: u64,
    /// Fail when any error or loss was counted.
    pub fail_on_errors: bool,
}

impl RunConfig {
    /// Defaults: no files, no progress bar, no table, one process.
    pub fn new(plan: Plan, targets: Vec<TargetSpec>) -> Self {
        Self {
            scenario_name: plan.name().to_owned(),
            plan,
            targets,
            workers: 1,
            threads: 0,
            src_ips: 16,
            sample_ms: 1_000,
            connect_timeout_s: 10.0,
            out_dir: None,
            name: None,
            progress: false,
            print: false,
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("wsgate-load")),
            backend: BackendMode::Auto,
            backend_listen: SocketAddr::from(([127, 0, 0, 1], 3900)),
            server_cpus: None,
            stage: "prod".into(),
            seed: 0,
            fail_on_errors: false,
        }
    }
}

/// The report and the files written.
pub struct RunOutput {
    /// The report.
    pub report: Report,
    /// `(json, html)` when written.
    pub files: Option<(PathBuf, PathBuf)>,
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .collect()
}

/// Runs the invocation.
pub async fn execute(cfg: RunConfig) -> Result<RunOutput> {
    cfg.plan.validate()?;
    if cfg.targets.is_empty() {
        bail!("no targets");
    }
    let started = wall_ms();
    let cap = conns_per_process();
    let held = cfg.plan.held_conns();
    let workers = if cfg.workers > 0 {
        cfg.workers
    } else {
        usize::try_from(held.div_ceil(cap)).unwrap_or(1).max(1)
    };
    if held.div_ceil(u64::try_from(workers).unwrap_or(1)) > cap {
        bail!(
            "{held} connections need at least {} workers: one process may hold {cap} here (open-files limit {})",
            held.div_ceil(cap),
            nofile_limit()
        );
    }
    let want_backend = match cfg.backend {
        BackendMode::On => true,
        BackendMode::Off => false,
        BackendMode::Auto => cfg.targets.iter().any(TargetSpec::wants_backend),
    };
    let backend: Option<Backend> =
        if want_backend {
            Some(backend::start(cfg.backend_listen).await.with_context(|| {
                format!("starting the built-in backend on {}", cfg.backend_listen)
            })?)
        } else {
            None
        };
    let stem = cfg
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{started}", cfg.scenario_name));
    let setup_opts = SetupOpts {
        exe: cfg.exe.clone(),
        stage: cfg.stage.clone(),
        server_cpus: cfg.server_cpus.clone(),
        log_dir: cfg.out_dir.as_ref().map(|d| d.join(format!("{stem}-logs"))),
        backend: backend.as_ref().map(|b| b.addr),
    };
    let wopts = WorkerOpts {
        workers,
        force_processes: false,
        exe: cfg.exe.clone(),
        child_threads: if cfg.threads > 0 {
            cfg.threads
        } else {
            (cpus() / workers).max(1)
        },
        src_ips: cfg.src_ips,
        sample_ms: cfg.sample_ms,
        connect_timeout_s: cfg.connect_timeout_s,
        seed: if cfg.seed == 0 { wall_ns() } else { cfg.seed },
    };
    let bar = Progress::new(cfg.progress, cfg.plan.expected_secs());
    let mut reports = Vec::with_capacity(cfg.targets.len());
    for spec in &cfg.targets {
        let spec = match spec {
            TargetSpec::Raw {
                procs: 0,
                threads,
                registry,
                upstream,
            } => TargetSpec::Raw {
                procs: usize::try_from(held.div_ceil(cap)).unwrap_or(1).max(1),
                threads: *threads,
                registry: *registry,
                upstream: *upstream,
            },
            other => other.clone(),
        };
        let target = setup(&spec, &setup_opts)
            .await
            .with_context(|| format!("setting up target {}", spec.name()))?;
        bar.reset(cfg.plan.expected_secs());
        bar.println(&format!(
            "{}: {} against {} ({} worker process(es))",
            cfg.scenario_name,
            target.name,
            target
                .nodes
                .iter()
                .map(|n| n.ws_url.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            workers
        ));
        let before = backend.as_ref().map(Backend::stats).unwrap_or_default();
        let run = run_target(
            &cfg.plan,
            &target.nodes,
            &target.pids,
            &wopts,
            &bar,
            &target.name,
        )
        .await;
        let after = backend.as_ref().map(Backend::stats).unwrap_or_default();
        let (name, nodes, pids, mut notes) = (
            target.name.clone(),
            target.nodes.clone(),
            target.pids.clone(),
            target.notes.clone(),
        );
        target.shutdown().await;
        let run = run?;
        if matches!(spec, TargetSpec::Wsgate { .. } | TargetSpec::Running { .. })
            && pids.len() == 1
            && held > cap
        {
            notes.push(format!(
                "{held} connections on one server process: its open-files limit ({}) caps it",
                nofile_limit()
            ));
        }
        let tr = build_target(
            &cfg.plan,
            &name,
            &nodes,
            &pids,
            &run,
            delta(&before, &after),
            notes,
        );
        bar.println(&format!(
            "{}: {}",
            name,
            tr.summary
                .iter()
                .map(|(k, v)| format!("{k}={}", report::fmt_num(*v)))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        reports.push(tr);
    }
    bar.finish();
    if let Some(b) = backend {
        b.shutdown().await;
    }
    let report = Report {
        tool: "wsgate-load".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        format: FORMAT,
        scenario: cfg.scenario_name.clone(),
        started_unix_ms: started,
        plan: cfg.plan.clone(),
        settings: Settings {
            workers,
            src_ips: cfg.src_ips,
            sample_ms: cfg.sample_ms,
            connect_timeout_s: cfg.connect_timeout_s,
            threads: cfg.threads,
            server_cpus: cfg.server_cpus.clone(),
        },
        machine: Machine {
            cpus: cpus(),
            nofile_limit: nofile_limit(),
            kernel: kernel_release(),
        },
        ratios: ratios(&reports),
        targets: reports,
    };
    let files = match &cfg.out_dir {
        Some(dir) => Some(report::write_files(&report, dir, &stem)?),
        None => None,
    };
    if cfg.print {
        println!("{}", table(&report));
        if let Some((j, h)) = &files {
            println!("report: {}\nchart:  {}", j.display(), h.display());
        }
    }
    if cfg.fail_on_errors {
        let failures = failures(&report);
        if !failures.is_empty() {
            bail!("errors counted: {}", failures.join(", "));
        }
    }
    Ok(RunOutput { report, files })
}

/// Every counted error or loss, as `target: kind=count`.
pub fn failures(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for t in &r.targets {
        for (k, v) in &t.errors {
            out.push(format!("{}: {k}={v}", t.name));
        }
        for k in [
            "lost",
            "posts_failed",
            "posts_gone",
            "missing_replies",
            "missing_pushes",
        ] {
            if let Some(v) = t.counters.get(k).filter(|v| **v > 0) {
                out.push(format!("{}: {k}={v}", t.name));
            }
        }
    }
    out
}
