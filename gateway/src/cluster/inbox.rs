//! The receiving side of the bus: one task applies the frames sent to this node, in arrival
//! order (so sequential posts reach a client in order; a `Batch` frame's frames in its order),
//! taking every frame queued at once (up to [`READ_BATCH`]) and queueing the `Ack`s of that
//! read's `Post`s and `Delete`s together, in batches of at most [`READ_BATCH`] (group
//! `Membership` changes are applied on a task of their own and queue their `Ack` alone).
//! Another task publishes the queued batches: the `Ack`s for one node in one `Acks` frame, every
//! node's frame in one pipelined round trip, with bounded concurrency.
//!
//! `Ack`s skip the queue: [`Receiver`] hands them to their waiting handlers on the
//! subscription's reader (nothing orders them against other frames; each handler waits for its
//! own).
//!
//! The owner answers for its connections only while its lease is certainly held (see
//! `LeaseState::certainly_held`); otherwise `Unavailable` (503), since another node may have
//! reaped them while this one was frozen.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;

use super::Cluster;
use super::pending::{Answer, Pending};
use crate::bus::Receive;
use crate::bus::wire::{self, Envelope, MAX_ACKS, Outcome};
use crate::error::CallbackError;
use crate::state::Shared;
use crate::telemetry;
use crate::traces::Parent;
use crate::ws::connections;

/// Pipelined `Ack` publishes in flight at once.
const ACK_CONCURRENCY: usize = 64;
/// Frames taken from the receive queue in one read.
pub(super) const READ_BATCH: usize = 256;
/// Queued `Ack` batches merged into one round trip at most.
const MERGE_BATCHES: usize = 16;

/// One answer owed to the node `to`.
#[derive(Debug)]
pub(super) struct Ack {
    to: String,
    request: u64,
    outcome: Outcome,
}

/// Takes the frames the subscription receives: `Ack`s to their waiting handlers at once,
/// everything else into the bounded queue [`run`] applies in order.
pub(super) struct Receiver {
    queue: mpsc::Sender<Bytes>,
    pending: Arc<Pending>,
}

impl Receiver {
    pub(super) fn new(queue: mpsc::Sender<Bytes>, pending: Arc<Pending>) -> Self {
        Self { queue, pending }
    }
}

impl Receive for Receiver {
    fn receive(&self, frame: Bytes) {
        if !wire::is_answer(&frame) {
            self.queue.receive(frame);
            return;
        }
        match Envelope::decode(frame) {
            Ok(Envelope::Ack { request, outcome }) => {
                metrics::counter!(telemetry::BUS_RECEIVED_TOTAL, "kind" => "ack").increment(1);
                self.pending.complete(request, Answer::Ack(outcome));
            }
            Ok(Envelope::Acks { answers }) => {
                metrics::counter!(telemetry::BUS_RECEIVED_TOTAL, "kind" => "acks").increment(1);
                for (request, outcome) in answers {
                    self.pending.complete(request, Answer::Ack(outcome));
                }
            }
            Ok(_) | Err(_) => {
                metrics::counter!(telemetry::BUS_ERROR_TOTAL, "op" => "decode").increment(1);
                tracing::warn!("dropped a malformed cluster-bus answer");
            }
        }
    }
}

pub(super) async fn run(
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    mut inbox: mpsc::Receiver<Bytes>,
) {
    let mut frames = Vec::with_capacity(READ_BATCH);
    loop {
        let taken = tokio::select! {
            () = cluster.stop.cancelled() => break,
            taken = inbox.recv_many(&mut frames, READ_BATCH) => taken,
        };
        if taken == 0 {
            break;
        }
        let mut read = Read {
            cluster: &cluster,
            batch: Vec::new(),
            kinds: Vec::new(),
        };
        for frame in frames.drain(..) {
            apply(&shared, &cluster, frame, &mut read, Parent::NONE);
        }
        read.finish();
    }
}

/// What one read owes: its `Ack`s, queued in batches of at most [`READ_BATCH`] (a read may
/// take `Batch` frames of many requests each), and its frames counted by kind (one metric
/// update per kind and read).
struct Read<'a> {
    cluster: &'a Cluster,
    batch: Vec<Ack>,
    kinds: Vec<(&'static str, u64)>,
}

impl Read<'_> {
    fn push(&mut self, ack: Ack) {
        self.batch.push(ack);
        if self.batch.len() >= READ_BATCH {
            queue_acks(self.cluster, std::mem::take(&mut self.batch));
        }
    }

    fn seen(&mut self, kind: &'static str) {
        match self.kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.kinds.push((kind, 1)),
        }
    }

    fn finish(self) {
        queue_acks(self.cluster, self.batch);
        for (kind, n) in self.kinds {
            metrics::counter!(telemetry::BUS_RECEIVED_TOTAL, "kind" => kind).increment(n);
        }
    }
}

/// `act`'s outcome while this node certainly holds its lease; otherwise `Unavailable` (a node
/// that may have been reaped must not act for connections whose `$disconnect` may have run).
fn while_held(cluster: &Cluster, act: impl FnOnce() -> Outcome) -> Outcome {
    if cluster.lease.certainly_held() {
        act()
    } else {
        Outcome::Unavailable
    }
}

/// Applies one frame; `trace` is the `deliver` span of a `Traced` frame's content (a membership
/// change continues it on its own task).
fn apply(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    frame: Bytes,
    acks: &mut Read<'_>,
    trace: Parent<'_>,
) {
    let envelope = match Envelope::decode(frame) {
        Ok(envelope) => envelope,
        Err(error) => {
            metrics::counter!(telemetry::BUS_ERROR_TOTAL, "op" => "decode").increment(1);
            tracing::warn!(%error, "dropped a malformed cluster-bus frame");
            return;
        }
    };
    acks.seen(envelope.kind());
    match envelope {
        Envelope::Post {
            request,
            reply_to,
            connection_id,
            payload,
        } => {
            let outcome = while_held(cluster, || {
                outcome(connections::push(shared, &connection_id, None, payload))
            });
            acks.push(Ack {
                to: reply_to,
                request,
                outcome,
            });
        }
        Envelope::Delete {
            request,
            reply_to,
            connection_id,
            code,
            reason,
        } => {
            let outcome = while_held(cluster, || {
                outcome(connections::close(
                    shared,
                    &connection_id,
                    None,
                    code,
                    reason,
                ))
            });
            acks.push(Ack {
                to: reply_to,
                request,
                outcome,
            });
        }
        Envelope::Membership {
            request,
            reply_to,
            connection_id,
            group,
            join,
        } => {
            if !cluster.lease.certainly_held() {
                acks.push(Ack {
                    to: reply_to,
                    request,
                    outcome: Outcome::Unavailable,
                });
                return;
            }
            // Joining waits for Redis: off this task, so later frames are not held up. The
            // sender waits for the Ack, so sequential calls still apply in order.
            let (shared, cluster, trace) =
                (Arc::clone(shared), Arc::clone(cluster), trace.detach());
            tokio::spawn(async move {
                let changed = connections::membership(
                    &shared,
                    &connection_id,
                    None,
                    &group,
                    join,
                    trace.parent(),
                )
                .await;
                let ack = Ack {
                    to: reply_to,
                    request,
                    outcome: outcome(changed),
                };
                queue_acks(&cluster, vec![ack]);
            });
        }
        Envelope::Ack { request, outcome } => {
            cluster.pending.complete(request, Answer::Ack(outcome));
        }
        Envelope::Acks { answers } => {
            for (request, outcome) in answers {
                cluster.pending.complete(request, Answer::Ack(outcome));
            }
        }
        Envelope::Batch { frames } => {
            for frame in frames {
                apply(shared, cluster, frame, acks, trace);
            }
        }
        Envelope::Traced {
            traceparent,
            tracestate,
            frame,
        } => {
            // The `deliver` span continues the sender's `forward` span (this node's tracing on).
            let mut span = if shared.traces.is_on() {
                let remote = crate::traces::propagate::parse(&traceparent, &tracestate);
                shared.traces.continuing("deliver", remote)
            } else {
                crate::traces::Span::none()
            };
            span.set_str("wsgate.node_id", &shared.node_id);
            apply(shared, cluster, frame, acks, span.parent());
        }
        Envelope::Probe { seq } => cluster.lease.probe_seen(seq),
    }
}

/// The `Ack` of a request applied to a connection of this node (`None`: not held here).
fn outcome(result: Option<Result<(), CallbackError>>) -> Outcome {
    match result {
        Some(Ok(())) => Outcome::Done,
        None | Some(Err(CallbackError::Gone)) => Outcome::Gone,
        Some(Err(CallbackError::LimitExceeded)) => Outcome::Full,
        Some(Err(CallbackError::TooManyGroups { .. })) => Outcome::TooManyGroups,
        Some(Err(_)) => Outcome::Unavailable,
    }
}

fn queue_acks(cluster: &Cluster, acks: Vec<Ack>) {
    if acks.is_empty() {
        return;
    }
    let count = acks.len();
    if cluster.acks.try_send(acks).is_err() {
        // Their senders answer 503 when their wait for these Acks times out.
        metrics::counter!(telemetry::BUS_DROPPED_TOTAL).increment(count as u64);
    }
}

/// The frames for a run of `Ack`s: one per node (in the order the nodes first appear), each
/// holding that node's answers in the order they were applied.
fn ack_frames(acks: impl IntoIterator<Item = Ack>) -> Vec<(String, Bytes)> {
    let mut per_node: Vec<(String, Vec<(u64, Outcome)>)> = Vec::new();
    for ack in acks {
        match per_node.iter_mut().find(|(node, _)| *node == ack.to) {
            Some((_, answers)) => answers.push((ack.request, ack.outcome)),
            None => per_node.push((ack.to, vec![(ack.request, ack.outcome)])),
        }
    }
    let mut frames = Vec::with_capacity(per_node.len());
    for (node, answers) in per_node {
        for chunk in answers.chunks(MAX_ACKS) {
            let envelope = match chunk {
                [(request, outcome)] => Envelope::Ack {
                    request: *request,
                    outcome: *outcome,
                },
                _ => Envelope::Acks {
                    answers: chunk.to_vec(),
                },
            };
            if let Ok(frame) = envelope.encode() {
                frames.push((node.clone(), frame));
            }
        }
    }
    frames
}

/// Publishes the queued `Ack` batches: everything queued at once (up to [`MERGE_BATCHES`]
/// batches) in one pipelined round trip, at most [`ACK_CONCURRENCY`] round trips at a time
/// (polled here, no task each).
pub(super) async fn send_acks(cluster: Arc<Cluster>, mut acks: mpsc::Receiver<Vec<Ack>>) {
    let mut in_flight = FuturesUnordered::new();
    let mut batches = Vec::with_capacity(MERGE_BATCHES);
    loop {
        tokio::select! {
            () = cluster.stop.cancelled() => break,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            taken = acks.recv_many(&mut batches, MERGE_BATCHES),
                if in_flight.len() < ACK_CONCURRENCY =>
            {
                if taken == 0 {
                    break;
                }
                let frames = ack_frames(batches.drain(..).flatten());
                in_flight.push(publish_many(&cluster, frames));
            }
        }
    }
}

/// Publishes `frames` (`Ack`s) in one round trip, with metrics.
async fn publish_many(cluster: &Cluster, frames: Vec<(String, Bytes)>) {
    let count = frames.len() as u64;
    let started = Instant::now();
    let result = cluster.bus.publish_many(frames).await;
    metrics::histogram!(telemetry::BUS_PUBLISH_LATENCY).record(started.elapsed().as_secs_f64());
    match result {
        Ok(_) => {
            metrics::counter!(telemetry::BUS_PUBLISHED_TOTAL, "kind" => "ack").increment(count);
        }
        Err(error) => {
            metrics::counter!(telemetry::BUS_ERROR_TOTAL, "op" => "publish").increment(1);
            tracing::debug!(%error, frames = count, "cluster-bus ack publish failed");
        }
    }
}

/// Publishes one frame with metrics; answers the receiver count.
pub(super) async fn publish(
    cluster: &Cluster,
    node: &str,
    kind: &'static str,
    frame: Bytes,
) -> Result<u64, crate::bus::BusError> {
    let started = Instant::now();
    let result = cluster.bus.publish(node, frame).await;
    metrics::histogram!(telemetry::BUS_PUBLISH_LATENCY).record(started.elapsed().as_secs_f64());
    match &result {
        Ok(_) => metrics::counter!(telemetry::BUS_PUBLISHED_TOTAL, "kind" => kind).increment(1),
        Err(error) => {
            metrics::counter!(telemetry::BUS_ERROR_TOTAL, "op" => "publish").increment(1);
            tracing::debug!(%error, node, kind, "cluster-bus publish failed");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(to: &str, request: u64, outcome: Outcome) -> Ack {
        Ack {
            to: to.into(),
            request,
            outcome,
        }
    }

    #[test]
    fn acks_go_out_one_frame_per_node_in_the_order_applied() {
        let frames = ack_frames([
            ack("b", 1, Outcome::Done),
            ack("c", 7, Outcome::Gone),
            ack("b", 2, Outcome::Full),
            ack("b", 3, Outcome::Done),
        ]);
        let decoded: Vec<(String, Envelope)> = frames
            .into_iter()
            .map(|(node, frame)| (node, Envelope::decode(frame).expect("decodes")))
            .collect();
        assert_eq!(
            decoded,
            vec![
                (
                    "b".to_string(),
                    Envelope::Acks {
                        answers: vec![(1, Outcome::Done), (2, Outcome::Full), (3, Outcome::Done)],
                    }
                ),
                (
                    "c".to_string(),
                    // A lone answer travels as a plain Ack.
                    Envelope::Ack {
                        request: 7,
                        outcome: Outcome::Gone,
                    }
                ),
            ]
        );
    }

    #[test]
    fn more_acks_than_a_frame_holds_take_several_frames() {
        let frames = ack_frames((0..MAX_ACKS as u64 + 2).map(|i| ack("b", i, Outcome::Done)));
        assert_eq!(frames.len(), 2);
        let answers: Vec<u64> = frames
            .into_iter()
            .flat_map(
                |(_, frame)| match Envelope::decode(frame).expect("decodes") {
                    Envelope::Acks { answers } => answers.into_iter().map(|(r, _)| r).collect(),
                    Envelope::Ack { request, .. } => vec![request],
                    other => panic!("unexpected {other:?}"),
                },
            )
            .collect();
        assert_eq!(answers, (0..MAX_ACKS as u64 + 2).collect::<Vec<_>>());
    }
}
