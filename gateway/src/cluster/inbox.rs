//! The receiving side of the bus: one task applies the frames sent to this node, in arrival
//! order (so sequential posts reach a client in order), and queues an `Ack` for each `Post`,
//! `Delete` and group `Membership` change (the latter applied on a task of its own); another publishes the `Ack`s with bounded concurrency.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::Cluster;
use crate::bus::wire::{Envelope, Outcome};
use crate::error::CallbackError;
use crate::state::Shared;
use crate::telemetry;
use crate::ws::connections;

/// `Ack` publishes in flight at once.
const ACK_CONCURRENCY: usize = 64;

pub(super) async fn run(
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    mut inbox: mpsc::Receiver<Bytes>,
) {
    loop {
        let frame = tokio::select! {
            () = cluster.stop.cancelled() => break,
            frame = inbox.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
        };
        apply(&shared, &cluster, frame);
    }
}

fn apply(shared: &Arc<Shared>, cluster: &Arc<Cluster>, frame: Bytes) {
    let envelope = match Envelope::decode(frame) {
        Ok(envelope) => envelope,
        Err(error) => {
            metrics::counter!(telemetry::BUS_ERROR_TOTAL, "op" => "decode").increment(1);
            tracing::warn!(%error, "dropped a malformed cluster-bus frame");
            return;
        }
    };
    metrics::counter!(telemetry::BUS_RECEIVED_TOTAL, "kind" => envelope.kind()).increment(1);
    match envelope {
        Envelope::Post {
            request,
            reply_to,
            connection_id,
            payload,
        } => {
            let pushed = connections::push(shared, &connection_id, None, payload);
            reply(cluster, reply_to, request, outcome(pushed));
        }
        Envelope::Delete {
            request,
            reply_to,
            connection_id,
            code,
            reason,
        } => {
            let closed = connections::close(shared, &connection_id, None, code, reason);
            reply(cluster, reply_to, request, outcome(closed));
        }
        Envelope::Membership {
            request,
            reply_to,
            connection_id,
            group,
            join,
        } => {
            // Joining waits for Redis: off this task, so later frames are not held up. The
            // sender waits for the Ack, so sequential calls still apply in order.
            let (shared, cluster) = (Arc::clone(shared), Arc::clone(cluster));
            tokio::spawn(async move {
                let changed =
                    connections::membership(&shared, &connection_id, None, &group, join).await;
                reply(&cluster, reply_to, request, outcome(changed));
            });
        }
        Envelope::Ack { request, outcome } => cluster.pending.complete(request, outcome),
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

fn reply(cluster: &Cluster, to: String, request: u64, outcome: Outcome) {
    let frame = match (Envelope::Ack { request, outcome }).encode() {
        Ok(frame) => frame,
        Err(_) => return,
    };
    if cluster.acks.try_send((to, frame)).is_err() {
        // The sender answers 503 when its wait for this Ack times out.
        metrics::counter!(telemetry::BUS_DROPPED_TOTAL).increment(1);
    }
}

/// Publishes queued `Ack`s, at most [`ACK_CONCURRENCY`] at a time.
pub(super) async fn send_acks(cluster: Arc<Cluster>, mut acks: mpsc::Receiver<(String, Bytes)>) {
    let limit = Arc::new(Semaphore::new(ACK_CONCURRENCY));
    let mut in_flight = JoinSet::new();
    loop {
        let (node, frame) = tokio::select! {
            () = cluster.stop.cancelled() => break,
            ack = acks.recv() => match ack {
                Some(ack) => ack,
                None => break,
            },
        };
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            break;
        };
        let cluster = Arc::clone(&cluster);
        in_flight.spawn(async move {
            let _permit = permit;
            publish(&cluster, &node, "ack", frame).await.ok();
        });
        while in_flight.try_join_next().is_some() {}
    }
    in_flight.shutdown().await;
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
