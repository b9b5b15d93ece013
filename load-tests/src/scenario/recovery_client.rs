//! One client of the `recovery` scenario: connects with `envelope=1` (its `$connect` joins its
//! group), books every envelope in its offset ledger, drops with the others (a TCP reset, no
//! close frame; or its node is killed), stays away, reconnects with `recover=G:EPOCH:OFFSET`
//! and times the `recovered` signal and the catch-up to the live offset.

use super::offsets::{OffsetBook, Tally};
use super::recovery::{DropMode, Shared};
use crate::client::{Ws, open};
use crate::net::source_addr;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::time::{sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for the server's close frame at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Backoff between failed connection attempts.
const BACKOFF: Duration = Duration::from_millis(100);

/// What one client reports at the end.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Its offset ledger, closed against the last acknowledged post of its group.
    pub tally: Tally,
    /// Connected before the drop.
    pub connected: bool,
    /// Had a position (a message seen) when it dropped.
    pub had_position: bool,
    /// Reconnected after the drop.
    pub reconnected: bool,
    /// Reconnect start → `recovered`, µs.
    pub recovered_us: Option<u64>,
    /// Reconnect start → the live offset of the moment `recovered` arrived, µs.
    pub caught_up_us: Option<u64>,
    /// `replayed` of the `recovered` signal.
    pub replayed: u64,
    /// Reasons of `notRecovered` signals.
    pub not_recovered: Vec<String>,
    /// Connections lost other than by the planned drop.
    pub unplanned_losses: u64,
}

/// A frame in the envelope, or a recovery signal.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    epoch: Option<Cow<'a, str>>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    replayed: Option<u64>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
}

/// Where the client is in the run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the drop.
    Live,
    /// Reconnected, waiting for `recovered`.
    Recovering,
    /// `recovered` arrived; waiting for the live offset `target`.
    CatchingUp { target: u64 },
    /// Caught up (or told `notRecovered`).
    Done,
}

struct State {
    i: usize,
    group: usize,
    book: OffsetBook,
    stage: Stage,
    reconnect_start: Option<Instant>,
    out: Outcome,
}

impl State {
    /// Books one text frame.
    fn frame(&mut self, sh: &Shared, text: &str) {
        let Ok(env) = serde_json::from_str::<Envelope<'_>>(text) else {
            sh.error("frame_not_json");
            return;
        };
        match env.kind.as_ref() {
            "message" => {
                let (Some(epoch), Some(offset)) = (env.epoch.as_deref(), env.offset) else {
                    sh.error("frame_message_without_position");
                    return;
                };
                self.book.arrive(epoch, offset);
                sh.seen[self.i].store(self.book.max_seen(), Relaxed);
                self.check_caught_up(sh);
            }
            "recovered" => {
                if self.stage != Stage::Recovering {
                    sh.error("frame_unexpected_recovered");
                    return;
                }
                let now = Instant::now();
                self.out.recovered_us = self.since_reconnect(now);
                self.out.replayed = env.replayed.unwrap_or(0);
                sh.counts.recovered.fetch_add(1, Relaxed);
                let live = sh.acked[self.group].load(Relaxed);
                self.stage = Stage::CatchingUp {
                    target: live.max(env.offset.unwrap_or(0)),
                };
                self.check_caught_up(sh);
            }
            "notRecovered" => {
                let reason = env.reason.as_deref().unwrap_or("unknown").to_owned();
                sh.not_recovered(&reason);
                self.out.not_recovered.push(reason);
                if matches!(self.stage, Stage::Recovering) {
                    sh.counts.settled.fetch_add(1, Relaxed);
                    self.stage = Stage::Done;
                }
            }
            other => sh.error(&format!("frame_type_{other}")),
        }
    }

    fn since_reconnect(&self, now: Instant) -> Option<u64> {
        self.reconnect_start
            .map(|t| u64::try_from(now.duration_since(t).as_micros()).unwrap_or(u64::MAX))
    }

    fn check_caught_up(&mut self, sh: &Shared) {
        if let Stage::CatchingUp { target } = self.stage
            && self.book.max_seen() >= target
        {
            self.out.caught_up_us = self.since_reconnect(Instant::now());
            sh.counts.caught_up.fetch_add(1, Relaxed);
            sh.counts.settled.fetch_add(1, Relaxed);
            self.stage = Stage::Done;
        }
    }
}

/// How a session ended.
enum End {
    /// The planned drop (clients mode: this client dropped its connection).
    Dropped,
    /// The connection was lost.
    Lost,
    /// The run is over (closed with a close handshake).
    Stop,
}

/// The URL of a (re)connection: `?envelope=1&groups=G`, or with `recover=G:EPOCH:OFFSET`.
fn url(sh: &Shared, node: usize, group: &str, position: Option<(&str, u64)>) -> String {
    let base = &sh.nodes[node].ws_url;
    match position {
        Some((epoch, offset)) => format!("{base}?groups={group}&recover={group}:{epoch}:{offset}"),
        None => format!("{base}?groups={group}&envelope=1"),
    }
}

/// Opens a connection, retrying (to the next node of `nodes` each time) until `give_up`.
async fn connect(
    sh: &Shared,
    st: &State,
    nodes: &[usize],
    mut k: usize,
    give_up: &tokio_util::sync::CancellationToken,
) -> Option<(Ws, usize)> {
    let group = &sh.groups[st.group];
    loop {
        let node = nodes[k % nodes.len()];
        let target = &sh.nodes[node];
        let src = source_addr(st.i as u64, sh.plan.src_ips, &target.ws_addr);
        let u = url(sh, node, group, st.book.position());
        let attempt = {
            let _permit = sh.inflight.acquire().await.ok()?;
            open(&u, target.ws_addr, src, sh.connect_timeout()).await
        };
        match attempt {
            Ok(ws) => return Some((ws, node)),
            Err(e) => sh.error(&format!("connect_{}", e.kind())),
        }
        k += 1;
        tokio::select! {
            () = give_up.cancelled() => return None,
            () = sleep(BACKOFF) => {}
        }
    }
}

/// Reads frames until the planned drop, a loss, or the end of the run.
async fn session(sh: &Shared, st: &mut State, mut ws: Ws, planned_drop: bool) -> End {
    let drop_now = sh.ev.drop.clone();
    let stop = sh.ev.stop.clone();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = drop_now.cancelled(), if planned_drop => {
                // A Wi-Fi loss: no close frame; SO_LINGER 0 makes the close a TCP reset.
                let _ = socket2::SockRef::from(ws.get_ref()).set_linger(Some(Duration::ZERO));
                drop(ws);
                return End::Dropped;
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => st.frame(sh, t.as_str()),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return End::Lost,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = timeout(CLOSE_TIMEOUT, async {
        if ws.send(Message::Close(None)).await.is_ok() {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    st.frame(sh, t.as_str());
                }
            }
        }
    })
    .await;
    End::Stop
}

/// Runs client `i` to the end of the run and closes its ledger.
pub(crate) async fn run(i: usize, sh: Arc<Shared>) -> Outcome {
    let p = &sh.plan;
    let n = sh.nodes.len();
    let mut st = State {
        i,
        group: i % sh.groups.len(),
        book: OffsetBook::new(p.max_offsets),
        stage: Stage::Live,
        reconnect_start: None,
        out: Outcome::default(),
    };
    // Before the drop: clients mode spreads over every node; node mode puts every client on
    // node 0 (the one killed). After: clients mode reconnects to the next node, node mode to
    // the survivors.
    let (before, after): (Vec<usize>, Vec<usize>) = match p.drop {
        DropMode::Clients => ((0..n).collect(), (0..n).collect()),
        DropMode::Node => (vec![0], (1..n).collect()),
    };
    let (first_k, again_k) = match p.drop {
        DropMode::Clients => (i, i + 1),
        DropMode::Node => (0, i),
    };
    let mut dropped = false;
    if let Some((ws, _)) = connect(&sh, &st, &before, first_k, &sh.ev.drop).await {
        st.out.connected = true;
        sh.counts.connected.fetch_add(1, Relaxed);
        match session(&sh, &mut st, ws, p.drop == DropMode::Clients).await {
            End::Stop => {}
            End::Dropped => dropped = true,
            End::Lost => {
                if sh.ev.drop.is_cancelled() {
                    dropped = true;
                } else {
                    // Lost before the drop: wait for it anyway, then reconnect with the others.
                    st.out.unplanned_losses += 1;
                    sh.error("lost_before_drop");
                    dropped = true;
                }
            }
        }
    }
    if !sh.ev.stop.is_cancelled() && (dropped || !st.out.connected) {
        tokio::select! {
            () = sh.ev.stop.cancelled() => {}
            () = sh.ev.drop.cancelled() => {}
        }
        st.out.had_position = st.book.position().is_some();
        if let Some(at) = sh.reconnect_at(i) {
            sleep_until(at.into()).await;
        }
        st.reconnect_start = Some(Instant::now());
        st.stage = if st.book.position().is_some() {
            Stage::Recovering
        } else {
            Stage::Done
        };
        let mut k = again_k;
        while !sh.ev.stop.is_cancelled() {
            let Some((ws, node)) = connect(&sh, &st, &after, k, &sh.ev.stop).await else {
                break;
            };
            if !st.out.reconnected {
                st.out.reconnected = true;
                sh.counts.reconnected.fetch_add(1, Relaxed);
            }
            match session(&sh, &mut st, ws, false).await {
                End::Stop | End::Dropped => break,
                End::Lost => {
                    st.out.unplanned_losses += 1;
                    sh.error("lost_after_reconnect");
                    k = after.iter().position(|&x| x == node).unwrap_or(0) + 1;
                }
            }
        }
    }
    let last = sh.acked[st.group].load(Relaxed);
    st.out.tally = st.book.close(last);
    st.out
}
