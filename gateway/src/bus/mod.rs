//! The bus between gateway nodes: the [`ClusterBus`] seam (publish a frame to one node,
//! receive the frames sent to this node), the named [`channels`] groups publish and subscribe
//! on, their Redis pub/sub implementations (one server, or a Redis Cluster with sharded
//! pub/sub), and the [`wire`] frames. The cross-node logic that uses it (`forward`, `inbox`,
//! group fan-out) lives in [`crate::cluster`] and [`crate::groups`].

pub(crate) mod channels;
pub(crate) mod redis_bus;
pub(crate) mod redis_channels;
pub(crate) mod wire;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use self::wire::WireError;
use crate::telemetry;

/// What takes the frames a subscription receives. Called on the connection's reader task, so
/// it must never block.
pub(crate) trait Receive: Send + Sync + 'static {
    /// Takes one frame.
    fn receive(&self, frame: Bytes);
}

/// A bounded queue: a full queue drops the frame (counted in `wsgate_bus_dropped_total`).
impl Receive for tokio::sync::mpsc::Sender<Bytes> {
    fn receive(&self, frame: Bytes) {
        if self.try_send(frame).is_err() {
            metrics::counter!(telemetry::BUS_DROPPED_TOTAL).increment(1);
        }
    }
}

/// Why the bus could not publish or subscribe.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Redis failed or refused the command.
    #[error("cluster bus: Redis failed during {op}")]
    Redis {
        /// The bus operation.
        op: &'static str,
        /// The client error.
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not answer in time.
    #[error("cluster bus: no answer to {op} within {after:?}")]
    Timeout {
        /// The bus operation.
        op: &'static str,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// A message could not be encoded.
    #[error("cluster bus: cannot encode a message")]
    Encode(#[from] WireError),
}

/// Node-to-node transport. Frames received for this node go to the [`Receive`] given to the
/// implementation when it is built; frames published one after another from this node to one
/// node arrive there in the order they were published.
#[async_trait]
pub(crate) trait ClusterBus: Send + Sync + std::fmt::Debug + 'static {
    /// Publishes `frame` on `node`'s channel; answers how many subscribers received it (0:
    /// nobody is listening on that node's channel: it is dead, partitioned or not yet up).
    ///
    /// # Errors
    /// [`BusError`] when the transport failed; the frame may or may not have been delivered.
    async fn publish(&self, node: &str, frame: Bytes) -> Result<u64, BusError>;

    /// Publishes each `(node, frame)` as [`ClusterBus::publish`] would, all in one round trip
    /// where the transport allows, in order per node; answers each frame's receiver count.
    ///
    /// # Errors
    /// [`BusError`] when the transport failed; any of the frames may or may not have been
    /// delivered.
    async fn publish_many(&self, frames: Vec<(String, Bytes)>) -> Result<Vec<u64>, BusError>;

    /// Re-creates this node's subscription (after probes stopped arriving).
    ///
    /// # Errors
    /// [`BusError`] when the transport failed; the caller tries again later.
    async fn resubscribe(&self) -> Result<(), BusError>;
}
