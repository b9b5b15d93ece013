//! The broker integrations' config (`nats`, `rabbitmq`, `redis_stream`): their shapes, defaults
//! and startup validation. See `docs/brokers.md`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    ApiConfig, ConfigError, IntegrationConfig, RouteConfig, duration, substitute_stage_variables,
};

/// What a broker integration publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// The message body as the client sent it (empty on `$connect`/`$disconnect`).
    Body,
    /// The Lambda proxy event JSON that `aws_proxy` sends.
    Event,
}

/// `type: nats`: publish to a NATS subject, through JetStream (stored, acknowledged) or core
/// NATS.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL (`nats://host:port`, `tls://host:port`).
    #[serde(default = "default_nats_url")]
    #[serde(serialize_with = "super::secret::url")]
    pub url: String,
    /// Subject (stage variables allowed).
    pub subject: String,
    /// Publish through JetStream and wait for its acknowledgement (default); `false`: core NATS
    /// (the server received it, nothing more).
    #[serde(default = "yes")]
    pub jetstream: bool,
    /// Bound on one publish, its acknowledgement included (default 5 s).
    #[serde(
        default = "default_broker_timeout",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub timeout: Duration,
    /// `body` or `event` (default: `body` on message routes, `event` on the others).
    #[serde(default)]
    pub payload: Option<PayloadKind>,
    /// Publishes in flight on this URL's connection at once (the largest of the routes sharing
    /// it); more wait for a slot within `timeout`.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

/// `type: rabbitmq`: publish to an AMQP 0-9-1 exchange with publisher confirms.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RabbitmqConfig {
    /// `amqp://user:password@host:port/vhost`.
    #[serde(default = "default_amqp_url")]
    #[serde(serialize_with = "super::secret::url")]
    pub url: String,
    /// Exchange (default: the default exchange `""`, which routes by queue name).
    #[serde(default)]
    pub exchange: String,
    /// Routing key (stage variables allowed).
    pub routing_key: String,
    /// Publish as mandatory (default): a message no queue receives is returned, and counts as
    /// a failure.
    #[serde(default = "yes")]
    pub mandatory: bool,
    /// Delivery mode 2 (default): durable queues keep the message across broker restarts.
    #[serde(default = "yes")]
    pub persistent: bool,
    /// Bound on one publish, its confirm included (default 5 s).
    #[serde(
        default = "default_broker_timeout",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub timeout: Duration,
    /// As `nats`'s.
    #[serde(default)]
    pub payload: Option<PayloadKind>,
    /// As `nats`'s.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

/// `type: redis_stream`: `XADD` to a Redis stream.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisStreamConfig {
    /// `redis://host:port/db`.
    #[serde(default = "default_redis_url")]
    #[serde(serialize_with = "super::secret::url")]
    pub url: String,
    /// Stream key (stage variables allowed).
    pub stream: String,
    /// Trim the stream to about this many entries (`MAXLEN ~`) on every add; `0`: never trim.
    #[serde(default = "default_max_len")]
    pub max_len: u64,
    /// Bound on one `XADD` (default 5 s).
    #[serde(
        default = "default_broker_timeout",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub timeout: Duration,
    /// As `nats`'s.
    #[serde(default)]
    pub payload: Option<PayloadKind>,
    /// As `nats`'s.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

fn default_nats_url() -> String {
    "nats://127.0.0.1:4222".into()
}
fn default_amqp_url() -> String {
    "amqp://guest:guest@127.0.0.1:5672/%2f".into()
}
fn default_redis_url() -> String {
    "redis://127.0.0.1:6379".into()
}
fn default_broker_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_in_flight() -> usize {
    1024
}
fn default_max_len() -> u64 {
    1_000_000
}
fn yes() -> bool {
    true
}

/// Most publishes in flight per connection that may be configured.
const MAX_IN_FLIGHT: usize = 65_536;
/// Longest AMQP exchange name or routing key (a short string).
const AMQP_SHORT: usize = 255;

/// Checks a broker integration; `None` for the other kinds.
pub(super) fn validate(
    at: &str,
    integration: &IntegrationConfig,
    api: &ApiConfig,
) -> Option<Result<(), ConfigError>> {
    let result = match integration {
        IntegrationConfig::Nats(c) => common(at, c.timeout, c.max_in_flight)
            .and_then(|()| nats_url(at, &c.url))
            .and_then(|()| per_stage(at, "subject", &c.subject, api, nats_subject)),
        IntegrationConfig::Rabbitmq(c) => common(at, c.timeout, c.max_in_flight)
            .and_then(|()| amqp_url(at, &c.url))
            .and_then(|()| amqp_short(&format!("{at}.exchange"), &c.exchange))
            .and_then(|()| per_stage(at, "routing_key", &c.routing_key, api, amqp_key)),
        IntegrationConfig::RedisStream(c) => common(at, c.timeout, c.max_in_flight)
            .and_then(|()| redis_url(at, &c.url))
            .and_then(|()| per_stage(at, "stream", &c.stream, api, non_empty)),
        _ => return None,
    };
    Some(result)
}

/// A broker route must publish every message, so its answers are not cached.
pub(super) fn validate_route(at: &str, route: &RouteConfig) -> Result<(), ConfigError> {
    let broker = matches!(
        route.integration,
        IntegrationConfig::Nats(_)
            | IntegrationConfig::Rabbitmq(_)
            | IntegrationConfig::RedisStream(_)
    );
    if broker && route.cache.is_some() {
        return Err(ConfigError::invalid(
            format!("{at}.cache"),
            "a broker route publishes every message; it has no answers to cache",
        ));
    }
    Ok(())
}

fn common(at: &str, timeout: Duration, max_in_flight: usize) -> Result<(), ConfigError> {
    if !(Duration::from_millis(50)..=Duration::from_secs(900)).contains(&timeout) {
        return Err(ConfigError::invalid(
            format!("{at}.timeout"),
            "must be between 50ms and 15m",
        ));
    }
    if !(1..=MAX_IN_FLIGHT).contains(&max_in_flight) {
        return Err(ConfigError::invalid(
            format!("{at}.max_in_flight"),
            format!("must be between 1 and {MAX_IN_FLIGHT}"),
        ));
    }
    Ok(())
}

/// Substitutes `value` for every stage and checks the result with `check`.
fn per_stage(
    at: &str,
    key: &str,
    value: &str,
    api: &ApiConfig,
    check: fn(&str) -> Result<(), String>,
) -> Result<(), ConfigError> {
    let key = format!("{at}.{key}");
    for (stage, settings) in &api.stages {
        let resolved = substitute_stage_variables(value, &settings.variables).map_err(|m| {
            ConfigError::invalid(&key, format!("stage `{stage}` has no variable `{m}`"))
        })?;
        check(&resolved).map_err(|e| {
            ConfigError::invalid(&key, format!("`{resolved}` (stage `{stage}`): {e}"))
        })?;
    }
    Ok(())
}

fn non_empty(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(())
}

fn nats_subject(subject: &str) -> Result<(), String> {
    non_empty(subject)?;
    if subject.chars().any(char::is_whitespace) {
        return Err("a subject has no whitespace".into());
    }
    if subject
        .split('.')
        .any(|t| t.is_empty() || t == "*" || t == ">")
    {
        return Err("a publish subject has no empty tokens and no wildcards (`*`, `>`)".into());
    }
    Ok(())
}

fn amqp_key(key: &str) -> Result<(), String> {
    if key.len() > AMQP_SHORT {
        return Err(format!("longer than {AMQP_SHORT} bytes"));
    }
    Ok(())
}

fn amqp_short(key: &str, value: &str) -> Result<(), ConfigError> {
    amqp_key(value).map_err(|e| ConfigError::invalid(key, e))
}

fn nats_url(at: &str, url: &str) -> Result<(), ConfigError> {
    let key = format!("{at}.url");
    if !(url.starts_with("nats://") || url.starts_with("tls://")) {
        return Err(ConfigError::invalid(key, "must be a nats:// or tls:// URL"));
    }
    url.parse::<async_nats::ServerAddr>()
        .map(drop)
        .map_err(|e| ConfigError::invalid(key, format!("`{url}`: {e}")))
}

fn amqp_url(at: &str, url: &str) -> Result<(), ConfigError> {
    let key = format!("{at}.url");
    if !url.starts_with("amqp://") {
        return Err(ConfigError::invalid(
            key,
            "must be an amqp:// URL (amqps:// is not built in)",
        ));
    }
    url.parse::<lapin::uri::AMQPUri>()
        .map(drop)
        .map_err(|e| ConfigError::invalid(key, format!("`{url}`: {e}")))
}

fn redis_url(at: &str, url: &str) -> Result<(), ConfigError> {
    let key = format!("{at}.url");
    if !url.starts_with("redis://") {
        return Err(ConfigError::invalid(key, "must be a redis:// URL"));
    }
    redis::IntoConnectionInfo::into_connection_info(url)
        .map(drop)
        .map_err(|e| ConfigError::invalid(key, format!("`{url}`: {e}")))
}
