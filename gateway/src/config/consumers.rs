//! `consumers:` section: broker sources (NATS, JetStream, RabbitMQ, Redis Streams, SQS) whose
//! messages the gateway delivers to connections, groups and stages; see `docs/consumers.md`.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ApiConfig, AwsConfig, ConfigError, duration, redact_url};

/// The kind of broker a consumer reads from.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerKind {
    /// Core NATS subscription (at most once).
    Nats,
    /// NATS JetStream durable pull consumer.
    Jetstream,
    /// RabbitMQ (AMQP 0-9-1) queue.
    Rabbitmq,
    /// Redis Stream read through a consumer group.
    RedisStream,
    /// Amazon SQS queue (long polling).
    Sqs,
}

impl ConsumerKind {
    /// The name used in the configuration and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nats => "nats",
            Self::Jetstream => "jetstream",
            Self::Rabbitmq => "rabbitmq",
            Self::RedisStream => "redis_stream",
            Self::Sqs => "sqs",
        }
    }
}

/// How a message says where it goes.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Envelope {
    /// `wsgate-connection-id` / `wsgate-group` / `wsgate-broadcast` (+ `wsgate-stage`) headers
    /// (Redis: fields of the entry); the payload is the data.
    #[default]
    Headers,
    /// The payload is `{"connectionId"|"group"|"broadcast", "stage"?, "data"|"dataBase64"}`.
    Json,
}

/// One entry of `consumers:`. The keys that apply depend on `type`; the others are refused.
#[derive(Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Unique name, used in metrics and logs.
    pub name: String,
    /// The broker kind.
    #[serde(rename = "type")]
    pub kind: ConsumerKind,
    /// Broker URL (`nats://`, `amqp://`, `redis://`); may carry credentials (redacted in logs).
    /// Required for every type but sqs (which takes `queue_url`).
    #[serde(default)]
    #[serde(serialize_with = "super::secret::url")]
    pub url: String,
    /// nats, jetstream: the subject (filter) to consume.
    #[serde(default)]
    pub subject: Option<String>,
    /// nats: queue group shared by every node (each message reaches one node); absent, every
    /// node receives every message.
    #[serde(default)]
    pub queue_group: Option<String>,
    /// jetstream: the stream; redis_stream: the stream key.
    #[serde(default)]
    pub stream: Option<String>,
    /// jetstream: create the stream (on `subject`) when it does not exist.
    #[serde(default)]
    pub create_stream: bool,
    /// jetstream: the durable consumer shared by every node.
    #[serde(default)]
    pub durable: Option<String>,
    /// jetstream: how long a delivered message may stay unacknowledged before the server
    /// delivers it again (to any node).
    #[serde(
        default,
        deserialize_with = "duration::deserialize_opt",
        serialize_with = "duration::serialize_opt"
    )]
    #[schemars(with = "Option<duration::Text>")]
    pub ack_wait: Option<Duration>,
    /// rabbitmq: the queue (must exist unless `declare_queue`).
    #[serde(default)]
    pub queue: Option<String>,
    /// rabbitmq: declare the queue (durable) when absent.
    #[serde(default)]
    pub declare_queue: bool,
    /// redis_stream: the consumer group shared by every node (created at the stream's end
    /// when absent).
    #[serde(default)]
    pub group: Option<String>,
    /// redis_stream: entries pending this long at a consumer that is gone are claimed.
    #[serde(
        default,
        deserialize_with = "duration::deserialize_opt",
        serialize_with = "duration::serialize_opt"
    )]
    #[schemars(with = "Option<duration::Text>")]
    pub claim_idle: Option<Duration>,
    /// sqs: the queue URL (`https://sqs.{region}.amazonaws.com/{account}/{name}`).
    #[serde(default)]
    pub queue_url: Option<String>,
    /// sqs: the region requests are signed for; default `aws.region`, else the queue URL's.
    #[serde(default)]
    pub region: Option<String>,
    /// sqs: where requests go; default `aws.endpoint_url`, else the queue URL's scheme and host.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// sqs: how long one `ReceiveMessage` waits for messages (long polling, at most 20 s).
    #[serde(
        default,
        deserialize_with = "duration::deserialize_opt",
        serialize_with = "duration::serialize_opt"
    )]
    #[schemars(with = "Option<duration::Text>")]
    pub wait_time: Option<Duration>,
    /// sqs: how long a received message stays hidden from other receivers before SQS hands it
    /// out again; must exceed the retry window.
    #[serde(
        default,
        deserialize_with = "duration::deserialize_opt",
        serialize_with = "duration::serialize_opt"
    )]
    #[schemars(with = "Option<duration::Text>")]
    pub visibility_timeout: Option<Duration>,
    /// Where undeliverable messages go instead of being dropped: jetstream a subject,
    /// redis_stream a stream key. rabbitmq uses the queue's own dead-letter exchange.
    #[serde(default)]
    pub dead_letter: Option<String>,
    /// The stage of messages that name none; required unless every message names one.
    #[serde(default)]
    pub stage: Option<String>,
    /// How the address is given.
    #[serde(default)]
    pub envelope: Envelope,
    /// Messages received and not yet acknowledged, at most.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Delivery attempts of one message (retries of 429/503 outcomes included), then it is
    /// dropped (or dead-lettered).
    #[serde(default = "default_max_deliver")]
    pub max_deliver: u32,
    /// Pause before a throttled or unavailable delivery is tried again (doubled each time,
    /// at most 10 times this).
    #[serde(
        default = "default_retry_backoff",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub retry_backoff: Duration,
}

fn default_max_in_flight() -> usize {
    64
}
fn default_max_deliver() -> u32 {
    5
}
fn default_retry_backoff() -> Duration {
    Duration::from_millis(500)
}

/// Default `ack_wait` (jetstream).
pub(super) const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// Default `claim_idle` (redis_stream).
pub(super) const DEFAULT_CLAIM_IDLE: Duration = Duration::from_secs(30);
/// Default `wait_time` (sqs), also its largest value.
pub(super) const DEFAULT_WAIT_TIME: Duration = Duration::from_secs(20);
/// Default `visibility_timeout` (sqs).
pub(super) const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest `max_in_flight`.
pub(super) const MAX_IN_FLIGHT: usize = 4096;

impl fmt::Debug for ConsumerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &redact_url(&self.url))
            .field("subject", &self.subject)
            .field("stream", &self.stream)
            .field("durable", &self.durable)
            .field("queue", &self.queue)
            .field("group", &self.group)
            .field("queue_url", &self.queue_url)
            .field("stage", &self.stage)
            .field("envelope", &self.envelope)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_deliver", &self.max_deliver)
            .finish_non_exhaustive()
    }
}

impl ConsumerConfig {
    /// `ack_wait` or its default.
    pub fn ack_wait(&self) -> Duration {
        self.ack_wait.unwrap_or(DEFAULT_ACK_WAIT)
    }

    /// `claim_idle` or its default.
    pub fn claim_idle(&self) -> Duration {
        self.claim_idle.unwrap_or(DEFAULT_CLAIM_IDLE)
    }

    /// `wait_time` or its default.
    pub fn wait_time(&self) -> Duration {
        self.wait_time.unwrap_or(DEFAULT_WAIT_TIME)
    }

    /// `visibility_timeout` or its default.
    pub fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout
            .unwrap_or(DEFAULT_VISIBILITY_TIMEOUT)
    }

    /// The longest a message may be retried in place: every backoff of `max_deliver` attempts.
    pub fn retry_window(&self) -> Duration {
        (1..self.max_deliver).fold(Duration::ZERO, |sum, attempt| {
            sum + backoff(self.retry_backoff, attempt)
        })
    }
}

/// The pause after failed attempt `attempt` (1-based): doubled each time, at most 10×`base`.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(4);
    (base * factor).min(base * 10)
}

/// Checks every consumer.
///
/// # Errors
/// A [`ConfigError`] naming the key (`consumers[i].key`).
pub(super) fn validate(
    consumers: &[ConsumerConfig],
    api: &ApiConfig,
    aws: &AwsConfig,
) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (i, c) in consumers.iter().enumerate() {
        let key = |field: &str| format!("consumers[{i}].{field}");
        let valid_name = !c.name.is_empty()
            && c.name.len() <= 64
            && (c.name.chars()).all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch));
        if !valid_name {
            return Err(ConfigError::invalid(
                key("name"),
                "1-64 characters of letters, digits, `-`, `_` and `.`",
            ));
        }
        if !names.insert(c.name.as_str()) {
            return Err(ConfigError::invalid(
                key("name"),
                format!("`{}` is used by another consumer", c.name),
            ));
        }
        let scheme_ok = match c.kind {
            ConsumerKind::Nats | ConsumerKind::Jetstream => {
                c.url.starts_with("nats://") || c.url.starts_with("tls://")
            }
            ConsumerKind::Rabbitmq => c.url.starts_with("amqp://"),
            ConsumerKind::RedisStream => c.url.starts_with("redis://"),
            ConsumerKind::Sqs => c.url.is_empty(),
        };
        if !scheme_ok {
            let expected = match c.kind {
                ConsumerKind::Nats | ConsumerKind::Jetstream => "nats://host:port",
                ConsumerKind::Rabbitmq => "amqp://user:password@host:port/vhost",
                ConsumerKind::RedisStream => "redis://host:port",
                ConsumerKind::Sqs => "no `url` (give `queue_url`)",
            };
            return Err(ConfigError::invalid(
                key("url"),
                format!("expected {expected} for type {}", c.kind.as_str()),
            ));
        }
        check_keys(c, &key)?;
        if let Some(stage) = &c.stage
            && !api.stages.contains_key(stage)
        {
            return Err(ConfigError::invalid(
                key("stage"),
                format!("no stage `{stage}` in api.stages"),
            ));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&c.max_in_flight) {
            return Err(ConfigError::invalid(
                key("max_in_flight"),
                format!("must be between 1 and {MAX_IN_FLIGHT}"),
            ));
        }
        if !(1..=100).contains(&c.max_deliver) {
            return Err(ConfigError::invalid(
                key("max_deliver"),
                "must be between 1 and 100",
            ));
        }
        if c.retry_backoff.is_zero() {
            return Err(ConfigError::invalid(
                key("retry_backoff"),
                "must be greater than zero",
            ));
        }
        for (field, value) in [("ack_wait", c.ack_wait), ("claim_idle", c.claim_idle)] {
            if value.is_some_and(|v| v < Duration::from_secs(1)) {
                return Err(ConfigError::invalid(key(field), "must be at least 1s"));
            }
        }
        if c.kind == ConsumerKind::Jetstream && c.retry_window() >= c.ack_wait() {
            return Err(ConfigError::invalid(
                key("ack_wait"),
                format!(
                    "must exceed the retry window ({:?}: max_deliver attempts with retry_backoff)",
                    c.retry_window()
                ),
            ));
        }
        if c.kind == ConsumerKind::Sqs {
            super::sqs_consumer::validate(c, aws, &key)?;
        }
        if c.kind == ConsumerKind::RedisStream && c.retry_window() >= c.claim_idle() {
            return Err(ConfigError::invalid(
                key("claim_idle"),
                format!(
                    "must exceed the retry window ({:?}: max_deliver attempts with retry_backoff)",
                    c.retry_window()
                ),
            ));
        }
    }
    Ok(())
}

/// The keys each kind requires and allows.
fn check_keys(c: &ConsumerConfig, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    let given: [(&str, bool); 15] = [
        ("subject", c.subject.is_some()),
        ("queue_group", c.queue_group.is_some()),
        ("stream", c.stream.is_some()),
        ("create_stream", c.create_stream),
        ("durable", c.durable.is_some()),
        ("ack_wait", c.ack_wait.is_some()),
        ("queue", c.queue.is_some()),
        ("declare_queue", c.declare_queue),
        ("group", c.group.is_some()),
        ("claim_idle", c.claim_idle.is_some()),
        ("queue_url", c.queue_url.is_some()),
        ("region", c.region.is_some()),
        ("endpoint_url", c.endpoint_url.is_some()),
        ("wait_time", c.wait_time.is_some()),
        ("visibility_timeout", c.visibility_timeout.is_some()),
    ];
    let (required, allowed): (&[&str], &[&str]) = match c.kind {
        ConsumerKind::Nats => (&["subject"], &["queue_group"]),
        ConsumerKind::Jetstream => (
            &["subject", "stream", "durable"],
            &["create_stream", "ack_wait"],
        ),
        ConsumerKind::Rabbitmq => (&["queue"], &["declare_queue"]),
        ConsumerKind::RedisStream => (&["stream", "group"], &["claim_idle"]),
        ConsumerKind::Sqs => (
            &["queue_url"],
            &["region", "endpoint_url", "wait_time", "visibility_timeout"],
        ),
    };
    for (field, present) in given {
        if present && !required.contains(&field) && !allowed.contains(&field) {
            return Err(ConfigError::invalid(
                key(field),
                format!("does not apply to type {}", c.kind.as_str()),
            ));
        }
    }
    for field in required {
        let empty = match *field {
            "subject" => c.subject.as_deref(),
            "stream" => c.stream.as_deref(),
            "durable" => c.durable.as_deref(),
            "queue" => c.queue.as_deref(),
            "queue_url" => c.queue_url.as_deref(),
            _ => c.group.as_deref(),
        }
        .is_none_or(str::is_empty);
        if empty {
            return Err(ConfigError::invalid(
                key(field),
                format!("required for type {}", c.kind.as_str()),
            ));
        }
    }
    let dead_letter_ok = matches!(c.kind, ConsumerKind::Jetstream | ConsumerKind::RedisStream);
    if c.dead_letter.is_some() && !dead_letter_ok {
        let why = match c.kind {
            ConsumerKind::Rabbitmq => {
                "does not apply to type rabbitmq: give the queue an x-dead-letter-exchange"
            }
            ConsumerKind::Sqs => "does not apply to type sqs: give the queue a redrive policy",
            _ => "does not apply to type nats (at most once)",
        };
        return Err(ConfigError::invalid(key("dead_letter"), why));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    const BASE: &str = "listen: 127.0.0.1:0\napi:\n  name: t\n  route_selection_expression: $request.body.action\n  stages: {prod: {}}\n  routes:\n    $default: {integration: {type: mock}}\n";

    fn load(consumers: &str) -> Result<Config, String> {
        Config::from_yaml(&format!("{BASE}consumers:\n{consumers}")).map_err(|e| e.to_string())
    }

    #[test]
    fn every_kind_loads() {
        let config = load(
            "  - {name: a, type: jetstream, url: 'nats://127.0.0.1:4222', stream: S, durable: d, subject: 'o.>', stage: prod}\n  - {name: b, type: rabbitmq, url: 'amqp://guest:guest@127.0.0.1:5672/%2f', queue: q, envelope: json}\n  - {name: c, type: redis_stream, url: 'redis://127.0.0.1:6379', stream: 's', group: g, dead_letter: dl}\n  - {name: d, type: nats, url: 'nats://127.0.0.1:4222', subject: x, queue_group: wsgate}\n",
        )
        .expect("loads");
        assert_eq!(config.consumers.len(), 4);
        assert_eq!(config.consumers[0].max_in_flight, 64);
        assert_eq!(config.consumers[0].max_deliver, 5);
        assert!(!format!("{:?}", config.consumers[1]).contains("guest:guest"));
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (yaml, key) in [
            (
                "  - {name: a, type: nats, url: 'nats://h:1', subject: x, queue: q}\n",
                "consumers[0].queue",
            ),
            (
                "  - {name: a, type: jetstream, url: 'nats://h:1', subject: x, stream: s}\n",
                "consumers[0].durable",
            ),
            (
                "  - {name: a, type: nats, url: 'nats://h:1', subject: x}\n  - {name: a, type: nats, url: 'nats://h:1', subject: other}\n",
                "consumers[1].name",
            ),
            (
                "  - {name: a, type: rabbitmq, url: 'redis://h', queue: q}\n",
                "consumers[0].url",
            ),
            (
                "  - {name: a, type: redis_stream, url: 'redis://h', stream: s, group: g, stage: nope}\n",
                "consumers[0].stage",
            ),
            (
                "  - {name: a, type: redis_stream, url: 'redis://h', stream: s, group: g, max_in_flight: 0}\n",
                "consumers[0].max_in_flight",
            ),
            (
                "  - {name: a, type: rabbitmq, url: 'amqp://h', queue: q, dead_letter: x}\n",
                "consumers[0].dead_letter",
            ),
            (
                "  - {name: a, type: jetstream, url: 'nats://h:1', subject: x, stream: s, durable: d, ack_wait: 2s, retry_backoff: 1s}\n",
                "consumers[0].ack_wait",
            ),
            (
                "  - {name: a, type: kafka, url: 'x'}\n",
                "consumers[0].type",
            ),
        ] {
            let error = load(yaml).expect_err(yaml);
            assert!(error.contains(key), "{key}: {error}");
        }
    }
}
