//! [`Channels`] on Redis pub/sub: `PUBLISH`/`SUBSCRIBE` on one server, sharded
//! `SPUBLISH`/`SSUBSCRIBE` on a Redis Cluster (a frame then travels only to the shard that owns
//! the channel's slot).
//!
//! One publishing connection (commands are written in the order they are issued, so sequential
//! publishes keep their order) and one RESP3 subscribing connection whose pushes go, never
//! blocking, into the bounded queue; both reconnect by themselves, and the subscriptions are
//! restored after a reconnect (the client tracks them).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::channels::Channels;
use super::redis_bus::{Conn, RedisTarget, connect, timed};
use super::{BusError, Receive};

/// Redis pub/sub on named channels.
pub(crate) struct RedisChannels {
    target: RedisTarget,
    publisher: Conn,
    subscriber: Conn,
}

impl std::fmt::Debug for RedisChannels {
    // The seeds may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisChannels")
            .field("cluster", &self.target.cluster)
            .finish_non_exhaustive()
    }
}

impl RedisChannels {
    /// Connects a publisher and a subscriber whose frames go to `inbox`.
    ///
    /// # Errors
    /// [`BusError`] when Redis cannot be reached.
    pub(crate) async fn connect(
        target: RedisTarget,
        inbox: &mpsc::Sender<Bytes>,
    ) -> Result<Self, BusError> {
        let publisher = connect(&target, None).await?;
        let receive: Arc<dyn Receive> = Arc::new(inbox.clone());
        let subscriber = connect(&target, Some(&receive)).await?;
        Ok(Self {
            target,
            publisher,
            subscriber,
        })
    }
}

#[async_trait]
impl Channels for RedisChannels {
    async fn publish(&self, channel: &str, frame: Bytes) -> Result<u64, BusError> {
        let after = self.target.timeout;
        let command = match &self.publisher {
            Conn::Single(_) => "PUBLISH",
            Conn::Cluster(_) => "SPUBLISH",
        };
        let mut cmd = redis::cmd(command);
        cmd.arg(channel).arg(frame.as_ref());
        match self.publisher.clone() {
            Conn::Single(mut c) => timed("group_publish", after, cmd.query_async(&mut c)).await,
            Conn::Cluster(mut c) => timed("group_publish", after, cmd.query_async(&mut c)).await,
        }
    }

    async fn subscribe(&self, channel: &str) -> Result<(), BusError> {
        let after = self.target.timeout;
        match self.subscriber.clone() {
            Conn::Single(mut c) => timed("group_subscribe", after, c.subscribe(channel)).await,
            Conn::Cluster(mut c) => timed("group_subscribe", after, c.ssubscribe(channel)).await,
        }
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BusError> {
        let after = self.target.timeout;
        match self.subscriber.clone() {
            Conn::Single(mut c) => timed("group_unsubscribe", after, c.unsubscribe(channel)).await,
            Conn::Cluster(mut c) => {
                timed("group_unsubscribe", after, c.sunsubscribe(channel)).await
            }
        }
    }
}
