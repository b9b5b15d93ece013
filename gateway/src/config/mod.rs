//! Configuration: load YAML, apply `WSGATE_*` environment overrides, deserialize into the typed
//! tree and validate, failing with one line that names the offending key.

mod access_log;
mod acks;
mod admin;
mod auth;
mod aws;
mod aws_service;
mod broker;
mod cache;
mod check_auth;
mod consumers;
mod deployments;
mod domains;
pub mod duration;
mod env;
mod groups;
mod history;
mod iam;
mod integration_hosts;
mod model;
mod models;
pub mod reference;
mod reload;
mod secret;
mod sqs_consumer;
mod stage_variables;
mod throttling;
mod tls;
mod tracing;
mod transform;
mod usage_plans;

use std::path::Path;
use std::time::Duration;

pub use access_log::{
    AccessLogConfig, AccessLogDestination, ExecutionLogConfig, LoggingLevel, RotationConfig,
    execution_log_for,
};
pub use acks::{MAX_ACK_WINDOW, MIN_ACK_WINDOW, RouteAckConfig, id_path_fields};
pub use admin::AdminConfig;
pub use auth::*;
pub use aws::AwsConfig;
pub use aws_service::AwsServiceConfig;
pub use broker::{NatsConfig, PayloadKind, RabbitmqConfig, RedisStreamConfig};
pub use cache::{CacheConfig, CacheKind, MAX_CACHE_TTL, RouteCacheConfig, parse_bytes};
pub use consumers::{ConsumerConfig, ConsumerKind, Envelope, backoff as consumer_backoff};
pub use deployments::{DeploymentScope, DeploymentsConfig, MAX_KEPT_DEPLOYMENTS};
pub use domains::{DomainConfig, MappingConfig};
pub use groups::{GroupsConfig, SlowMember};
pub use history::{HistoryConfig, HistoryRule};
pub use iam::{
    DEFAULT_IAM_ACCOUNT, DEFAULT_IAM_REGION, IamConfig, IamPrincipalConfig, OneOrList,
    PolicyDocument, PolicyStatement,
};
pub(crate) use integration_hosts::HostPolicy;
pub use model::*;
pub use models::{DEFAULT_MODEL_KEY, JSON_CONTENT_TYPE, ModelConfig};
pub use reload::ReloadConfig;
pub use stage_variables::substitute_stage_variables;
pub use throttling::{
    ClusterThrottling, OnRedisError, RateLimit, RouteThrottle, Scope, StageThrottling,
    ThrottlingConfig,
};
pub use tls::{Certificates as TlsCertificates, certificates as tls_certificates};
pub use tracing::{BatchConfig, OtlpConfig, OtlpProtocol, SamplerConfig, TracingConfig};
pub use transform::{
    ContentHandling, IntegrationResponseConfig, MAX_TEMPLATE_BYTES, PassthroughBehavior,
    RequestTransform,
};
pub use usage_plans::{Period, QuotaConfig, UsagePlanConfig};

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("config file is not valid YAML: {0}")]
    Yaml(String),
    /// An environment variable could not be applied.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable name.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// A key has a wrong type, an invalid value or is unknown.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// Dotted path of the key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The YAML text as a tree with the `WSGATE_*` overrides of `vars` applied, and the variables
/// ignored; nothing else is checked.
fn tree_with_env(
    text: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(serde_json::Value, Vec<String>), ConfigError> {
    let mut tree: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
    if tree.is_null() {
        tree = serde_json::Value::Object(Default::default());
    }
    let ignored = env::apply_overrides(&mut tree, vars)?;
    Ok((tree, ignored))
}

/// A valid stage name: 1 to 128 letters, digits, `-` and `_`.
pub(crate) fn is_stage_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The keys of a configuration a deployment carries (the rest is each node's own).
pub(crate) const LIVE_KEYS: [&str; 2] = ["api", "throttling"];

/// `{api, throttling}` of a configuration tree (the keys it has of them).
fn live_part(tree: &serde_json::Value) -> serde_json::Value {
    let mut live = serde_json::Map::new();
    for key in LIVE_KEYS {
        if let Some(value) = tree.get(key) {
            live.insert(key.into(), value.clone());
        }
    }
    serde_json::Value::Object(live)
}

/// The file at `path` as a tree with the process environment's overrides, not validated:
/// `wsgate reload` reads the listeners from it and leaves the checks to the gateway.
///
/// # Errors
/// The file cannot be read, is not YAML, or an override cannot be applied.
pub(crate) fn load_tree(path: &Path) -> Result<serde_json::Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(tree_with_env(&text, std::env::vars())?.0)
}

impl Config {
    /// Loads `path`, applies overrides from the process environment, validates.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, variable or key at fault.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_with_env(&text, std::env::vars())
    }

    /// Parses YAML text without environment overrides.
    ///
    /// # Errors
    /// See [`Config::load`].
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::from_yaml_with_env(text, std::iter::empty())
    }

    /// Parses YAML text, then applies `WSGATE_*` overrides from `vars`.
    ///
    /// # Errors
    /// See [`Config::load`].
    pub fn from_yaml_with_env(
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (tree, ignored_env) = tree_with_env(text, vars)?;
        let live_source = live_part(&tree);
        let mut config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::invalid(
                if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                e.into_inner().to_string(),
            )
        })?;
        config.validate()?;
        config.ignored_env = ignored_env;
        config.live_source = LiveSource(live_source);
        Ok(config)
    }

    /// This (start) configuration with the live part of another one (`api`, `throttling`, as
    /// [`Config::live_source`] holds them: a stored deployment's definition), checked as a
    /// start would check it.
    ///
    /// # Errors
    /// The key at fault.
    pub(crate) fn with_live(&self, live: &serde_json::Value) -> Result<Self, ConfigError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Live {
            api: ApiConfig,
            #[serde(default)]
            throttling: ThrottlingConfig,
        }
        let part: Live = serde_path_to_error::deserialize(live.clone())
            .map_err(|e| ConfigError::invalid(e.path().to_string(), e.into_inner().to_string()))?;
        let mut config = self.clone();
        config.api = part.api;
        config.throttling = part.throttling;
        config.validate()?;
        config.live_source = LiveSource(live_part(live));
        Ok(config)
    }

    /// What `wsgate apply` sent, over this (start) configuration: a **definition document**
    /// (a mapping of `api` and at most `throttling`, as `wsgate export definition` writes it)
    /// replaces this configuration's live part; anything else is a whole configuration file,
    /// read as a start reads it. `WSGATE_*` overrides from `vars` apply to both.
    ///
    /// # Errors
    /// The key at fault, as a start would name it.
    pub(crate) fn applied(
        &self,
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let raw: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        let definition_only = raw.as_object().is_some_and(|keys| {
            keys.contains_key("api") && keys.keys().all(|k| LIVE_KEYS.contains(&k.as_str()))
        });
        if !definition_only {
            return Self::from_yaml_with_env(text, vars);
        }
        let (tree, _) = tree_with_env(text, vars)?;
        self.with_live(&live_part(&tree))
    }

    /// The live part to store for this configuration: what it was read from, else (a value
    /// built in code) its serialization, whose inline secrets are masked.
    pub(crate) fn live_tree(&self) -> serde_json::Value {
        if self.live_source.0.is_object() {
            return self.live_source.0.clone();
        }
        serde_json::json!({
            "api": serde_json::to_value(&self.api).unwrap_or_default(),
            "throttling": serde_json::to_value(&self.throttling).unwrap_or_default(),
        })
    }

    /// Checks values that the types alone cannot.
    fn validate(&self) -> Result<(), ConfigError> {
        let api = &self.api;
        if api.stages.is_empty() {
            return Err(ConfigError::invalid(
                "api.stages",
                "at least one stage is required",
            ));
        }
        for name in api.stages.keys() {
            if !is_stage_name(name) {
                return Err(ConfigError::invalid(
                    format!("api.stages.{name}"),
                    "stage names are 1-128 characters of letters, digits, `-` and `_`",
                ));
            }
            if RESERVED_PATHS.contains(&name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("api.stages.{name}"),
                    format!("`{name}` is reserved for the gateway's own endpoints"),
                ));
            }
        }
        crate::routing::SelectionExpression::parse(&api.route_selection_expression)
            .map_err(|e| ConfigError::invalid("api.route_selection_expression", e.to_string()))?;
        for (key, route) in &api.routes {
            let at = format!("api.routes.{key}");
            if key.starts_with('$') && !PREDEFINED_ROUTES.contains(&key.as_str()) {
                return Err(ConfigError::invalid(
                    at,
                    "route keys starting with `$` are reserved; use $connect, $disconnect, $default, $join, $leave or a custom key",
                ));
            }
            if key.is_empty() {
                return Err(ConfigError::invalid(at, "route key must not be empty"));
            }
            let here = format!("{at}.integration");
            validate_integration(&here, &route.integration, api)?;
            if let IntegrationConfig::Aws(service) = &route.integration {
                aws_service::validate(&here, service, api, &self.aws)?;
            }
            broker::validate_route(&at, route)?;
            let connect = key == "$connect";
            let parameters = route.integration.request_parameters();
            let transform = route.integration.request_transform().unwrap_or_default();
            transform::validate(&here, &transform, parameters, connect, api)?;
        }
        models::validate(api)?;
        access_log::validate(api)?;
        let l = &self.limits;
        let positive: [(&str, Duration); 5] = [
            ("limits.idle_timeout", l.idle_timeout),
            ("limits.max_connection_duration", l.max_connection_duration),
            ("limits.handshake_timeout", l.handshake_timeout),
            ("limits.send_timeout", l.send_timeout),
            ("callback.body_timeout", self.callback.body_timeout),
        ];
        for (key, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::invalid(key, "must be greater than zero"));
            }
        }
        if !l.ping_interval.is_zero() && l.pong_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "limits.pong_timeout",
                "must be greater than zero when pings are on",
            ));
        }
        let counts: [(&str, usize); 10] = [
            ("limits.outbound_queue_bytes", l.outbound_queue_bytes),
            ("limits.inbound_queue_bytes", l.inbound_queue_bytes),
            ("limits.node_queue_bytes", l.node_queue_bytes),
            ("limits.max_message_bytes", l.max_message_bytes),
            (
                "limits.max_integration_response_bytes",
                l.integration_response_bytes(),
            ),
            ("limits.max_frame_bytes", l.max_frame_bytes),
            ("limits.max_connections", l.max_connections),
            ("limits.max_http_connections", l.max_http_connections),
            ("limits.outbound_queue_messages", l.outbound_queue_messages),
            ("limits.inbound_queue_messages", l.inbound_queue_messages),
        ];
        for (key, value) in counts {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than zero"));
            }
        }
        if l.disconnect_attempts == 0 {
            return Err(ConfigError::invalid(
                "limits.disconnect_attempts",
                "must be at least 1",
            ));
        }
        if l.max_frame_bytes > l.max_message_bytes {
            return Err(ConfigError::invalid(
                "limits.max_frame_bytes",
                "must not exceed limits.max_message_bytes",
            ));
        }
        if l.max_outbound_frame_bytes != 0
            && !(MIN_OUTBOUND_FRAME..=MAX_OUTBOUND_FRAME).contains(&l.max_outbound_frame_bytes)
        {
            return Err(ConfigError::invalid(
                "limits.max_outbound_frame_bytes",
                format!(
                    "must be 0 (never split) or between {MIN_OUTBOUND_FRAME} and {MAX_OUTBOUND_FRAME}"
                ),
            ));
        }
        if l.max_http_connections > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::invalid(
                "limits.max_http_connections",
                format!("must not exceed {}", tokio::sync::Semaphore::MAX_PERMITS),
            ));
        }
        if !(1..=1 << 20).contains(&l.backend_connections) {
            return Err(ConfigError::invalid(
                "limits.backend_connections",
                "must be between 1 and 1048576",
            ));
        }
        if !(256..=1 << 20).contains(&l.read_buffer_bytes) {
            return Err(ConfigError::invalid(
                "limits.read_buffer_bytes",
                "must be between 256 and 1048576",
            ));
        }
        if let Some(CallbackAuthConfig::Bearer { tokens }) = &self.callback.auth
            && (tokens.is_empty() || tokens.iter().any(|t| t.len() < 16))
        {
            return Err(ConfigError::invalid(
                "callback.auth.tokens",
                "give at least one token of 16 or more characters",
            ));
        }
        if let Some(CallbackAuthConfig::Sigv4 {
            credentials,
            region,
            ..
        }) = &self.callback.auth
        {
            if credentials.is_empty() {
                return Err(ConfigError::invalid(
                    "callback.auth.credentials",
                    "give at least one key pair",
                ));
            }
            if region.is_empty() {
                return Err(ConfigError::invalid(
                    "callback.auth.region",
                    "must not be empty",
                ));
            }
            iam::validate_principals("callback.auth.credentials", credentials)?;
        }
        if !self.callback.on_main_listener && self.callback.listen.is_none() {
            return Err(ConfigError::invalid(
                "callback.on_main_listener",
                "the callback API needs a listener: set callback.listen or leave on_main_listener true",
            ));
        }
        if self.callback.listen_proxy_protocol && self.callback.listen.is_none() {
            return Err(ConfigError::invalid(
                "callback.listen_proxy_protocol",
                "applies to the separate callback listener: set callback.listen too (the main listener has listen_proxy_protocol)",
            ));
        }
        self.validate_store_and_cluster()?;
        cache::validate(self.cache.as_ref(), &self.store, api)?;
        acks::validate(api, &self.limits)?;
        self.groups.validate()?;
        self.deployments.validate(&self.store)?;
        consumers::validate(&self.consumers, api, &self.aws)?;
        self.aws.validate()?;
        domains::validate(self)?;
        if let Some(tls) = &self.tls {
            tls::certificates(tls, &self.domains)?;
        }
        if self.shutdown.drain_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "shutdown.drain_timeout",
                "must be greater than zero",
            ));
        }
        self.throttling.validate(api, &self.api_keys)?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::invalid("log.level", e.to_string()))?;
        tracing::validate(&self.tracing)?;
        integration_hosts::validate(self)?;
        check_auth::validate(self)
    }

    fn validate_store_and_cluster(&self) -> Result<(), ConfigError> {
        if let StoreConfig::Redis(redis) = &self.store {
            match (&redis.url, redis.urls.is_empty()) {
                (Some(_), false) => {
                    return Err(ConfigError::invalid(
                        "store.urls",
                        "give either store.url or store.urls, not both",
                    ));
                }
                (None, true) => {
                    return Err(ConfigError::invalid(
                        "store.url",
                        "required (or store.urls for a Redis Cluster)",
                    ));
                }
                _ => {}
            }
            if redis.prefix.is_empty() || redis.prefix.contains(['{', '}']) {
                return Err(ConfigError::invalid(
                    "store.prefix",
                    "must be non-empty and contain no `{` or `}` (the gateway adds hash tags itself)",
                ));
            }
            if redis.timeout.is_zero() {
                return Err(ConfigError::invalid(
                    "store.timeout",
                    "must be greater than zero",
                ));
            }
        }
        let c = &self.cluster;
        if c.lease_ttl < Duration::from_millis(300) {
            return Err(ConfigError::invalid(
                "cluster.lease_ttl",
                "must be at least 300ms",
            ));
        }
        if let StoreConfig::Redis(redis) = &self.store
            && c.lease_ttl / 2 <= redis.timeout
        {
            return Err(ConfigError::invalid(
                "cluster.lease_ttl",
                "must be more than twice store.timeout, so a slow renewal still lands before the lease expires",
            ));
        }
        let positive: [(&str, Duration); 3] = [
            ("cluster.reaper_interval", c.reaper_interval),
            ("cluster.disconnect_claim_ttl", c.disconnect_claim_ttl),
            ("cluster.forward_timeout", c.forward_timeout),
        ];
        for (key, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::invalid(key, "must be greater than zero"));
            }
        }
        let counts: [(&str, usize); 2] = [
            ("cluster.receive_queue_messages", c.receive_queue_messages),
            ("cluster.max_pending_forwards", c.max_pending_forwards),
        ];
        for (key, value) in counts {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than zero"));
            }
        }
        Ok(())
    }

    /// This node's id: the configured one, or a random one chosen once per process.
    pub fn effective_node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(crate::ids::node_id)
    }
}

/// Route keys with a meaning of their own (`$join`/`$leave`: group presence events).
pub const PREDEFINED_ROUTES: [&str; 5] = ["$connect", "$disconnect", "$default", "$join", "$leave"];

/// Bounds of `limits.max_outbound_frame_bytes` when it is not 0: smaller frames only add
/// headers, and no client needs larger ones to be split.
const MIN_OUTBOUND_FRAME: usize = 1024;
const MAX_OUTBOUND_FRAME: usize = 16 << 20;

/// Paths the gateway serves itself, which therefore cannot be stage names.
pub const RESERVED_PATHS: [&str; 5] = ["healthz", "readyz", "metrics", "@connections", "@admin"];

fn validate_integration(
    at: &str,
    integration: &IntegrationConfig,
    api: &ApiConfig,
) -> Result<(), ConfigError> {
    if let Some(checked) = broker::validate(at, integration, api) {
        return checked;
    }
    let (uri, timeout) = match integration {
        // Checked with the `aws:` section by `aws_service::validate`.
        IntegrationConfig::Aws(_) => return Ok(()),
        IntegrationConfig::AwsProxy { uri, timeout, .. } => (uri, *timeout),
        IntegrationConfig::HttpProxy {
            uri,
            timeout,
            method,
            ..
        }
        | IntegrationConfig::Http {
            uri,
            timeout,
            method,
            ..
        } => {
            if reqwest::Method::from_bytes(method.as_bytes()).is_err() {
                return Err(ConfigError::invalid(
                    format!("{at}.method"),
                    format!("invalid HTTP method `{method}`"),
                ));
            }
            (uri, *timeout)
        }
        IntegrationConfig::Mock {
            status_code,
            response,
            integration_responses,
            ..
        } => {
            if !(100..=599).contains(status_code) {
                return Err(ConfigError::invalid(
                    format!("{at}.status_code"),
                    "must be an HTTP status (100-599)",
                ));
            }
            if response.is_some() && !integration_responses.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{at}.response"),
                    "give either `response` or `integration_responses` (whose response templates make the answer), not both",
                ));
            }
            return Ok(());
        }
        // Checked above.
        IntegrationConfig::Nats(_)
        | IntegrationConfig::Rabbitmq(_)
        | IntegrationConfig::RedisStream(_) => return Ok(()),
    };
    if !(Duration::from_millis(50)..=Duration::from_secs(900)).contains(&timeout) {
        return Err(ConfigError::invalid(
            format!("{at}.timeout"),
            "must be between 50ms and 15m",
        ));
    }
    for (stage, settings) in &api.stages {
        let resolved = substitute_stage_variables(uri, &settings.variables).map_err(|missing| {
            ConfigError::invalid(
                format!("{at}.uri"),
                format!("stage `{stage}` has no variable `{missing}`"),
            )
        })?;
        if crate::integration::lambda::is_arn(&resolved) {
            if !matches!(integration, IntegrationConfig::AwsProxy { .. }) {
                return Err(ConfigError::invalid(
                    format!("{at}.uri"),
                    "a Lambda function ARN needs `type: aws_proxy`",
                ));
            }
            if integration.protocol() == BackendProtocol::Http2 {
                return Err(ConfigError::invalid(
                    format!("{at}.protocol"),
                    "`http2` is not available for a Lambda function ARN (the Invoke API is called over HTTP/1.1): use `http1`",
                ));
            }
            crate::integration::lambda::FunctionArn::parse(&resolved).map_err(|e| {
                ConfigError::invalid(
                    format!("{at}.uri"),
                    format!("`{resolved}` (stage `{stage}`): {e}"),
                )
            })?;
            continue;
        }
        if resolved.starts_with("unix:") {
            if integration.protocol() == BackendProtocol::Http2 {
                return Err(ConfigError::invalid(
                    format!("{at}.protocol"),
                    format!(
                        "`http2` is not available for a `unix:` URI (`{resolved}`, stage `{stage}`): use `http1`"
                    ),
                ));
            }
            crate::integration::h1::Target::parse(&resolved).map_err(|e| {
                ConfigError::invalid(
                    format!("{at}.uri"),
                    format!("`{resolved}` (stage `{stage}`): {e}"),
                )
            })?;
            continue;
        }
        let parsed = reqwest::Url::parse(&resolved).map_err(|e| {
            ConfigError::invalid(
                format!("{at}.uri"),
                format!("`{resolved}` (stage `{stage}`): {e}"),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::invalid(
                format!("{at}.uri"),
                "must be an http:// or https:// URL, unix:<socket path>:<http path>, or a Lambda function ARN (aws_proxy)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod iam_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transform_tests;
