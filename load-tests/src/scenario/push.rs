//! `push` (and `cross-node`): post to connections through the callback API and time delivery.
//!
//! Each poster owns one keep-alive HTTP/1.1 connection to one node's callback API and posts
//! `P:<seq>:<ns>:xxx` to a uniformly random connection of that node. Closed loop by default
//! (one request in flight per poster); with a rate, each poster follows its own schedule and
//! the due time is the `<ns>` in the payload, so delivery latency includes any backlog.

use crate::client::field_u64;
use crate::clock::{Rng, Schedule, secs, us, us_since_wall, wall_ns};
use crate::httpc::HttpConn;
use crate::meter::Meter;
use crate::scenario::open::{OpenOpts, open_all};
use crate::scenario::{Extra, MAX_PHASE, PushPlan, ResolvedNode, ShareCtx};
use bytes::Bytes;
use futures_util::StreamExt;
use hyper::Method;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Characters escaped in a connection id path segment (AWS SDKs escape `=` as `%3D`).
const ID_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Longest wait for one post.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for outstanding deliveries once posting stopped.
const DRAIN: Duration = Duration::from_secs(3);
/// Reconnects a poster makes before giving up.
const MAX_RECONNECTS: u32 = 3;

/// `P:<seq>:<ns>:` padded with `x` to `size` bytes.
pub fn payload(seq: u64, t_ns: u64, size: usize) -> Bytes {
    let mut s = format!("P:{seq}:{t_ns}:");
    let pad = size.saturating_sub(s.len());
    s.extend(std::iter::repeat_n('x', pad));
    Bytes::from(s)
}

/// The timestamp of a push payload.
pub fn payload_ns(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("P:")?;
    let colon = rest.find(':')?;
    field_u64(&rest[colon + 1..], "")
}

/// The callback path for connection `id` on `node`.
pub fn post_path(node: &ResolvedNode, id: &str) -> String {
    format!("{}{}", node.cb_prefix, utf8_percent_encode(id, ID_ESCAPE))
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    gone: AtomicU64,
    failed: AtomicU64,
    seq: AtomicU64,
}

/// Runs the push share.
pub async fn run(ctx: &mut ShareCtx, p: &PushPlan) -> anyhow::Result<Extra> {
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
    ctx.ctl.barrier("connected", ctx.meter.open_now()).await?;

    // Connection ids grouped by node; posters of node k post to node k's connections.
    let mut ids: Vec<Vec<String>> = vec![Vec::new(); ctx.nodes.len()];
    let stop = CancellationToken::new();
    let mut receivers = Vec::with_capacity(conns.len());
    for c in conns {
        if let Some(id) = c.id {
            ids[c.node].push(id);
        }
        let meter = ctx.meter.clone();
        let stop = stop.clone();
        let hint = usize::try_from(c.local).unwrap_or(0);
        let mut ws = c.ws;
        receivers.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    m = ws.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            if let Some(ns) = payload_ns(t.as_str()) {
                                meter.lat.record(hint, us_since_wall(ns));
                                meter.op();
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
    let ids: Arc<Vec<Vec<String>>> = Arc::new(ids);

    let warmup = secs(p.warmup_s, MAX_PHASE);
    let start = Instant::now();
    let end = start + warmup + secs(p.duration_s, MAX_PHASE);
    let counts = Arc::new(Counts::default());
    let count = if p.count == 0 { u64::MAX } else { p.count };
    let posters = p.posters.max(1);
    #[allow(clippy::cast_precision_loss)]
    let per_poster_rate = p.rate / posters as f64;
    let limit = ctx.connect_timeout();
    let gate = CancellationToken::new();
    let mut tasks = Vec::with_capacity(posters);
    for j in 0..posters {
        let node_ix = j % ctx.nodes.len();
        let poster = Poster {
            node: ctx.nodes[node_ix].clone(),
            ids: ids.clone(),
            node_ix,
            meter: ctx.meter.clone(),
            counts: counts.clone(),
            count,
            size: p.size,
            end,
            hint: j,
            rng: Rng::new(ctx.spec.seed ^ ((j as u64 + 1) << 32) ^ ctx.spec.worker as u64),
        };
        #[allow(clippy::cast_precision_loss)]
        let sched = (per_poster_rate > 0.0)
            .then(|| Schedule::new(start, per_poster_rate, j as f64 / posters as f64));
        let anchor = ctx.anchor;
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            gate.cancelled().await;
            poster.run(sched, anchor, limit).await;
        }));
    }
    let work = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    ctx.run_timed(warmup, &gate, work, end).await;

    // Wait (bounded) for posts answered 2xx to be delivered.
    let drain_end = Instant::now() + DRAIN;
    while ctx.meter.ops_total() < counts.ok.load(Relaxed) && Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    for r in receivers {
        let _ = r.await;
    }
    let ok = counts.ok.load(Relaxed);
    let delivered = ctx.meter.ops_total();
    let mut extra = Extra::default();
    extra.counters.insert("posts_ok".into(), ok);
    extra
        .counters
        .insert("posts_gone".into(), counts.gone.load(Relaxed));
    extra
        .counters
        .insert("posts_failed".into(), counts.failed.load(Relaxed));
    extra.counters.insert("delivered".into(), delivered);
    extra
        .counters
        .insert("lost".into(), ok.saturating_sub(delivered));
    extra.counters.insert("skipped_conns".into(), stats.skipped);
    Ok(extra)
}

struct Poster {
    node: ResolvedNode,
    ids: Arc<Vec<Vec<String>>>,
    node_ix: usize,
    meter: Arc<Meter>,
    counts: Arc<Counts>,
    count: u64,
    size: usize,
    end: Instant,
    hint: usize,
    rng: Rng,
}

impl Poster {
    async fn run(mut self, sched: Option<Schedule>, anchor: crate::clock::Anchor, limit: Duration) {
        let targets = &self.ids[self.node_ix];
        if targets.is_empty() {
            return;
        }
        let mut conn: Option<HttpConn> = None;
        let mut reconnects = 0u32;
        let mut k = 0u64;
        loop {
            let due = sched.map(|s| s.due(k));
            if let Some(d) = due {
                if d >= self.end {
                    break;
                }
                sleep_until(d.into()).await;
            }
            if Instant::now() >= self.end {
                break;
            }
            let seq = self.counts.seq.fetch_add(1, Relaxed);
            if seq >= self.count {
                break;
            }
            k += 1;
            if conn.as_ref().is_none_or(|c| !c.is_open()) {
                if reconnects > MAX_RECONNECTS {
                    break;
                }
                reconnects += 1;
                match HttpConn::connect(self.node.cb_addr, &self.node.cb_authority, limit).await {
                    Ok(c) => conn = Some(c),
                    Err(_) => {
                        self.counts.failed.fetch_add(1, Relaxed);
                        self.meter.op_error("post_connect");
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { break };
            let t_ns = due.map_or_else(wall_ns, |d| anchor.wall_ns_of(d));
            let id = &targets[self.rng.below(targets.len())];
            let path = post_path(&self.node, id);
            let t0 = Instant::now();
            match c
                .request(
                    Method::POST,
                    &path,
                    payload(seq, t_ns, self.size),
                    POST_TIMEOUT,
                )
                .await
            {
                Ok((s, _)) if (200..300).contains(&s) => {
                    self.meter.aux.record(self.hint, us(t0.elapsed()));
                    self.counts.ok.fetch_add(1, Relaxed);
                }
                Ok((410, _)) => {
                    self.counts.gone.fetch_add(1, Relaxed);
                    self.meter.op_error("post_http_410");
                }
                Ok((s, _)) => {
                    self.counts.failed.fetch_add(1, Relaxed);
                    self.meter.op_error(&format!("post_http_{s}"));
                }
                Err(_) => {
                    self.counts.failed.fetch_add(1, Relaxed);
                    self.meter.op_error("post_io");
                    conn = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips() {
        let p = payload(42, 1_700_000_000_123_456_789, 64);
        assert_eq!(p.len(), 64);
        let s = std::str::from_utf8(&p).unwrap();
        assert_eq!(payload_ns(s), Some(1_700_000_000_123_456_789));
        assert_eq!(payload_ns("hello"), None);
    }

    #[test]
    fn ids_are_escaped() {
        let n = ResolvedNode {
            ws_url: String::new(),
            ws_addr: "127.0.0.1:1".parse().unwrap(),
            cb_addr: "127.0.0.1:1".parse().unwrap(),
            cb_authority: "127.0.0.1:1".into(),
            cb_prefix: "/prod/@connections/".into(),
        };
        assert_eq!(
            post_path(&n, "R1kmxc2VNjMCFIA="),
            "/prod/@connections/R1kmxc2VNjMCFIA%3D"
        );
    }
}
