//! `idle`: open N connections (optionally paced) and hold them; the connect phase is measured.

use crate::clock::secs;
use crate::meter::Phase;
use crate::scenario::open::{OpenOpts, open_all};
use crate::scenario::{Extra, IdlePlan, MAX_PHASE, ShareCtx};
use anyhow::Result;
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Runs the idle share.
pub async fn run(ctx: &mut ShareCtx, p: &IdlePlan) -> Result<Extra> {
    ctx.ctl.barrier("start", 0).await?;
    ctx.phase(Phase::Measure).await;
    ctx.ctl.mark("measure").await;
    let (conns, stats) = open_all(
        ctx,
        &OpenOpts {
            count: p.conns,
            inflight: p.inflight,
            rate: p.rate,
            whoami: p.whoami,
        },
    )
    .await;
    ctx.phase(Phase::Hold).await;
    ctx.ctl.mark("measure-end").await;
    let opened = u64::try_from(conns.len()).unwrap_or(0);
    ctx.ctl.barrier("connected", ctx.meter.open_now()).await?;

    let stop = CancellationToken::new();
    let dropped = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(conns.len());
    for c in conns {
        let stop = stop.clone();
        let dropped = dropped.clone();
        let meter = ctx.meter.clone();
        let mut ws = c.ws;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    m = ws.next() => match m {
                        Some(Ok(Message::Close(_)) | Err(_)) | None => {
                            dropped.fetch_add(1, Relaxed);
                            break;
                        }
                        Some(Ok(_)) => {}
                    },
                }
            }
            meter.conn_down();
        }));
    }
    let hold = secs(p.hold_s, MAX_PHASE);
    tokio::time::sleep(hold).await;
    ctx.ctl.barrier("held", ctx.meter.open_now()).await?;
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let mut extra = Extra::default();
    extra.counters.insert("opened".into(), opened);
    extra
        .counters
        .insert("dropped_while_held".into(), dropped.load(Relaxed));
    extra.counters.insert("skipped".into(), stats.skipped);
    extra
        .maxima
        .insert("max_start_lag_ms".into(), stats.max_lag_ms);
    Ok(extra)
}
