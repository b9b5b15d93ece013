//! [`ClusterBus`] on Redis pub/sub: one channel per node, `{prefix}:bus:{node_id}`.
//!
//! - One server: `PUBLISH` on a reconnecting connection; the subscription is a RESP3
//!   connection with a push callback that resubscribes by itself after a reconnect.
//! - Redis Cluster: `SPUBLISH`/`SSUBSCRIBE` (sharded pub/sub), so a frame travels only to the
//!   shard that owns the channel's slot and `SPUBLISH` counts that shard's subscribers; the
//!   cluster client follows slot moves and resubscribes.
//!
//! The push callback runs on the connection's reader task and hands each frame to the
//! [`Receive`] (which never blocks: a bounded queue drops a frame when full, counted, and its
//! sender answers 503 when no `Ack` arrives).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::Mutex;
pub(crate) use wsgate_connection_store::redis_conn::RedisTarget;
use wsgate_connection_store::redis_conn::{self, ConnectError, PushHandler};

use super::{BusError, ClusterBus, Receive};
use crate::telemetry;

/// A connection to one Redis or to a Redis Cluster.
pub(super) use wsgate_connection_store::redis_conn::RedisConn as Conn;

/// Redis pub/sub between gateway nodes.
pub(crate) struct RedisBus {
    target: RedisTarget,
    prefix: String,
    channel: String,
    publisher: Conn,
    subscriber: Mutex<Conn>,
    receive: Arc<dyn Receive>,
}

impl std::fmt::Debug for RedisBus {
    // The seeds may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("channel", &self.channel)
            .field("cluster", &self.target.cluster)
            .finish_non_exhaustive()
    }
}

pub(super) fn redis_err(op: &'static str) -> impl Fn(redis::RedisError) -> BusError {
    move |source| BusError::Redis { op, source }
}

pub(super) async fn timed<T>(
    op: &'static str,
    after: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(after, fut).await {
        Ok(result) => result.map_err(redis_err(op)),
        Err(_) => Err(BusError::Timeout { op, after }),
    }
}

/// The push callback: frames on our channel go to `receive`, never blocking.
fn push_sender(receive: Arc<dyn Receive>) -> PushHandler {
    Arc::new(move |info: PushInfo| match info.kind {
        PushKind::Message | PushKind::SMessage => {
            if let Some(Value::BulkString(frame)) = info.data.into_iter().nth(1) {
                receive.receive(Bytes::from(frame));
            }
        }
        PushKind::Disconnection => {
            metrics::counter!(telemetry::BUS_ERROR_TOTAL, "op" => "subscription_lost").increment(1);
            tracing::debug!("cluster bus subscription connection lost; reconnecting");
        }
        _ => {}
    })
}

impl RedisBus {
    /// Connects, subscribes to this node's channel, and hands what arrives to `receive`.
    ///
    /// # Errors
    /// [`BusError`] when Redis cannot be reached or refuses.
    pub(crate) async fn connect(
        target: RedisTarget,
        prefix: &str,
        node_id: &str,
        receive: Arc<dyn Receive>,
    ) -> Result<Self, BusError> {
        let publisher = connect(&target, None).await?;
        let channel = channel(prefix, node_id);
        let subscriber = subscribe(&target, &channel, &receive).await?;
        Ok(Self {
            target,
            prefix: prefix.to_owned(),
            channel,
            publisher,
            subscriber: Mutex::new(subscriber),
            receive,
        })
    }
}

/// `{prefix}:bus:{node_id}`.
fn channel(prefix: &str, node_id: &str) -> String {
    format!("{prefix}:bus:{node_id}")
}

/// A connection; with `push`, a RESP3 one that hands pushed frames to it.
pub(super) async fn connect(
    target: &RedisTarget,
    push: Option<&Arc<dyn Receive>>,
) -> Result<Conn, BusError> {
    redis_conn::connect(target, push.map(|receive| push_sender(Arc::clone(receive))))
        .await
        .map_err(|error| match error {
            ConnectError::Timeout(after) => BusError::Timeout {
                op: "connect",
                after,
            },
            ConnectError::Redis(source) => BusError::Redis {
                op: "connect",
                source,
            },
        })
}

async fn subscribe(
    target: &RedisTarget,
    channel: &str,
    receive: &Arc<dyn Receive>,
) -> Result<Conn, BusError> {
    let mut conn = connect(target, Some(receive)).await?;
    resubscribe_on(&mut conn, channel, target.timeout).await?;
    Ok(conn)
}

async fn resubscribe_on(conn: &mut Conn, channel: &str, after: Duration) -> Result<(), BusError> {
    match conn {
        Conn::Single(c) => timed("subscribe", after, c.subscribe(channel)).await,
        Conn::Cluster(c) => timed("subscribe", after, c.ssubscribe(channel)).await,
    }
}

#[async_trait]
impl ClusterBus for RedisBus {
    async fn publish(&self, node: &str, frame: Bytes) -> Result<u64, BusError> {
        let channel = channel(&self.prefix, node);
        let after = self.target.timeout;
        match self.publisher.clone() {
            Conn::Single(mut c) => {
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(channel).arg(frame.as_ref());
                timed("publish", after, cmd.query_async(&mut c)).await
            }
            Conn::Cluster(mut c) => {
                let mut cmd = redis::cmd("SPUBLISH");
                cmd.arg(channel).arg(frame.as_ref());
                timed("publish", after, cmd.query_async(&mut c)).await
            }
        }
    }

    async fn publish_many(&self, frames: Vec<(String, Bytes)>) -> Result<Vec<u64>, BusError> {
        let after = self.target.timeout;
        match self.publisher.clone() {
            Conn::Single(mut c) => {
                let mut pipe = redis::pipe();
                for (node, frame) in &frames {
                    pipe.cmd("PUBLISH")
                        .arg(channel(&self.prefix, node))
                        .arg(frame.as_ref());
                }
                timed("publish", after, pipe.query_async(&mut c)).await
            }
            Conn::Cluster(c) => {
                // The channels may live on different shards: one command each, all in flight
                // at once on the multiplexed connections (sent in order, so in order per node).
                let sends = frames.iter().map(|(node, frame)| {
                    let mut c = c.clone();
                    let mut cmd = redis::cmd("SPUBLISH");
                    cmd.arg(channel(&self.prefix, node)).arg(frame.as_ref());
                    async move { cmd.query_async::<u64>(&mut c).await }
                });
                let all = futures_util::future::try_join_all(sends);
                timed("publish", after, all).await
            }
        }
    }

    async fn resubscribe(&self) -> Result<(), BusError> {
        let mut current = self.subscriber.lock().await;
        // Leave first (best effort), so that no frame is delivered twice by old and new.
        let after = self.target.timeout;
        let left = match &mut *current {
            Conn::Single(c) => timed("unsubscribe", after, c.unsubscribe(&self.channel)).await,
            Conn::Cluster(c) => timed("unsubscribe", after, c.sunsubscribe(&self.channel)).await,
        };
        if let Err(error) = left {
            tracing::debug!(%error, "could not leave the old subscription");
        }
        *current = subscribe(&self.target, &self.channel, &self.receive).await?;
        Ok(())
    }
}
