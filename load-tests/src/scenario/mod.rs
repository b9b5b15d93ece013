//! Scenario plans, the share of a plan that one worker runs, and what a share reports back.

pub mod fanout;
pub mod faults;
pub mod idle;
pub mod ledger;
pub mod offsets;
pub mod open;
pub mod push;
pub mod ready;
pub mod recovery;
pub mod recovery_client;
pub mod soak;
pub mod storm;
pub mod upstream;

use crate::clock::{Anchor, secs};
use crate::control::{Control, WorkerMsg};
use crate::meter::{AggData, Meter, Phase};
use crate::net::{resolve_loopback, split_url};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

/// Longest warmup, measurement or hold a plan may ask for.
pub const MAX_PHASE: Duration = Duration::from_secs(3_600);

/// Idle: open connections at a rate and hold them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdlePlan {
    /// Connections to open.
    pub conns: u64,
    /// Connection attempts per second (0: as fast as `inflight` allows).
    pub rate: f64,
    /// Handshakes in flight at most.
    pub inflight: usize,
    /// Seconds to hold the connections once all are open.
    pub hold_s: f64,
    /// Confirm each connection with a `whoami` round trip before counting it.
    pub whoami: bool,
    /// Groups the connections join through `$connect` (connection `i` asks for `g{i mod
    /// groups}` with the query parameter `groups`, which the built-in backend's `$connect`
    /// answers with `X-Wsgate-Groups`); 0: none.
    #[serde(default)]
    pub groups: u64,
    /// Connections closed per second at the end of the hold (0: all at once).
    #[serde(default)]
    pub close_rate: f64,
}

/// How a connect-storm client ends each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CloseMode {
    /// Close handshake, then TCP close.
    Graceful,
    /// TCP close without a close frame.
    Drop,
}

/// Connect storm: connect, upgrade, close, repeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StormPlan {
    /// Concurrent connect loops.
    pub concurrency: usize,
    /// Attempts per second (0: closed loop, as fast as the loops go).
    pub rate: f64,
    /// Stop after this many attempts (0: no count limit).
    pub count: u64,
    /// How each connection is closed.
    pub close: CloseMode,
    /// Seconds of warmup.
    pub warmup_s: f64,
    /// Seconds measured.
    pub duration_s: f64,
}

/// Upstream: connections send messages to a route backed by an integration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpstreamPlan {
    /// Connections sending.
    pub conns: u64,
    /// Handshakes in flight at most while opening.
    pub inflight: usize,
    /// Messages per second over all connections (0: closed loop, one in flight each).
    pub rate: f64,
    /// Message size in bytes.
    pub size: usize,
    /// Route selected by the `action` field.
    pub action: String,
    /// The route sends nothing back: count sends only.
    pub one_way: bool,
    /// Stop after this many messages (0: no count limit).
    pub count: u64,
    /// Seconds of warmup.
    pub warmup_s: f64,
    /// Seconds measured.
    pub duration_s: f64,
}

/// Push: post to connections through the callback API and time the deliveries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushPlan {
    /// Connections receiving.
    pub conns: u64,
    /// Handshakes in flight at most while opening.
    pub inflight: usize,
    /// Concurrent posters, each with one keep-alive HTTP connection.
    pub posters: usize,
    /// Posts per second over all posters (0: closed loop, one request in flight each).
    pub rate: f64,
    /// Payload size in bytes.
    pub size: usize,
    /// Stop after this many posts (0: no count limit).
    pub count: u64,
    /// Seconds of warmup.
    pub warmup_s: f64,
    /// Seconds measured.
    pub duration_s: f64,
}

/// A scenario with its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scenario", rename_all = "kebab-case")]
pub enum Plan {
    /// See [`IdlePlan`].
    Idle(IdlePlan),
    /// See [`StormPlan`].
    ConnectStorm(StormPlan),
    /// See [`UpstreamPlan`].
    Upstream(UpstreamPlan),
    /// See [`PushPlan`] (also used by cross-node, with other callback URLs).
    Push(PushPlan),
    /// See [`fanout::FanoutPlan`].
    Fanout(fanout::FanoutPlan),
    /// See [`ready::ReadyPlan`].
    Ready(ready::ReadyPlan),
}

/// `total` split into `n` near-equal parts: part `i`.
pub fn split(total: u64, i: usize, n: usize) -> u64 {
    let n64 = u64::try_from(n.max(1)).unwrap_or(1);
    let i64_ = u64::try_from(i).unwrap_or(0);
    total / n64 + u64::from(i64_ < total % n64)
}

pub(crate) fn split_usize(total: usize, i: usize, n: usize) -> usize {
    usize::try_from(split(u64::try_from(total).unwrap_or(0), i, n)).unwrap_or(0)
}

fn split_rate(rate: f64, n: usize) -> f64 {
    // n is a small worker count.
    #[allow(clippy::cast_precision_loss)]
    let n = n.max(1) as f64;
    rate / n
}

impl Plan {
    /// The scenario's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Idle(_) => "idle",
            Self::ConnectStorm(_) => "connect-storm",
            Self::Upstream(_) => "upstream",
            Self::Push(_) => "push",
            Self::Fanout(_) => "fanout",
            Self::Ready(_) => "ready",
        }
    }

    /// Connections held open at once by the whole plan.
    pub fn held_conns(&self) -> u64 {
        match self {
            Self::Idle(p) => p.conns,
            Self::ConnectStorm(p) => u64::try_from(p.concurrency).unwrap_or(u64::MAX),
            Self::Upstream(p) => p.conns,
            Self::Push(p) => p.conns + u64::try_from(p.posters).unwrap_or(0),
            Self::Fanout(p) => p.held_conns(),
            Self::Ready(p) => p.held_conns(),
        }
    }

    /// Whether the orchestrator reads the server's RSS at barriers as the median of a few
    /// samples (a figure that must not catch memory still moving), instead of one read.
    pub fn settles_rss(&self) -> bool {
        matches!(self, Self::Ready(_))
    }

    /// Connections this share opens (for source-address and node spreading).
    fn conns(&self) -> u64 {
        match self {
            Self::Idle(p) => p.conns,
            Self::ConnectStorm(_) => 0,
            Self::Upstream(p) => p.conns,
            Self::Push(p) => p.conns,
            Self::Fanout(p) => p.conns,
            Self::Ready(p) => p.conns,
        }
    }

    /// The part of the plan that worker `i` of `n` runs.
    pub fn share(&self, i: usize, n: usize) -> Self {
        match self {
            Self::Idle(p) => Self::Idle(IdlePlan {
                conns: split(p.conns, i, n),
                rate: split_rate(p.rate, n),
                close_rate: split_rate(p.close_rate, n),
                inflight: split_usize(p.inflight, i, n).max(1),
                ..p.clone()
            }),
            Self::ConnectStorm(p) => Self::ConnectStorm(StormPlan {
                concurrency: split_usize(p.concurrency, i, n).max(1),
                rate: split_rate(p.rate, n),
                count: split(p.count, i, n),
                ..p.clone()
            }),
            Self::Upstream(p) => Self::Upstream(UpstreamPlan {
                conns: split(p.conns, i, n),
                inflight: split_usize(p.inflight, i, n).max(1),
                rate: split_rate(p.rate, n),
                count: split(p.count, i, n),
                ..p.clone()
            }),
            Self::Push(p) => Self::Push(PushPlan {
                conns: split(p.conns, i, n),
                inflight: split_usize(p.inflight, i, n).max(1),
                posters: split_usize(p.posters, i, n).max(1),
                rate: split_rate(p.rate, n),
                count: split(p.count, i, n),
                ..p.clone()
            }),
            Self::Fanout(p) => Self::Fanout(p.share(i, n)),
            Self::Ready(p) => Self::Ready(p.share(i, n)),
        }
    }

    /// Global index of the first connection of share `i` of `n`.
    pub fn conn_offset(&self, i: usize, n: usize) -> u64 {
        (0..i).map(|j| split(self.conns(), j, n)).sum()
    }

    /// Checks parameter ranges; every plan must be bounded in count and time.
    pub fn validate(&self) -> Result<()> {
        let timed = |w: f64, d: f64| -> Result<()> {
            if !(0.0..=MAX_PHASE.as_secs_f64()).contains(&w)
                || !(0.0..=MAX_PHASE.as_secs_f64()).contains(&d)
            {
                bail!("warmup and duration must be within 0..=3600 s");
            }
            if d <= 0.0 {
                bail!("duration must be > 0");
            }
            Ok(())
        };
        match self {
            Self::Idle(p) => {
                if p.conns == 0 || p.conns > 2_000_000 {
                    bail!("--conns must be within 1..=2000000");
                }
                if !(0.0..=MAX_PHASE.as_secs_f64()).contains(&p.hold_s) {
                    bail!("--hold must be within 0..=3600 s");
                }
            }
            Self::ConnectStorm(p) => {
                timed(p.warmup_s, p.duration_s)?;
                if p.concurrency == 0 || p.concurrency > 10_000 {
                    bail!("--concurrency must be within 1..=10000");
                }
            }
            Self::Upstream(p) => {
                timed(p.warmup_s, p.duration_s)?;
                if p.conns == 0 || p.conns > 2_000_000 {
                    bail!("--conns must be within 1..=2000000");
                }
                if p.size > 32 * 1024 * 1024 {
                    bail!("--size too large");
                }
            }
            Self::Push(p) => {
                timed(p.warmup_s, p.duration_s)?;
                if p.conns == 0 || p.conns > 2_000_000 {
                    bail!("--conns must be within 1..=2000000");
                }
                if p.posters == 0 || p.posters > 4_096 {
                    bail!("--posters must be within 1..=4096");
                }
                if p.size > 131_072 {
                    bail!("--size must be at most 131072 (the callback API limit)");
                }
            }
            Self::Fanout(p) => p.validate()?,
            Self::Ready(p) => p.validate()?,
        }
        Ok(())
    }

    /// Roughly how long one run takes when all goes well (the progress bar's length), s.
    pub fn expected_secs(&self) -> u64 {
        let connect = |conns: u64| conns / 10_000 + 1;
        let s = |x: f64| secs(x, MAX_PHASE).as_secs();
        match self {
            Self::Idle(p) => {
                let paced = if p.rate > 0.0 {
                    (p.conns as f64 / p.rate) as u64
                } else {
                    0
                };
                connect(p.conns).max(paced) + s(p.hold_s)
            }
            Self::ConnectStorm(p) => s(p.warmup_s) + s(p.duration_s),
            Self::Upstream(p) => connect(p.conns) + s(p.warmup_s) + s(p.duration_s),
            Self::Push(p) => connect(p.conns) + s(p.warmup_s) + s(p.duration_s) + 1,
            Self::Fanout(p) => p.expected_secs(),
            Self::Ready(p) => p.expected_secs(),
        }
    }

    /// A generous upper bound on how long one run of this plan takes, used as a watchdog.
    pub fn time_bound(&self, connect_timeout: Duration) -> Duration {
        let connect = |conns: u64| Duration::from_secs(conns / 1_000 + 30) + connect_timeout;
        let s = |x: f64| secs(x, MAX_PHASE);
        let slack = Duration::from_secs(60);
        match self {
            Self::Idle(p) => {
                let paced = if p.rate > 0.0 {
                    // conns is bounded by validate().
                    #[allow(clippy::cast_precision_loss)]
                    let c = p.conns as f64;
                    secs(c / p.rate, MAX_PHASE * 4)
                } else {
                    Duration::ZERO
                };
                connect(p.conns) + paced + s(p.hold_s) + slack
            }
            Self::ConnectStorm(p) => s(p.warmup_s) + s(p.duration_s) + connect_timeout + slack,
            Self::Upstream(p) => connect(p.conns) + s(p.warmup_s) + s(p.duration_s) + slack,
            Self::Push(p) => connect(p.conns) + s(p.warmup_s) + s(p.duration_s) + slack,
            Self::Fanout(p) => p.time_bound(connect_timeout),
            Self::Ready(p) => p.time_bound(connect_timeout),
        }
    }
}

/// One node of a target: where clients connect and where the callback API is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// WebSocket URL, for example `ws://127.0.0.1:8080/prod`.
    pub ws_url: String,
    /// Callback base URL (stage included), for example `http://127.0.0.1:8080/prod`.
    pub callback_url: String,
}

impl Node {
    /// A node whose callback API is on the same host, port and stage path as `ws_url`.
    pub fn same_port(ws_url: &str) -> Self {
        let callback_url = ws_url
            .replacen("wss://", "https://", 1)
            .replacen("ws://", "http://", 1);
        let callback_url = callback_url
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        Self {
            ws_url: ws_url.to_owned(),
            callback_url,
        }
    }
}

/// What one worker runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShareSpec {
    /// This share's part of the plan.
    pub plan: Plan,
    /// Target nodes; connection `g` goes to node `g % nodes.len()`.
    pub nodes: Vec<Node>,
    /// Index of this worker.
    pub worker: usize,
    /// Number of workers.
    pub workers: usize,
    /// Global index of this share's first connection.
    pub conn_offset: u64,
    /// Source addresses to spread over (0: let the kernel pick).
    pub src_ips: u32,
    /// Timeline sample interval, ms.
    pub sample_ms: u64,
    /// Per-connection timeout for connect + upgrade (and whoami), seconds.
    pub connect_timeout_s: f64,
    /// Seed for target selection.
    pub seed: u64,
}

/// What one share reports at the end.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ShareResult {
    /// The whole run.
    pub total: AggData,
    /// The measurement window.
    pub window: AggData,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Scenario counters (summed over shares).
    pub counters: BTreeMap<String, u64>,
    /// Scenario maxima (the largest over shares is kept).
    pub maxima: BTreeMap<String, f64>,
}

/// Counters and maxima a scenario adds to its share result.
#[derive(Default)]
pub struct Extra {
    /// Summed over shares.
    pub counters: BTreeMap<String, u64>,
    /// Maximum over shares.
    pub maxima: BTreeMap<String, f64>,
}

/// A node with its addresses resolved.
#[derive(Clone, Debug)]
pub struct ResolvedNode {
    /// WebSocket URL.
    pub ws_url: String,
    /// WebSocket address.
    pub ws_addr: SocketAddr,
    /// Callback API address.
    pub cb_addr: SocketAddr,
    /// `host:port` of the callback API (the Host header).
    pub cb_authority: String,
    /// Path prefix of a post: `/{stage}/@connections/`.
    pub cb_prefix: String,
}

impl ResolvedNode {
    pub(crate) async fn resolve(n: &Node) -> Result<Self> {
        let (ws_auth, _) = split_url(&n.ws_url)?;
        let (cb_auth, cb_path) = split_url(&n.callback_url)?;
        Ok(Self {
            ws_url: n.ws_url.clone(),
            ws_addr: resolve_loopback(&ws_auth).await?,
            cb_addr: resolve_loopback(&cb_auth).await?,
            cb_authority: cb_auth,
            cb_prefix: format!("{}/@connections/", cb_path.trim_end_matches('/')),
        })
    }
}

/// Everything a running share needs.
pub struct ShareCtx {
    /// The spec.
    pub spec: ShareSpec,
    /// Resolved nodes.
    pub nodes: Vec<ResolvedNode>,
    /// Counters and histograms.
    pub meter: Arc<Meter>,
    /// Link to the orchestrator.
    pub ctl: Control,
    /// Wall-clock anchor for scheduled timestamps.
    pub anchor: Anchor,
}

impl ShareCtx {
    /// Enters `p` and reports the sample that closes the previous phase.
    pub async fn phase(&self, p: Phase) {
        let s = self.meter.set_phase(p);
        self.ctl.send(WorkerMsg::Sample(s)).await;
    }

    /// Per-connection connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        secs(self.spec.connect_timeout_s, Duration::from_secs(120)).max(Duration::from_millis(100))
    }

    /// Node and global index of local connection `local`.
    pub fn conn_node(&self, local: u64) -> (usize, u64) {
        let g = self.spec.conn_offset + local;
        let n = u64::try_from(self.nodes.len().max(1)).unwrap_or(1);
        (usize::try_from(g % n).unwrap_or(0), g)
    }

    /// Runs `work` (which stops by itself at `end`) through warmup, measurement and drain.
    /// Tasks of the work wait for `gate`, which opens once the first phase is entered.
    /// `work` may finish early (a count limit); the window then ends with it.
    pub async fn run_timed<F>(
        &self,
        warmup: Duration,
        gate: &CancellationToken,
        work: F,
        end: Instant,
    ) where
        F: Future<Output = ()>,
    {
        let mut work = std::pin::pin!(work);
        let mut done = false;
        if !warmup.is_zero() {
            self.phase(Phase::Warmup).await;
            gate.cancel();
            tokio::select! {
                () = tokio::time::sleep(warmup) => {}
                () = &mut work => done = true,
            }
        }
        self.phase(Phase::Measure).await;
        self.ctl.mark("measure").await;
        gate.cancel();
        if !done {
            tokio::select! {
                () = sleep_until(end.into()) => {}
                () = &mut work => done = true,
            }
        }
        self.phase(Phase::Drain).await;
        self.ctl.mark("measure-end").await;
        if !done {
            work.await;
        }
    }
}

/// Runs one share to completion and returns its result.
pub async fn run_share(spec: ShareSpec, ctl: Control) -> Result<ShareResult> {
    if spec.nodes.is_empty() {
        bail!("no target nodes");
    }
    let mut nodes = Vec::with_capacity(spec.nodes.len());
    for n in &spec.nodes {
        nodes.push(
            ResolvedNode::resolve(n)
                .await
                .with_context(|| format!("node {}", n.ws_url))?,
        );
    }
    let meter = Arc::new(Meter::new());
    let sampler_stop = CancellationToken::new();
    let sampler = tokio::spawn(sampler(
        meter.clone(),
        ctl.sender(),
        Duration::from_millis(spec.sample_ms.clamp(10, 60_000)),
        sampler_stop.clone(),
    ));
    let mut ctx = ShareCtx {
        spec,
        nodes,
        meter: meter.clone(),
        ctl,
        anchor: Anchor::now(),
    };
    let plan = ctx.spec.plan.clone();
    let extra = match &plan {
        Plan::Idle(p) => idle::run(&mut ctx, p).await,
        Plan::ConnectStorm(p) => storm::run(&mut ctx, p).await,
        Plan::Upstream(p) => upstream::run(&mut ctx, p).await,
        Plan::Push(p) => push::run(&mut ctx, p).await,
        Plan::Fanout(p) => fanout::run(&mut ctx, p).await,
        Plan::Ready(p) => ready::run(&mut ctx, p).await,
    };
    sampler_stop.cancel();
    let _ = sampler.await;
    ctx.phase(Phase::Done).await;
    let extra = extra?;
    let (total, window, errors) = meter.finish();
    Ok(ShareResult {
        total,
        window,
        errors,
        counters: extra.counters,
        maxima: extra.maxima,
    })
}

async fn sampler(
    meter: Arc<Meter>,
    tx: tokio::sync::mpsc::Sender<WorkerMsg>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {
                if tx.send(WorkerMsg::Sample(meter.sample())).await.is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push() -> Plan {
        Plan::Push(PushPlan {
            conns: 10,
            inflight: 4,
            posters: 3,
            rate: 90.0,
            size: 64,
            count: 7,
            warmup_s: 0.0,
            duration_s: 1.0,
        })
    }

    #[test]
    fn shares_add_up() {
        let p = push();
        let parts: Vec<Plan> = (0..3).map(|i| p.share(i, 3)).collect();
        let (mut conns, mut posters, mut count, mut rate) = (0, 0, 0, 0.0);
        for part in &parts {
            if let Plan::Push(s) = part {
                conns += s.conns;
                posters += s.posters;
                count += s.count;
                rate += s.rate;
            }
        }
        assert_eq!((conns, posters, count), (10, 3, 7));
        assert!((rate - 90.0).abs() < 1e-9);
        assert_eq!(p.conn_offset(0, 3), 0);
        assert_eq!(p.conn_offset(1, 3), 4);
        assert_eq!(p.conn_offset(2, 3), 7);
    }

    #[test]
    fn plans_round_trip_as_json() {
        let p = push();
        let s = serde_json::to_string(&p).unwrap();
        assert!(s.contains(r#""scenario":"push""#));
        assert_eq!(serde_json::from_str::<Plan>(&s).unwrap(), p);
    }

    #[test]
    fn callback_defaults_to_the_same_port() {
        let n = Node::same_port("ws://127.0.0.1:8080/prod");
        assert_eq!(n.callback_url, "http://127.0.0.1:8080/prod");
    }
}
