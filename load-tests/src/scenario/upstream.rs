//! `upstream`: connections send `{"action":...}` messages to a route backed by an integration.
//!
//! Closed loop by default: each connection keeps one message in flight and times the round
//! trip locally. With a rate, each connection sends on its own schedule, the intended send
//! time travels in the message (`"t":<ns>`), and the round trip is measured from it when the
//! echo comes back (open loop). With `one_way`, only sends are counted.

use crate::client::{ConnError, Ws, field_u64};
use crate::clock::{Anchor, Schedule, secs, us, us_since_wall, wall_ns};
use crate::meter::Meter;
use crate::scenario::open::{OpenOpts, open_all};
use crate::scenario::{Extra, MAX_PHASE, ShareCtx, UpstreamPlan};
use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::time::{sleep_until, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// How long in-flight messages may take to come back once sending stopped.
const DRAIN: Duration = Duration::from_secs(5);
/// Longest wait for one reply in the closed loop.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds `{"action":"<action>","seq":<seq>,"t":<ns>,"data":"xxx"}`, padded to `size` bytes.
pub fn message(action: &str, seq: u64, t_ns: u64, size: usize) -> String {
    let mut s = format!(r#"{{"action":"{action}","seq":{seq},"t":{t_ns},"data":""#);
    let pad = size.saturating_sub(s.len() + 2);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s
}

struct Budget(AtomicU64, u64);

impl Budget {
    fn take(&self) -> bool {
        self.0.fetch_add(1, Relaxed) < self.1
    }
}

/// Runs the upstream share.
pub async fn run(ctx: &mut ShareCtx, p: &UpstreamPlan) -> Result<Extra> {
    ctx.ctl.barrier("start", 0).await?;
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
    ctx.ctl.barrier("connected", ctx.meter.open_now()).await?;
    let warmup = secs(p.warmup_s, MAX_PHASE);
    let start = Instant::now();
    let end = start + warmup + secs(p.duration_s, MAX_PHASE);
    let budget = Arc::new(Budget(
        AtomicU64::new(0),
        if p.count == 0 { u64::MAX } else { p.count },
    ));
    let sent = Arc::new(AtomicU64::new(0));
    // Conns per share stay below 2^52, so the ratio is exact enough.
    #[allow(clippy::cast_precision_loss)]
    let n = conns.len().max(1) as f64;
    let per_conn_rate = p.rate / n;
    let gate = CancellationToken::new();
    let mut tasks = Vec::with_capacity(conns.len());
    for c in conns {
        let job = Job {
            meter: ctx.meter.clone(),
            budget: budget.clone(),
            sent: sent.clone(),
            action: p.action.clone(),
            size: p.size,
            one_way: p.one_way,
            end,
            hint: usize::try_from(c.local).unwrap_or(0),
        };
        #[allow(clippy::cast_precision_loss)]
        let offset = c.local as f64 / n;
        let anchor = ctx.anchor;
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            gate.cancelled().await;
            let mut ws = c.ws;
            if per_conn_rate > 0.0 {
                let sched = Schedule::new(start, per_conn_rate, offset);
                job.open_loop(&mut ws, sched, anchor).await;
            } else {
                job.closed_loop(&mut ws).await;
            }
            job.meter.conn_down();
        }));
    }
    let work = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    ctx.run_timed(warmup, &gate, work, end).await;
    let mut extra = Extra::default();
    extra.counters.insert("sent".into(), sent.load(Relaxed));
    extra
        .counters
        .insert("completed".into(), ctx.meter.ops_total());
    extra.counters.insert("skipped_conns".into(), stats.skipped);
    Ok(extra)
}

struct Job {
    meter: Arc<Meter>,
    budget: Arc<Budget>,
    sent: Arc<AtomicU64>,
    action: String,
    size: usize,
    one_way: bool,
    end: Instant,
    hint: usize,
}

impl Job {
    async fn closed_loop(&self, ws: &mut Ws) {
        let mut seq = 0u64;
        while Instant::now() < self.end && self.budget.take() {
            let t0 = Instant::now();
            let msg = message(&self.action, seq, wall_ns(), self.size);
            seq += 1;
            if let Err(e) = ws.send(Message::text(msg)).await {
                self.meter.op_error(&ConnError::from(e).kind());
                return;
            }
            self.sent.fetch_add(1, Relaxed);
            if self.one_way {
                self.meter.op();
                // Let other connections run between back-to-back sends.
                tokio::task::yield_now().await;
                continue;
            }
            let deadline = (t0 + REPLY_TIMEOUT).min(self.end + DRAIN);
            match timeout_at(deadline.into(), next_text(ws)).await {
                Ok(Ok(())) => {
                    self.meter.lat.record(self.hint, us(t0.elapsed()));
                    self.meter.op();
                }
                Ok(Err(e)) => {
                    self.meter.op_error(&e.kind());
                    return;
                }
                Err(_) => {
                    self.meter.op_error("reply_timeout");
                    return;
                }
            }
        }
    }

    async fn open_loop(&self, ws: &mut Ws, sched: Schedule, anchor: Anchor) {
        let mut k = 0u64;
        let mut outstanding = 0u64;
        let mut sending = true;
        let drain_end = self.end + DRAIN;
        loop {
            if !sending && (self.one_way || outstanding == 0) {
                return;
            }
            let due = sched.due(k);
            tokio::select! {
                m = ws.next(), if !self.one_way => match m {
                    Some(Ok(Message::Text(t))) => {
                        if let Some(ns) = field_u64(t.as_str(), r#""t":"#) {
                            self.meter.lat.record(self.hint, us_since_wall(ns));
                            self.meter.op();
                            outstanding = outstanding.saturating_sub(1);
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => {
                        self.meter.op_error("closed");
                        return;
                    }
                    Some(Err(e)) => {
                        self.meter.op_error(&ConnError::from(e).kind());
                        return;
                    }
                    Some(Ok(_)) => {}
                },
                () = sleep_until(due.into()), if sending => {
                    if due >= self.end || !self.budget.take() {
                        sending = false;
                        continue;
                    }
                    let msg = message(&self.action, k, anchor.wall_ns_of(due), self.size);
                    k += 1;
                    if let Err(e) = ws.send(Message::text(msg)).await {
                        self.meter.op_error(&ConnError::from(e).kind());
                        return;
                    }
                    self.sent.fetch_add(1, Relaxed);
                    if self.one_way {
                        self.meter.op();
                    } else {
                        outstanding += 1;
                    }
                },
                () = sleep_until(drain_end.into()), if !sending => {
                    self.meter.op_error("reply_timeout");
                    return;
                },
            }
        }
    }
}

async fn next_text(ws: &mut Ws) -> Result<(), ConnError> {
    while let Some(m) = ws.next().await {
        match m? {
            Message::Text(_) | Message::Binary(_) => return Ok(()),
            Message::Close(_) => return Err(ConnError::Closed),
            _ => {}
        }
    }
    Err(ConnError::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_has_requested_size_and_timestamp() {
        let m = message("echo", 5, 123_456, 128);
        assert_eq!(m.len(), 128);
        assert_eq!(field_u64(&m, r#""t":"#), Some(123_456));
        let v: serde_json::Value = serde_json::from_str(&m).unwrap();
        assert_eq!(v["action"], "echo");
    }
}
