//! [`ClusterBus`] on Redis pub/sub: one channel per node, `{prefix}:bus:{node_id}`.
//!
//! - One server: `PUBLISH` on a reconnecting connection; the subscription is a RESP3
//!   connection with a push callback that resubscribes by itself after a reconnect.
//! - Redis Cluster: `SPUBLISH`/`SSUBSCRIBE` (sharded pub/sub), so a frame travels only to the
//!   shard that owns the channel's slot and `SPUBLISH` counts that shard's subscribers; the
//!   cluster client follows slot moves and resubscribes.
//!
//! The push callback runs on the connection's reader task, so it only does `try_send` into the
//! bounded inbox; a full inbox drops the frame (counted), and its sender answers 503 when no
//! `Ack` arrives.

use std::convert::Infallible;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Client, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::{Mutex, mpsc};

use super::{BusError, ClusterBus};
use crate::telemetry;

/// Where the Redis (or Redis Cluster) is.
#[derive(Clone, Debug)]
pub(crate) struct RedisTarget {
    /// `url`, or the seed `urls` of a cluster.
    pub seeds: Vec<String>,
    /// Redis Cluster (sharded pub/sub) rather than one server.
    pub cluster: bool,
    /// Per-command timeout.
    pub timeout: Duration,
}

/// A connection to one Redis or to a Redis Cluster.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Redis pub/sub between gateway nodes.
pub(crate) struct RedisBus {
    target: RedisTarget,
    prefix: String,
    channel: String,
    publisher: Conn,
    subscriber: Mutex<Conn>,
    inbox: mpsc::Sender<Bytes>,
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

/// The push callback: frames on our channel go to the inbox, never blocking.
fn push_sender(inbox: mpsc::Sender<Bytes>) -> impl Fn(PushInfo) -> Result<(), Infallible> {
    move |info: PushInfo| {
        match info.kind {
            PushKind::Message | PushKind::SMessage => {
                if let Some(Value::BulkString(frame)) = info.data.into_iter().nth(1)
                    && inbox.try_send(Bytes::from(frame)).is_err()
                {
                    metrics::counter!(telemetry::BUS_DROPPED_TOTAL).increment(1);
                }
            }
            PushKind::Disconnection => {
                metrics::counter!(telemetry::BUS_ERROR_TOTAL, "op" => "subscription_lost")
                    .increment(1);
                tracing::debug!("cluster bus subscription connection lost; reconnecting");
            }
            _ => {}
        }
        Ok(())
    }
}

impl RedisBus {
    /// Connects, subscribes to this node's channel, and sends what arrives to `inbox`.
    ///
    /// # Errors
    /// [`BusError`] when Redis cannot be reached or refuses.
    pub(crate) async fn connect(
        target: RedisTarget,
        prefix: &str,
        node_id: &str,
        inbox: mpsc::Sender<Bytes>,
    ) -> Result<Self, BusError> {
        let publisher = connect(&target, None).await?;
        let channel = channel(prefix, node_id);
        let subscriber = subscribe(&target, &channel, &inbox).await?;
        Ok(Self {
            target,
            prefix: prefix.to_owned(),
            channel,
            publisher,
            subscriber: Mutex::new(subscriber),
            inbox,
        })
    }
}

/// `{prefix}:bus:{node_id}`.
fn channel(prefix: &str, node_id: &str) -> String {
    format!("{prefix}:bus:{node_id}")
}

/// A connection; with `push`, a RESP3 one that hands pushes to the callback.
pub(super) async fn connect(
    target: &RedisTarget,
    push: Option<&mpsc::Sender<Bytes>>,
) -> Result<Conn, BusError> {
    let after = target.timeout;
    if target.cluster {
        let mut builder = ClusterClientBuilder::new(target.seeds.iter().map(String::as_str))
            .connection_timeout(after)
            .response_timeout(after)
            .retries(2)
            .max_retry_wait(200);
        if let Some(inbox) = push {
            builder = builder
                .use_protocol(ProtocolVersion::RESP3)
                .push_sender(push_sender(inbox.clone()));
        }
        let client = builder.build().map_err(redis_err("connect"))?;
        let conn = timed("connect", after, client.get_async_connection()).await?;
        return Ok(Conn::Cluster(conn));
    }
    let url = target.seeds.first().map(String::as_str).unwrap_or_default();
    let mut info = url.into_connection_info().map_err(redis_err("connect"))?;
    let mut config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(after))
        .set_response_timeout(Some(after))
        .set_max_delay(Duration::from_secs(1));
    if let Some(inbox) = push {
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        info = info.set_redis_settings(settings);
        config = config
            .set_push_sender(push_sender(inbox.clone()))
            .set_automatic_resubscription();
    }
    let client = Client::open(info).map_err(redis_err("connect"))?;
    let conn = timed(
        "connect",
        after,
        ConnectionManager::new_with_config(client, config),
    )
    .await?;
    Ok(Conn::Single(conn))
}

async fn subscribe(
    target: &RedisTarget,
    channel: &str,
    inbox: &mpsc::Sender<Bytes>,
) -> Result<Conn, BusError> {
    let mut conn = connect(target, Some(inbox)).await?;
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
        *current = subscribe(&self.target, &self.channel, &self.inbox).await?;
        Ok(())
    }
}
