//! `connect-storm`: loops that connect, upgrade (through `$connect` on a gateway) and close.
//!
//! Closed loop by default (`concurrency` loops, each starting its next attempt when the
//! previous one ends). With a rate, a scheduler hands out attempts due at `i / rate` and the
//! latency of each is measured from its due time, so a backlog is not hidden.

use crate::client::{self, close_gracefully};
use crate::clock::{Schedule, secs, us};
use crate::net::source_addr;
use crate::scenario::{CloseMode, Extra, MAX_PHASE, ShareCtx, StormPlan};
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

/// Runs the connect-storm share.
pub async fn run(ctx: &mut ShareCtx, p: &StormPlan) -> Result<Extra> {
    ctx.ctl.barrier("start", 0).await?;
    let warmup = secs(p.warmup_s, MAX_PHASE);
    let start = Instant::now();
    let end = start + warmup + secs(p.duration_s, MAX_PHASE);
    let count = if p.count == 0 { u64::MAX } else { p.count };
    let attempts = Arc::new(AtomicU64::new(0));
    let conc = p.concurrency.max(1);

    // With a rate, tickets carry the due time of each attempt.
    let gate = CancellationToken::new();
    let tickets = (p.rate > 0.0).then(|| {
        let (tx, rx) = mpsc::channel::<Instant>(conc);
        let sched = Schedule::new(start, p.rate, 0.0);
        let gate = gate.clone();
        tokio::spawn(async move {
            gate.cancelled().await;
            let mut k = 0u64;
            while k < count {
                let due = sched.due(k);
                if due >= end {
                    break;
                }
                sleep_until(due.into()).await;
                if tx.send(due).await.is_err() {
                    break;
                }
                k += 1;
            }
        });
        Arc::new(Mutex::new(rx))
    });

    let limit = ctx.connect_timeout();
    let workers = u64::try_from(ctx.spec.workers.max(1)).unwrap_or(1);
    let worker = u64::try_from(ctx.spec.worker).unwrap_or(0);
    let node_count = ctx.nodes.len().max(1);
    let close = p.close;
    let mut loops = Vec::with_capacity(conc);
    for _ in 0..conc {
        let meter = ctx.meter.clone();
        let nodes = ctx.nodes.clone();
        let attempts = attempts.clone();
        let src_ips = ctx.spec.src_ips;
        let tickets = tickets.clone();
        let gate = gate.clone();
        loops.push(tokio::spawn(async move {
            gate.cancelled().await;
            loop {
                let origin = match &tickets {
                    Some(rx) => {
                        let next = tokio::time::timeout_at(end.into(), async {
                            rx.lock().await.recv().await
                        })
                        .await;
                        match next {
                            Ok(Some(due)) => due,
                            _ => break,
                        }
                    }
                    None => Instant::now(),
                };
                if Instant::now() >= end {
                    break;
                }
                let n = attempts.fetch_add(1, Relaxed);
                if n >= count {
                    break;
                }
                let g = n * workers + worker;
                let node = &nodes[usize::try_from(g).unwrap_or(0) % node_count];
                let src = source_addr(g, src_ips, &node.ws_addr);
                let hint = usize::try_from(n).unwrap_or(0);
                match client::open(&node.ws_url, node.ws_addr, src, limit).await {
                    Ok(ws) => {
                        meter.conn_lat.record(hint, us(origin.elapsed()));
                        meter.conn_up();
                        match close {
                            CloseMode::Graceful => {
                                close_gracefully(ws, Duration::from_secs(2)).await
                            }
                            CloseMode::Drop => drop(ws),
                        }
                        meter.conn_down();
                    }
                    Err(e) => meter.conn_error(&e.kind()),
                }
            }
        }));
    }
    let work = async {
        for l in loops {
            let _ = l.await;
        }
    };
    ctx.run_timed(warmup, &gate, work, end).await;
    let mut extra = Extra::default();
    extra
        .counters
        .insert("attempts".into(), attempts.load(Relaxed).min(count));
    extra
        .counters
        .insert("connected".into(), ctx.meter.conn_ops_total());
    Ok(extra)
}
