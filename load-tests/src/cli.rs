//! Command-line interface: one subcommand per scenario, plus `raw`, `backend` and `worker`.

use crate::run::{BackendMode, RunConfig};
use crate::scenario::fanout::FanoutPlan;
use crate::scenario::ready::ReadyPlan;
use crate::scenario::{CloseMode, IdlePlan, Node, Plan, PushPlan, StormPlan, UpstreamPlan};
use crate::targets::TargetSpec;
use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Load scenarios for wsgate (or any WebSocket gateway with an @connections API), measured
/// against a raw tokio-tungstenite baseline on the same machine. Loopback targets only.
#[derive(Parser, Debug)]
#[command(name = "wsgate-load", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Open N connections at a rate and hold them: connect rate, handshake latency, server RSS per connection.
    Idle(IdleArgs),
    /// Connect, upgrade (through `$connect` on a gateway) and close, in a loop: connections per second.
    ConnectStorm(StormArgs),
    /// M connections send messages to a route backed by an integration: messages/s and round trip.
    Upstream(UpstreamArgs),
    /// Post to connections through the callback API: deliveries/s and end-to-end latency.
    Push(PushArgs),
    /// Push through node B to connections on node A.
    CrossNode(CrossArgs),
    /// N connections join one group; messages posted to the group one at a time: delivery
    /// latency to every member and deliveries/s.
    Fanout(FanoutArgs),
    /// Server RSS per connection idle, then once each connection has sent a message (and got
    /// the reply) and received a push.
    Ready(ReadyArgs),
    /// Mixed load on running nodes (reconnecting clients, echo messages, pushes) with a
    /// delivery ledger: what was acknowledged and lost, delivered without acknowledgement,
    /// duplicated; for `load-tests/scripts/faults.sh`.
    Faults(FaultsArgs),
    /// `faults` with churn and group fan-outs, sampling the gateways' RSS and fds and Redis
    /// memory; passes when nothing was lost and RSS and fds are flat after warm-up.
    Soak(FaultsArgs),
    /// Clients of groups with history drop together while posts continue, reconnect with
    /// `recover=`, and must end with every message exactly once (an offset ledger per client);
    /// recovery times and Redis cost.
    Recovery(crate::recovery_cmd::RecoveryArgs),
    /// A TCP proxy that stalls or resets what it carries on request (`PUT /mode` on the
    /// control listener: `pass`, `stall`, `reset`); the fault injector of `faults.sh` where
    /// network namespaces are not available.
    Faultproxy(FaultProxyArgs),
    /// Run the raw baseline server on its own.
    Raw(RawArgs),
    /// Run the built-in integration backend on its own (for a gateway started by hand).
    Backend(BackendArgs),
    /// Internal: one worker process of a multi-process run (reads its share on stdin).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// Options shared by every scenario.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Target: `raw` (start the baseline), `raw-proxy` (the baseline forwarding echoes
    /// through the built-in backend, for `upstream`), `wsgate` (start or use the gateway),
    /// `both` (raw, then wsgate), `LABEL=CONFIG` (one more wsgate from `--wsgate-bin` with that
    /// config, reported as LABEL), or a ws:// URL; for cross-node also `wsgate-same` (both nodes
    /// started, posts through the node holding the connection). Repeatable; the first is the
    /// ratio baseline.
    #[arg(
        long = "target",
        value_name = "raw|wsgate|both|LABEL=CONFIG|URL",
        default_value = "raw"
    )]
    pub targets: Vec<String>,
    /// Stage path segment of the URLs.
    #[arg(long, default_value = "prod")]
    pub stage: String,
    /// wsgate binary to start (`wsgate --config FILE`).
    #[arg(long, value_name = "PATH")]
    pub wsgate_bin: Option<PathBuf>,
    /// Config for the started wsgate.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "load-tests/configs/wsgate-bench.yaml"
    )]
    pub wsgate_config: PathBuf,
    /// URL of an already-running wsgate (repeatable for several nodes), instead of starting one.
    #[arg(long, value_name = "URL")]
    pub wsgate_url: Vec<String>,
    /// Pid(s) of the running wsgate, for RSS and CPU.
    #[arg(long, value_name = "PID")]
    pub wsgate_pid: Vec<u32>,
    /// Pid(s) of the servers behind URL targets.
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,
    /// Callback base URL for URL targets (default: same host, port and path as the ws URL).
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    /// When to start the built-in integration backend.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendMode,
    /// Where the built-in backend listens (the gateway config points here).
    #[arg(long, default_value = "127.0.0.1:3900")]
    pub backend_listen: SocketAddr,
    /// Raw server processes (0: one per ~19k connections).
    #[arg(long, default_value_t = 0)]
    pub raw_procs: usize,
    /// Runtime threads of each raw server (1: current-thread; 0: tokio default).
    #[arg(long, default_value_t = 0)]
    pub raw_threads: usize,
    /// Raw server without the push registry (bare idle/echo server).
    #[arg(long)]
    pub raw_no_registry: bool,
    /// Pin started servers with `taskset -c LIST` (e.g. `0`); pin this tool with taskset yourself.
    #[arg(long, value_name = "LIST")]
    pub server_cpus: Option<String>,
    /// Runtime threads of the load generator (and of each worker process); 0: automatic.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Worker processes (0: as many as needed for ≤19k connections each).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Spread client sockets over this many source addresses 127.0.0.2.. (0: kernel's choice).
    #[arg(long, default_value_t = 16)]
    pub src_ips: u32,
    /// Timeline interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub sample_ms: u64,
    /// Per-connection connect + upgrade timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Directory for the JSON report and the HTML chart.
    #[arg(long, default_value = "load-results")]
    pub out_dir: PathBuf,
    /// Do not write report files.
    #[arg(long)]
    pub no_files: bool,
    /// File stem of the report (default `<scenario>-<unix ms>`).
    #[arg(long)]
    pub name: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Seed for target selection (0: from the clock).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Exit with an error if any connection or operation failed or a delivery was lost
    /// (for smoke runs; never judges timing).
    #[arg(long)]
    pub fail_on_errors: bool,
}

/// `idle` options.
#[derive(Args, Debug)]
pub struct IdleArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub conns: u64,
    /// Connection attempts per second (0: as fast as --inflight allows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Handshakes in flight at most.
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// Seconds to hold the connections.
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
    /// Count a connection only after a whoami round trip.
    #[arg(long)]
    pub whoami: bool,
    /// Connection `i` joins group `g{i mod N}` through its `$connect` (the query parameter
    /// `groups`, answered by the built-in backend); 0: none. While held, frames `G:<unix ns>…`
    /// and `B:<unix ns>…` (posts to those groups and broadcasts) are counted and timed.
    #[arg(long, default_value_t = 0)]
    pub groups: u64,
    /// Connections closed per second at the end of the hold (0: all at once). Each closes
    /// its socket (no close frame), so the gateway sees a client hang up.
    #[arg(long, default_value_t = 0.0)]
    pub close_rate: f64,
}

/// `connect-storm` options.
#[derive(Args, Debug)]
pub struct StormArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Concurrent connect loops.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Attempts per second (0: closed loop).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Stop after this many attempts.
    #[arg(long, default_value_t = 5_000_000)]
    pub count: u64,
    /// How each connection ends.
    #[arg(long, value_enum, default_value = "graceful")]
    pub close: CloseMode,
    /// Warmup seconds.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

/// `upstream` options.
#[derive(Args, Debug)]
pub struct UpstreamArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Connections sending.
    #[arg(long, default_value_t = 100)]
    pub conns: u64,
    /// Handshakes in flight at most while opening.
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// Messages per second over all connections (0: closed loop, one in flight each).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Message size, bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Route (the `action` of each message).
    #[arg(long, default_value = "echo")]
    pub action: String,
    /// The route answers nothing: count sends only.
    #[arg(long)]
    pub one_way: bool,
    /// Stop after this many messages.
    #[arg(long, default_value_t = 100_000_000)]
    pub count: u64,
    /// Warmup seconds.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

/// `push` options.
#[derive(Args, Debug)]
pub struct PushArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub push: PushOpts,
}

/// Options of push and cross-node.
#[derive(Args, Debug, Clone)]
pub struct PushOpts {
    /// Connections receiving.
    #[arg(long, default_value_t = 1000)]
    pub conns: u64,
    /// Handshakes in flight at most while opening.
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// Concurrent posters (one keep-alive HTTP connection each).
    #[arg(long, default_value_t = 32)]
    pub posters: usize,
    /// Posts per second over all posters (0: closed loop, one in flight each).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Payload size, bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Stop after this many posts.
    #[arg(long, default_value_t = 100_000_000)]
    pub count: u64,
    /// Warmup seconds.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 15.0)]
    pub duration: f64,
}

/// `cross-node` options.
#[derive(Args, Debug)]
pub struct CrossArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub push: PushOpts,
    /// Config of node A (clients connect here), when starting wsgate.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "load-tests/configs/wsgate-node-a.yaml"
    )]
    pub node_a_config: PathBuf,
    /// Config of node B (posts go here), when starting wsgate.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "load-tests/configs/wsgate-node-b.yaml"
    )]
    pub node_b_config: PathBuf,
    /// ws:// URL of a running node A (instead of starting one).
    #[arg(long, value_name = "URL")]
    pub node_a: Option<String>,
    /// ws:// or http:// URL of a running node B.
    #[arg(long, value_name = "URL")]
    pub node_b: Option<String>,
}

/// `fanout` options.
#[derive(Args, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Members of the group (connections, spread over the nodes).
    #[arg(long, default_value_t = 1000)]
    pub conns: u64,
    /// Handshakes in flight at most while opening.
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// The group.
    #[arg(long, default_value = "bench")]
    pub group: String,
    /// Messages posted to the group.
    #[arg(long, default_value_t = 20)]
    pub messages: u64,
    /// Time between two posts' due times, ms (longer than one fan-out: one message at a time).
    #[arg(long, default_value_t = 250.0)]
    pub interval_ms: f64,
    /// Payload size, bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Joins in flight at once.
    #[arg(long, default_value_t = 32)]
    pub join_concurrency: usize,
    /// Start one wsgate node per config (repeatable; members spread over them, posts to the
    /// first) instead of --wsgate-config.
    #[arg(long, value_name = "FILE")]
    pub node_config: Vec<PathBuf>,
}

/// `ready` options.
#[derive(Args, Debug)]
pub struct ReadyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Connections.
    #[arg(long, default_value_t = 1000)]
    pub conns: u64,
    /// Handshakes, and later message round trips, in flight at most.
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// Route of the message each connection sends (a two-way route, e.g. echo or echo_http).
    #[arg(long, default_value = "echo")]
    pub action: String,
    /// Message and push size, bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Concurrent posters (one keep-alive HTTP connection each).
    #[arg(long, default_value_t = 32)]
    pub posters: usize,
    /// Longest wait for a reply, a post, or the pushes once posted, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub reply_timeout: f64,
}

/// `raw` options.
#[derive(Args, Debug)]
pub struct RawArgs {
    /// Listen address (loopback; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Runtime threads (1: current-thread; 0: tokio default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No push registry (bare idle/echo server).
    #[arg(long)]
    pub no_registry: bool,
    /// Frames queued per connection for push.
    #[arg(long, default_value_t = 1024)]
    pub queue: usize,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub max_seconds: u64,
    /// Exit when stdin closes (used when started by this tool).
    #[arg(long)]
    pub lifeline: bool,
    /// Forward `echo` messages to the integration backend at this address (`POST
    /// /echo-http`) and answer with its reply: the raw proxy baseline.
    #[arg(long, value_name = "ADDR")]
    pub upstream: Option<SocketAddr>,
}

/// `faults` and `soak` options.
#[derive(Args, Debug)]
pub struct FaultsArgs {
    /// WebSocket URL of a running node (repeatable), e.g. `ws://127.0.0.1:8081/prod`; the
    /// callback API is on the same port.
    #[arg(long = "node", value_name = "URL", required = true)]
    pub nodes: Vec<String>,
    /// Connections kept open (each reconnects when lost).
    #[arg(long, default_value_t = 200)]
    pub conns: usize,
    /// Connections opened per second at the start (0: all at once).
    #[arg(long, default_value_t = 200.0)]
    pub ramp: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Upstream echo messages per second over all connections (0: none).
    #[arg(long, default_value_t = 100.0)]
    pub msg_rate: f64,
    /// Posts per second over all posters (0: none).
    #[arg(long, default_value_t = 100.0)]
    pub push_rate: f64,
    /// Concurrent posters.
    #[arg(long, default_value_t = 8)]
    pub posters: usize,
    /// Push payload size, bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Connections closed and reopened per second (soak default 5).
    #[arg(long)]
    pub churn: Option<f64>,
    /// Groups the connections join (soak default 10; 0: none).
    #[arg(long)]
    pub groups: Option<usize>,
    /// Group posts per second (soak default 2).
    #[arg(long)]
    pub group_rate: Option<f64>,
    /// Longest wait for acknowledged pushes after the window, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Timeline interval, seconds (soak default 10).
    #[arg(long)]
    pub sample: Option<f64>,
    /// Gateway pid to sample for RSS and open fds (repeatable).
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,
    /// Redis to sample for `used_memory` (loopback).
    #[arg(long, value_name = "ADDR")]
    pub redis: Option<SocketAddr>,
    /// Soak: seconds of warm-up excluded from the flatness check (default a fifth of the run).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Ids booked at most per ledger.
    #[arg(long, default_value_t = 5_000_000)]
    pub max_ids: usize,
    /// Connect + upgrade timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Seed (0: from the clock).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 1 unless the report passed (no acknowledged push lost, no duplicate, soak flat).
    #[arg(long)]
    pub fail_on_loss: bool,
    /// Runtime threads (0: tokio default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl FaultsArgs {
    /// The plan; `soak` fills in its defaults.
    pub fn plan(&self, soak: bool) -> crate::scenario::faults::FaultsPlan {
        let pick = |v: Option<f64>, s: f64, f: f64| v.unwrap_or(if soak { s } else { f });
        crate::scenario::faults::FaultsPlan {
            nodes: self.nodes.clone(),
            conns: self.conns,
            ramp_per_s: self.ramp,
            duration_s: self.duration,
            msg_rate: self.msg_rate,
            push_rate: self.push_rate,
            posters: self.posters,
            size: self.size,
            churn_per_s: pick(self.churn, 5.0, 0.0),
            groups: self.groups.unwrap_or(if soak { 10 } else { 0 }),
            group_rate: pick(self.group_rate, 2.0, 0.0),
            drain_s: self.drain,
            sample_s: pick(self.sample, 10.0, 1.0),
            pids: self.pid.clone(),
            redis: self.redis,
            soak_warmup_s: soak.then(|| self.warmup.unwrap_or(self.duration / 5.0)),
            max_ids: self.max_ids,
            connect_timeout_s: self.connect_timeout,
            seed: if self.seed == 0 {
                crate::clock::wall_ns() | 1
            } else {
                self.seed
            },
        }
    }
}

/// `faultproxy` options.
#[derive(Args, Debug)]
pub struct FaultProxyArgs {
    /// Where clients connect (loopback).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where the proxy connects (loopback).
    #[arg(long)]
    pub upstream: SocketAddr,
    /// Control listener (loopback): `PUT /mode` with `pass`, `stall` or `reset`.
    #[arg(long)]
    pub control: SocketAddr,
}

/// `backend` options.
#[derive(Args, Debug)]
pub struct BackendArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:3900")]
    pub listen: SocketAddr,
    /// Runtime threads (0: tokio default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub max_seconds: u64,
    /// Answer this share (0..=100) of integration requests with a TCP reset (a fault for
    /// `faults.sh`; also settable at run time with `PUT /fault/reset-percent`).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub reset_percent: u64,
}

/// `worker` options.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Runtime threads (1: current-thread; 0: tokio default).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

fn ws_url(u: &str) -> String {
    if u.starts_with("http://") {
        u.replacen("http://", "ws://", 1)
    } else {
        u.to_owned()
    }
}

impl Common {
    fn wsgate_target(&self, configs: Vec<PathBuf>, cross: bool) -> Result<TargetSpec> {
        if !self.wsgate_url.is_empty() {
            return Ok(TargetSpec::Running {
                name: "wsgate".into(),
                nodes: self
                    .wsgate_url
                    .iter()
                    .map(|u| Node::same_port(&ws_url(u)))
                    .collect(),
                pids: self.wsgate_pid.clone(),
            });
        }
        let Some(bin) = &self.wsgate_bin else {
            bail!(
                "target wsgate needs --wsgate-bin PATH (to start it) or --wsgate-url URL (running)"
            );
        };
        Ok(TargetSpec::Wsgate {
            bin: bin.clone(),
            configs,
            cross,
            label: None,
        })
    }

    /// The target list; `wsgate` resolves through `wsgate` (a closure, for cross-node).
    fn targets_with(&self, wsgate: &dyn Fn() -> Result<TargetSpec>) -> Result<Vec<TargetSpec>> {
        let mut out = Vec::new();
        for t in &self.targets {
            match t.as_str() {
                "raw" => out.push(self.raw_target()),
                "raw-proxy" => {
                    let mut t = self.raw_target();
                    if let TargetSpec::Raw { upstream, .. } = &mut t {
                        *upstream = true;
                    }
                    out.push(t);
                }
                "wsgate" => out.push(wsgate()?),
                "both" => {
                    out.push(self.raw_target());
                    out.push(wsgate()?);
                }
                labelled if labelled.contains('=') && !labelled.contains("://") => {
                    out.push(self.labelled_wsgate(labelled)?);
                }
                url if url.starts_with("ws://") => {
                    let mut n = Node::same_port(url);
                    if let Some(cb) = &self.callback_url {
                        cb.clone_into(&mut n.callback_url);
                    }
                    out.push(TargetSpec::Running {
                        name: url.to_owned(),
                        nodes: vec![n],
                        pids: self.pid.clone(),
                    });
                }
                other => bail!(
                    "unknown target {other:?}: use raw, raw-proxy, wsgate, both, LABEL=CONFIG or a ws:// URL"
                ),
            }
        }
        Ok(out)
    }

    /// `LABEL=CONFIG`: one more wsgate started from `--wsgate-bin` with its own config file,
    /// reported under LABEL (e.g. the same scenario with group history on, in one invocation).
    fn labelled_wsgate(&self, spec: &str) -> Result<TargetSpec> {
        let (label, config) = spec.split_once('=').unwrap_or((spec, ""));
        if label.is_empty() || config.is_empty() {
            bail!(
                "target {spec:?}: write LABEL=CONFIG, e.g. history=load-tests/configs/wsgate-bench-history.yaml"
            );
        }
        if matches!(label, "raw" | "raw-proxy" | "both") {
            bail!("target {spec:?}: the label {label:?} names another target; choose another");
        }
        let Some(bin) = &self.wsgate_bin else {
            bail!("target {spec:?} needs --wsgate-bin PATH");
        };
        Ok(TargetSpec::Wsgate {
            bin: bin.clone(),
            configs: vec![PathBuf::from(config)],
            cross: false,
            label: Some(label.to_owned()),
        })
    }

    fn raw_target(&self) -> TargetSpec {
        TargetSpec::Raw {
            procs: self.raw_procs,
            threads: self.raw_threads,
            registry: !self.raw_no_registry,
            upstream: false,
        }
    }

    fn config(&self, plan: Plan, targets: Vec<TargetSpec>) -> RunConfig {
        let mut c = RunConfig::new(plan, targets);
        c.workers = self.workers;
        c.threads = self.threads;
        c.src_ips = self.src_ips;
        c.sample_ms = self.sample_ms;
        c.connect_timeout_s = self.connect_timeout;
        c.out_dir = (!self.no_files).then(|| self.out_dir.clone());
        c.name.clone_from(&self.name);
        c.progress = !self.no_progress;
        c.print = true;
        c.backend = self.backend;
        c.backend_listen = self.backend_listen;
        c.server_cpus.clone_from(&self.server_cpus);
        c.stage.clone_from(&self.stage);
        c.seed = self.seed;
        c.fail_on_errors = self.fail_on_errors;
        c
    }

    fn run_config(&self, plan: Plan) -> Result<RunConfig> {
        let targets =
            self.targets_with(&|| self.wsgate_target(vec![self.wsgate_config.clone()], false))?;
        Ok(self.config(plan, targets))
    }
}

impl PushOpts {
    fn plan(&self) -> Plan {
        Plan::Push(PushPlan {
            conns: self.conns,
            inflight: self.inflight,
            posters: self.posters,
            rate: self.rate,
            size: self.size,
            count: self.count,
            warmup_s: self.warmup,
            duration_s: self.duration,
        })
    }
}

fn positive(count: u64) -> Result<u64> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    Ok(count)
}

impl Cmd {
    /// The run configuration of a scenario subcommand (`None` for raw, backend, worker).
    pub fn run_config(&self) -> Result<Option<RunConfig>> {
        Ok(Some(match self {
            Self::Idle(a) => a.common.run_config(Plan::Idle(IdlePlan {
                conns: a.conns,
                rate: a.rate,
                inflight: a.inflight,
                hold_s: a.hold,
                whoami: a.whoami,
                groups: a.groups,
                close_rate: a.close_rate,
            }))?,
            Self::ConnectStorm(a) => a.common.run_config(Plan::ConnectStorm(StormPlan {
                concurrency: a.concurrency,
                rate: a.rate,
                count: positive(a.count)?,
                close: a.close,
                warmup_s: a.warmup,
                duration_s: a.duration,
            }))?,
            Self::Upstream(a) => a.common.run_config(Plan::Upstream(UpstreamPlan {
                conns: a.conns,
                inflight: a.inflight,
                rate: a.rate,
                size: a.size,
                action: a.action.clone(),
                one_way: a.one_way,
                count: positive(a.count)?,
                warmup_s: a.warmup,
                duration_s: a.duration,
            }))?,
            Self::Push(a) => {
                positive(a.push.count)?;
                a.common.run_config(a.push.plan())?
            }
            Self::CrossNode(a) => {
                positive(a.push.count)?;
                let c = &a.common;
                let wsgate = || -> Result<TargetSpec> {
                    match (&a.node_a, &a.node_b) {
                        (Some(na), Some(nb)) => {
                            let b = Node::same_port(&ws_url(nb));
                            Ok(TargetSpec::Running {
                                name: "wsgate".into(),
                                nodes: vec![Node {
                                    ws_url: ws_url(na),
                                    callback_url: b.callback_url,
                                }],
                                pids: c.wsgate_pid.clone(),
                            })
                        }
                        (None, None) => c.wsgate_target(
                            vec![a.node_a_config.clone(), a.node_b_config.clone()],
                            true,
                        ),
                        _ => bail!("give both --node-a and --node-b, or neither"),
                    }
                };
                // `wsgate-same`: the same two nodes, each post to a connection of the node it is
                // sent to (the same-node yardstick of the cross-node figure).
                let same = || -> Result<TargetSpec> {
                    let mut spec = c.wsgate_target(
                        vec![a.node_a_config.clone(), a.node_b_config.clone()],
                        false,
                    )?;
                    if let TargetSpec::Wsgate { label, .. } = &mut spec {
                        *label = Some("wsgate-same-node".into());
                    }
                    Ok(spec)
                };
                let mut targets = Vec::new();
                for t in &c.targets {
                    if t == "wsgate-same" {
                        targets.push(same()?);
                    } else {
                        let mut one = c.clone();
                        one.targets = vec![t.clone()];
                        targets.extend(one.targets_with(&wsgate)?);
                    }
                }
                let mut cfg = c.config(a.push.plan(), targets);
                "cross-node".clone_into(&mut cfg.scenario_name);
                cfg
            }
            Self::Fanout(a) => {
                let c = &a.common;
                let configs = if a.node_config.is_empty() {
                    vec![c.wsgate_config.clone()]
                } else {
                    a.node_config.clone()
                };
                let targets = c.targets_with(&|| c.wsgate_target(configs.clone(), false))?;
                c.config(
                    Plan::Fanout(FanoutPlan {
                        conns: a.conns,
                        inflight: a.inflight,
                        group: a.group.clone(),
                        messages: a.messages,
                        interval_ms: a.interval_ms,
                        size: a.size,
                        join_concurrency: a.join_concurrency,
                    }),
                    targets,
                )
            }
            Self::Ready(a) => a.common.run_config(Plan::Ready(ReadyPlan {
                conns: a.conns,
                inflight: a.inflight,
                action: a.action.clone(),
                size: a.size,
                posters: a.posters,
                reply_timeout_s: a.reply_timeout,
            }))?,
            Self::Raw(_)
            | Self::Backend(_)
            | Self::Worker(_)
            | Self::Faults(_)
            | Self::Faultproxy(_)
            | Self::Soak(_)
            | Self::Recovery(_) => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn both_expands_to_raw_then_wsgate() {
        let cli = parse(&[
            "wsgate-load",
            "push",
            "--target",
            "both",
            "--wsgate-url",
            "ws://127.0.0.1:8080/prod",
            "--count",
            "10",
        ]);
        let cfg = cli.cmd.run_config().unwrap().unwrap();
        let names: Vec<String> = cfg.targets.iter().map(TargetSpec::name).collect();
        assert_eq!(names, ["raw", "wsgate"]);
        assert!(cfg.targets[1].wants_backend());
        assert!(matches!(cfg.plan, Plan::Push(PushPlan { count: 10, .. })));
    }

    #[test]
    fn a_labelled_target_starts_wsgate_with_its_own_config() {
        let cli = parse(&[
            "wsgate-load",
            "fanout",
            "--target",
            "both",
            "--target",
            "history=load-tests/configs/wsgate-bench-history.yaml",
            "--wsgate-bin",
            "/bin/wsgate",
        ]);
        let cfg = cli.cmd.run_config().unwrap().unwrap();
        let names: Vec<String> = cfg.targets.iter().map(TargetSpec::name).collect();
        assert_eq!(names, ["raw", "wsgate", "history"]);
        let TargetSpec::Wsgate { configs, .. } = &cfg.targets[2] else {
            panic!("not a started wsgate: {:?}", cfg.targets[2]);
        };
        assert_eq!(
            configs,
            &[PathBuf::from(
                "load-tests/configs/wsgate-bench-history.yaml"
            )]
        );
        for bad in ["=x.yaml", "history=", "raw=x.yaml"] {
            let cli = parse(&[
                "wsgate-load",
                "fanout",
                "--target",
                bad,
                "--wsgate-bin",
                "/bin/wsgate",
            ]);
            assert!(cli.cmd.run_config().is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn ready_takes_the_common_options() {
        let cli = parse(&[
            "wsgate-load",
            "ready",
            "--target",
            "both",
            "--wsgate-bin",
            "/bin/true",
            "--conns",
            "3000",
            "--action",
            "echo_http",
            "--fail-on-errors",
        ]);
        let cfg = cli.cmd.run_config().unwrap().unwrap();
        assert_eq!(cfg.scenario_name, "ready");
        assert!(cfg.fail_on_errors);
        let names: Vec<String> = cfg.targets.iter().map(TargetSpec::name).collect();
        assert_eq!(names, ["raw", "wsgate"]);
        assert!(matches!(
            &cfg.plan,
            Plan::Ready(ReadyPlan { conns: 3000, action, .. }) if action == "echo_http"
        ));
    }

    #[test]
    fn wsgate_needs_a_binary_or_url() {
        let cli = parse(&["wsgate-load", "idle", "--target", "wsgate"]);
        assert!(cli.cmd.run_config().is_err());
    }

    #[test]
    fn cross_node_uses_node_b_for_posts() {
        let cli = parse(&[
            "wsgate-load",
            "cross-node",
            "--target",
            "wsgate",
            "--node-a",
            "ws://127.0.0.1:8080/prod",
            "--node-b",
            "http://127.0.0.1:8081/prod",
        ]);
        let cfg = cli.cmd.run_config().unwrap().unwrap();
        assert_eq!(cfg.scenario_name, "cross-node");
        match &cfg.targets[0] {
            TargetSpec::Running { nodes, .. } => {
                assert_eq!(nodes[0].ws_url, "ws://127.0.0.1:8080/prod");
                assert_eq!(nodes[0].callback_url, "http://127.0.0.1:8081/prod");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn cross_node_has_a_same_node_yardstick() {
        let cli = parse(&[
            "wsgate-load",
            "cross-node",
            "--target",
            "wsgate-same",
            "--target",
            "wsgate",
            "--wsgate-bin",
            "/bin/true",
        ]);
        let cfg = cli.cmd.run_config().unwrap().unwrap();
        let names: Vec<String> = cfg.targets.iter().map(TargetSpec::name).collect();
        assert_eq!(names, ["wsgate-same-node", "wsgate"]);
        assert!(matches!(
            &cfg.targets[0],
            TargetSpec::Wsgate { cross: false, configs, .. } if configs.len() == 2
        ));
        assert!(matches!(
            &cfg.targets[1],
            TargetSpec::Wsgate { cross: true, .. }
        ));
    }

    #[test]
    fn url_targets_take_a_callback() {
        let cli = parse(&[
            "wsgate-load",
            "upstream",
            "--target",
            "ws://127.0.0.1:9/x",
            "--callback-url",
            "http://127.0.0.1:10/x",
        ]);
        let cfg = cli.cmd.run_config().unwrap().unwrap();
        match &cfg.targets[0] {
            TargetSpec::Running { nodes, .. } => {
                assert_eq!(nodes[0].callback_url, "http://127.0.0.1:10/x")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
