//! The receiving side of the bus: one task applies the frames sent to this node, in arrival
//! order (so sequential posts reach a client in order), and queues an `Ack` for each `Post` and
//! `Delete`; another publishes the `Ack`s with bounded concurrency.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::Cluster;
use super::wire::{Envelope, Outcome};
use crate::callback;
use crate::error::CallbackError;
use crate::state::Shared;
use crate::telemetry;

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

fn apply(shared: &Shared, cluster: &Cluster, frame: Bytes) {
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
            let outcome = match shared.registry.get(&connection_id) {
                Some(handle) => outcome(callback::push_to(&handle, payload)),
                None => Outcome::Gone,
            };
            reply(cluster, reply_to, request, outcome);
        }
        Envelope::Delete {
            request,
            reply_to,
            connection_id,
            code,
            reason,
        } => {
            let outcome = match shared.registry.get(&connection_id).filter(|h| h.is_open()) {
                Some(handle) => {
                    handle.request_close(code, reason);
                    Outcome::Done
                }
                None => Outcome::Gone,
            };
            reply(cluster, reply_to, request, outcome);
        }
        Envelope::Ack { request, outcome } => cluster.pending.complete(request, outcome),
        Envelope::Probe { seq } => cluster.lease.probe_seen(seq),
    }
}

fn outcome(result: Result<(), CallbackError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(CallbackError::LimitExceeded) => Outcome::Full,
        Err(_) => Outcome::Gone,
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
) -> Result<u64, super::BusError> {
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
