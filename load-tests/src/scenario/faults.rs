//! `faults` and `soak`: a steady mixed load on running gateway nodes whose every
//! acknowledgement is checked against a delivery ledger ([`super::ledger`]), meant to run while
//! `load-tests/scripts/faults.sh` breaks things around it.
//!
//! - `conns` client slots each keep one connection open (opened `ramp_per_s` a second at the
//!   start): connect to a node, learn the id with `whoami`, and on losing the connection
//!   reconnect (to the next node) after a short backoff.
//!   With `churn_per_s`, connections are also closed on purpose and reopened.
//! - Every slot sends `{"action":"echo","seq":<id>,"t":<ns>}` (`msg_rate` messages/s over all
//!   slots); the echo reply is the acknowledgement, matched by `seq`.
//! - `posters` post `P:<id>:<ns>:xxx…` to random open connections through a node chosen
//!   round-robin (so most posts cross nodes), `push_rate` posts/s in all; 2xx is the
//!   acknowledgement. A poster whose node fails moves to the next node.
//! - With `groups > 0` each connection joins group `g<slot mod groups>` and one task posts
//!   `G:<id>:<ns>` to a random group `group_rate` times a second; deliveries are counted and
//!   checked for duplicates per connection.
//! - Every `sample_s` a timeline row: open connections, acknowledged and failed operations,
//!   latency percentiles of the interval, and (for `soak`) the gateways' RSS and open fds and
//!   Redis `used_memory`.
//!
//! After the window, acknowledged pushes and messages still unanswered get a bounded `drain_s`; then
//! every slot closes with a close handshake (reading frames until the server's close).
//! Loopback targets only, like every scenario of this tool.

use crate::client::{ConnError, Ws, field_u64, open, whoami};
use crate::clock::{Rng, secs, us_since_wall, wall_ms, wall_ns};
use crate::hist::{LatSummary, Recorder, new_hist};
use crate::httpc::{HttpConn, once};
use crate::net::source_addr;
use crate::scenario::ledger::{Balance, Ledger};
use crate::scenario::push::post_path;
use crate::scenario::soak::{self, Probe, SoakVerdict};
use crate::scenario::{MAX_PHASE, Node, ResolvedNode};
use anyhow::{Result, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use hyper::Method;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::time::{MissedTickBehavior, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

/// Longest wait for one post, join or `whoami`.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the server's close frame at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Backoff after a failed connection attempt: from the first to the last value.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// What one `faults` or `soak` run does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultsPlan {
    /// WebSocket URLs of the nodes (`ws://127.0.0.1:PORT/STAGE`; callback on the same port).
    pub nodes: Vec<String>,
    /// Client slots (connections kept open).
    pub conns: usize,
    /// Connections opened per second at the start (0: all at once).
    pub ramp_per_s: f64,
    /// Seconds of load.
    pub duration_s: f64,
    /// Upstream echo messages per second over all connections (0: none).
    pub msg_rate: f64,
    /// Posts per second over all posters (0: none).
    pub push_rate: f64,
    /// Concurrent posters.
    pub posters: usize,
    /// Push payload size, bytes.
    pub size: usize,
    /// Connections closed on purpose and reopened per second (0: none).
    pub churn_per_s: f64,
    /// Groups the connections are spread over (0: no group fan-out).
    pub groups: usize,
    /// Group posts per second.
    pub group_rate: f64,
    /// Longest wait for acknowledged pushes and replies after the window, seconds.
    pub drain_s: f64,
    /// Timeline interval, seconds.
    pub sample_s: f64,
    /// Gateway processes sampled for RSS and open fds.
    pub pids: Vec<u32>,
    /// Redis sampled for `used_memory` (loopback).
    pub redis: Option<SocketAddr>,
    /// Soak verdict: seconds of warm-up excluded from the flatness check (None: no verdict).
    pub soak_warmup_s: Option<f64>,
    /// Ids booked at most per ledger (the run stops sending beyond).
    pub max_ids: usize,
    /// Connect + upgrade timeout, seconds.
    pub connect_timeout_s: f64,
    /// Seed of the target choices.
    pub seed: u64,
}

/// One timeline row.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Unix time of the end of the interval, ms.
    pub t_ms: u64,
    /// Connections open.
    pub open: u64,
    /// Posts acknowledged in the interval.
    pub push_ok: u64,
    /// Posts failed (not 2xx, not 410) in the interval.
    pub push_err: u64,
    /// Posts answered 410 in the interval.
    pub push_gone: u64,
    /// Echo replies in the interval.
    pub replies: u64,
    /// Connection attempts failed and connections lost in the interval.
    pub conn_errs: u64,
    /// Error frames received in the interval.
    pub error_frames: u64,
    /// Push delivery latency of the interval, p50 / p99, µs.
    pub push_p50_us: u64,
    /// See `push_p50_us`.
    pub push_p99_us: u64,
    /// Echo round trip of the interval, p50 / p99, µs.
    pub echo_p50_us: u64,
    /// See `echo_p50_us`.
    pub echo_p99_us: u64,
    /// Sum of the gateways' VmRSS, KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kib: Option<u64>,
    /// Sum of the gateways' open fds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fds: Option<u64>,
    /// Redis `used_memory`, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_used_memory: Option<u64>,
}

/// Group fan-out counts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GroupCounts {
    /// Group posts answered 200.
    pub posts_ok: u64,
    /// Group posts failed.
    pub posts_failed: u64,
    /// Deliveries (distinct message and connection).
    pub deliveries: u64,
    /// A message delivered twice to the same connection.
    pub duplicates: u64,
}

/// The report of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultsReport {
    /// `faults` or `soak`.
    pub scenario: String,
    /// The plan.
    pub plan: FaultsPlan,
    /// Unix ms at the start of the load.
    pub started_unix_ms: u64,
    /// Unix ms at the end of the window (before the drain).
    pub window_end_unix_ms: u64,
    /// Pushes: acknowledged (2xx) against delivered.
    pub pushes: Balance,
    /// Posts by answer (`ok`, `gone_410`, `http_503`, `io`, ...).
    pub push_answers: BTreeMap<String, u64>,
    /// Upstream messages: sent against echoed back.
    pub upstream: Balance,
    /// Group fan-out.
    pub groups: GroupCounts,
    /// Connections opened (after `whoami`), lost, closed by churn.
    pub connections: BTreeMap<String, u64>,
    /// Client-visible errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Whole-run push delivery latency.
    pub push_latency: LatSummary,
    /// Whole-run echo round trip.
    pub echo_latency: LatSummary,
    /// One row per `sample_s`.
    pub timeline: Vec<Sample>,
    /// Soak verdict (soak only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak: Option<SoakVerdict>,
    /// No acknowledged push lost, no duplicate, and the soak verdict (if any) passed.
    pub passed: bool,
    /// Remarks.
    pub notes: Vec<String>,
}

#[derive(Clone)]
struct Target {
    id: String,
    serial: u64,
}

#[derive(Default)]
struct Counts {
    push_ok: AtomicU64,
    push_err: AtomicU64,
    push_gone: AtomicU64,
    replies: AtomicU64,
    conn_errs: AtomicU64,
    error_frames: AtomicU64,
    open: AtomicU64,
    opened: AtomicU64,
    lost: AtomicU64,
    churned: AtomicU64,
    group_ok: AtomicU64,
    group_failed: AtomicU64,
}

struct Shared {
    plan: FaultsPlan,
    nodes: Vec<ResolvedNode>,
    dir: Mutex<Vec<Option<Target>>>,
    pushes: Ledger,
    upstream: Ledger,
    group_seen: Mutex<HashSet<(u64, u64)>>,
    group_dups: AtomicU64,
    next_id: AtomicU64,
    next_serial: AtomicU64,
    counts: Counts,
    errors: Mutex<BTreeMap<String, u64>>,
    answers: Mutex<BTreeMap<String, u64>>,
    push_lat: Recorder,
    echo_lat: Recorder,
    sending: RwLock<bool>,
}

impl Shared {
    fn error(&self, kind: &str) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind.to_owned())
            .or_default() += 1;
    }

    fn answer(&self, kind: &str) {
        *self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind.to_owned())
            .or_default() += 1;
    }

    /// Books an echo message unless the load has stopped. Under the gate's read lock, so once
    /// [`Self::close_gate`] returned no message is booked any more and the drain sees every
    /// message booked before (a message whose tick fired just as the load stopped would
    /// otherwise be sent after the drain had looked, and its reply cut off by the close).
    fn book_message(&self, id: u64, serial: u64) -> bool {
        let open = self.sending.read().unwrap_or_else(|p| p.into_inner());
        *open && self.upstream.book(id, serial)
    }

    fn close_gate(&self) {
        *self.sending.write().unwrap_or_else(|p| p.into_inner()) = false;
    }

    fn set_slot(&self, i: usize, t: Option<Target>) {
        self.dir.lock().unwrap_or_else(|p| p.into_inner())[i] = t;
    }

    fn random_target(&self, rng: &mut Rng) -> Option<Target> {
        let dir = self.dir.lock().unwrap_or_else(|p| p.into_inner());
        // A few tries find an open slot unless nearly all are down.
        for _ in 0..8 {
            if let Some(t) = &dir[rng.below(dir.len())] {
                return Some(t.clone());
            }
        }
        None
    }

    /// Books a frame that arrived on connection `serial`.
    fn frame(&self, text: &str, serial: u64, hint: usize) {
        if let Some(rest) = text.strip_prefix("P:") {
            if let Some((id, ns)) = two_fields(rest)
                && self.pushes.arrive(id)
            {
                self.push_lat.record(hint, us_since_wall(ns));
            }
        } else if let Some(rest) = text.strip_prefix("G:") {
            if let Some((id, _)) = two_fields(rest) {
                let mut seen = self.group_seen.lock().unwrap_or_else(|p| p.into_inner());
                if seen.len() < self.plan.max_ids && !seen.insert((id, serial)) {
                    self.group_dups.fetch_add(1, Relaxed);
                }
            }
        } else if let Some(seq) = field_u64(text, r#""seq":"#) {
            if self.upstream.arrive(seq) {
                self.counts.replies.fetch_add(1, Relaxed);
                if let Some(ns) = field_u64(text, r#""t":"#) {
                    self.echo_lat.record(hint, us_since_wall(ns));
                }
            }
        } else {
            self.counts.error_frames.fetch_add(1, Relaxed);
            self.error(&format!("frame_{}", frame_kind(text)));
        }
    }
}

/// A label for a connection that failed while open (`ws_reset_without_close` when the TCP
/// connection ended without a close frame, as when the node is killed).
fn ws_error_kind(e: WsError) -> String {
    match e {
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            "ws_reset_without_close".to_owned()
        }
        other => match ConnError::from(other) {
            ConnError::Ws(_) => "ws_protocol".to_owned(),
            c => format!("ws_{}", c.kind()),
        },
    }
}

/// `<id>:<ns>` at the start of `rest`.
fn two_fields(rest: &str) -> Option<(u64, u64)> {
    let mut it = rest.splitn(3, ':');
    let id = it.next()?.parse().ok()?;
    let ns = it.next()?.parse().ok()?;
    Some((id, ns))
}

/// A short label for an unexpected frame (its `message` field, lowercased, spaces as `_`).
fn frame_kind(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
        .map_or_else(
            || "unknown".to_owned(),
            |m| m.to_lowercase().replace(' ', "_"),
        )
}

/// Runs the load against the plan's nodes and returns the report.
pub async fn run(scenario: &str, plan: FaultsPlan) -> Result<FaultsReport> {
    if plan.nodes.is_empty() || plan.conns == 0 {
        bail!("faults: give at least one --node and --conns > 0");
    }
    let mut nodes = Vec::with_capacity(plan.nodes.len());
    for url in &plan.nodes {
        nodes.push(ResolvedNode::resolve(&Node::same_port(url)).await?);
    }
    let sh = Arc::new(Shared {
        nodes,
        dir: Mutex::new(vec![None; plan.conns]),
        pushes: Ledger::new(plan.max_ids),
        upstream: Ledger::new(plan.max_ids),
        group_seen: Mutex::new(HashSet::new()),
        group_dups: AtomicU64::new(0),
        next_id: AtomicU64::new(1),
        next_serial: AtomicU64::new(1),
        counts: Counts::default(),
        errors: Mutex::new(BTreeMap::new()),
        answers: Mutex::new(BTreeMap::new()),
        push_lat: Recorder::new(16),
        echo_lat: Recorder::new(16),
        sending: RwLock::new(true),
        plan: plan.clone(),
    });
    let started_unix_ms = wall_ms();
    let start = Instant::now();
    let end = start + secs(plan.duration_s, MAX_PHASE);
    // `stop_load` ends posting and sending; `stop_conns` closes the connections after the drain.
    let stop_load = CancellationToken::new();
    let stop_conns = CancellationToken::new();
    let mut tasks = Vec::new();
    for i in 0..plan.conns {
        tasks.push(tokio::spawn(slot(
            i,
            sh.clone(),
            stop_load.clone(),
            stop_conns.clone(),
        )));
    }
    let mut posters = Vec::new();
    if plan.push_rate > 0.0 {
        for j in 0..plan.posters.max(1) {
            posters.push(tokio::spawn(poster(j, sh.clone(), stop_load.clone())));
        }
    }
    if plan.groups > 0 && plan.group_rate > 0.0 {
        posters.push(tokio::spawn(group_poster(sh.clone(), stop_load.clone())));
    }
    let probe = Probe::new(plan.pids.clone(), plan.redis);
    let mut totals = (new_hist(), new_hist());
    let mut timeline = Vec::new();
    let mut last = [0u64; 6];
    let every = secs(plan.sample_s.max(0.1), MAX_PHASE);
    let mut next = start + every;
    while next <= end {
        sleep_until(next.into()).await;
        next += every;
        timeline.push(sample(&sh, &probe, &mut last, &mut totals).await);
    }
    sleep_until(end.into()).await;
    stop_load.cancel();
    sh.close_gate();
    let window_end_unix_ms = wall_ms();
    for p in posters {
        let _ = p.await;
    }
    // Acknowledged pushes and sent messages still unanswered get the drain (a message answered
    // by an error frame never arrives, so the drain runs out after a failure).
    let drain_end = Instant::now() + secs(plan.drain_s, MAX_PHASE);
    while sh.pushes.outstanding(false) + sh.upstream.outstanding(true) > 0
        && Instant::now() < drain_end
    {
        sleep(Duration::from_millis(20)).await;
    }
    stop_conns.cancel();
    for t in tasks {
        let _ = t.await;
    }
    timeline.push(sample(&sh, &probe, &mut last, &mut totals).await);

    let pushes = sh.pushes.balance();
    let upstream = sh.upstream.balance();
    let c = &sh.counts;
    let groups = GroupCounts {
        posts_ok: c.group_ok.load(Relaxed),
        posts_failed: c.group_failed.load(Relaxed),
        deliveries: u64::try_from(
            sh.group_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len(),
        )
        .unwrap_or(u64::MAX),
        duplicates: sh.group_dups.load(Relaxed),
    };
    let connections = BTreeMap::from([
        ("opened".to_owned(), c.opened.load(Relaxed)),
        ("lost".to_owned(), c.lost.load(Relaxed)),
        ("churned".to_owned(), c.churned.load(Relaxed)),
        ("open_at_end".to_owned(), c.open.load(Relaxed)),
    ]);
    let soak = plan
        .soak_warmup_s
        .map(|w| soak::verdict(&timeline, started_unix_ms, w));
    let mut notes = Vec::new();
    if pushes.sent >= u64::try_from(plan.max_ids).unwrap_or(u64::MAX) {
        notes.push(format!(
            "the push ledger reached --max-ids {}: later posts were not sent",
            plan.max_ids
        ));
    }
    if plan.pids.is_empty() && plan.soak_warmup_s.is_some() {
        notes.push("no --pid given: RSS and fds were not sampled".to_owned());
    }
    let passed = pushes.acked_but_lost == 0
        && pushes.duplicates == 0
        && groups.duplicates == 0
        && soak.as_ref().is_none_or(|s| s.passed);
    Ok(FaultsReport {
        scenario: scenario.to_owned(),
        plan,
        started_unix_ms,
        window_end_unix_ms,
        pushes,
        push_answers: sh.answers.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        upstream,
        groups,
        connections,
        errors: sh.errors.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        push_latency: LatSummary::of(&totals.0),
        echo_latency: LatSummary::of(&totals.1),
        timeline,
        soak,
        passed,
        notes,
    })
}

/// Runs, writes the report to `out` (if given), prints a summary line, and fails when
/// `fail_on_loss` and the report did not pass.
pub async fn main(
    scenario: &str,
    plan: FaultsPlan,
    out: Option<std::path::PathBuf>,
    fail_on_loss: bool,
) -> Result<()> {
    let r = tokio::select! {
        r = run(scenario, plan) => r?,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
    };
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
            "passed": r.passed,
            "pushes": r.pushes,
            "upstream": r.upstream,
            "groups": r.groups,
            "connections": r.connections,
            "errors": r.errors,
            "soak": r.soak,
        })
    );
    if fail_on_loss && !r.passed {
        bail!("{scenario}: acknowledged pushes lost, duplicates, or growth (see the report)");
    }
    Ok(())
}

async fn sample(
    sh: &Shared,
    probe: &Probe,
    last: &mut [u64; 6],
    totals: &mut (Histogram<u64>, Histogram<u64>),
) -> Sample {
    let c = &sh.counts;
    let now = [
        c.push_ok.load(Relaxed),
        c.push_err.load(Relaxed),
        c.push_gone.load(Relaxed),
        c.replies.load(Relaxed),
        c.conn_errs.load(Relaxed),
        c.error_frames.load(Relaxed),
    ];
    let d: Vec<u64> = now.iter().zip(last.iter()).map(|(a, b)| a - b).collect();
    *last = now;
    let (ph, eh) = (sh.push_lat.take(), sh.echo_lat.take());
    let _ = totals.0.add(&ph);
    let _ = totals.1.add(&eh);
    let (ps, es) = (LatSummary::of(&ph), LatSummary::of(&eh));
    let probed = probe.read().await;
    Sample {
        t_ms: wall_ms(),
        open: c.open.load(Relaxed),
        push_ok: d[0],
        push_err: d[1],
        push_gone: d[2],
        replies: d[3],
        conn_errs: d[4],
        error_frames: d[5],
        push_p50_us: ps.p50_us,
        push_p99_us: ps.p99_us,
        echo_p50_us: es.p50_us,
        echo_p99_us: es.p99_us,
        rss_kib: probed.rss_kib,
        fds: probed.fds,
        redis_used_memory: probed.redis_used_memory,
    }
}

/// How a connection's session ended.
enum End {
    Stop,
    Churn,
    Lost,
}

async fn slot(i: usize, sh: Arc<Shared>, stop_load: CancellationToken, stop: CancellationToken) {
    let p = &sh.plan;
    let n = sh.nodes.len();
    let limit = secs(p.connect_timeout_s, MAX_PHASE);
    let mut rng = Rng::new(p.seed ^ ((i as u64 + 1) << 20));
    let mut attempt = 0usize;
    let mut backoff = BACKOFF.0;
    if p.ramp_per_s > 0.0 {
        // Slot i opens i / ramp seconds after the start.
        #[allow(clippy::cast_precision_loss)]
        let delay = secs(i as f64 / p.ramp_per_s, MAX_PHASE);
        tokio::select! {
            () = stop.cancelled() => return,
            () = sleep(delay) => {}
        }
    }
    while !stop.is_cancelled() {
        let node_ix = (i + attempt) % n;
        let node = &sh.nodes[node_ix];
        let src = source_addr(i as u64, 16, &node.ws_addr);
        let opened = tokio::select! {
            () = stop.cancelled() => break,
            r = async {
                let mut ws = open(&node.ws_url, node.ws_addr, src, limit).await.map_err(|e| format!("connect_{}", e.kind()))?;
                let id = whoami(&mut ws, CALL_TIMEOUT).await.map_err(|e| format!("whoami_{}", e.kind()))?;
                Ok::<_, String>((ws, id))
            } => r,
        };
        let (ws, id) = match opened {
            Ok(x) => x,
            Err(kind) => {
                sh.error(&kind);
                sh.counts.conn_errs.fetch_add(1, Relaxed);
                attempt += 1;
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        backoff = BACKOFF.0;
        let serial = sh.next_serial.fetch_add(1, Relaxed);
        if p.groups > 0 {
            join_group(&sh, node, &id, i % p.groups).await;
        }
        sh.counts.opened.fetch_add(1, Relaxed);
        sh.counts.open.fetch_add(1, Relaxed);
        sh.set_slot(i, Some(Target { id, serial }));
        let life = (p.churn_per_s > 0.0).then(|| {
            // Mean lifetime conns / churn, spread uniformly over 0.5..1.5 of it.
            #[allow(clippy::cast_precision_loss)]
            let mean = p.conns as f64 / p.churn_per_s;
            #[allow(clippy::cast_precision_loss)]
            let f = 0.5 + (rng.next_u64() % 1000) as f64 / 1000.0;
            Instant::now() + secs(mean * f, MAX_PHASE)
        });
        let end = session(&sh, ws, serial, i, life, &stop_load, &stop, &mut rng).await;
        sh.set_slot(i, None);
        sh.counts.open.fetch_sub(1, Relaxed);
        match end {
            End::Stop => break,
            End::Churn => {
                sh.counts.churned.fetch_add(1, Relaxed);
                sh.pushes.dropped(serial);
                sh.upstream.dropped(serial);
            }
            End::Lost => {
                sh.counts.lost.fetch_add(1, Relaxed);
                sh.counts.conn_errs.fetch_add(1, Relaxed);
                sh.pushes.dropped(serial);
                sh.upstream.dropped(serial);
                attempt += 1;
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = sleep(BACKOFF.0) => {}
                }
            }
        }
    }
}

async fn join_group(sh: &Shared, node: &ResolvedNode, id: &str, g: usize) {
    let path = format!("{}/groups/g{g}", post_path(node, id));
    match once(
        node.cb_addr,
        &node.cb_authority,
        Method::PUT,
        &path,
        Bytes::new(),
        CALL_TIMEOUT,
    )
    .await
    {
        Ok((s, _)) if (200..300).contains(&s) => {}
        Ok((s, _)) => sh.error(&format!("group_join_http_{s}")),
        Err(_) => sh.error("group_join_io"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    sh: &Shared,
    ws: Ws,
    serial: u64,
    hint: usize,
    life: Option<Instant>,
    stop_load: &CancellationToken,
    stop: &CancellationToken,
    rng: &mut Rng,
) -> End {
    let p = &sh.plan;
    let (mut tx, mut rx) = ws.split();
    let far = Instant::now() + MAX_PHASE;
    let life_end = life.unwrap_or(far);
    let sending = p.msg_rate > 0.0;
    #[allow(clippy::cast_precision_loss)]
    let every = if sending {
        secs(p.conns as f64 / p.msg_rate, MAX_PHASE).max(Duration::from_millis(1))
    } else {
        MAX_PHASE
    };
    #[allow(clippy::cast_precision_loss)]
    let phase = every.mul_f64((rng.next_u64() % 1000) as f64 / 1000.0);
    let mut tick = tokio::time::interval_at((Instant::now() + phase).into(), every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let reason = loop {
        tokio::select! {
            () = stop.cancelled() => break End::Stop,
            () = sleep_until(life_end.into()) => break End::Churn,
            _ = tick.tick(), if sending && !stop_load.is_cancelled() => {
                let id = sh.next_id.fetch_add(1, Relaxed);
                if !sh.book_message(id, serial) {
                    continue;
                }
                let text = format!(r#"{{"action":"echo","seq":{id},"t":{}}}"#, wall_ns());
                if tx.send(Message::text(text)).await.is_err() {
                    sh.error("ws_send");
                    return End::Lost;
                }
                sh.upstream.ack(id);
            }
            m = rx.next() => match m {
                Some(Ok(Message::Text(t))) => sh.frame(t.as_str(), serial, hint),
                Some(Ok(Message::Close(f))) => {
                    let code = f.map_or(1005, |f| u16::from(f.code));
                    sh.error(&format!("ws_close_{code}"));
                    return End::Lost;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    sh.error(&ws_error_kind(e));
                    return End::Lost;
                }
                None => {
                    sh.error("ws_eof");
                    return End::Lost;
                }
            },
        }
    };
    // Close handshake; frames that arrive before the server's close still count.
    let _ = timeout(CLOSE_TIMEOUT, async {
        if tx.send(Message::Close(None)).await.is_ok() {
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Text(t) = m {
                    sh.frame(t.as_str(), serial, hint);
                }
            }
        }
    })
    .await;
    reason
}

async fn poster(j: usize, sh: Arc<Shared>, stop: CancellationToken) {
    let p = &sh.plan;
    let n = sh.nodes.len();
    let mut node_ix = j % n;
    let mut rng = Rng::new(p.seed ^ ((j as u64 + 1) << 40) ^ 0x5eed);
    #[allow(clippy::cast_precision_loss)]
    let every = secs(p.posters.max(1) as f64 / p.push_rate, MAX_PHASE);
    let mut tick = tokio::time::interval(every.max(Duration::from_micros(100)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut conn: Option<HttpConn> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(t) = sh.random_target(&mut rng) else {
            continue;
        };
        let node = &sh.nodes[node_ix];
        if conn.as_ref().is_none_or(|c| !c.is_open()) {
            match HttpConn::connect(node.cb_addr, &node.cb_authority, CALL_TIMEOUT).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    sh.error("post_connect");
                    node_ix = (node_ix + 1) % n;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let id = sh.next_id.fetch_add(1, Relaxed);
        if !sh.pushes.book(id, t.serial) {
            continue;
        }
        let mut body = format!("P:{id}:{}:", wall_ns());
        let pad = p.size.saturating_sub(body.len());
        body.extend(std::iter::repeat_n('x', pad));
        let t0 = Instant::now();
        match c
            .request(
                Method::POST,
                &post_path(node, &t.id),
                Bytes::from(body),
                CALL_TIMEOUT,
            )
            .await
        {
            Ok((s, _)) if (200..300).contains(&s) => {
                sh.pushes.ack(id);
                sh.counts.push_ok.fetch_add(1, Relaxed);
                sh.answer("ok");
            }
            Ok((410, _)) => {
                sh.counts.push_gone.fetch_add(1, Relaxed);
                sh.answer("gone_410");
            }
            Ok((s, _)) => {
                sh.counts.push_err.fetch_add(1, Relaxed);
                sh.answer(&format!("http_{s}"));
                sh.error(&format!("post_http_{s}"));
            }
            Err(_) => {
                sh.counts.push_err.fetch_add(1, Relaxed);
                let kind = if t0.elapsed() >= CALL_TIMEOUT {
                    "timeout"
                } else {
                    "io"
                };
                sh.answer(kind);
                sh.error(&format!("post_{kind}"));
                conn = None;
                node_ix = (node_ix + 1) % n;
            }
        }
    }
}

async fn group_poster(sh: Arc<Shared>, stop: CancellationToken) {
    let p = &sh.plan;
    let mut rng = Rng::new(p.seed ^ 0x6706);
    let every = secs(1.0 / p.group_rate, MAX_PHASE).max(Duration::from_millis(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut k = 0usize;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        k += 1;
        let node = &sh.nodes[k % sh.nodes.len()];
        let g = rng.below(p.groups);
        let id = sh.next_id.fetch_add(1, Relaxed);
        let path = format!(
            "{}/@groups/g{g}",
            node.cb_prefix
                .trim_end_matches('/')
                .trim_end_matches("/@connections")
        );
        let body = Bytes::from(format!("G:{id}:{}:", wall_ns()));
        match once(
            node.cb_addr,
            &node.cb_authority,
            Method::POST,
            &path,
            body,
            CALL_TIMEOUT,
        )
        .await
        {
            Ok((200, _)) => {
                sh.counts.group_ok.fetch_add(1, Relaxed);
            }
            Ok((s, _)) => {
                sh.counts.group_failed.fetch_add(1, Relaxed);
                sh.error(&format!("group_post_http_{s}"));
            }
            Err(_) => {
                sh.counts.group_failed.fetch_add(1, Relaxed);
                sh.error("group_post_io");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frames() {
        assert_eq!(two_fields("12:345:xxx"), Some((12, 345)));
        assert_eq!(two_fields("12"), None);
        assert_eq!(
            frame_kind(r#"{"message":"Internal server error","connectionId":"a"}"#),
            "internal_server_error"
        );
        assert_eq!(frame_kind("??"), "unknown");
        assert_eq!(
            ws_error_kind(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            )),
            "ws_reset_without_close"
        );
        assert_eq!(ws_error_kind(WsError::ConnectionClosed), "ws_closed");
    }
}
