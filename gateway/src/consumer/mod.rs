//! Broker consumers (`consumers:`): messages read from NATS, JetStream, RabbitMQ, Redis
//! Streams or SQS, addressed to a connection, a group or a whole stage, delivered exactly as the
//! callback API delivers `POST @connections`, `@groups` and `@broadcast`.
//!
//! Each source (one file each) reads in order and feeds [`lanes::Lanes`], which keeps the
//! order per connection (group, stage broadcast), bounds what is in flight, retries 429/503
//! outcomes in place and settles every message with its broker; [`address`] parses where a
//! message goes, [`deliver`] delivers it. Sources reconnect by themselves; a broker that is
//! down never fails readiness (it shows in `wsgate_consumer_connected`). See
//! `docs/consumers.md`.

mod address;
mod deliver;
mod jetstream;
mod lanes;
mod metrics;
mod nats;
mod rabbitmq;
mod redis_stream;
mod sqs;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::address::{AddressError, Addressed, Rules};
use self::deliver::Deliverer;
use crate::cluster::Cluster;
use crate::config::{ConsumerConfig, ConsumerKind, Envelope, redact_url};
use crate::integration::lambda::Aws;
use crate::state::Shared;

/// Longest pause between two reconnection attempts.
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(5);
/// Bound of each broker call that is not a blocking read.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything one source needs.
pub(crate) struct Context {
    pub(crate) config: ConsumerConfig,
    pub(crate) rules: Rules,
    pub(crate) deliverer: Deliverer,
    pub(crate) node_id: String,
    pub(crate) stop: CancellationToken,
    /// Credentials, region and endpoint of the `aws:` section (sqs).
    pub(crate) aws: Aws,
}

impl Context {
    /// Parses a message by the configured envelope; `header` answers header values.
    pub(crate) fn parse(
        &self,
        header: impl Fn(&'static str) -> Result<Option<String>, AddressError>,
        payload: Bytes,
    ) -> Result<Addressed, AddressError> {
        match self.config.envelope {
            Envelope::Headers => self.rules.parse_headers(header, payload),
            Envelope::Json => self.rules.parse_json(&payload),
        }
    }

    /// Waits before reconnection attempt `attempt` (1-based): 100 ms doubling to 5 s.
    /// Answers false when the gateway is stopping.
    pub(crate) async fn pause(&self, attempt: u32) -> bool {
        let pause =
            (Duration::from_millis(100) * (1u32 << attempt.min(6))).min(MAX_RECONNECT_PAUSE);
        tokio::select! {
            () = tokio::time::sleep(pause) => true,
            () = self.stop.cancelled() => false,
        }
    }

    /// The URL with its password hidden, for logs.
    pub(crate) fn url(&self) -> String {
        if let Some(queue_url) = &self.config.queue_url {
            return queue_url.clone();
        }
        redact_url(&self.config.url)
    }
}

/// The running consumers of a gateway.
#[derive(Debug)]
pub(crate) struct Consumers {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Consumers {
    /// Starts every configured consumer (none when `consumers:` is empty). Never fails: a
    /// broker that cannot be reached is retried in the background.
    pub(crate) fn start(shared: &Arc<Shared>, cluster: Option<Arc<Cluster>>, aws: &Aws) -> Self {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        if !shared.config.consumers.is_empty() {
            metrics::describe();
        }
        let stages: Vec<String> = shared.definition().stages.keys().cloned().collect();
        for config in &shared.config.consumers {
            let context = Context {
                rules: Rules {
                    default_stage: config.stage.clone(),
                    stages: stages.clone(),
                    max_bytes: shared.config.limits.max_message_bytes,
                },
                config: config.clone(),
                deliverer: Deliverer {
                    shared: Arc::clone(shared),
                    cluster: cluster.clone(),
                },
                node_id: shared.node_id.clone(),
                stop: stop.clone(),
                aws: aws.clone(),
            };
            metrics::connected(&config.name, false);
            tracing::info!(consumer = %config.name, kind = config.kind.as_str(), url = %context.url(), "starting consumer");
            match config.kind {
                ConsumerKind::Nats => tasks.spawn(nats::run(context)),
                ConsumerKind::Jetstream => tasks.spawn(jetstream::run(context)),
                ConsumerKind::Rabbitmq => tasks.spawn(rabbitmq::run(context)),
                ConsumerKind::RedisStream => tasks.spawn(redis_stream::run(context)),
                ConsumerKind::Sqs => tasks.spawn(sqs::run(context)),
            };
        }
        Self { stop, tasks }
    }

    /// Stops reading, lets deliveries under way finish and leaves the rest unacknowledged
    /// for redelivery; waits at most `within`.
    pub(crate) async fn stop(mut self, within: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(within, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!(
                "consumers did not stop in time; their unsettled messages will be delivered again"
            );
            self.tasks.abort_all();
        }
    }
}

/// Runs `future` within [`BROKER_TIMEOUT`].
pub(crate) async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(BROKER_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error}")),
        Err(_) => Err(format!("{what}: timed out after {BROKER_TIMEOUT:?}")),
    }
}
