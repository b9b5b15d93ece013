//! `type: rabbitmq`: `basic.publish` on a channel in confirm mode; done when the broker acks
//! the message (a nack, or a mandatory message returned as unroutable, is a failure). lapin
//! does not reconnect by itself, so [`Link`] holds the connection of one URL and opens a new one,
//! with bounded backoff, once it is lost; each integration keeps its own channel on it (an error
//! that closes a channel, such as a missing exchange, stays with its route).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use super::headers::Outgoing;
use super::{Bounded, BrokerError, Slots, accepted, bounded};
use crate::config::{PayloadKind, RabbitmqConfig};
use crate::integration::{Integration, IntegrationError, IntegrationResponse, Invocation};

const BROKER: &str = "rabbitmq";
/// First pause after a failed connection attempt; it doubles with every failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

fn connect_error(e: &dyn std::fmt::Display) -> BrokerError {
    BrokerError::Connect {
        broker: BROKER,
        message: e.to_string(),
    }
}

/// The connection to one RabbitMQ URL, reopened when lost.
#[derive(Debug)]
pub(super) struct Link {
    url: String,
    state: Mutex<State>,
    slots: Slots,
}

#[derive(Debug, Default)]
struct State {
    connection: Option<Connection>,
    /// Failed attempts in a row.
    failures: u32,
    /// No new attempt before this instant.
    retry_at: Option<Instant>,
}

impl Bounded for Link {
    fn slots(&self) -> &Slots {
        &self.slots
    }
}

impl Link {
    pub(super) fn new(url: &str, max_in_flight: usize) -> Self {
        Self {
            url: url.to_owned(),
            state: Mutex::new(State::default()),
            slots: Slots::new(max_in_flight),
        }
    }

    /// A new channel in confirm mode on the connection, which is (re)opened first when it is
    /// not connected. While backing off after a failed attempt, fails at once.
    async fn channel(&self) -> Result<Channel, BrokerError> {
        let mut state = self.state.lock().await;
        let usable = (state.connection.as_ref()).is_some_and(|c| c.status().connected());
        if !usable {
            state.connection = None;
            if let Some(at) = state.retry_at
                && Instant::now() < at
            {
                return Err(BrokerError::Connect {
                    broker: BROKER,
                    message: "connection lost; waiting before the next attempt".into(),
                });
            }
            match Connection::connect(&self.url, ConnectionProperties::default()).await {
                Ok(connection) => {
                    tracing::info!(broker = BROKER, "connected");
                    state.connection = Some(connection);
                    state.failures = 0;
                    state.retry_at = None;
                }
                Err(e) => {
                    state.failures = state.failures.saturating_add(1);
                    let backoff = FIRST_BACKOFF
                        .saturating_mul(1 << state.failures.min(8))
                        .min(MAX_BACKOFF);
                    state.retry_at = Some(Instant::now() + backoff);
                    tracing::warn!(broker = BROKER, error = %e, ?backoff, "cannot connect");
                    return Err(connect_error(&e));
                }
            }
        }
        let Some(connection) = state.connection.as_ref() else {
            return Err(connect_error(&"no connection"));
        };
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| connect_error(&e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| connect_error(&e))?;
        Ok(channel)
    }
}

#[derive(Debug)]
pub(super) struct Rabbitmq {
    link: Arc<Link>,
    /// This integration's channel, opened on first use and again once closed.
    channel: Mutex<Option<Channel>>,
    exchange: ShortString,
    routing_key: ShortString,
    mandatory: bool,
    persistent: bool,
    timeout: Duration,
    payload: Option<PayloadKind>,
}

impl Rabbitmq {
    pub(super) fn new(link: Arc<Link>, routing_key: String, config: &RabbitmqConfig) -> Self {
        // Lengths were checked with the config (at most 255 bytes).
        let short = |s: &str| ShortString::try_new(s.to_owned()).unwrap_or_default();
        Self {
            link,
            channel: Mutex::new(None),
            exchange: short(&config.exchange),
            routing_key: short(&routing_key),
            mandatory: config.mandatory,
            persistent: config.persistent,
            timeout: config.timeout,
            payload: config.payload,
        }
    }

    async fn channel(&self) -> Result<Channel, BrokerError> {
        let mut slot = self.channel.lock().await;
        if let Some(channel) = slot.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *slot = None;
        let channel = self.link.channel().await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    async fn publish(&self, out: Outgoing) -> Result<(), BrokerError> {
        let channel = self.channel().await?;
        let mut headers = FieldTable::default();
        for (name, value) in out.fields {
            headers.insert(
                ShortString::from(name),
                AMQPValue::LongString(LongString::from(value)),
            );
        }
        let mut properties = BasicProperties::default()
            .with_content_type(ShortString::from(out.content_type))
            .with_headers(headers)
            .with_timestamp(
                chrono::Utc::now()
                    .timestamp()
                    .try_into()
                    .unwrap_or_default(),
            );
        if let Ok(id) = ShortString::try_new(out.id) {
            properties = properties.with_message_id(id);
        }
        if self.persistent {
            properties = properties.with_delivery_mode(2);
        }
        let options = BasicPublishOptions {
            mandatory: self.mandatory,
            ..BasicPublishOptions::default()
        };
        let failed = |e: lapin::Error| BrokerError::Publish {
            broker: BROKER,
            message: e.to_string(),
        };
        let confirm = channel
            .basic_publish(
                self.exchange.clone(),
                self.routing_key.clone(),
                options,
                &out.payload,
                properties,
            )
            .await
            .map_err(failed)?;
        let refused = |message: String| BrokerError::Refused {
            broker: BROKER,
            message,
        };
        match confirm.await.map_err(failed)? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(refused(format!(
                "unroutable (exchange `{}`, routing key `{}`): {} {}",
                self.exchange, self.routing_key, returned.reply_code, returned.reply_text
            ))),
            Confirmation::Nack(_) => Err(refused("the broker nacked the message".into())),
            Confirmation::NotRequested => Err(refused("the channel is not in confirm mode".into())),
        }
    }
}

#[async_trait]
impl Integration for Rabbitmq {
    async fn invoke(&self, inv: &Invocation<'_>) -> Result<IntegrationResponse, IntegrationError> {
        let out = Outgoing::new(inv, self.payload);
        bounded(BROKER, &self.link.slots, self.timeout, self.publish(out)).await?;
        Ok(accepted())
    }

    fn kind(&self) -> &'static str {
        "rabbitmq"
    }
}
