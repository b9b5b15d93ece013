//! The named-channel seam used by groups: publish a frame on a channel once, and subscribe this
//! node to the channels of the groups it holds members of. Frames received on any subscribed
//! channel go to the bounded queue given to the implementation when it is built; frames
//! published one after another on one channel arrive in that order.

use async_trait::async_trait;
use bytes::Bytes;

use super::BusError;

/// Publish/subscribe on named channels between gateway nodes.
#[async_trait]
pub(crate) trait Channels: Send + Sync + std::fmt::Debug + 'static {
    /// Publishes `frame` on `channel`; answers how many subscribers (nodes) received it.
    ///
    /// # Errors
    /// [`BusError`] when the transport failed; the frame may or may not have been delivered.
    async fn publish(&self, channel: &str, frame: Bytes) -> Result<u64, BusError>;

    /// Subscribes this node to `channel` (idempotent); frames published after this returns
    /// reach this node.
    ///
    /// # Errors
    /// [`BusError`] when the transport failed.
    async fn subscribe(&self, channel: &str) -> Result<(), BusError>;

    /// Unsubscribes this node from `channel` (idempotent).
    ///
    /// # Errors
    /// [`BusError`] when the transport failed.
    async fn unsubscribe(&self, channel: &str) -> Result<(), BusError>;
}
