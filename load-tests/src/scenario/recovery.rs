//! `recovery`: clients of groups with history drop together while posts continue, come back
//! with `recover=GROUP:EPOCH:OFFSET`, and every one must end with every message exactly once
//! (see docs/recovery.md).
//!
//! 1. `conns` clients connect (`inflight` handshakes at a time) with `envelope=1&groups=G`;
//!    the built-in backend's `$connect` answer joins each to its group `G` (`groups` groups,
//!    client `i` in group `i mod groups`).
//! 2. `posters` post `R:<seq>:<ns>:xxx…` to the groups in turn, `post_rate` a second in all,
//!    for the whole run; each 200 answer carries the message's offset, and the highest one per
//!    group is the end of every ledger of that group.
//! 3. After `live_s`, every client drops at once: `clients` closes each socket with a TCP reset
//!    and no close frame (a Wi-Fi loss); `node` kills node 0 (SIGKILL), which holds them all.
//! 4. `away_ms` later the clients reconnect, spread evenly over `reconnect_ms`, with the last
//!    position each saw (`clients`: to the next node; `node`: to the survivors), and time the
//!    `recovered` signal and the catch-up: the first offset at or past the newest acknowledged
//!    one at the moment `recovered` arrived.
//! 5. Once every client recovered (or `recover_timeout_s` ran out), `tail_s` more of posting,
//!    then the posts stop; each client gets `drain_s` to reach the last acknowledged offset of
//!    its group, then closes.
//!
//! The ledger ([`super::offsets`]) of every client covers its first offset to the last
//! acknowledged one; the verdict fails on any gap, duplicate, out-of-order arrival, epoch
//! change, `notRecovered`, or client that did not recover. With `redis`, `INFO` before and
//! after the live window and the recovery window (drop → last client caught up) gives what the
//! recovery cost Redis over the posts alone. Loopback targets only.

use super::offsets::Tally;
use super::recovery_client::{self, Outcome};
use super::{MAX_PHASE, Node, ResolvedNode};
use crate::clock::{secs, wall_ms, wall_ns};
use crate::hist::{LatSummary, new_hist};
use crate::httpc::HttpConn;
use crate::redisinfo::{self, RedisCounters};
use anyhow::{Result, bail};
use bytes::Bytes;
use hyper::Method;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::time::{MissedTickBehavior, sleep};
use tokio_util::sync::CancellationToken;

/// Longest wait for one post.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How the clients drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DropMode {
    /// Every client resets its TCP connection without a close frame.
    Clients,
    /// Node 0, which holds every client, is killed with SIGKILL.
    Node,
}

/// What one `recovery` run does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPlan {
    /// WebSocket URLs of the nodes (`ws://127.0.0.1:PORT/STAGE`; callback on the same port).
    pub nodes: Vec<String>,
    /// Gateway processes, one per node in order (`node` mode kills the first).
    pub pids: Vec<u32>,
    /// Redis read for the cost figures (loopback).
    pub redis: Option<SocketAddr>,
    /// Clients.
    pub conns: usize,
    /// Groups (client `i` joins group `i mod groups`).
    pub groups: usize,
    /// Group names are this prefix and the group number.
    pub group_prefix: String,
    /// Posts per second over all posters.
    pub post_rate: f64,
    /// Concurrent posters, each with one keep-alive connection.
    pub posters: usize,
    /// Payload size, bytes.
    pub size: usize,
    /// Handshakes in flight at most.
    pub inflight: usize,
    /// Seconds of posting with every client connected before the drop.
    pub live_s: f64,
    /// How the clients drop.
    pub drop: DropMode,
    /// Time away, ms.
    pub away_ms: u64,
    /// Reconnects are spread evenly over this, ms.
    pub reconnect_ms: u64,
    /// Longest wait for every client to recover after the last reconnect started, seconds.
    pub recover_timeout_s: f64,
    /// Seconds of posting after every client recovered.
    pub tail_s: f64,
    /// Longest wait for every client to reach the last acknowledged offset, seconds.
    pub drain_s: f64,
    /// Offsets booked per client at most.
    pub max_offsets: u64,
    /// Connect + upgrade timeout, seconds.
    pub connect_timeout_s: f64,
    /// Source addresses to spread the clients over (0: let the kernel pick).
    pub src_ips: u32,
}

impl RecoveryPlan {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if self.nodes.is_empty() || self.nodes.len() > 16 {
            bail!("recovery: give 1 to 16 nodes");
        }
        if self.conns == 0 || self.conns > 19_000 {
            bail!("--conns must be within 1..=19000");
        }
        if self.groups == 0 || self.groups > self.conns {
            bail!("--groups must be within 1..=--conns");
        }
        if self.group_prefix.is_empty()
            || self.group_prefix.len() > 64
            || !self
                .group_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            bail!("--group-prefix must be 1 to 64 letters, digits, - _ .");
        }
        if !(0.1..=10_000.0).contains(&self.post_rate) {
            bail!("--post-rate must be within 0.1..=10000");
        }
        if self.posters == 0 || self.posters > 64 {
            bail!("--posters must be within 1..=64");
        }
        if self.size > 65_536 {
            bail!("--size must be at most 65536");
        }
        if self.inflight == 0 || self.inflight > 4_096 {
            bail!("--inflight must be within 1..=4096");
        }
        let phases = [
            ("--live", self.live_s),
            ("--recover-timeout", self.recover_timeout_s),
            ("--tail", self.tail_s),
            ("--drain", self.drain_s),
        ];
        for (name, s) in phases {
            if !(0.0..=600.0).contains(&s) {
                bail!("{name} must be within 0..=600 s");
            }
        }
        if self.away_ms > 600_000 || self.reconnect_ms > 600_000 {
            bail!("--away-ms and --reconnect-ms must be at most 600000");
        }
        if self.max_offsets == 0 || self.max_offsets > 1 << 24 {
            bail!("--max-offsets must be within 1..=16777216");
        }
        if self.drop == DropMode::Node {
            if self.nodes.len() < 2 {
                bail!("--drop node needs at least two nodes (clients reconnect through another)");
            }
            if self.pids.is_empty() {
                bail!("--drop node needs the pid of the first node (--pid)");
            }
        }
        Ok(())
    }
}

/// Counters shared by the clients and the controller.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) connected: AtomicU64,
    pub(crate) reconnected: AtomicU64,
    pub(crate) recovered: AtomicU64,
    pub(crate) caught_up: AtomicU64,
    /// Caught up or told `notRecovered`.
    pub(crate) settled: AtomicU64,
    posts_ok: AtomicU64,
    posts_failed: AtomicU64,
    next_post: AtomicU64,
}

/// The controller's signals to the clients.
pub(crate) struct Events {
    /// Every client drops (fired just before a node is killed).
    pub(crate) drop: CancellationToken,
    /// The run is over: close.
    pub(crate) stop: CancellationToken,
}

/// What the clients and posters share.
pub(crate) struct Shared {
    pub(crate) plan: RecoveryPlan,
    pub(crate) nodes: Vec<ResolvedNode>,
    pub(crate) groups: Vec<String>,
    /// Highest acknowledged offset per group.
    pub(crate) acked: Vec<AtomicU64>,
    /// Highest offset each client has seen.
    pub(crate) seen: Vec<AtomicU64>,
    pub(crate) counts: Counts,
    pub(crate) ev: Events,
    pub(crate) inflight: Semaphore,
    drop_at: Mutex<Option<Instant>>,
    epochs: Mutex<BTreeMap<String, String>>,
    epoch_changes: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    not_recovered: Mutex<BTreeMap<String, u64>>,
    answers: Mutex<BTreeMap<String, u64>>,
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, kind: &str) {
    *map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(kind.to_owned())
        .or_default() += 1;
}

impl Shared {
    pub(crate) fn error(&self, kind: &str) {
        bump(&self.errors, kind);
    }

    pub(crate) fn not_recovered(&self, reason: &str) {
        bump(&self.not_recovered, reason);
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        secs(self.plan.connect_timeout_s, Duration::from_secs(120)).max(Duration::from_millis(100))
    }

    /// When client `i` reconnects: the drop, `away_ms`, and its share of `reconnect_ms`.
    pub(crate) fn reconnect_at(&self, i: usize) -> Option<Instant> {
        let at = (*self.drop_at.lock().unwrap_or_else(|p| p.into_inner()))?;
        let p = &self.plan;
        let spread = u64::try_from(i).unwrap_or(0) * p.reconnect_ms
            / u64::try_from(p.conns.max(1)).unwrap_or(1);
        Some(at + Duration::from_millis(p.away_ms + spread))
    }

    /// Clients connected whose `seen` is below their group's last acknowledged offset.
    fn behind(&self) -> usize {
        let g = self.groups.len();
        (0..self.seen.len())
            .filter(|&i| self.seen[i].load(Relaxed) < self.acked[i % g].load(Relaxed))
            .count()
    }
}

/// Recovery times and what was replayed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RecoveryFigures {
    /// Reconnect start → `recovered`.
    pub recovered: LatSummary,
    /// Reconnect start → caught up with the live offset.
    pub caught_up: LatSummary,
    /// Messages replayed, all clients.
    pub replayed: u64,
    /// Drop → the last client caught up (or the timeout), seconds.
    pub window_s: f64,
}

/// Redis work in a window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RedisWindow {
    /// Length, seconds.
    pub secs: f64,
    /// Posts acknowledged in the window.
    pub posts: u64,
    /// What grew.
    pub delta: RedisCounters,
}

/// What the recovery cost Redis.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RedisCost {
    /// The live window before the drop (posts only).
    pub baseline: RedisWindow,
    /// Drop → every client caught up (posts, reconnects and replays).
    pub recovery: RedisWindow,
    /// Commands of the recovery window over what its posts cost in the baseline window
    /// (baseline commands ÷ baseline posts × recovery-window posts).
    pub extra_commands: f64,
    /// CPU of the recovery window over what its posts cost in the baseline window, ms.
    pub extra_cpu_ms: f64,
    /// `extra_commands` ÷ clients recovered.
    pub commands_per_client: f64,
    /// `extra_cpu_ms` ÷ clients recovered, in µs.
    pub cpu_us_per_client: f64,
    /// Commands of the recovery window ÷ clients recovered (posts included).
    pub gross_commands_per_client: f64,
    /// Per command: calls of the recovery window over what its posts cost, ÷ clients recovered
    /// (commands run by scripts count too; only those above the baseline are listed).
    pub extra_calls_per_client: BTreeMap<String, f64>,
}

/// The verdict.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Verdict {
    /// Every client connected, recovered and ended with an exact ledger.
    pub passed: bool,
    /// Why not.
    pub reasons: Vec<String>,
}

/// The report of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// `recovery`.
    pub scenario: String,
    /// The plan.
    pub plan: RecoveryPlan,
    /// Unix ms when the clients started connecting.
    pub started_unix_ms: u64,
    /// Unix ms of the drop.
    pub drop_unix_ms: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// Headline figures (ms, counts, ratios).
    pub summary: BTreeMap<String, f64>,
    /// Client counts (`connected`, `dropped_with_position`, `reconnected`, `recovered`,
    /// `caught_up`, `exact`, `unplanned_losses`).
    pub clients: BTreeMap<String, u64>,
    /// The ledger over every client.
    pub ledger: Tally,
    /// `notRecovered` signals by reason.
    pub not_recovered: BTreeMap<String, u64>,
    /// Recovery times.
    pub recovery: RecoveryFigures,
    /// Posts by answer (`ok`, `http_503`, `io`, ...).
    pub posts: BTreeMap<String, u64>,
    /// Last acknowledged offset per group.
    pub last_offsets: BTreeMap<String, u64>,
    /// Redis cost (with `redis`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisCost>,
    /// Client-visible errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Remarks.
    pub notes: Vec<String>,
}

/// Waits (polling every 20 ms) until `done` holds or `until` passes; whether it held.
async fn wait_for(until: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// A Redis reading with the time and the posts acknowledged so far.
struct Reading {
    at: Instant,
    posts: u64,
    counters: RedisCounters,
}

async fn redis_read(sh: &Shared) -> Option<Reading> {
    let addr = sh.plan.redis?;
    let counters = redisinfo::read(addr).await?;
    Some(Reading {
        at: Instant::now(),
        posts: sh.counts.posts_ok.load(Relaxed),
        counters,
    })
}

/// Runs the scenario against the plan's nodes.
pub async fn run(plan: RecoveryPlan, progress: bool) -> Result<RecoveryReport> {
    let say = |line: String| {
        if progress {
            eprintln!("{line}");
        }
    };
    plan.validate()?;
    let mut nodes = Vec::with_capacity(plan.nodes.len());
    for url in &plan.nodes {
        nodes.push(ResolvedNode::resolve(&Node::same_port(url)).await?);
    }
    let groups: Vec<String> = (0..plan.groups)
        .map(|g| format!("{}{g}", plan.group_prefix))
        .collect();
    let sh = Arc::new(Shared {
        nodes,
        acked: groups.iter().map(|_| AtomicU64::new(0)).collect(),
        seen: (0..plan.conns).map(|_| AtomicU64::new(0)).collect(),
        groups,
        counts: Counts::default(),
        ev: Events {
            drop: CancellationToken::new(),
            stop: CancellationToken::new(),
        },
        inflight: Semaphore::new(plan.inflight),
        drop_at: Mutex::new(None),
        epochs: Mutex::new(BTreeMap::new()),
        epoch_changes: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
        not_recovered: Mutex::new(BTreeMap::new()),
        answers: Mutex::new(BTreeMap::new()),
        plan: plan.clone(),
    });
    let started_unix_ms = wall_ms();
    let start = Instant::now();
    let conns = u64::try_from(plan.conns).unwrap_or(u64::MAX);
    let clients: Vec<_> = (0..plan.conns)
        .map(|i| tokio::spawn(recovery_client::run(i, sh.clone())))
        .collect();
    let connect_limit = start + sh.connect_timeout() * 3 + Duration::from_millis(conns * 20);
    wait_for(connect_limit, || sh.counts.connected.load(Relaxed) >= conns).await;
    say(format!(
        "recovery: {}/{conns} clients connected in {:.1} s",
        sh.counts.connected.load(Relaxed),
        start.elapsed().as_secs_f64()
    ));

    if sh.counts.connected.load(Relaxed) == 0 {
        sh.ev.stop.cancel();
        sh.ev.drop.cancel();
        for c in clients {
            let _ = c.await;
        }
        let errors = sh.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
        bail!("recovery: no client could connect (errors: {errors:?})");
    }
    let stop_posts = CancellationToken::new();
    let posting_from = Instant::now();
    let posters: Vec<_> = (0..plan.posters)
        .map(|j| tokio::spawn(poster(j, sh.clone(), stop_posts.clone())))
        .collect();
    let base0 = redis_read(&sh).await;
    sleep(secs(plan.live_s, MAX_PHASE)).await;
    let base1 = redis_read(&sh).await;

    // The drop.
    let drop_at = Instant::now();
    let drop_unix_ms = wall_ms();
    *sh.drop_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(drop_at);
    let positioned =
        u64::try_from(sh.seen.iter().filter(|s| s.load(Relaxed) > 0).count()).unwrap_or(u64::MAX);
    sh.ev.drop.cancel();
    let mut notes = Vec::new();
    if plan.drop == DropMode::Node {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(plan.pids[0]).unwrap_or(0));
        if let Err(e) = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL) {
            notes.push(format!("killing node 0 (pid {pid}) failed: {e}"));
        }
    }
    say(format!(
        "recovery: {positioned} clients dropped ({:?}); back in {} ms over {} ms",
        plan.drop, plan.away_ms, plan.reconnect_ms
    ));
    let recover_limit = drop_at
        + Duration::from_millis(plan.away_ms + plan.reconnect_ms)
        + secs(plan.recover_timeout_s, MAX_PHASE);
    let all_settled = wait_for(recover_limit, || {
        sh.counts.settled.load(Relaxed) >= positioned
    })
    .await;
    let rec1 = redis_read(&sh).await;
    let window_s = drop_at.elapsed().as_secs_f64();
    say(format!(
        "recovery: {} recovered, {} caught up {:.2} s after the drop{}",
        sh.counts.recovered.load(Relaxed),
        sh.counts.caught_up.load(Relaxed),
        window_s,
        if all_settled { "" } else { " (timed out)" }
    ));

    sleep(secs(plan.tail_s, MAX_PHASE)).await;
    stop_posts.cancel();
    for p in posters {
        let _ = p.await;
    }
    let posting_s = posting_from.elapsed().as_secs_f64();
    let drain_limit = Instant::now() + secs(plan.drain_s, MAX_PHASE);
    let drained = wait_for(drain_limit, || sh.behind() == 0).await;
    if !drained {
        notes.push(format!(
            "{} clients had not reached their group's last acknowledged offset after --drain",
            sh.behind()
        ));
    }
    sh.ev.stop.cancel();
    let mut outcomes = Vec::with_capacity(clients.len());
    for c in clients {
        outcomes.push(c.await.unwrap_or_default());
    }
    let redis = match (base0, base1, rec1) {
        (Some(b0), Some(b1), Some(r1)) => Some(redis_cost(&b0, &b1, &r1, &outcomes)),
        _ => {
            if plan.redis.is_some() {
                notes.push("Redis INFO could not be read: no cost figures".to_owned());
            }
            None
        }
    };
    Ok(report(
        &sh,
        outcomes,
        positioned,
        (window_s, posting_s),
        redis,
        notes,
        (started_unix_ms, drop_unix_ms),
    ))
}

/// The recovery window's Redis work over what its posts alone cost (the baseline window's
/// work per post times the posts of the recovery window), per client recovered.
fn redis_cost(b0: &Reading, b1: &Reading, r1: &Reading, outcomes: &[Outcome]) -> RedisCost {
    let baseline = RedisWindow {
        secs: b1.at.duration_since(b0.at).as_secs_f64(),
        posts: b1.posts.saturating_sub(b0.posts),
        delta: b1.counters.since(&b0.counters),
    };
    let recovery = RedisWindow {
        secs: r1.at.duration_since(b1.at).as_secs_f64(),
        posts: r1.posts.saturating_sub(b1.posts),
        delta: r1.counters.since(&b1.counters),
    };
    #[allow(clippy::cast_precision_loss)]
    let scale = if baseline.posts > 0 {
        recovery.posts as f64 / baseline.posts as f64
    } else {
        0.0
    };
    #[allow(clippy::cast_precision_loss)]
    let extra_commands =
        (recovery.delta.commands as f64 - baseline.delta.commands as f64 * scale).max(0.0);
    let extra_cpu_ms = ((recovery.delta.cpu_s - baseline.delta.cpu_s * scale) * 1e3).max(0.0);
    #[allow(clippy::cast_precision_loss)]
    let recovered = outcomes.iter().filter(|o| o.recovered_us.is_some()).count() as f64;
    let per = |x: f64| if recovered > 0.0 { x / recovered } else { 0.0 };
    #[allow(clippy::cast_precision_loss)]
    let extra_calls_per_client = recovery
        .delta
        .calls
        .iter()
        .filter_map(|(cmd, &calls)| {
            let base = baseline.delta.calls.get(cmd).copied().unwrap_or(0) as f64 * scale;
            let extra = calls as f64 - base;
            (extra > 0.5).then(|| (cmd.clone(), per(extra)))
        })
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let gross = per(recovery.delta.commands as f64);
    RedisCost {
        gross_commands_per_client: gross,
        extra_calls_per_client,
        baseline,
        recovery,
        extra_commands,
        extra_cpu_ms,
        commands_per_client: per(extra_commands),
        cpu_us_per_client: per(extra_cpu_ms * 1e3),
    }
}

fn summary_of(values: impl Iterator<Item = u64>) -> LatSummary {
    let mut h = new_hist();
    for v in values {
        h.saturating_record(v.clamp(1, crate::hist::HIGHEST_US));
    }
    LatSummary::of(&h)
}

fn report(
    sh: &Shared,
    outcomes: Vec<Outcome>,
    positioned: u64,
    (window_s, posting_s): (f64, f64),
    redis: Option<RedisCost>,
    mut notes: Vec<String>,
    (started_unix_ms, drop_unix_ms): (u64, u64),
) -> RecoveryReport {
    let plan = sh.plan.clone();
    let mut ledger = Tally::default();
    for o in &outcomes {
        ledger.add(&o.tally);
    }
    let count = |f: &dyn Fn(&Outcome) -> bool| {
        u64::try_from(outcomes.iter().filter(|o| f(o)).count()).unwrap_or(u64::MAX)
    };
    let clients = BTreeMap::from([
        ("total".to_owned(), count(&|_| true)),
        ("connected".to_owned(), count(&|o| o.connected)),
        ("dropped_with_position".to_owned(), positioned),
        ("reconnected".to_owned(), count(&|o| o.reconnected)),
        ("recovered".to_owned(), count(&|o| o.recovered_us.is_some())),
        ("caught_up".to_owned(), count(&|o| o.caught_up_us.is_some())),
        (
            "exact".to_owned(),
            count(&|o| o.tally.exact() && o.tally.received > 0),
        ),
        (
            "unplanned_losses".to_owned(),
            outcomes.iter().map(|o| o.unplanned_losses).sum(),
        ),
    ]);
    let recovery = RecoveryFigures {
        recovered: summary_of(outcomes.iter().filter_map(|o| o.recovered_us)),
        caught_up: summary_of(outcomes.iter().filter_map(|o| o.caught_up_us)),
        replayed: outcomes.iter().map(|o| o.replayed).sum(),
        window_s,
    };
    let not_recovered = sh
        .not_recovered
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let posts = sh.answers.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let last_offsets: BTreeMap<String, u64> = sh
        .groups
        .iter()
        .zip(&sh.acked)
        .map(|(g, a)| (g.clone(), a.load(Relaxed)))
        .collect();
    let conns = u64::try_from(plan.conns).unwrap_or(u64::MAX);
    let mut reasons = Vec::new();
    if clients["connected"] < conns {
        reasons.push(format!(
            "{} of {conns} clients connected",
            clients["connected"]
        ));
    }
    if clients["recovered"] < positioned {
        reasons.push(format!(
            "{} of {positioned} dropped clients recovered",
            clients["recovered"]
        ));
    }
    if !not_recovered.is_empty() {
        reasons.push(format!("notRecovered signals: {not_recovered:?}"));
    }
    if !ledger.exact() {
        reasons.push(format!(
            "ledger: {} missing, {} duplicates, {} out of order, {} epoch changes, {} beyond --max-offsets",
            ledger.missing,
            ledger.duplicates,
            ledger.out_of_order,
            ledger.epoch_changes,
            ledger.beyond_cap
        ));
    }
    let posts_ok = sh.counts.posts_ok.load(Relaxed);
    if posts_ok == 0 {
        reasons.push("no post was acknowledged".to_owned());
    }
    if let Some(n) = posts.get("without_offset") {
        reasons.push(format!(
            "{n} posts answered without an offset: the groups keep no history (groups.history)"
        ));
    }
    let epoch_changes = sh.epoch_changes.load(Relaxed);
    if epoch_changes > 0 {
        notes.push(format!(
            "the post answers changed epoch {epoch_changes} times"
        ));
    }
    let failed = sh.counts.posts_failed.load(Relaxed);
    if failed > 0 {
        notes.push(format!(
            "{failed} posts failed (not counted in the ledgers' end)"
        ));
    }
    #[allow(clippy::cast_precision_loss)]
    let ms = |us: u64| us as f64 / 1e3;
    #[allow(clippy::cast_precision_loss)]
    let mut summary = BTreeMap::from([
        ("clients".to_owned(), conns as f64),
        ("recovered".to_owned(), clients["recovered"] as f64),
        ("recovered_p50_ms".to_owned(), ms(recovery.recovered.p50_us)),
        ("recovered_p99_ms".to_owned(), ms(recovery.recovered.p99_us)),
        ("recovered_max_ms".to_owned(), ms(recovery.recovered.max_us)),
        ("caught_up_p50_ms".to_owned(), ms(recovery.caught_up.p50_us)),
        ("caught_up_p99_ms".to_owned(), ms(recovery.caught_up.p99_us)),
        ("caught_up_max_ms".to_owned(), ms(recovery.caught_up.max_us)),
        ("replayed".to_owned(), recovery.replayed as f64),
        ("recovery_window_s".to_owned(), window_s),
        ("posts_ok".to_owned(), posts_ok as f64),
        (
            "posts_per_sec".to_owned(),
            if posting_s > 0.0 {
                posts_ok as f64 / posting_s
            } else {
                0.0
            },
        ),
        ("received".to_owned(), ledger.received as f64),
        ("missing".to_owned(), ledger.missing as f64),
        ("duplicates".to_owned(), ledger.duplicates as f64),
        ("out_of_order".to_owned(), ledger.out_of_order as f64),
        (
            "not_recovered".to_owned(),
            not_recovered.values().sum::<u64>() as f64,
        ),
    ]);
    if let Some(r) = &redis {
        summary.insert(
            "redis_commands_per_client".to_owned(),
            r.commands_per_client,
        );
        summary.insert("redis_cpu_us_per_client".to_owned(), r.cpu_us_per_client);
        summary.insert(
            "redis_gross_commands_per_client".to_owned(),
            r.gross_commands_per_client,
        );
    }
    RecoveryReport {
        scenario: "recovery".to_owned(),
        plan,
        started_unix_ms,
        drop_unix_ms,
        verdict: Verdict {
            passed: reasons.is_empty(),
            reasons,
        },
        summary,
        clients,
        ledger,
        not_recovered,
        recovery,
        posts,
        last_offsets,
        redis,
        errors: sh.errors.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        notes,
    }
}

/// One poster: `post_rate / posters` posts a second to the groups in turn, through the nodes
/// in turn (`node` mode: never through node 0, which is killed).
async fn poster(j: usize, sh: Arc<Shared>, stop: CancellationToken) {
    let p = &sh.plan;
    let via: Vec<usize> = match p.drop {
        DropMode::Clients => (0..sh.nodes.len()).collect(),
        DropMode::Node => (1..sh.nodes.len()).collect(),
    };
    #[allow(clippy::cast_precision_loss)]
    let every = secs(p.posters as f64 / p.post_rate, MAX_PHASE).max(Duration::from_micros(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut conns: BTreeMap<usize, HttpConn> = BTreeMap::new();
    let mut k = j;
    let mut seq = 0u64;
    let groups = u64::try_from(sh.groups.len()).unwrap_or(1);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        k += 1;
        seq += 1;
        let g = usize::try_from(sh.counts.next_post.fetch_add(1, Relaxed) % groups).unwrap_or(0);
        let node_ix = via[k % via.len()];
        let node = &sh.nodes[node_ix];
        if !conns.get(&node_ix).is_some_and(HttpConn::is_open) {
            match HttpConn::connect(node.cb_addr, &node.cb_authority, CALL_TIMEOUT).await {
                Ok(c) => {
                    conns.insert(node_ix, c);
                }
                Err(_) => {
                    sh.counts.posts_failed.fetch_add(1, Relaxed);
                    bump(&sh.answers, "connect");
                    continue;
                }
            }
        }
        let Some(c) = conns.get_mut(&node_ix) else {
            continue;
        };
        let mut body = format!("R:{j}.{seq}:{}:", wall_ns());
        body.extend(std::iter::repeat_n('x', p.size.saturating_sub(body.len())));
        let stage = node.cb_prefix.trim_end_matches("/@connections/");
        let path = format!("{stage}/@groups/{}", sh.groups[g]);
        match c
            .request(Method::POST, &path, Bytes::from(body), CALL_TIMEOUT)
            .await
        {
            Ok((200, answer)) => posted(&sh, g, &answer),
            Ok((s, _)) => {
                sh.counts.posts_failed.fetch_add(1, Relaxed);
                bump(&sh.answers, &format!("http_{s}"));
            }
            Err(_) => {
                sh.counts.posts_failed.fetch_add(1, Relaxed);
                bump(&sh.answers, "io");
                conns.remove(&node_ix);
            }
        }
    }
}

/// Books a post answered 200: its offset raises the group's last acknowledged offset.
fn posted(sh: &Shared, g: usize, answer: &[u8]) {
    #[derive(Deserialize)]
    struct Position {
        epoch: Option<String>,
        offset: Option<u64>,
    }
    let Ok(Position {
        epoch: Some(epoch),
        offset: Some(offset),
    }) = serde_json::from_slice::<Position>(answer)
    else {
        sh.counts.posts_failed.fetch_add(1, Relaxed);
        bump(&sh.answers, "without_offset");
        return;
    };
    sh.counts.posts_ok.fetch_add(1, Relaxed);
    bump(&sh.answers, "ok");
    let mut epochs = sh.epochs.lock().unwrap_or_else(|p| p.into_inner());
    let known = epochs
        .entry(sh.groups[g].clone())
        .or_insert_with(|| epoch.clone());
    if *known != epoch {
        sh.epoch_changes.fetch_add(1, Relaxed);
        *known = epoch;
    }
    drop(epochs);
    sh.acked[g].fetch_max(offset, Relaxed);
}

/// Runs, writes the report to `out` (if given), prints the summary, and fails when
/// `fail_on_loss` and the verdict did not pass.
pub async fn main(
    plan: RecoveryPlan,
    out: Option<std::path::PathBuf>,
    fail_on_loss: bool,
    progress: bool,
) -> Result<RecoveryReport> {
    let r = run(plan, progress).await?;
    if let Some(path) = out {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&r)?)?;
    }
    println!(
        "{}",
        serde_json::json!({
            "scenario": r.scenario,
            "passed": r.verdict.passed,
            "reasons": r.verdict.reasons,
            "summary": r.summary,
            "clients": r.clients,
            "not_recovered": r.not_recovered,
            "redis": r.redis.as_ref().map(|c| serde_json::json!({
                "commands_per_client": c.commands_per_client,
                "cpu_us_per_client": c.cpu_us_per_client,
                "gross_commands_per_client": c.gross_commands_per_client,
                "extra_calls_per_client": c.extra_calls_per_client,
            })),
            "errors": r.errors,
            "notes": r.notes,
        })
    );
    if fail_on_loss && !r.verdict.passed {
        bail!("recovery: {}", r.verdict.reasons.join("; "));
    }
    Ok(r)
}
