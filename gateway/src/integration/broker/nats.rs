//! `type: nats`: publish with headers to a subject, through JetStream (done when the stream's
//! PubAck arrives) or core NATS (done when a flush round trip shows the server has it). One
//! async-nats client per URL, which connects in the background and reconnects by itself.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage;
use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::headers::Outgoing;
use super::{Bounded, BrokerError, Slots, accepted, bounded};
use crate::config::{NatsConfig, PayloadKind};
use crate::integration::{Integration, IntegrationError, IntegrationResponse, Invocation};

const BROKER: &str = "nats";
/// Longest pause between reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// The JetStream context's own bound on an acknowledgement; each publish is bounded by its
/// route's `timeout` (at most 15 minutes) around it.
const ACK_TIMEOUT: Duration = Duration::from_secs(900);

/// The client of one NATS URL.
#[derive(Debug)]
pub(super) struct Link {
    url: String,
    client: OnceCell<(async_nats::Client, async_nats::jetstream::Context)>,
    slots: Slots,
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
            client: OnceCell::new(),
            slots: Slots::new(max_in_flight),
        }
    }

    /// The client, made on first use. It connects in the background, so a server that is down
    /// makes publishes wait (up to their timeout) rather than fail here.
    async fn client(
        &self,
    ) -> Result<&(async_nats::Client, async_nats::jetstream::Context), BrokerError> {
        self.client
            .get_or_try_init(|| async {
                let client = async_nats::ConnectOptions::new()
                    .name("wsgate")
                    .retry_on_initial_connect()
                    .max_reconnects(None)
                    .reconnect_delay_callback(|attempts| {
                        let millis = 50u64.saturating_mul(1 << attempts.min(8));
                        Duration::from_millis(millis).min(MAX_RECONNECT_DELAY)
                    })
                    .connect(self.url.as_str())
                    .await
                    .map_err(|e| BrokerError::Connect {
                        broker: BROKER,
                        message: e.to_string(),
                    })?;
                let mut jetstream = async_nats::jetstream::new(client.clone());
                jetstream.set_timeout(ACK_TIMEOUT);
                Ok((client, jetstream))
            })
            .await
    }
}

#[derive(Debug)]
pub(super) struct Nats {
    link: std::sync::Arc<Link>,
    subject: String,
    jetstream: bool,
    timeout: Duration,
    payload: Option<PayloadKind>,
}

impl Nats {
    pub(super) fn new(link: std::sync::Arc<Link>, subject: String, config: &NatsConfig) -> Self {
        Self {
            link,
            subject,
            jetstream: config.jetstream,
            timeout: config.timeout,
            payload: config.payload,
        }
    }

    async fn publish(&self, out: Outgoing) -> Result<(), BrokerError> {
        let (client, jetstream) = self.link.client().await?;
        let mut headers = HeaderMap::new();
        for (name, value) in out.fields {
            headers.insert(name, value);
        }
        let failed = |e: &dyn std::fmt::Display| BrokerError::Publish {
            broker: BROKER,
            message: e.to_string(),
        };
        if self.jetstream {
            let publish = PublishMessage::build()
                .payload(out.payload)
                .headers(headers)
                .message_id(out.id);
            let ack = jetstream
                .send_publish(self.subject.clone(), publish)
                .await
                .map_err(|e| failed(&e))?;
            ack.await.map_err(|e| {
                use async_nats::jetstream::context::PublishErrorKind;
                match e.kind() {
                    PublishErrorKind::StreamNotFound | PublishErrorKind::WrongLastSequence => {
                        BrokerError::Refused {
                            broker: BROKER,
                            message: format!("subject `{}`: {e}", self.subject),
                        }
                    }
                    _ => failed(&e),
                }
            })?;
        } else {
            client
                .publish_with_headers(self.subject.clone(), headers, out.payload)
                .await
                .map_err(|e| failed(&e))?;
            client.flush().await.map_err(|e| failed(&e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Integration for Nats {
    async fn invoke(&self, inv: &Invocation<'_>) -> Result<IntegrationResponse, IntegrationError> {
        let out = Outgoing::new(inv, self.payload);
        bounded(BROKER, &self.link.slots, self.timeout, self.publish(out)).await?;
        Ok(accepted())
    }

    fn kind(&self) -> &'static str {
        "nats"
    }
}
