//! Opening a share's connections: paced or as fast as `inflight` allows, bounded in time.
//!
//! With a rate, attempt `i` is due at `start + i / rate` and its latency is measured from
//! that due time (open loop: a schedule that falls behind shows up as latency). Without a
//! rate, latency is the connect + upgrade time of each attempt.

use crate::client::{self, Ws};
use crate::clock::{Schedule, us};
use crate::net::source_addr;
use crate::scenario::ShareCtx;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::sleep_until;

/// How to open.
pub struct OpenOpts {
    /// Connections to open.
    pub count: u64,
    /// Attempts in flight at most.
    pub inflight: usize,
    /// Attempts per second (0: unpaced).
    pub rate: f64,
    /// Learn each connection's id with a `whoami` round trip.
    pub whoami: bool,
    /// Connection `i` (over all shares) asks its `$connect` to join group `g{i mod groups}`
    /// (query parameter `groups`); 0: none.
    pub groups: u64,
    /// Read each connection from the moment it is open until the phase ends (frames are
    /// dropped; pings are answered), so a long opening phase does not leave the first
    /// connections silent past the server's pong timeout.
    pub answer_pings: bool,
}

/// A connection as the opening phase hands it on: ready, or still being read.
enum Slot {
    Ready(Box<Opened>),
    Reading {
        local: u64,
        node: usize,
        id: Option<String>,
        reader: tokio::task::JoinHandle<Option<Ws>>,
    },
}

/// Reads `ws` (answering pings) until `handover`; `None` when it closed first.
async fn read_until(mut ws: Ws, handover: tokio_util::sync::CancellationToken) -> Option<Ws> {
    use futures_util::StreamExt;
    loop {
        tokio::select! {
            () = handover.cancelled() => return Some(ws),
            frame = ws.next() => match frame {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_)) | None => return None,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// An open connection.
pub struct Opened {
    /// Index within the share.
    pub local: u64,
    /// Node it is connected to.
    pub node: usize,
    /// The socket.
    pub ws: Ws,
    /// Its connection id, when asked for.
    pub id: Option<String>,
}

/// Outcome of the opening phase besides the connections.
#[derive(Default)]
pub struct OpenStats {
    /// Largest delay of an attempt behind its schedule, ms.
    pub max_lag_ms: f64,
    /// Attempts not made because the phase ran out of time.
    pub skipped: u64,
    /// Connections the server closed before the phase ended (with `answer_pings`).
    pub closed_while_opening: u64,
}

/// Opens the connections; failures are counted in the meter and left out of the result.
pub async fn open_all(ctx: &ShareCtx, o: &OpenOpts) -> (Vec<Opened>, OpenStats) {
    let inflight = o.inflight.max(1);
    let sem = Arc::new(Semaphore::new(inflight));
    let (tx, mut rx) = mpsc::channel::<Option<Slot>>(inflight);
    let handover = tokio_util::sync::CancellationToken::new();
    let start = Instant::now();
    let sched = (o.rate > 0.0).then(|| Schedule::new(start, o.rate, 0.0));
    let limit = ctx.connect_timeout();
    // Conns are bounded by validate(), so the budget stays small; it allows for 100
    // handshakes a second per share (27 shares on two cores made about 140 each at 500k).
    let budget = limit
        + Duration::from_secs(30 + o.count / 100)
        + sched.map_or(Duration::ZERO, |s| {
            s.due(o.count).saturating_duration_since(start)
        });
    let deadline = start + budget;
    let mut stats = OpenStats::default();

    let spawner = async {
        let mut max_lag = Duration::ZERO;
        for local in 0..o.count {
            let due = sched.map(|s| s.due(local));
            if let Some(d) = due {
                sleep_until(d.into()).await;
            }
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            let now = Instant::now();
            if now > deadline {
                stats.skipped = o.count - local;
                break;
            }
            if let Some(d) = due {
                max_lag = max_lag.max(now.saturating_duration_since(d));
            }
            let origin = due.unwrap_or(now);
            let (node, g) = ctx.conn_node(local);
            let n = &ctx.nodes[node];
            let url = if o.groups > 0 {
                let sep = if n.ws_url.contains('?') { '&' } else { '?' };
                format!("{}{sep}groups=g{}", n.ws_url, g % o.groups)
            } else {
                n.ws_url.clone()
            };
            let addr = n.ws_addr;
            let src = source_addr(g, ctx.spec.src_ips, &addr);
            let meter = ctx.meter.clone();
            let tx = tx.clone();
            let whoami = o.whoami;
            let reading = o.answer_pings.then(|| handover.clone());
            let hint = usize::try_from(local).unwrap_or(0);
            tokio::spawn(async move {
                let opened = match client::open(&url, addr, src, limit).await {
                    Ok(mut ws) => {
                        meter.conn_lat.record(hint, us(origin.elapsed()));
                        if whoami {
                            match client::whoami(&mut ws, limit).await {
                                Ok(id) => Some((ws, Some(id))),
                                Err(e) => {
                                    meter.conn_error(&e.kind());
                                    None
                                }
                            }
                        } else {
                            Some((ws, None))
                        }
                    }
                    Err(e) => {
                        meter.conn_error(&e.kind());
                        None
                    }
                };
                if opened.is_some() {
                    meter.conn_up();
                }
                drop(permit);
                let slot = opened.map(|(ws, id)| match reading {
                    Some(handover) => Slot::Reading {
                        local,
                        node,
                        id,
                        reader: tokio::spawn(read_until(ws, handover)),
                    },
                    None => Slot::Ready(Box::new(Opened {
                        local,
                        node,
                        ws,
                        id,
                    })),
                });
                let _ = tx.send(slot).await;
            });
        }
        drop(tx);
        max_lag
    };
    let collector = async {
        let mut out = Vec::with_capacity(usize::try_from(o.count).unwrap_or(0));
        while let Some(r) = rx.recv().await {
            if let Some(c) = r {
                out.push(c);
            }
        }
        out
    };
    let (max_lag, slots) = tokio::join!(spawner, collector);
    handover.cancel();
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        match slot {
            Slot::Ready(c) => out.push(*c),
            Slot::Reading {
                local,
                node,
                id,
                reader,
            } => match reader.await {
                Ok(Some(ws)) => out.push(Opened {
                    local,
                    node,
                    ws,
                    id,
                }),
                // Closed by the server while the others opened.
                _ => {
                    ctx.meter.conn_down();
                    stats.closed_while_opening += 1;
                }
            },
        }
    }
    out.sort_by_key(|c| c.local);
    stats.max_lag_ms = max_lag.as_secs_f64() * 1e3;
    (out, stats)
}
