//! The sending side of forwarded callbacks: handlers queue their frame (bounded) and one task
//! publishes everything queued at once, the frames for one owner in one `Batch` frame (in
//! queue order) and all owners in one pipelined round trip; while a round trip is in flight,
//! the next frames queue up, so the batches grow with the load and a lone frame goes out at
//! once. Frames therefore reach each owner in the order they were queued.
//!
//! A frame that reached no subscriber, or that could not be published, is reported to its
//! waiting handler through [`super::pending`], as the owner's `Ack` is.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::Cluster;
use super::pending::Answer;
use crate::bus::wire;
use crate::telemetry;

/// Frames taken from the queue for one round trip at most.
const TAKE: usize = 1024;
/// Frames in one `Batch` at most.
const BATCH_FRAMES: usize = 256;
/// Bytes of one `Batch` at most (a larger frame travels alone).
const BATCH_BYTES: usize = 1 << 20;

/// One frame for `owner`, answered to `request`.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) owner: Arc<str>,
    pub(super) request: u64,
    pub(super) kind: &'static str,
    pub(super) frame: Bytes,
}

/// Frames for one owner, each with the request it carries, in queue order.
type Queued = Vec<(u64, Bytes)>;

/// One frame to publish and the requests it carries.
struct Parcel {
    owner: Arc<str>,
    frame: Bytes,
    requests: Vec<u64>,
}

pub(super) async fn run(cluster: Arc<Cluster>, mut queue: mpsc::Receiver<Outgoing>) {
    let mut taken = Vec::with_capacity(TAKE);
    loop {
        let count = tokio::select! {
            () = cluster.stop.cancelled() => break,
            count = queue.recv_many(&mut taken, TAKE) => count,
        };
        if count == 0 {
            break;
        }
        count_kinds(&taken);
        let parcels = parcels(taken.drain(..));
        send(&cluster, parcels).await;
    }
}

/// Counts the frames in `wsgate_bus_published_total` by kind, one update per kind.
fn count_kinds(items: &[Outgoing]) {
    let mut kinds: Vec<(&'static str, u64)> = Vec::new();
    for item in items {
        match kinds.iter_mut().find(|(kind, _)| *kind == item.kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((item.kind, 1)),
        }
    }
    for (kind, n) in kinds {
        metrics::counter!(telemetry::BUS_PUBLISHED_TOTAL, "kind" => kind).increment(n);
    }
}

/// Groups frames per owner (owners in order of first appearance, frames in queue order) into
/// parcels of at most [`BATCH_FRAMES`] frames and [`BATCH_BYTES`] bytes.
fn parcels(items: impl Iterator<Item = Outgoing>) -> Vec<Parcel> {
    let mut per_owner: Vec<(Arc<str>, Queued)> = Vec::new();
    for item in items {
        match per_owner.iter_mut().find(|(owner, _)| *owner == item.owner) {
            Some((_, frames)) => frames.push((item.request, item.frame)),
            None => per_owner.push((item.owner, vec![(item.request, item.frame)])),
        }
    }
    let mut parcels = Vec::new();
    for (owner, frames) in per_owner {
        let mut group: Queued = Vec::new();
        let mut bytes = 0;
        for (request, frame) in frames {
            if !group.is_empty()
                && (group.len() == BATCH_FRAMES || bytes + frame.len() > BATCH_BYTES)
            {
                parcels.push(parcel(&owner, std::mem::take(&mut group)));
                bytes = 0;
            }
            bytes += frame.len();
            group.push((request, frame));
        }
        if !group.is_empty() {
            parcels.push(parcel(&owner, group));
        }
    }
    parcels
}

/// One frame alone, several in a `Batch`.
fn parcel(owner: &Arc<str>, group: Queued) -> Parcel {
    let frame = match group.as_slice() {
        [(_, frame)] => frame.clone(),
        // The frames are our own encodings (no batch among them) and each is far below 4 GiB.
        _ => wire::batch(group.iter().map(|(_, frame)| frame.as_ref())).unwrap_or_default(),
    };
    Parcel {
        owner: Arc::clone(owner),
        frame,
        requests: group.into_iter().map(|(request, _)| request).collect(),
    }
}

/// Publishes the parcels in one round trip and tells the handlers of those that reached nobody.
async fn send(cluster: &Cluster, parcels: Vec<Parcel>) {
    let frames = parcels
        .iter()
        .map(|p| (p.owner.to_string(), p.frame.clone()))
        .collect();
    let started = Instant::now();
    let result = cluster.bus.publish_many(frames).await;
    metrics::histogram!(telemetry::BUS_PUBLISH_LATENCY).record(started.elapsed().as_secs_f64());
    match result {
        Ok(receivers) => {
            for (parcel, receivers) in parcels.iter().zip(receivers) {
                if receivers == 0 {
                    for request in &parcel.requests {
                        cluster.pending.complete(*request, Answer::NoSubscriber);
                    }
                }
            }
        }
        Err(error) => {
            metrics::counter!(telemetry::BUS_ERROR_TOTAL, "op" => "publish").increment(1);
            tracing::debug!(%error, "cluster-bus publish failed");
            for request in parcels.iter().flat_map(|p| &p.requests) {
                cluster.pending.complete(*request, Answer::NotSent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::wire::Envelope;

    fn item(owner: &str, request: u64, frame: &[u8]) -> Outgoing {
        Outgoing {
            owner: Arc::from(owner),
            request,
            kind: "post",
            frame: Bytes::copy_from_slice(frame),
        }
    }

    #[test]
    fn frames_are_grouped_per_owner_in_queue_order() {
        let parcels = parcels(
            [
                item("a", 1, b"\x04one"),
                item("b", 2, b"\x04two"),
                item("a", 3, b"\x04three"),
            ]
            .into_iter(),
        );
        assert_eq!(parcels.len(), 2);
        assert_eq!(&*parcels[0].owner, "a");
        assert_eq!(parcels[0].requests, vec![1, 3]);
        let Envelope::Batch { frames } = Envelope::decode(parcels[0].frame.clone()).expect("ok")
        else {
            panic!("a batch");
        };
        assert_eq!(frames, vec![&b"\x04one"[..], &b"\x04three"[..]]);
        // A lone frame goes out as it is.
        assert_eq!(parcels[1].requests, vec![2]);
        assert_eq!(parcels[1].frame, &b"\x04two"[..]);
    }

    #[test]
    fn batches_are_bounded_in_frames_and_bytes() {
        let many = parcels((0..BATCH_FRAMES as u64 + 1).map(|i| item("a", i, b"\x04x")));
        assert_eq!(
            many.iter().map(|p| p.requests.len()).collect::<Vec<_>>(),
            vec![BATCH_FRAMES, 1]
        );
        let big = vec![4u8; BATCH_BYTES / 2 + 1];
        let heavy = parcels((0..3).map(|i| item("a", i, &big)));
        assert_eq!(heavy.len(), 3, "two such frames exceed a batch");
    }
}
