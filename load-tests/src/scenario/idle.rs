//! `idle`: open N connections (optionally paced) and hold them; the connect phase is measured.
//! While held, frames that carry their post time (`G:<unix ns>…` from a group post,
//! `B:<unix ns>…` from a broadcast) are counted and timed: the latency of broadcast deliveries
//! goes to the operation histogram, that of group deliveries to the secondary one, and the
//! largest of each (the time until the last member had it) to the maxima.

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
            groups: p.groups,
            answer_pings: true,
        },
    )
    .await;
    ctx.phase(Phase::Hold).await;
    ctx.ctl.mark("measure-end").await;
    let opened = u64::try_from(conns.len()).unwrap_or(0);
    ctx.ctl.barrier("connected", ctx.meter.open_now()).await?;

    let stop = CancellationToken::new();
    let dropped = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Deliveries::default());
    let mut tasks = Vec::with_capacity(conns.len());
    for c in conns {
        let stop = stop.child_token();
        let dropped = dropped.clone();
        let seen = seen.clone();
        let meter = ctx.meter.clone();
        let hint = usize::try_from(c.local).unwrap_or(0);
        let mut ws = c.ws;
        let token = stop.clone();
        tasks.push((
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        m = ws.next() => match m {
                            Some(Ok(Message::Close(_)) | Err(_)) | None => {
                                dropped.fetch_add(1, Relaxed);
                                break;
                            }
                            Some(Ok(Message::Text(t))) => seen.record(&meter, hint, t.as_bytes()),
                            Some(Ok(_)) => {}
                        },
                    }
                }
                meter.conn_down();
            }),
            token,
        ));
    }
    let hold = secs(p.hold_s, MAX_PHASE);
    tokio::time::sleep(hold).await;
    ctx.ctl.barrier("held", ctx.meter.open_now()).await?;
    if p.close_rate > 0.0 {
        // One at a time on a schedule: each task's token is a child of `stop`.
        let sched = crate::clock::Schedule::new(std::time::Instant::now(), p.close_rate, 0.0);
        for (i, (task, token)) in tasks.into_iter().enumerate() {
            tokio::time::sleep_until(sched.due(u64::try_from(i).unwrap_or(u64::MAX)).into()).await;
            token.cancel();
            let _ = task.await;
        }
    } else {
        stop.cancel();
        for (task, _) in tasks {
            let _ = task.await;
        }
    }
    let mut extra = Extra::default();
    extra.counters.insert("opened".into(), opened);
    extra
        .counters
        .insert("dropped_while_held".into(), dropped.load(Relaxed));
    extra.counters.insert("skipped".into(), stats.skipped);
    extra
        .counters
        .insert("closed_while_opening".into(), stats.closed_while_opening);
    seen.report(&mut extra);
    extra
        .maxima
        .insert("max_start_lag_ms".into(), stats.max_lag_ms);
    Ok(extra)
}

/// Deliveries of timed posts seen while holding.
#[derive(Default)]
struct Deliveries {
    group: AtomicU64,
    broadcast: AtomicU64,
    other: AtomicU64,
    group_max_us: AtomicU64,
    broadcast_max_us: AtomicU64,
}

impl Deliveries {
    /// Counts one text frame and, when it carries its post time, times it.
    fn record(&self, meter: &crate::meter::Meter, hint: usize, frame: &[u8]) {
        let (kind, rest) = match frame {
            [b'G', b':', rest @ ..] => (Kind::Group, rest),
            [b'B', b':', rest @ ..] => (Kind::Broadcast, rest),
            _ => {
                self.other.fetch_add(1, Relaxed);
                return;
            }
        };
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let sent = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse::<u64>().ok());
        let Some(sent) = sent else {
            self.other.fetch_add(1, Relaxed);
            return;
        };
        let us = crate::clock::us_since_wall(sent);
        match kind {
            Kind::Group => {
                self.group.fetch_add(1, Relaxed);
                self.group_max_us.fetch_max(us, Relaxed);
                meter.aux.record(hint, us);
            }
            Kind::Broadcast => {
                self.broadcast.fetch_add(1, Relaxed);
                self.broadcast_max_us.fetch_max(us, Relaxed);
                meter.lat.record(hint, us);
            }
        }
    }

    fn report(&self, extra: &mut Extra) {
        let c = &mut extra.counters;
        c.insert("group_deliveries".into(), self.group.load(Relaxed));
        c.insert("broadcast_deliveries".into(), self.broadcast.load(Relaxed));
        c.insert("other_text_frames".into(), self.other.load(Relaxed));
        // Microseconds to milliseconds for the report.
        #[allow(clippy::cast_precision_loss)]
        let ms = |v: &AtomicU64| v.load(Relaxed) as f64 / 1000.0;
        let m = &mut extra.maxima;
        m.insert("group_delivery_max_ms".into(), ms(&self.group_max_us));
        m.insert(
            "broadcast_delivery_max_ms".into(),
            ms(&self.broadcast_max_us),
        );
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Group,
    Broadcast,
}
