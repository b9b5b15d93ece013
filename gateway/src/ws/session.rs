//! One connection's life after the 101: its task reads frames, writes queued messages, keeps
//! pings, idle and maximum-duration timers, and closes with the right code (the end, `$disconnect`
//! included, is in `end`).

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, frame::coding::CloseCode};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use wsgate_connection_store::ConnectionRecord;

use super::dispatch::{Frames, Inbound, Inflow, Refused};
use super::frames::{self, Outgoing};
use super::io::Io;
use super::now_ms;
use crate::config::BinaryFrames;
use crate::error::CloseReason;
use crate::integration::StageRoutes;
use crate::registry::{Outbox, SessionHandle};
use crate::state::Shared;

/// How long to wait for the client's close frame after ours.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// The store record for a connection held by this node.
pub(crate) fn record(shared: &Shared, handle: &SessionHandle) -> ConnectionRecord {
    let meta = &handle.meta;
    ConnectionRecord {
        connection_id: meta.connection_id.clone(),
        node_id: shared.node_id.clone(),
        stage: meta.stage.clone(),
        connected_at_ms: meta.connected_at_ms,
        last_active_at_ms: handle.last_active_ms(),
        source_ip: meta.source_ip.clone(),
        user_agent: meta.user_agent.clone(),
        authorizer: meta.authorizer.clone(),
        api_key_id: meta.api_key_id.clone(),
        domain_name: Some(meta.domain_name.clone()),
    }
}

/// Runs a session to its end (the upgrade, then frames until a close); the caller finishes it,
/// draining the inbound messages still owed to the integration.
pub(super) async fn run<'a>(
    shared: &'a Arc<Shared>,
    handle: &'a Arc<SessionHandle>,
    outbox: Outbox,
    on_upgrade: OnUpgrade,
    routes: &'a Arc<StageRoutes>,
) -> (CloseReason, Option<Inflow<'a>>) {
    // Everything below lives in the connection's task for its whole life, so nothing is held
    // twice: the upgrade result is unwrapped in its own statement (a `match` on it would keep
    // it across the session), and the stream and the session state are locals here that the
    // session loop borrows (an async fn's by-value arguments are stored a second time).
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(connection_id = %handle.meta.connection_id, %error, "upgrade failed");
            return (CloseReason::Abnormal, None);
        }
    };
    let mut ws =
        WebSocketStream::from_raw_socket(Io::new(upgraded), Role::Server, Some(shared.ws_config))
            .await;
    handle.mark_open();
    let mut session = Session {
        shared,
        handle,
        sent: &routes.sent,
        inflow: Inflow::new(shared, handle, routes),
    };
    let reason = session.drive(&mut ws, outbox).await;
    (reason, Some(session.inflow))
}

struct Session<'a> {
    shared: &'a Arc<Shared>,
    handle: &'a Arc<SessionHandle>,
    /// `MessageCount` out.
    sent: &'a crate::activity::Counted,
    /// Messages read and not yet handled by their integration.
    inflow: Inflow<'a>,
}

type Ws = WebSocketStream<Io>;

impl Session<'_> {
    async fn drive(&mut self, ws: &mut Ws, mut outbox: Outbox) -> CloseReason {
        let limits = &self.shared.config.limits;
        // One wait for a close request for the whole session, not one per loop turn.
        let handle = self.handle;
        let cancelled = super::woken::WhenWoken::new(handle.cancelled());
        tokio::pin!(cancelled);
        // One timer for the maximum duration, the idle timeout and the pings: activity only moves
        // `idle_at` forward, and the timer, when it fires, works out what is due and re-arms.
        let opened = Instant::now();
        let max_at = opened + limits.max_connection_duration;
        let mut idle_at = opened + limits.idle_timeout;
        let ping_every = (!limits.ping_interval.is_zero()).then_some(limits.ping_interval);
        let mut ping_at = ping_every.map(|every| opened + every);
        // A message read that the inbound queue has no room for yet (reading is paused until it
        // is taken), since when, and when to look at the node's budget again.
        let mut pending: Option<Inbound> = None;
        let mut paused_at: Option<Instant> = None;
        let mut retry_at: Option<Instant> = None;
        let timer = sleep_until(next_due(max_at, idle_at, ping_at, retry_at));
        tokio::pin!(timer);
        let mut awaiting_pong: Option<Instant> = None;
        // Set once a read found nothing: the next read waits for the socket to be readable.
        let mut read_idle = false;

        let reason = loop {
            tokio::select! {
                biased;
                () = &mut cancelled => {
                    break match self.handle.close_request() {
                        Some((code, reason)) => {
                            // Posts answered 200 before the delete reach the client before the
                            // close frame.
                            match self.write_queued(ws, &mut outbox).await {
                                Ok(()) => CloseReason::Deleted { code: *code, reason: reason.clone() },
                                Err(reason) => reason,
                            }
                        }
                        // Shutdown: posts answered 200 reach a client that is reading
                        // before the 1001 (bounded by `send_timeout`).
                        None => match self.write_queued(ws, &mut outbox).await {
                            Ok(()) => CloseReason::ShuttingDown,
                            Err(reason) => reason,
                        },
                    };
                }
                () = &mut timer => {
                    let now = Instant::now();
                    if now >= max_at {
                        break CloseReason::MaxDuration;
                    }
                    if now >= idle_at {
                        break CloseReason::IdleTimeout;
                    }
                    if retry_at.is_some_and(|at| now >= at) {
                        retry_at = None;
                        self.admit(&mut pending, &mut paused_at, &mut retry_at, &mut awaiting_pong);
                    }
                    if let (Some(due), Some(every)) = (ping_at, ping_every)
                        && now >= due
                    {
                        match awaiting_pong {
                            // While reading is paused (the inbound queue is full) pongs go
                            // unread; the deadline counts only time spent reading.
                            Some(sent) if paused_at.is_none() && sent.elapsed() >= limits.pong_timeout => break CloseReason::PingTimeout,
                            Some(_) => {}
                            None => {
                                if let Err(reason) = self.write(ws, Message::Ping(Bytes::new())).await {
                                    break reason;
                                }
                                awaiting_pong = Some(Instant::now());
                            }
                        }
                        ping_at = Some(now + every);
                    }
                    timer.as_mut().reset(next_due(max_at, idle_at, ping_at, retry_at));
                }
                frames = self.inflow.next_done(), if self.inflow.is_busy() => {
                    match self.write_frames(ws, frames).await {
                        Ok(0) => {}
                        Ok(_) => {
                            idle_at = Instant::now() + limits.idle_timeout;
                            self.handle.touch(now_ms());
                        }
                        Err(reason) => break reason,
                    }
                    if pending.is_some() {
                        self.admit(&mut pending, &mut paused_at, &mut retry_at, &mut awaiting_pong);
                        timer.as_mut().reset(next_due(max_at, idle_at, ping_at, retry_at));
                    }
                }
                message = outbox.recv() => {
                    if let Err(reason) = self.write(ws, message).await {
                        break reason;
                    }
                    self.sent.increment(1);
                    idle_at = Instant::now() + limits.idle_timeout;
                    self.handle.touch(now_ms());
                }
                frame = next_frame(ws, &mut read_idle), if pending.is_none() => {
                    let inbound = match frame {
                        None => break CloseReason::Abnormal,
                        Some(Err(error)) => break read_error(&error),
                        Some(Ok(Message::Text(text))) => Inbound::Text(text),
                        Some(Ok(Message::Binary(bytes))) => {
                            if limits.binary_frames == BinaryFrames::Reject {
                                break CloseReason::BinaryNotSupported;
                            }
                            Inbound::Binary(bytes)
                        }
                        Some(Ok(Message::Ping(_))) => {
                            idle_at = Instant::now() + limits.idle_timeout;
                            self.handle.touch(now_ms());
                            continue;
                        }
                        Some(Ok(Message::Pong(_))) => {
                            awaiting_pong = None;
                            continue;
                        }
                        Some(Ok(Message::Close(frame))) => {
                            break match frame {
                                Some(f) => CloseReason::ByClient { code: u16::from(f.code), reason: f.reason.to_string() },
                                None => CloseReason::ByClient { code: 1005, reason: "Client-side close frame status not set".into() },
                            };
                        }
                        Some(Ok(Message::Frame(_))) => continue,
                    };
                    idle_at = Instant::now() + limits.idle_timeout;
                    self.handle.touch(now_ms());
                    if let Err((refused, back)) = self.inflow.offer(inbound) {
                        pending = Some(back);
                        paused_at = Some(Instant::now());
                        if refused == Refused::NodeFull {
                            retry_at = Some(Instant::now() + crate::registry::BUDGET_RETRY);
                            timer.as_mut().reset(next_due(max_at, idle_at, ping_at, retry_at));
                        }
                    }
                }
            }
        };
        self.handle.mark_closed();
        // The call in progress goes on during the close handshake (its answer is not sent).
        {
            let closing = close(ws, &reason);
            tokio::pin!(closing);
            loop {
                tokio::select! {
                    () = &mut closing => break,
                    _ = self.inflow.next_done(), if self.inflow.is_busy() => {}
                }
            }
        }
        reason
    }

    /// Offers the message that waits for room again; reading resumes once it is taken.
    fn admit(
        &mut self,
        pending: &mut Option<Inbound>,
        paused_at: &mut Option<Instant>,
        retry_at: &mut Option<Instant>,
        awaiting_pong: &mut Option<Instant>,
    ) {
        let Some(message) = pending.take() else {
            return;
        };
        match self.inflow.offer(message) {
            Ok(()) => {
                // A pong unread while reading was paused was not the client's fault.
                if let (Some(paused), Some(sent)) = (paused_at.take(), awaiting_pong.as_mut()) {
                    *sent += paused.elapsed();
                }
            }
            Err((refused, back)) => {
                *pending = Some(back);
                if refused == Refused::NodeFull && retry_at.is_none() {
                    *retry_at = Some(Instant::now() + crate::registry::BUDGET_RETRY);
                }
            }
        }
    }

    /// Writes every message already queued, all within one `limits.send_timeout`.
    async fn write_queued(&mut self, ws: &mut Ws, outbox: &mut Outbox) -> Result<(), CloseReason> {
        let max_frame = self.shared.config.limits.max_outbound_frame_bytes;
        let queued = async {
            let mut written = false;
            while let Some(message) = outbox.try_recv() {
                feed(ws, message, max_frame).await?;
                self.sent.increment(1);
                written = true;
            }
            if written {
                ws.flush().await?;
                self.handle.touch(now_ms());
            }
            Ok::<_, WsError>(())
        };
        match timeout(self.shared.config.limits.send_timeout, queued).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(CloseReason::Abnormal),
            Err(_) => Err(CloseReason::SlowConsumer),
        }
    }

    /// Writes the frames of a handled message (each as [`Self::write`] does); answers how many.
    async fn write_frames(&mut self, ws: &mut Ws, frames: Frames) -> Result<usize, CloseReason> {
        let mut written = 0;
        for frame in frames.into_messages() {
            self.write(ws, frame).await?;
            self.sent.increment(1);
            written += 1;
        }
        Ok(written)
    }

    /// Writes one message within `limits.send_timeout`, fragmented when it is over
    /// `limits.max_outbound_frame_bytes`.
    async fn write(&mut self, ws: &mut Ws, message: Message) -> Result<(), CloseReason> {
        let limits = &self.shared.config.limits;
        let max_frame = limits.max_outbound_frame_bytes;
        bounded(limits.send_timeout, async {
            feed(ws, message, max_frame).await?;
            ws.flush().await
        })
        .await
    }
}

/// The next frame from the client. tungstenite zero-fills its read buffer
/// (`limits.read_buffer_bytes`) before every read attempt, including those that find nothing,
/// and the session loop polls for a frame on every wake-up (a fan-out wakes every member once
/// per message): after a read has found nothing, the socket's readiness is awaited first, so
/// an idle client costs nothing per wake-up. Until a read finds nothing, frames tungstenite has
/// already buffered are taken without waiting.
fn next_frame<'w>(
    ws: &'w mut Ws,
    read_idle: &'w mut bool,
) -> impl Future<Output = Option<Result<Message, WsError>>> + 'w {
    std::future::poll_fn(move |cx| {
        if *read_idle {
            if ws.get_ref().poll_read_ready(cx).is_pending() {
                return Poll::Pending;
            }
            *read_idle = false;
        }
        let next = ws.poll_next_unpin(cx);
        if next.is_pending() {
            *read_idle = true;
        }
        next
    })
}

/// Queues `message` on the socket (not flushed), in fragments when it is over `max` bytes.
async fn feed(ws: &mut Ws, message: Message, max: usize) -> Result<(), WsError> {
    match frames::outgoing(message, max) {
        Outgoing::Whole(message) => ws.feed(message).await,
        Outgoing::Split(fragments) => {
            for fragment in fragments {
                ws.feed(fragment).await?;
            }
            Ok(())
        }
    }
}

/// Runs a write within `send_timeout`. A write the socket takes at once (the usual case) needs
/// no timer.
async fn bounded(
    send_timeout: Duration,
    send: impl Future<Output = Result<(), WsError>>,
) -> Result<(), CloseReason> {
    let mut send = std::pin::pin!(send);
    let at_once = std::future::poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(Some(result)),
        Poll::Pending => Poll::Ready(None),
    })
    .await;
    let result = match at_once {
        Some(result) => Ok(result),
        None => timeout(send_timeout, send).await,
    };
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(CloseReason::Abnormal),
        Err(_) => Err(CloseReason::SlowConsumer),
    }
}

/// The earliest of the session's deadlines.
fn next_due(
    max_at: Instant,
    idle_at: Instant,
    ping_at: Option<Instant>,
    retry_at: Option<Instant>,
) -> Instant {
    [ping_at, retry_at]
        .into_iter()
        .flatten()
        .fold(max_at.min(idle_at), Instant::min)
}

fn read_error(error: &WsError) -> CloseReason {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => CloseReason::MessageTooBig,
        WsError::Protocol(
            ProtocolError::ReceivedAfterClosing | ProtocolError::ResetWithoutClosingHandshake,
        ) => CloseReason::Abnormal,
        WsError::Utf8(_) => CloseReason::InvalidUtf8,
        WsError::Protocol(_) => CloseReason::ProtocolError,
        _ => CloseReason::Abnormal,
    }
}

/// Sends our close frame (when the reason calls for one) and waits, bounded, for the client's.
async fn close(ws: &mut Ws, reason: &CloseReason) {
    let handshake = async {
        if reason.sends_close_frame() {
            let mut text = reason.reason().to_string();
            while text.len() > 123 {
                text.pop();
            }
            let frame = CloseFrame {
                code: CloseCode::from(reason.code()),
                reason: text.into(),
            };
            if ws.close(Some(frame)).await.is_err() {
                return;
            }
        } else if matches!(reason, CloseReason::ByClient { .. }) {
            // tungstenite has queued the echo of the client's close frame; flush it.
            let _ = ws.flush().await;
        }
        while let Some(Ok(_)) = ws.next().await {}
    };
    if !matches!(reason, CloseReason::Abnormal | CloseReason::SlowConsumer) {
        let _ = timeout(CLOSE_HANDSHAKE_TIMEOUT, handshake).await;
    }
}
