//! Core NATS source: a subscription (in a queue group when `queue_group` is set, so each
//! message reaches one node). At most once: NATS keeps nothing, so a message that arrives
//! while no node is subscribed, or that a node holds when it dies, is lost; there is nothing
//! to acknowledge. Also the connection helper the JetStream source shares.

use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, HeaderMap};
use futures_util::StreamExt;
use tokio::task::JoinSet;

use super::address::AddressError;
use super::lanes::{Incoming, Lanes, Settle};
use super::{Context, metrics};

/// Messages the NATS client buffers for the subscription before it drops more (NATS pushes
/// without flow control, and a burst arrives in one read). Their bytes are bounded by this
/// times the server's `max_payload`.
const BUFFER_MESSAGES: usize = 4096;

/// Connects (retrying in the background until the server answers; reconnecting after every
/// loss), keeping `wsgate_consumer_connected` up to date.
pub(super) async fn connect(context: &Context) -> Result<Client, async_nats::ConnectError> {
    let name = context.config.name.clone();
    let logged_url = context.url();
    ConnectOptions::new()
        .name(format!("wsgate-{}-{}", context.node_id, context.config.name))
        .retry_on_initial_connect()
        .subscription_capacity(BUFFER_MESSAGES.max(context.config.max_in_flight))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(100 * attempts.min(20) as u64).min(Duration::from_secs(2))
        })
        .event_callback(move |event| {
            let name = name.clone();
            let url = logged_url.clone();
            async move {
                match event {
                    Event::Connected => {
                        tracing::info!(consumer = %name, %url, "consumer connected");
                        metrics::connected(&name, true);
                    }
                    Event::Disconnected | Event::Closed => {
                        tracing::warn!(consumer = %name, %url, "consumer disconnected; reconnecting");
                        metrics::connected(&name, false);
                    }
                    Event::SlowConsumer(_) => {
                        tracing::warn!(consumer = %name, "NATS client buffer full: messages dropped (core NATS is at most once)");
                    }
                    other => tracing::debug!(consumer = %name, event = %other, "NATS event"),
                }
            }
        })
        .connect(context.config.url.as_str())
        .await
}

/// A header's value, for [`Context::parse`].
pub(super) fn header(
    headers: Option<&HeaderMap>,
    name: &'static str,
) -> Result<Option<String>, AddressError> {
    Ok(headers
        .and_then(|h| h.get(name))
        .map(|value| value.as_str().to_owned()))
}

/// Nothing to settle: core NATS does not acknowledge.
struct AtMostOnce;

#[async_trait::async_trait]
impl Settle for AtMostOnce {
    async fn ack(self: Box<Self>) {}
    async fn release(self: Box<Self>) {}
}

pub(super) async fn run(context: Context) {
    let mut lane_tasks = JoinSet::new();
    let mut lanes = Lanes::start(
        &context.config,
        &context.deliverer,
        &context.stop,
        &mut lane_tasks,
    );
    let name = &context.config.name;
    let subject = context.config.subject.clone().unwrap_or_default();
    let mut attempt = 0;
    let client = loop {
        match connect(&context).await {
            Ok(client) => break Some(client),
            Err(error) => {
                attempt += 1;
                tracing::warn!(consumer = %name, %error, "cannot connect to NATS");
                if !context.pause(attempt).await {
                    break None;
                }
            }
        }
    };
    if let Some(client) = &client {
        let subscribed = match &context.config.queue_group {
            Some(group) => client.queue_subscribe(subject.clone(), group.clone()).await,
            None => client.subscribe(subject.clone()).await,
        };
        match subscribed {
            Ok(mut subscriber) => loop {
                let permit = tokio::select! {
                    () = context.stop.cancelled() => break,
                    permit = lanes.reserve() => permit,
                };
                let message = tokio::select! {
                    () = context.stop.cancelled() => break,
                    message = subscriber.next() => match message {
                        Some(message) => message,
                        None => break,
                    },
                };
                let headers = message.headers.as_ref();
                let parsed = context.parse(|n| header(headers, n), message.payload);
                let settle = Box::new(AtMostOnce);
                lanes.push(Incoming { parsed, settle }, permit).await;
            },
            Err(error) => tracing::error!(consumer = %name, %error, "cannot subscribe"),
        }
    }
    drop(lanes);
    while lane_tasks.join_next().await.is_some() {}
    if let Some(client) = client {
        let _ = super::bounded("drain", client.drain()).await;
    }
    metrics::connected(name, false);
}
