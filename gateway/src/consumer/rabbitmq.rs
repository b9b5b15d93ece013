//! RabbitMQ source: one consumer per node on the shared queue (RabbitMQ hands each message to
//! one of them), `basic.qos` prefetch = `max_in_flight`, manual acks. Undeliverable messages
//! are rejected without requeue, so they reach the queue's dead-letter exchange when it has
//! one; messages a node held when it stopped or died are requeued by RabbitMQ. lapin does not
//! reconnect by itself here: this loop does, with a bounded backoff.

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::Acker as LapinAcker;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use tokio::task::JoinSet;

use super::address::AddressError;
use super::lanes::{Incoming, Lanes, Settle};
use super::{Context, bounded, metrics};

struct Acker {
    acker: LapinAcker,
    delivered: u32,
}

#[async_trait::async_trait]
impl Settle for Acker {
    fn delivered(&self) -> u32 {
        self.delivered
    }

    async fn ack(self: Box<Self>) {
        if let Err(error) = self.acker.ack(BasicAckOptions::default()).await {
            tracing::debug!(%error, "RabbitMQ ack failed; the message will be delivered again");
        }
    }

    async fn reject(self: Box<Self>, _reason: &str) -> bool {
        let options = BasicNackOptions {
            requeue: false,
            ..Default::default()
        };
        let _ = self.acker.nack(options).await;
        false
    }

    async fn release(self: Box<Self>) {
        let options = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        let _ = self.acker.nack(options).await;
    }
}

/// A header as text: string values as they are, booleans as `true`/`false`.
fn header(
    headers: Option<&FieldTable>,
    name: &'static str,
) -> Result<Option<String>, AddressError> {
    let Some(value) = headers.and_then(|h| h.inner().get(name)) else {
        return Ok(None);
    };
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes())
            .map(|s| Some(s.to_owned()))
            .map_err(|_| AddressError::Header(name)),
        AMQPValue::ShortString(s) => Ok(Some(s.as_str().to_owned())),
        AMQPValue::Boolean(b) => Ok(Some(b.to_string())),
        AMQPValue::Void => Ok(None),
        _ => Err(AddressError::Header(name)),
    }
}

/// The delivery count: quorum queues say it (`x-delivery-count`, 0 the first time); classic
/// queues only say whether it was delivered before.
fn delivered(headers: Option<&FieldTable>, redelivered: bool) -> u32 {
    let count = headers
        .and_then(|h| h.inner().get("x-delivery-count"))
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongUInt(n) => Some(*n),
            _ => None,
        });
    match count {
        Some(n) => n.saturating_add(1),
        None => 1 + u32::from(redelivered),
    }
}

/// Why a session ended.
enum Ended {
    /// The gateway is stopping; the connection is kept until the lanes are done.
    Stopped(Connection),
    /// The connection or channel failed.
    Failed(String),
}

async fn session(context: &Context, lanes: &mut Lanes, attempt: &mut u32) -> Ended {
    let c = &context.config;
    let connection = match bounded(
        "connect",
        Connection::connect(&c.url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(connection) => connection,
        Err(error) => return Ended::Failed(error),
    };
    let queue = c.queue.clone().unwrap_or_default();
    let setup = async {
        let channel = bounded("channel", connection.create_channel()).await?;
        if c.declare_queue {
            let options = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            let declare =
                channel.queue_declare(queue.as_str().into(), options, FieldTable::default());
            bounded("queue.declare", declare).await?;
        }
        let prefetch = u16::try_from(c.max_in_flight).unwrap_or(u16::MAX);
        bounded(
            "basic.qos",
            channel.basic_qos(prefetch, BasicQosOptions::default()),
        )
        .await?;
        let tag = format!("wsgate-{}-{}", context.node_id, c.name);
        let consume = channel.basic_consume(
            queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        );
        let consumer = bounded("basic.consume", consume).await?;
        Ok::<_, String>((channel, consumer))
    };
    let (_channel, mut consumer) = match setup.await {
        Ok(ready) => ready,
        Err(error) => return Ended::Failed(error),
    };
    tracing::info!(consumer = %c.name, url = %context.url(), %queue, "consumer connected");
    metrics::connected(&c.name, true);
    *attempt = 0;
    loop {
        let permit = tokio::select! {
            () = context.stop.cancelled() => return Ended::Stopped(connection),
            permit = lanes.reserve() => permit,
        };
        let delivery = tokio::select! {
            () = context.stop.cancelled() => return Ended::Stopped(connection),
            delivery = consumer.next() => delivery,
        };
        let delivery = match delivery {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => return Ended::Failed(error.to_string()),
            None => return Ended::Failed("the consumer was cancelled".into()),
        };
        let headers = delivery.properties.headers().as_ref();
        let count = delivered(headers, delivery.redelivered);
        let parsed = context.parse(|n| header(headers, n), Bytes::from(delivery.data));
        let settle = Box::new(Acker {
            acker: delivery.acker,
            delivered: count,
        });
        lanes.push(Incoming { parsed, settle }, permit).await;
    }
}

pub(super) async fn run(context: Context) {
    let mut lane_tasks = JoinSet::new();
    let mut lanes = Lanes::start(
        &context.config,
        &context.deliverer,
        &context.stop,
        &mut lane_tasks,
    );
    let name = context.config.name.clone();
    let mut attempt = 0;
    let mut kept = None;
    while !context.stop.is_cancelled() {
        match session(&context, &mut lanes, &mut attempt).await {
            Ended::Stopped(connection) => {
                kept = Some(connection);
                break;
            }
            Ended::Failed(error) => {
                metrics::connected(&name, false);
                attempt += 1;
                tracing::warn!(consumer = %name, url = %context.url(), %error, attempt, "RabbitMQ consumer down; reconnecting");
                if !context.pause(attempt).await {
                    break;
                }
            }
        }
    }
    drop(lanes);
    while lane_tasks.join_next().await.is_some() {}
    if let Some(connection) = kept {
        let _ = bounded("close", connection.close(200, "wsgate stopping".into())).await;
    }
    metrics::connected(&name, false);
}
