//! `wsgate-load recovery`: its options, and the gateways and backend it starts when given
//! `--wsgate-bin` instead of running `--node`s.

use crate::backend;
use crate::scenario::recovery::{self, DropMode, RecoveryPlan};
use crate::targets::{self, SetupOpts, TargetSpec};
use anyhow::{Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The bundled node configs, relative to the repository root.
const CONFIGS: [&str; 2] = [
    "load-tests/configs/wsgate-recovery-a.yaml",
    "load-tests/configs/wsgate-recovery-b.yaml",
];

/// `recovery` options.
#[derive(Args, Debug)]
pub struct RecoveryArgs {
    /// WebSocket URL of a running node (repeatable), e.g. `ws://127.0.0.1:8091/prod`; its
    /// groups must keep history (`groups.history`) and its `$connect` integration must join the
    /// groups named by the `groups` query parameter (the built-in backend does).
    #[arg(long = "node", value_name = "URL", conflicts_with = "wsgate_bin")]
    pub nodes: Vec<String>,
    /// Pid of each running node, in `--node` order (`--drop node` kills the first).
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,
    /// Start the nodes from this wsgate binary (one per `--wsgate-config`).
    #[arg(long, value_name = "PATH")]
    pub wsgate_bin: Option<PathBuf>,
    /// Node config (repeatable; default the two bundled `wsgate-recovery-{a,b}.yaml`, on the
    /// Redis at 127.0.0.1:6379, their integrations on `--backend-listen`).
    #[arg(long, value_name = "FILE")]
    pub wsgate_config: Vec<PathBuf>,
    /// With `--wsgate-bin` and the bundled configs: 1 or 2 nodes.
    #[arg(long = "nodes", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub node_count: u8,
    /// Where the built-in backend listens when the nodes are started here.
    #[arg(long, default_value = "127.0.0.1:3900")]
    pub backend_listen: SocketAddr,
    /// Where started nodes write their logs.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Redis read for the cost figures (loopback; default 127.0.0.1:6379 when the nodes are
    /// started here).
    #[arg(long, value_name = "ADDR")]
    pub redis: Option<SocketAddr>,
    /// Clients.
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// Groups (client `i` joins group `i mod groups`).
    #[arg(long, default_value_t = 10)]
    pub groups: usize,
    /// Group names: this prefix and the group number (default `rec<unix ms>-`).
    #[arg(long)]
    pub group_prefix: Option<String>,
    /// Posts per second over all posters, for the whole run.
    #[arg(long, default_value_t = 200.0)]
    pub post_rate: f64,
    /// Concurrent posters (each waits for its answer: a slow gateway lowers the rate reached,
    /// reported as `posts_per_sec`).
    #[arg(long, default_value_t = 8)]
    pub posters: usize,
    /// Payload size, bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Handshakes in flight at most.
    #[arg(long, default_value_t = 64)]
    pub inflight: usize,
    /// Seconds of posting with every client connected before the drop.
    #[arg(long, default_value_t = 3.0)]
    pub live: f64,
    /// `clients`: every client resets its connection (no close frame); `node`: node 0,
    /// holding every client, is killed with SIGKILL and they come back through the others.
    #[arg(long, value_enum, default_value_t = DropMode::Clients)]
    pub drop: DropMode,
    /// Time away, ms.
    #[arg(long, default_value_t = 2000)]
    pub away_ms: u64,
    /// Reconnects spread evenly over this, ms.
    #[arg(long, default_value_t = 1000)]
    pub reconnect_ms: u64,
    /// Longest wait for every client to recover after the last reconnect, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub recover_timeout: f64,
    /// Seconds of posting after every client recovered.
    #[arg(long, default_value_t = 2.0)]
    pub tail: f64,
    /// Longest wait for the clients to reach the last acknowledged offset, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Offsets booked per client at most.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_offsets: u64,
    /// Connect + upgrade timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Source addresses to spread the clients over (0: let the kernel pick).
    #[arg(long, default_value_t = 16)]
    pub src_ips: u32,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 1 unless the verdict passed.
    #[arg(long)]
    pub fail_on_loss: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub no_progress: bool,
    /// Runtime threads (0: tokio default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl RecoveryArgs {
    /// The plan against `nodes` (with their `pids`).
    pub fn plan(
        &self,
        nodes: Vec<String>,
        pids: Vec<u32>,
        redis: Option<SocketAddr>,
    ) -> RecoveryPlan {
        RecoveryPlan {
            nodes,
            pids,
            redis,
            conns: self.conns,
            groups: self.groups,
            group_prefix: self
                .group_prefix
                .clone()
                .unwrap_or_else(|| format!("rec{}-", crate::clock::wall_ms())),
            post_rate: self.post_rate,
            posters: self.posters,
            size: self.size,
            inflight: self.inflight,
            live_s: self.live,
            drop: self.drop,
            away_ms: self.away_ms,
            reconnect_ms: self.reconnect_ms,
            recover_timeout_s: self.recover_timeout,
            tail_s: self.tail,
            drain_s: self.drain,
            max_offsets: self.max_offsets,
            connect_timeout_s: self.connect_timeout,
            src_ips: self.src_ips,
        }
    }
}

/// Runs `recovery`: against running nodes, or starting the backend and the nodes first (and
/// stopping them after).
pub async fn execute(a: &RecoveryArgs) -> Result<()> {
    let progress = !a.no_progress;
    let Some(bin) = &a.wsgate_bin else {
        if a.nodes.is_empty() {
            bail!("recovery: give --node URL (running nodes) or --wsgate-bin PATH (start them)");
        }
        let plan = a.plan(a.nodes.clone(), a.pid.clone(), a.redis);
        plan.validate()?;
        return finish(recovery::main(plan, a.out.clone(), a.fail_on_loss, progress).await);
    };
    let configs: Vec<PathBuf> = if a.wsgate_config.is_empty() {
        CONFIGS[..usize::from(a.node_count)]
            .iter()
            .map(PathBuf::from)
            .collect()
    } else {
        a.wsgate_config.clone()
    };
    // Checked before anything starts.
    a.plan(vec![String::new(); configs.len()], vec![0], None)
        .validate()?;
    let backend = backend::start(a.backend_listen).await?;
    let spec = TargetSpec::Wsgate {
        bin: bin.clone(),
        configs,
        cross: false,
        label: None,
    };
    let opts = SetupOpts {
        exe: std::env::current_exe()?,
        stage: "prod".into(),
        server_cpus: None,
        log_dir: a.log_dir.clone(),
        backend: None,
    };
    let target = targets::setup(&spec, &opts).await?;
    let nodes = target.nodes.iter().map(|n| n.ws_url.clone()).collect();
    let redis = a.redis.or_else(|| "127.0.0.1:6379".parse().ok());
    let plan = a.plan(nodes, target.pids.clone(), redis);
    let r = recovery::main(plan, a.out.clone(), a.fail_on_loss, progress).await;
    target.shutdown().await;
    backend.shutdown().await;
    finish(r)
}

fn finish(r: Result<recovery::RecoveryReport>) -> Result<()> {
    r.map(|_| ())
}
