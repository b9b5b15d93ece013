//! `ready`: server memory per connection when idle and once each connection has been used.
//!
//! 1. Opens `conns` connections and sends nothing on them; the orchestrator reads the server's
//!    settled RSS at the `connected` barrier (the **idle** point).
//! 2. Every connection sends one `{"action":"<action>",...}` message (the route of `upstream`:
//!    two-way, answered by the built-in backend behind a gateway, echoed by raw) and waits for
//!    the reply, then learns its id with `whoami` (skipped when the action is `whoami` itself),
//!    at most `inflight` round trips at a time.
//! 3. One push is posted to every connection through the callback API (as in `push`) by
//!    `posters` keep-alive HTTP connections, which are closed once all posts are answered;
//!    every connection waits for its push.
//! 4. The orchestrator reads the settled RSS again at the `ready` barrier (the **ready** point).
//!
//! Summary: `rss_idle_kib_per_conn` and `rss_ready_kib_per_conn` (RSS at the point − RSS before
//! the first connection, ÷ connections open at that point), `ready_over_idle`, and the counts.

use crate::client::{self, ConnError, Ws, parse_connection_id};
use crate::clock::{secs, us, us_since_wall, wall_ns};
use crate::httpc::HttpConn;
use crate::meter::{Meter, Phase};
use crate::orchestrate::TargetRun;
use crate::scenario::open::{OpenOpts, Opened, open_all};
use crate::scenario::push::{payload, payload_ns, post_path};
use crate::scenario::upstream::message;
use crate::scenario::{Extra, MAX_PHASE, ResolvedNode, ShareCtx, split, split_usize};
use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use hyper::Method;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::timeout_at;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Ready: idle memory, then memory once every connection has sent a message and got a push.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadyPlan {
    /// Connections.
    pub conns: u64,
    /// Handshakes, and later message round trips, in flight at most.
    pub inflight: usize,
    /// Route of the message (a two-way route).
    pub action: String,
    /// Message and push size, bytes.
    pub size: usize,
    /// Concurrent posters (one keep-alive HTTP connection each).
    pub posters: usize,
    /// Longest wait for a reply, a `whoami` answer, a post, or the pushes once posted, s.
    pub reply_timeout_s: f64,
}

impl ReadyPlan {
    /// Connections held at once (the connections and the posters' HTTP connections).
    pub fn held_conns(&self) -> u64 {
        self.conns + u64::try_from(self.posters).unwrap_or(0)
    }

    /// Worker `i` of `n`: its share of the connections, round trips and posters.
    pub fn share(&self, i: usize, n: usize) -> Self {
        Self {
            conns: split(self.conns, i, n),
            inflight: split_usize(self.inflight, i, n).max(1),
            posters: split_usize(self.posters, i, n).max(1),
            ..self.clone()
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if self.conns == 0 || self.conns > 2_000_000 {
            bail!("--conns must be within 1..=2000000");
        }
        if self.action.is_empty() || self.action.contains(['"', '\\']) {
            bail!("--action must be a non-empty route key without quotes or backslashes");
        }
        if self.size > 131_072 {
            bail!("--size must be at most 131072 (the callback API limit)");
        }
        if self.posters == 0 || self.posters > 4_096 {
            bail!("--posters must be within 1..=4096");
        }
        if !(0.01..=600.0).contains(&self.reply_timeout_s) {
            bail!("--reply-timeout must be within 0.01..=600 s");
        }
        Ok(())
    }

    fn reply_timeout(&self) -> Duration {
        secs(self.reply_timeout_s, MAX_PHASE)
    }

    /// Roughly how long a run takes, s.
    pub fn expected_secs(&self) -> u64 {
        self.conns / 2_000 + 3
    }

    /// A generous upper bound on a run, for the watchdog.
    pub fn time_bound(&self, connect_timeout: Duration) -> Duration {
        Duration::from_secs(self.conns / 200 + 120) + connect_timeout + self.reply_timeout() * 4
    }
}

/// Counts shared by a share's connection tasks.
#[derive(Default)]
struct Counts {
    replies: AtomicU64,
    ids: AtomicU64,
    dropped: AtomicU64,
    posts_ok: AtomicU64,
    posts_gone: AtomicU64,
    posts_failed: AtomicU64,
}

/// Runs the ready share.
pub async fn run(ctx: &mut ShareCtx, p: &ReadyPlan) -> Result<Extra> {
    ctx.ctl.barrier("start", 0).await?;
    ctx.phase(Phase::Connect).await;
    let (conns, stats) = open_all(
        ctx,
        &OpenOpts {
            count: p.conns,
            inflight: p.inflight,
            rate: 0.0,
            whoami: false,
            groups: 0,
            answer_pings: false,
        },
    )
    .await;
    let opened = u64::try_from(conns.len()).unwrap_or(0);
    ctx.phase(Phase::Hold).await;
    // The idle point: everything open, nothing sent.
    ctx.ctl.barrier("connected", ctx.meter.open_now()).await?;

    ctx.phase(Phase::Measure).await;
    ctx.ctl.mark("measure").await;
    let limit = p.reply_timeout();
    let counts = Arc::new(Counts::default());
    let (pushes_tx, mut pushes_rx) = watch::channel(0u64);
    let pushes_tx = Arc::new(pushes_tx);
    let stop = CancellationToken::new();
    let (ids_tx, mut ids_rx) = mpsc::channel(conns.len().max(1));
    let sem = Arc::new(Semaphore::new(p.inflight.max(1)));
    let mut tasks = Vec::with_capacity(conns.len());
    for c in conns {
        let conn = Conn {
            meter: ctx.meter.clone(),
            counts: counts.clone(),
            pushes: pushes_tx.clone(),
            action: p.action.clone(),
            size: p.size,
            limit,
        };
        let (sem, ids_tx, stop) = (sem.clone(), ids_tx.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let Opened {
                local,
                node,
                mut ws,
                ..
            } = c;
            let hint = usize::try_from(local).unwrap_or(0);
            let permit = sem.acquire_owned().await;
            let id = conn.get_ready(&mut ws, local, hint).await;
            drop(permit);
            let _ = ids_tx.send(id.map(|id| (node, id))).await;
            // The collector stops once every task has answered.
            drop(ids_tx);
            conn.hold(&mut ws, hint, &stop).await;
            conn.meter.conn_down();
        }));
    }
    drop(ids_tx);
    let mut ids = Vec::with_capacity(tasks.len());
    while let Some(r) = ids_rx.recv().await {
        ids.extend(r);
    }

    post_each(ctx, &ids, p, &counts).await;
    let posted = counts.posts_ok.load(Relaxed);
    let deadline = Instant::now() + limit;
    let _ = timeout_at(deadline.into(), pushes_rx.wait_for(|n| *n >= posted)).await;
    let pushes = *pushes_rx.borrow();
    if pushes < posted {
        ctx.meter.op_error("push_timeout");
    }
    ctx.phase(Phase::Hold).await;
    ctx.ctl.mark("measure-end").await;
    // The ready point: every connection used once, the posters' connections closed.
    ctx.ctl.barrier("ready", ctx.meter.open_now()).await?;
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }

    let replies = counts.replies.load(Relaxed);
    let mut extra = Extra::default();
    let mut put = |k: &str, v: u64| {
        extra.counters.insert(k.into(), v);
    };
    put("opened", opened);
    put("replies", replies);
    put("ids", counts.ids.load(Relaxed));
    put("posts_ok", posted);
    put("posts_gone", counts.posts_gone.load(Relaxed));
    put("posts_failed", counts.posts_failed.load(Relaxed));
    put("pushes_received", pushes);
    put("lost", posted.saturating_sub(pushes));
    put("missing_replies", opened.saturating_sub(replies));
    put("missing_pushes", opened.saturating_sub(pushes));
    put("dropped_while_held", counts.dropped.load(Relaxed));
    put("skipped_conns", stats.skipped);
    Ok(extra)
}

/// What a connection task needs.
struct Conn {
    meter: Arc<Meter>,
    counts: Arc<Counts>,
    pushes: Arc<watch::Sender<u64>>,
    action: String,
    size: usize,
    limit: Duration,
}

impl Conn {
    /// One message and its reply, then the id (from the reply when the action is `whoami`).
    async fn get_ready(&self, ws: &mut Ws, seq: u64, hint: usize) -> Option<String> {
        let t0 = Instant::now();
        let msg = message(&self.action, seq, wall_ns(), self.size);
        let reply = tokio::time::timeout(self.limit, async {
            ws.send(Message::text(msg)).await?;
            next_text(ws).await
        })
        .await;
        let reply = match reply {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => {
                self.meter.op_error(&e.kind());
                return None;
            }
            Err(_) => {
                self.meter.op_error("reply_timeout");
                return None;
            }
        };
        self.meter.lat.record(hint, us(t0.elapsed()));
        self.meter.op();
        self.counts.replies.fetch_add(1, Relaxed);
        let id = if self.action == "whoami" {
            parse_connection_id(&reply).ok_or(ConnError::BadReply)
        } else {
            client::whoami(ws, self.limit).await
        };
        match id {
            Ok(id) => {
                self.counts.ids.fetch_add(1, Relaxed);
                Some(id)
            }
            Err(e) => {
                self.meter.op_error(&format!("whoami_{}", e.kind()));
                None
            }
        }
    }

    /// Holds the connection until `stop`, counting pushes as they arrive.
    async fn hold(&self, ws: &mut Ws, hint: usize, stop: &CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                m = ws.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        if let Some(ns) = payload_ns(t.as_str()) {
                            self.meter.aux.record(hint, us_since_wall(ns));
                            self.meter.op();
                            self.pushes.send_modify(|n| *n += 1);
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => {
                        self.counts.dropped.fetch_add(1, Relaxed);
                        self.meter.op_error("dropped_while_held");
                        return;
                    }
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

/// The next text (or binary) frame as text.
async fn next_text(ws: &mut Ws) -> Result<String, ConnError> {
    while let Some(m) = ws.next().await {
        match m? {
            Message::Text(t) => return Ok(t.as_str().to_owned()),
            Message::Binary(b) => return Ok(String::from_utf8_lossy(&b).into_owned()),
            Message::Close(_) => return Err(ConnError::Closed),
            _ => {}
        }
    }
    Err(ConnError::Closed)
}

/// Posts one push to every `(node, id)`, `posters` lanes at a time, each lane with one
/// keep-alive connection per node; the connections close when their lane is done.
async fn post_each(ctx: &ShareCtx, ids: &[(usize, String)], p: &ReadyPlan, counts: &Arc<Counts>) {
    let width = p.posters.max(1);
    let mut lanes: Vec<Vec<(usize, String)>> = vec![Vec::new(); width];
    for (i, item) in ids.iter().enumerate() {
        lanes[i % width].push(item.clone());
    }
    let limit = p.reply_timeout();
    let mut tasks = Vec::with_capacity(width);
    for (lane_ix, lane) in lanes.into_iter().enumerate() {
        let (nodes, meter, counts) = (ctx.nodes.clone(), ctx.meter.clone(), counts.clone());
        let size = p.size;
        tasks.push(tokio::spawn(async move {
            post_lane(&nodes, lane, lane_ix, size, limit, &meter, &counts).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn post_lane(
    nodes: &[ResolvedNode],
    lane: Vec<(usize, String)>,
    lane_ix: usize,
    size: usize,
    limit: Duration,
    meter: &Meter,
    counts: &Counts,
) {
    let mut http: BTreeMap<usize, HttpConn> = BTreeMap::new();
    for (seq, (node_ix, id)) in lane.into_iter().enumerate() {
        let node = &nodes[node_ix];
        if !http.get(&node_ix).is_some_and(HttpConn::is_open) {
            match HttpConn::connect(node.cb_addr, &node.cb_authority, limit).await {
                Ok(c) => {
                    http.insert(node_ix, c);
                }
                Err(_) => {
                    counts.posts_failed.fetch_add(1, Relaxed);
                    meter.op_error("post_connect");
                    continue;
                }
            }
        }
        let Some(conn) = http.get_mut(&node_ix) else {
            continue;
        };
        let seq = u64::try_from(seq * 4_096 + lane_ix).unwrap_or(0);
        let body = payload(seq, wall_ns(), size);
        match conn
            .request(Method::POST, &post_path(node, &id), body, limit)
            .await
        {
            Ok((s, _)) if (200..300).contains(&s) => {
                counts.posts_ok.fetch_add(1, Relaxed);
            }
            Ok((410, _)) => {
                counts.posts_gone.fetch_add(1, Relaxed);
                meter.op_error("post_http_410");
            }
            Ok((s, _)) => {
                counts.posts_failed.fetch_add(1, Relaxed);
                meter.op_error(&format!("post_http_{s}"));
            }
            Err(_) => {
                counts.posts_failed.fetch_add(1, Relaxed);
                meter.op_error("post_io");
                http.remove(&node_ix);
            }
        }
    }
}

/// RSS per connection at the idle and ready points, their ratio, and the counts.
pub fn summarize(run: &TargetRun, summary: &mut BTreeMap<String, f64>) {
    let count = |k: &str| run.counters.get(k).copied().unwrap_or(0);
    let rss = |k: &str| run.snaps.get(k).map_or(0, |(_, s)| s.rss_kib);
    let open = |k: &str| run.open_at.get(k).copied().unwrap_or(0);
    let before = rss("before");
    // Counts and KiB are far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let per_conn = |point: &str| -> Option<f64> {
        let (r, n) = (rss(point), open(point));
        (r > 0 && n > 0).then(|| r.saturating_sub(before) as f64 / n as f64)
    };
    let idle = per_conn("connected");
    let ready = per_conn("ready");
    if let Some(v) = idle {
        summary.insert("rss_idle_kib_per_conn".into(), v);
    }
    if let Some(v) = ready {
        summary.insert("rss_ready_kib_per_conn".into(), v);
    }
    if let (Some(i), Some(r)) = (idle, ready)
        && i > 0.0
    {
        summary.insert("ready_over_idle".into(), r / i);
    }
    #[allow(clippy::cast_precision_loss)]
    {
        summary.insert("conns_open".into(), open("connected") as f64);
        summary.insert("replies".into(), count("replies") as f64);
        summary.insert("pushes_received".into(), count("pushes_received") as f64);
        summary.insert(
            "errors".into(),
            (run.total.errs + run.total.conn_errs) as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ReadyPlan {
        ReadyPlan {
            conns: 3_001,
            inflight: 256,
            action: "echo".into(),
            size: 64,
            posters: 32,
            reply_timeout_s: 10.0,
        }
    }

    #[test]
    fn shares_add_up_and_ranges_are_checked() {
        let p = plan();
        p.validate().expect("valid");
        let parts: Vec<ReadyPlan> = (0..3).map(|i| p.share(i, 3)).collect();
        assert_eq!(parts.iter().map(|s| s.conns).sum::<u64>(), 3_001);
        assert_eq!(parts.iter().map(|s| s.posters).sum::<usize>(), 32);
        assert_eq!(parts[2].action, "echo");
        for bad in [
            ReadyPlan { conns: 0, ..plan() },
            ReadyPlan {
                action: "a\"b".into(),
                ..plan()
            },
            ReadyPlan {
                posters: 0,
                ..plan()
            },
            ReadyPlan {
                reply_timeout_s: 0.0,
                ..plan()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
