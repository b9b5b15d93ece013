//! JetStream source: one durable pull consumer shared by every node (so each message is
//! handed to one node at a time), explicit acks, redelivery after `ack_wait` when a node dies
//! holding a message, `nak` when a node stops before handling one. Undeliverable messages go
//! to the `dead_letter` subject when set, then are acknowledged.

use async_nats::jetstream::{self, AckKind, consumer::pull, stream};
use futures_util::StreamExt;
use tokio::task::JoinSet;

use super::lanes::{Incoming, Lanes, Settle};
use super::{Context, bounded, metrics, nats};

/// Header added to dead-lettered messages: why.
const REASON_HEADER: &str = "wsgate-dead-letter-reason";

struct Acker {
    message: jetstream::Message,
    dead_letter: Option<(async_nats::Client, String)>,
}

#[async_trait::async_trait]
impl Settle for Acker {
    fn delivered(&self) -> u32 {
        (self.message.info().map(|i| i.delivered).unwrap_or(1)).clamp(1, i64::from(u32::MAX)) as u32
    }

    async fn ack(self: Box<Self>) {
        if let Err(error) = self.message.ack().await {
            tracing::debug!(%error, "JetStream ack failed; the message will be delivered again");
        }
    }

    async fn reject(self: Box<Self>, reason: &str) -> bool {
        let Some((client, subject)) = &self.dead_letter else {
            self.ack().await;
            return false;
        };
        let mut headers = self.message.headers.clone().unwrap_or_default();
        headers.insert(REASON_HEADER, reason);
        let published = client
            .publish_with_headers(subject.clone(), headers, self.message.payload.clone())
            .await;
        match published {
            Ok(()) => {
                self.ack().await;
                true
            }
            Err(error) => {
                // Left unacknowledged: delivered again after ack_wait, tried again then.
                tracing::warn!(%error, "cannot publish to the dead-letter subject");
                false
            }
        }
    }

    async fn release(self: Box<Self>) {
        let _ = self.message.ack_with(AckKind::Nak(None)).await;
    }
}

/// The stream (created when asked) and the durable consumer on it.
async fn consumer(
    context: &Context,
    js: &jetstream::Context,
) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
    let c = &context.config;
    let stream_name = c.stream.clone().unwrap_or_default();
    let subject = c.subject.clone().unwrap_or_default();
    let stream = if c.create_stream {
        bounded(
            "create stream",
            js.get_or_create_stream(stream::Config {
                name: stream_name.clone(),
                subjects: vec![subject.clone()],
                ..Default::default()
            }),
        )
        .await?
    } else {
        bounded("get stream", js.get_stream(&stream_name)).await?
    };
    let durable = c.durable.clone().unwrap_or_default();
    let config = pull::Config {
        durable_name: Some(durable.clone()),
        filter_subject: subject,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: c.ack_wait(),
        ..Default::default()
    };
    bounded(
        "create consumer",
        stream.get_or_create_consumer(&durable, config),
    )
    .await
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
    let mut client = None;
    let mut attempt = 0;
    'connect: while !context.stop.is_cancelled() {
        let nats = match &client {
            Some(nats) => Clone::clone(nats),
            None => match nats::connect(&context).await {
                Ok(nats) => {
                    client = Some(nats.clone());
                    nats
                }
                Err(error) => {
                    attempt += 1;
                    tracing::warn!(consumer = %name, %error, "cannot connect to NATS");
                    if !context.pause(attempt).await {
                        break;
                    }
                    continue;
                }
            },
        };
        let js = jetstream::new(nats.clone());
        let messages = match consumer(&context, &js).await {
            Ok(consumer) => {
                let messages = consumer
                    .stream()
                    .max_messages_per_batch(context.config.max_in_flight)
                    .messages();
                bounded("pull", messages).await
            }
            Err(error) => Err(error),
        };
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(error) => {
                attempt += 1;
                tracing::warn!(consumer = %name, %error, "JetStream consumer not available; retrying");
                if !context.pause(attempt).await {
                    break;
                }
                continue;
            }
        };
        attempt = 0;
        let dead_letter =
            (context.config.dead_letter.clone()).map(|subject| (nats.clone(), subject));
        loop {
            let permit = tokio::select! {
                () = context.stop.cancelled() => break 'connect,
                permit = lanes.reserve() => permit,
            };
            let message = tokio::select! {
                () = context.stop.cancelled() => break 'connect,
                message = messages.next() => message,
            };
            let message = match message {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    // Missed heartbeats while the server restarts, for instance: the stream
                    // goes on by itself.
                    tracing::debug!(consumer = %name, %error, "JetStream pull error");
                    if !context.pause(1).await {
                        break 'connect;
                    }
                    continue;
                }
                None => {
                    tracing::warn!(consumer = %name, "JetStream pull ended; subscribing again");
                    continue 'connect;
                }
            };
            let headers = message.headers.as_ref();
            let parsed = context.parse(|n| nats::header(headers, n), message.payload.clone());
            let settle = Box::new(Acker {
                message,
                dead_letter: dead_letter.clone(),
            });
            lanes.push(Incoming { parsed, settle }, permit).await;
        }
    }
    drop(lanes);
    while lane_tasks.join_next().await.is_some() {}
    if let Some(client) = client {
        let _ = bounded("flush", client.flush()).await;
    }
    metrics::connected(&name, false);
}
