//! `fanout`: N connections all join one group, then one poster sends M messages to the group,
//! one at a time, each due `--interval-ms` after the previous one, and every member times every
//! delivery.
//!
//! - Joining: `PUT /{stage}/@connections/{id}/groups/{group}` for every connection, on the node
//!   it is connected to (the raw server implements the same call).
//! - Posting: worker 0 posts `F:<seq>:<due ns>:xxx…` to `POST /{stage}/@groups/{group}` on the
//!   first node, sequentially on one keep-alive connection. The timestamp is the due time, so a
//!   fan-out that falls behind shows up as latency.
//! - `delivery_p50/p99/p999_ms`: every delivery's latency from its message's due time.
//! - `deliveries_per_sec`: all deliveries ÷ the sum over messages of that message's fan-out time
//!   (due time → its last delivery anywhere), i.e. the rate while a fan-out is in progress.
//! - `lost`: members × messages − deliveries (a failed post counts its deliveries as lost and
//!   shows in `posts_failed`).

use crate::clock::{secs, us, us_since_wall};
use crate::httpc::HttpConn;
use crate::meter::Phase;
use crate::orchestrate::TargetRun;
use crate::scenario::open::{OpenOpts, Opened, open_all};
use crate::scenario::push::post_path;
use crate::scenario::{Extra, MAX_PHASE, ResolvedNode, ShareCtx, split, split_usize};
use anyhow::{Result, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use hyper::Method;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Longest wait for one post or join.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the last deliveries after the last post was due.
const DRAIN: Duration = Duration::from_secs(10);
/// Prefix of a maximum that holds one message's fan-out time, µs (`span_us.<seq>`).
const SPAN: &str = "span_us.";

/// Fan-out: one group of `conns` members, `messages` posts to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FanoutPlan {
    /// Members (connections), spread over the nodes.
    pub conns: u64,
    /// Handshakes in flight at most while opening.
    pub inflight: usize,
    /// The group.
    pub group: String,
    /// Messages posted to the group.
    pub messages: u64,
    /// Time between the due times of two posts, ms.
    pub interval_ms: f64,
    /// Payload size, bytes.
    pub size: usize,
    /// Joins in flight at once.
    pub join_concurrency: usize,
}

impl FanoutPlan {
    /// Connections held at once (members, join and post connections).
    pub fn held_conns(&self) -> u64 {
        self.conns + u64::try_from(self.join_concurrency).unwrap_or(0) + 1
    }

    /// Worker `i` of `n`: its share of the members; worker 0 posts.
    pub fn share(&self, i: usize, n: usize) -> Self {
        Self {
            conns: split(self.conns, i, n),
            inflight: split_usize(self.inflight, i, n).max(1),
            join_concurrency: split_usize(self.join_concurrency, i, n).max(1),
            ..self.clone()
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if self.conns == 0 || self.conns > 2_000_000 {
            bail!("--conns must be within 1..=2000000");
        }
        if self.messages == 0 || self.messages > 100_000 {
            bail!("--messages must be within 1..=100000");
        }
        if !(0.0..=60_000.0).contains(&self.interval_ms) {
            bail!("--interval-ms must be within 0..=60000");
        }
        if self.size > 131_072 {
            bail!("--size must be at most 131072 (the callback API limit)");
        }
        if self.group.is_empty()
            || !self
                .group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            bail!("--group must be letters, digits and - _ . :");
        }
        if self.join_concurrency == 0 || self.join_concurrency > 1_024 {
            bail!("--join-concurrency must be within 1..=1024");
        }
        Ok(())
    }

    fn posting(&self) -> Duration {
        // messages and interval are bounded by validate().
        #[allow(clippy::cast_precision_loss)]
        let ms = self.interval_ms * self.messages as f64;
        secs(ms / 1e3, MAX_PHASE)
    }

    /// Roughly how long a run takes, s.
    pub fn expected_secs(&self) -> u64 {
        self.conns / 5_000 + self.posting().as_secs() + 2
    }

    /// A generous upper bound on a run, for the watchdog.
    pub fn time_bound(&self, connect_timeout: Duration) -> Duration {
        Duration::from_secs(self.conns / 500 + 60)
            + connect_timeout
            + self.posting()
            + DRAIN
            + Duration::from_secs(60)
    }
}

/// `F:<seq>:<ns>:` padded with `x` to `size` bytes.
pub fn payload(seq: u64, t_ns: u64, size: usize) -> Bytes {
    let mut s = format!("F:{seq}:{t_ns}:");
    let pad = size.saturating_sub(s.len());
    s.extend(std::iter::repeat_n('x', pad));
    Bytes::from(s)
}

/// `(seq, ns)` of a fan-out payload.
pub fn parse(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.strip_prefix("F:")?.splitn(3, ':');
    let seq = fields.next()?.parse().ok()?;
    let ns = fields.next()?.parse().ok()?;
    Some((seq, ns))
}

/// `/{stage}` of a node (its callback prefix without `/@connections/`).
fn stage_path(node: &ResolvedNode) -> &str {
    node.cb_prefix.trim_end_matches("/@connections/")
}

/// Joins every opened connection to `group` on its own node, `concurrency` calls at a time.
async fn join_all(ctx: &ShareCtx, conns: &[Opened], group: &str, concurrency: usize) -> u64 {
    let width = concurrency.max(1);
    let mut lanes: Vec<Vec<(usize, String)>> = vec![Vec::new(); width];
    for (i, c) in conns.iter().enumerate() {
        if let Some(id) = &c.id {
            lanes[i % width].push((c.node, id.clone()));
        }
    }
    let failed = Arc::new(AtomicU64::new(0));
    let limit = ctx.connect_timeout();
    let mut tasks = Vec::with_capacity(lanes.len());
    for lane in lanes {
        let nodes = ctx.nodes.clone();
        let meter = ctx.meter.clone();
        let failed = failed.clone();
        let group = group.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut http: BTreeMap<usize, HttpConn> = BTreeMap::new();
            for (node_ix, id) in lane {
                let node = &nodes[node_ix];
                if !http.get(&node_ix).is_some_and(HttpConn::is_open) {
                    match HttpConn::connect(node.cb_addr, &node.cb_authority, limit).await {
                        Ok(c) => {
                            http.insert(node_ix, c);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Relaxed);
                            meter.conn_error("join_connect");
                            continue;
                        }
                    }
                }
                let Some(conn) = http.get_mut(&node_ix) else {
                    continue;
                };
                let path = format!("{}/groups/{group}", post_path(node, &id));
                match conn
                    .request(Method::PUT, &path, Bytes::new(), CALL_TIMEOUT)
                    .await
                {
                    Ok((s, _)) if (200..300).contains(&s) => {}
                    Ok((s, _)) => {
                        failed.fetch_add(1, Relaxed);
                        meter.conn_error(&format!("join_http_{s}"));
                    }
                    Err(_) => {
                        failed.fetch_add(1, Relaxed);
                        meter.conn_error("join_io");
                        http.remove(&node_ix);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    failed.load(Relaxed)
}

/// Per-message fan-out times (µs from due time to the latest delivery seen).
struct Spans(Vec<AtomicU64>);

impl Spans {
    fn new(messages: u64) -> Self {
        Self((0..messages).map(|_| AtomicU64::new(0)).collect())
    }

    fn record(&self, seq: u64, latency_us: u64) {
        if let Some(slot) = usize::try_from(seq).ok().and_then(|i| self.0.get(i)) {
            slot.fetch_max(latency_us, Relaxed);
        }
    }
}

/// Runs the fan-out share.
pub async fn run(ctx: &mut ShareCtx, p: &FanoutPlan) -> Result<Extra> {
    ctx.ctl.barrier("start", 0).await?;
    let (conns, stats) = open_all(
        ctx,
        &OpenOpts {
            count: p.conns,
            inflight: p.inflight,
            rate: 0.0,
            whoami: true,
            groups: 0,
            answer_pings: false,
        },
    )
    .await;
    let join_failed = join_all(ctx, &conns, &p.group, p.join_concurrency).await;
    let members = u64::try_from(conns.len())
        .unwrap_or(0)
        .saturating_sub(join_failed);
    ctx.ctl.barrier("connected", ctx.meter.open_now()).await?;

    let spans = Arc::new(Spans::new(p.messages));
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let mut receivers = Vec::with_capacity(conns.len());
    for c in conns {
        let (meter, spans, delivered, stop) = (
            ctx.meter.clone(),
            spans.clone(),
            delivered.clone(),
            stop.clone(),
        );
        let hint = usize::try_from(c.local).unwrap_or(0);
        let mut ws = c.ws;
        receivers.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    m = ws.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            if let Some((seq, ns)) = parse(t.as_str()) {
                                let latency = us_since_wall(ns);
                                meter.lat.record(hint, latency);
                                meter.op();
                                spans.record(seq, latency);
                                delivered.fetch_add(1, Relaxed);
                            }
                        }
                        Some(Ok(Message::Close(_)) | Err(_)) | None => {
                            meter.op_error("receiver_closed");
                            break;
                        }
                        Some(Ok(_)) => {}
                    },
                }
            }
            meter.conn_down();
        }));
    }

    let start = Instant::now();
    let end = start + p.posting() + DRAIN;
    let expected = members * p.messages;
    let posts = Arc::new(AtomicU64::new(0));
    let gate = CancellationToken::new();
    let poster = (ctx.spec.worker == 0).then(|| {
        let node = ctx.nodes[0].clone();
        let (meter, posts, gate, anchor, plan) = (
            ctx.meter.clone(),
            posts.clone(),
            gate.clone(),
            ctx.anchor,
            p.clone(),
        );
        let limit = ctx.connect_timeout();
        tokio::spawn(async move {
            gate.cancelled().await;
            post_all(&node, &plan, start, anchor, &meter, &posts, limit).await;
        })
    });
    let work = {
        let delivered = delivered.clone();
        async move {
            if let Some(poster) = poster {
                let _ = poster.await;
            }
            while delivered.load(Relaxed) < expected && Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    ctx.run_timed(Duration::ZERO, &gate, work, end).await;
    ctx.phase(Phase::Drain).await;
    stop.cancel();
    for r in receivers {
        let _ = r.await;
    }
    let got = delivered.load(Relaxed);
    let mut extra = Extra::default();
    extra.counters.insert("members".into(), members);
    extra.counters.insert("delivered".into(), got);
    extra
        .counters
        .insert("lost".into(), expected.saturating_sub(got));
    extra.counters.insert("join_failed".into(), join_failed);
    extra.counters.insert("skipped_conns".into(), stats.skipped);
    if ctx.spec.worker == 0 {
        let ok = posts.load(Relaxed);
        extra.counters.insert("posts_ok".into(), ok);
        extra
            .counters
            .insert("posts_failed".into(), p.messages.saturating_sub(ok));
    }
    for (seq, span) in spans.0.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let value = span.load(Relaxed) as f64;
        extra.maxima.insert(format!("{SPAN}{seq}"), value);
    }
    Ok(extra)
}

/// Posts every message on one keep-alive connection, each at its due time (or as soon as the
/// previous one is answered, when that is later).
async fn post_all(
    node: &ResolvedNode,
    p: &FanoutPlan,
    start: Instant,
    anchor: crate::clock::Anchor,
    meter: &crate::meter::Meter,
    posts: &AtomicU64,
    limit: Duration,
) {
    let path = format!("{}/@groups/{}", stage_path(node), p.group);
    let mut conn: Option<HttpConn> = None;
    let interval = secs(p.interval_ms / 1e3, MAX_PHASE);
    for seq in 0..p.messages {
        let due = start + interval * u32::try_from(seq).unwrap_or(u32::MAX);
        sleep_until(due.into()).await;
        if conn.as_ref().is_none_or(|c| !c.is_open()) {
            match HttpConn::connect(node.cb_addr, &node.cb_authority, limit).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    meter.op_error("post_connect");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let body = payload(seq, anchor.wall_ns_of(due), p.size);
        let t0 = Instant::now();
        match c.request(Method::POST, &path, body, CALL_TIMEOUT).await {
            Ok((s, _)) if (200..300).contains(&s) => {
                meter.aux.record(0, us(t0.elapsed()));
                posts.fetch_add(1, Relaxed);
            }
            Ok((s, _)) => meter.op_error(&format!("post_http_{s}")),
            Err(_) => {
                meter.op_error("post_io");
                conn = None;
            }
        }
    }
}

/// The fan-out figures of a run: deliveries per second while fanning out, the slowest
/// message's fan-out time, losses and failures.
pub fn summarize(run: &TargetRun, summary: &mut BTreeMap<String, f64>) {
    let spans_ms: Vec<f64> = run
        .maxima
        .iter()
        .filter(|(k, _)| k.starts_with(SPAN))
        .map(|(_, us)| us / 1e3)
        .collect();
    let span_s: f64 = spans_ms.iter().sum::<f64>() / 1e3;
    let count = |k: &str| run.counters.get(k).copied().unwrap_or(0);
    // Counts are far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    {
        if span_s > 0.0 {
            summary.insert(
                "deliveries_per_sec".into(),
                count("delivered") as f64 / span_s,
            );
        }
        summary.insert("members".into(), count("members") as f64);
        for k in ["lost", "posts_failed", "join_failed"] {
            summary.insert(k.into(), count(k) as f64);
        }
    }
    if let Some(max) = spans_ms.iter().copied().reduce(f64::max) {
        summary.insert("fanout_max_ms".into(), max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_shares_add_up() {
        let p = payload(7, 1_700_000_000_123_456_789, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(
            parse(std::str::from_utf8(&p).unwrap()),
            Some((7, 1_700_000_000_123_456_789))
        );
        assert_eq!(parse("P:1:2:x"), None);
        let plan = FanoutPlan {
            conns: 10_001,
            inflight: 256,
            group: "bench".into(),
            messages: 20,
            interval_ms: 250.0,
            size: 64,
            join_concurrency: 32,
        };
        plan.validate().expect("valid");
        let total: u64 = (0..3).map(|i| plan.share(i, 3).conns).sum();
        assert_eq!(total, 10_001);
        assert_eq!(plan.share(1, 3).messages, 20);
        let bad = FanoutPlan {
            group: "no spaces".into(),
            ..plan
        };
        assert!(bad.validate().is_err());
    }
}
