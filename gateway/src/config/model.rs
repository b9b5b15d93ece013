//! The typed configuration tree: one section per subsystem, defaults that mirror Amazon API Gateway.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::auth::{ApiKeyConfig, AuthorizerConfig, DEFAULT_API_KEY_SELECTION, SecurityConfig};
use super::duration;
use super::transform::{ContentHandling, IntegrationResponseConfig, PassthroughBehavior};

/// The whole gateway configuration, as loaded from YAML and the environment.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the main listener (WebSocket clients, callback API, health, metrics); a
    /// reload moves it without closing the connections it accepted.
    pub listen: SocketAddr,
    /// Every connection on the main listener starts with a PROXY protocol (v1 or v2) header;
    /// see `docs/security.md`.
    #[serde(default)]
    pub listen_proxy_protocol: bool,
    /// This node's id in a cluster; random when absent.
    #[serde(default)]
    pub node_id: Option<String>,
    /// Where connection records live.
    #[serde(default)]
    pub store: StoreConfig,
    /// The WebSocket API: stages, routes, integrations.
    pub api: ApiConfig,
    /// Per-connection limits and timeouts.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The `@connections` callback API.
    #[serde(default)]
    pub callback: CallbackConfig,
    /// Shutdown behaviour.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Several nodes as one gateway (used with `store: {kind: redis}`).
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// Rate limits (token buckets); see `docs/throttling.md`.
    #[serde(default)]
    pub throttling: super::ThrottlingConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// API keys accepted on `$connect` routes with `api_key_required`.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// Origin allow-list and per-address limits on upgrade requests.
    #[serde(default)]
    pub security: SecurityConfig,
    /// IAM principals of `AWS_IAM` routes, and the region and account of `execute-api` ARNs.
    #[serde(default)]
    pub iam: super::IamConfig,
    /// TLS on the listeners (`wss://`, `https://`); plain when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Custom domain names and their API mappings (`Host` + first path segment → stage).
    #[serde(default)]
    pub domains: Vec<super::DomainConfig>,
    /// Named groups: limits, the slow-member policy, presence events.
    #[serde(default)]
    pub groups: super::groups::GroupsConfig,
    /// How Lambda functions named by ARN are reached and signed for.
    #[serde(default)]
    pub aws: super::AwsConfig,
    /// Response caching of two-way routes (absent: no route caches); see `docs/transform.md`.
    #[serde(default)]
    pub cache: Option<super::CacheConfig>,
    /// Broker consumers whose messages are delivered to connections; see `docs/consumers.md`.
    #[serde(default)]
    pub consumers: Vec<super::ConsumerConfig>,
    /// The admin page (`/@admin`).
    #[serde(default)]
    pub admin: super::AdminConfig,
    /// OpenTelemetry traces (off unless `enabled`); see `docs/operations.md#traces`.
    #[serde(default)]
    pub tracing: super::TracingConfig,
    /// Re-reading the configuration file while serving; see `docs/deployments.md`.
    #[serde(default)]
    pub reload: super::ReloadConfig,
    /// The deployment store: deployments kept, how often nodes check the stage pointers; see
    /// `docs/deployments.md`.
    #[serde(default)]
    pub deployments: super::DeploymentsConfig,
    /// `WSGATE_*` environment variables that named no config section (warned about at start).
    #[serde(skip)]
    pub ignored_env: Vec<String>,
    /// The live part (`api`, `throttling`) of the tree this configuration was read from, as
    /// written (inline secrets included): what a deployment stores. Null when the value was
    /// not read from text.
    #[serde(skip)]
    pub live_source: LiveSource,
}

/// The live part of the tree a configuration was read from (see [`Config::live_source`]);
/// `Debug` shows none of it (it may hold inline secrets).
#[derive(Clone, Default, PartialEq)]
pub struct LiveSource(pub serde_json::Value);

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveSource(..)")
    }
}

/// `tls:` section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first).
    pub cert_file: std::path::PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: std::path::PathBuf,
}

/// `store:` section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreConfig {
    /// One node, nothing to install.
    #[default]
    Memory,
    /// Several nodes sharing Redis.
    Redis(RedisStoreConfig),
}

/// `store: {kind: redis}` settings.
#[derive(Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisStoreConfig {
    /// `redis://host:port/db` (may carry a password, redacted in logs). With `cluster: true`,
    /// one seed node of the Redis Cluster.
    #[serde(default)]
    #[serde(serialize_with = "super::secret::url_opt")]
    pub url: Option<String>,
    /// Seed nodes of a Redis Cluster (implies `cluster: true`); give `url` or `urls`, not both.
    #[serde(default)]
    #[serde(serialize_with = "super::secret::urls")]
    pub urls: Vec<String>,
    /// Talk to a Redis Cluster (sharded pub/sub for the bus) instead of one server.
    #[serde(default)]
    pub cluster: bool,
    /// Prefix of every key this gateway writes.
    #[serde(default = "default_redis_prefix")]
    pub prefix: String,
    /// Timeout of each Redis operation.
    #[serde(
        default = "default_redis_timeout",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub timeout: Duration,
}

fn default_redis_prefix() -> String {
    "wsgate".into()
}
fn default_redis_timeout() -> Duration {
    Duration::from_secs(2)
}

impl fmt::Debug for RedisStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field(
                "urls",
                &self.urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            )
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisStoreConfig {
    /// True when talking to a Redis Cluster (`cluster: true` or `urls`).
    pub fn is_cluster(&self) -> bool {
        self.cluster || !self.urls.is_empty()
    }

    /// The URL(s) to connect to: `urls`, else `url`.
    pub fn seeds(&self) -> Vec<String> {
        if self.urls.is_empty() {
            self.url.iter().cloned().collect()
        } else {
            self.urls.clone()
        }
    }
}

/// `cluster:` section: node leases, the reaper and cross-node forwarding. Only used with the
/// Redis store; a memory store is a single node.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// How long a node's lease lives without renewal; renewed every third of it. A node that
    /// stops renewing (crash, freeze, partition) is considered dead this long after its last
    /// renewal.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub lease_ttl: Duration,
    /// How often each node looks for dead nodes and reaps their connections (`$disconnect` with
    /// status 1006). A dead node's connections are reaped within `lease_ttl + reaper_interval`
    /// plus the time to run their `$disconnect`.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub reaper_interval: Duration,
    /// How long a node that removed a connection's record holds the claim on its owed
    /// `$disconnect`. Should the node die before delivering it, another node's reaper delivers it
    /// once the claim expires. Must exceed the `$disconnect` retry window (30 s), or a slow but
    /// live delivery may be claimed and sent a second time.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub disconnect_claim_ttl: Duration,
    /// How long a callback POST/DELETE for a connection on another node waits for the owner's
    /// answer before answering 503.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub forward_timeout: Duration,
    /// Deliveries received from other nodes and waiting to be applied; when full, more are
    /// dropped and their senders answer 503 after `forward_timeout`.
    pub receive_queue_messages: usize,
    /// Cross-node callbacks waiting for the owner's answer on this node; more answer 503 at once.
    pub max_pending_forwards: usize,
    /// Owners of other nodes' connections remembered by this node (from their records), so a
    /// repeated callback skips the record lookup; 0 looks every callback up. A connection never
    /// moves, and a remembered owner that no longer holds it is forgotten on its answer.
    pub owner_cache_entries: usize,
    /// How often this node lists its own index of connection ids in the store, which prunes the
    /// ids whose record is gone (a removal whose last step failed during a store outage leaves
    /// one behind). Costs one `SSCAN` page and one `EXISTS` per connection of the node each
    /// time. At the same period one node (the live node with the lowest id) sweeps the group
    /// memberships of connections whose record is gone (a cleanup cut short by a process exit):
    /// one `SSCAN` page per 256 connections of the cluster and one `GET` per connection it
    /// does not hold. `0s` turns both sweeps off.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub index_sweep_interval: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(10),
            reaper_interval: Duration::from_secs(5),
            disconnect_claim_ttl: Duration::from_secs(60),
            forward_timeout: Duration::from_secs(2),
            receive_queue_messages: 16_384,
            max_pending_forwards: 16_384,
            owner_cache_entries: 65_536,
            index_sweep_interval: Duration::from_secs(300),
        }
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `api:` section: one WebSocket API.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Human name; also the default `apiId`.
    pub name: String,
    /// `apiId` in events; defaults to `name`.
    #[serde(default)]
    pub id: Option<String>,
    /// Free-form description.
    #[serde(default)]
    pub description: Option<String>,
    /// Free-form version label.
    #[serde(default)]
    pub version: Option<String>,
    /// `domainName` in events, used as is: `https://{domain_name}/{stage}` (`http://` without
    /// TLS) must reach the callback API. Defaults to the `Host` of the upgrade request without
    /// the scheme's default port (or the callback listener's address when the callback API is
    /// only served there).
    #[serde(default)]
    pub domain_name: Option<String>,
    /// E.g. `$request.body.action`.
    pub route_selection_expression: String,
    /// Stages by name; clients connect to `/{stage}`.
    pub stages: BTreeMap<String, StageConfig>,
    /// Routes by route key (`$connect`, `$disconnect`, `$default`, custom keys).
    pub routes: BTreeMap<String, RouteConfig>,
    /// Request models (JSON Schemas) by name, named by routes' `request_models`.
    #[serde(default)]
    pub models: BTreeMap<String, super::ModelConfig>,
    /// Authorizers by name, attached to `$connect` with `authorizer: name`.
    #[serde(default)]
    pub authorizers: BTreeMap<String, AuthorizerConfig>,
    /// Where the API key comes from: `$request.header.<name>` (default `x-api-key`),
    /// `$request.querystring.<name>` or `$context.authorizer.usageIdentifierKey`.
    #[serde(default = "default_api_key_selection")]
    pub api_key_selection_expression: String,
}

impl ApiConfig {
    /// `apiId`: `id`, else `name`.
    pub fn api_id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }
}

fn default_api_key_selection() -> String {
    DEFAULT_API_KEY_SELECTION.into()
}

/// One stage.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Stage variables, substituted into integration URIs as `${stageVariables.name}`.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// The stage's access log (absent: none); see `docs/operations.md`.
    #[serde(default)]
    pub access_log: Option<super::AccessLogConfig>,
    /// Execution logging of the stage's routes (AWS's `DefaultRouteSettings`).
    #[serde(default)]
    pub execution_log: super::ExecutionLogConfig,
    /// Execution logging of single routes, by route key (AWS's `RouteSettings`); an entry
    /// replaces `execution_log` for its route.
    #[serde(default)]
    pub route_execution_log: BTreeMap<String, super::ExecutionLogConfig>,
}

/// One route.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The backend that handles the route.
    pub integration: IntegrationConfig,
    /// Two-way route: the integration's reply body is sent to the client.
    #[serde(default)]
    pub route_response: bool,
    /// Name of the authorizer run before the integration (`$connect` only).
    #[serde(default)]
    pub authorizer: Option<String>,
    /// `NONE`, `AWS_IAM` or `CUSTOM` (`$connect` only); defaults to `CUSTOM` with an
    /// `authorizer`, else `NONE`.
    #[serde(default)]
    pub authorization_type: Option<AuthorizationType>,
    /// Require a known API key (`$connect` only).
    #[serde(default)]
    pub api_key_required: bool,
    /// Cache the integration's answers (two-way message routes; needs the `cache:` section).
    #[serde(default)]
    pub cache: Option<super::RouteCacheConfig>,
    /// Picks the request model of a message (`$request.body.<path>`, literals); without it only
    /// the `$default` model applies.
    #[serde(default)]
    pub model_selection_expression: Option<String>,
    /// Request models by model selection key (`$default`: when no other key matches); a message
    /// that fails its model never reaches the integration.
    #[serde(default)]
    pub request_models: BTreeMap<String, String>,
    /// The model of a two-way route's reply, by selection key (only `$default`), as Amazon API
    /// Gateway's `RouteResponse.ResponseModels`: the reply type of generated clients (`wsgate
    /// sdk`). The gateway does not check replies against it.
    #[serde(default)]
    pub response_models: BTreeMap<String, String>,
    /// Acknowledge each client message once the integration accepted it, and drop duplicates
    /// of the same client message id within a window (see docs/acks.md).
    #[serde(default)]
    pub ack: Option<super::RouteAckConfig>,
}

impl RouteConfig {
    /// The route's authorization type, defaults applied.
    pub fn authorization(&self) -> AuthorizationType {
        match (self.authorization_type, &self.authorizer) {
            (Some(kind), _) => kind,
            (None, Some(_)) => AuthorizationType::Custom,
            (None, None) => AuthorizationType::None,
        }
    }
}

/// A route's `AuthorizationType`, as Amazon API Gateway names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizationType {
    /// Open.
    None,
    /// A SigV4 signature of one of `iam.principals`, and its policy.
    AwsIam,
    /// The route's `authorizer`.
    Custom,
}

/// The backend of a route.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum IntegrationConfig {
    /// POST the Lambda proxy event JSON; read a Lambda proxy response.
    AwsProxy {
        /// Target URL (stage variables allowed).
        uri: String,
        /// Per-request timeout (50 ms to 15 min; default 29 s as in AWS).
        #[serde(
            default = "default_integration_timeout",
            deserialize_with = "duration::deserialize",
            serialize_with = "duration::serialize"
        )]
        #[schemars(with = "duration::Text")]
        timeout: Duration,
        /// HTTP version spoken to the backend.
        #[serde(default)]
        protocol: BackendProtocol,
    },
    /// Forward the raw message body; context in `x-wsgate-*` headers.
    HttpProxy {
        /// Target URL (stage variables allowed).
        uri: String,
        /// HTTP method (default POST).
        #[serde(default = "default_method")]
        method: String,
        /// Per-request timeout (50 ms to 15 min; default 29 s as in AWS).
        #[serde(
            default = "default_integration_timeout",
            deserialize_with = "duration::deserialize",
            serialize_with = "duration::serialize"
        )]
        #[schemars(with = "duration::Text")]
        timeout: Duration,
        /// HTTP version spoken to the backend.
        #[serde(default)]
        protocol: BackendProtocol,
        /// `integration.request.header.<name>` / `integration.request.querystring.<name>` from
        /// `context.<var>`, `stageVariables.<name>`, `route.request.body.<path>`,
        /// `route.request.header.<name>` / `querystring` (`$connect` only) or `'static'`.
        #[serde(default)]
        request_parameters: BTreeMap<String, String>,
    },
    /// Non-proxy HTTP (`HTTP`): the request body is made by a request template (VTL) and the
    /// answer goes through the integration responses; see `docs/transform.md`.
    Http {
        /// Target URL (stage variables allowed).
        uri: String,
        /// HTTP method (default POST).
        #[serde(default = "default_method")]
        method: String,
        /// Per-request timeout (50 ms to 15 min; default 29 s as in AWS).
        #[serde(
            default = "default_integration_timeout",
            deserialize_with = "duration::deserialize",
            serialize_with = "duration::serialize"
        )]
        #[schemars(with = "duration::Text")]
        timeout: Duration,
        /// HTTP version spoken to the backend.
        #[serde(default)]
        protocol: BackendProtocol,
        /// As `http_proxy`'s.
        #[serde(default)]
        request_parameters: BTreeMap<String, String>,
        /// Picks a request template: `${request.body.<path>}` or static text; absent: `$default`.
        #[serde(default)]
        template_selection_expression: Option<String>,
        /// Request templates (VTL) by selection key; `$default` catches the rest.
        #[serde(default)]
        request_templates: BTreeMap<String, String>,
        /// When no template is selected.
        #[serde(default)]
        passthrough_behavior: PassthroughBehavior,
        /// Converts the client's payload before templates see it.
        #[serde(default)]
        content_handling_strategy: Option<ContentHandling>,
        /// Integration responses by `$default` or `/status regex/`.
        #[serde(default)]
        integration_responses: BTreeMap<String, IntegrationResponseConfig>,
    },
    /// An AWS service action called directly (`AWS`): SQS `SendMessage`, SNS `Publish`, ...;
    /// see `docs/aws-services.md`.
    Aws(Box<super::AwsServiceConfig>),
    /// Answer from the gateway itself (`MOCK`).
    Mock {
        /// Body sent back on two-way routes (absent: nothing is sent). Not with
        /// `integration_responses`.
        #[serde(default)]
        response: Option<String>,
        /// Status code (non-2xx rejects a `$connect`); a request template's `statusCode` takes
        /// its place, as AWS's mock integrations read it.
        #[serde(default = "default_status")]
        status_code: u16,
        /// Picks a request template, as `http`'s.
        #[serde(default)]
        template_selection_expression: Option<String>,
        /// Request templates rendering `{"statusCode": N}`.
        #[serde(default)]
        request_templates: BTreeMap<String, String>,
        /// Integration responses by `$default` or `/status regex/`: their response templates
        /// make the answer.
        #[serde(default)]
        integration_responses: BTreeMap<String, IntegrationResponseConfig>,
    },
    /// Publish to NATS (JetStream or core); see `docs/brokers.md`.
    Nats(super::broker::NatsConfig),
    /// Publish to a RabbitMQ exchange with publisher confirms; see `docs/brokers.md`.
    Rabbitmq(super::broker::RabbitmqConfig),
    /// `XADD` to a Redis stream; see `docs/brokers.md`.
    RedisStream(super::broker::RedisStreamConfig),
}

/// The HTTP version an integration speaks to its backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendProtocol {
    /// HTTP/1.1 over pooled keep-alive connections (`http://`, `https://`, `unix:`).
    #[default]
    Http1,
    /// HTTP/2: with prior knowledge (h2c) for `http://`, by ALPN for `https://`. Requests in
    /// flight to one backend share a connection.
    Http2,
}

impl IntegrationConfig {
    /// The HTTP version the integration speaks (`mock` and brokers: none, reported as HTTP/1.1).
    pub fn protocol(&self) -> BackendProtocol {
        match self {
            Self::AwsProxy { protocol, .. }
            | Self::HttpProxy { protocol, .. }
            | Self::Http { protocol, .. } => *protocol,
            Self::Mock { .. } | Self::Aws(_) => BackendProtocol::Http1,
            Self::Nats(_) | Self::Rabbitmq(_) | Self::RedisStream(_) => BackendProtocol::Http1,
        }
    }

    /// The longest one call may take: the integration's `timeout` (`mock`: none).
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            Self::AwsProxy { timeout, .. }
            | Self::HttpProxy { timeout, .. }
            | Self::Http { timeout, .. } => Some(*timeout),
            Self::Aws(aws) => Some(aws.timeout),
            Self::Nats(b) => Some(b.timeout),
            Self::Rabbitmq(b) => Some(b.timeout),
            Self::RedisStream(b) => Some(b.timeout),
            Self::Mock { .. } => None,
        }
    }

    /// The templates and integration responses of a non-proxy integration (`http`, `mock`).
    pub fn request_transform(&self) -> Option<super::RequestTransform<'_>> {
        match self {
            Self::Http {
                template_selection_expression,
                request_templates,
                passthrough_behavior,
                content_handling_strategy,
                integration_responses,
                ..
            } => Some(super::RequestTransform {
                selection: template_selection_expression.as_deref(),
                templates: Some(request_templates),
                passthrough: *passthrough_behavior,
                content_handling: *content_handling_strategy,
                responses: Some(integration_responses),
            }),
            Self::Mock {
                template_selection_expression,
                request_templates,
                integration_responses,
                ..
            } => Some(super::RequestTransform {
                selection: template_selection_expression.as_deref(),
                templates: Some(request_templates),
                passthrough: PassthroughBehavior::WhenNoMatch,
                content_handling: None,
                responses: Some(integration_responses),
            }),
            Self::Aws(aws) => Some(super::RequestTransform {
                selection: aws.template_selection_expression.as_deref(),
                templates: Some(&aws.request_templates),
                passthrough: aws.passthrough_behavior,
                content_handling: aws.content_handling_strategy,
                responses: Some(&aws.integration_responses),
            }),
            Self::AwsProxy { .. } | Self::HttpProxy { .. } => None,
            Self::Nats(_) | Self::Rabbitmq(_) | Self::RedisStream(_) => None,
        }
    }

    /// `request_parameters` of `http_proxy` and `http`.
    pub fn request_parameters(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            Self::HttpProxy {
                request_parameters, ..
            }
            | Self::Http {
                request_parameters, ..
            } => Some(request_parameters),
            Self::AwsProxy { .. } | Self::Mock { .. } | Self::Aws(_) => None,
            Self::Nats(_) | Self::Rabbitmq(_) | Self::RedisStream(_) => None,
        }
    }
}

fn default_integration_timeout() -> Duration {
    Duration::from_secs(29)
}
fn default_method() -> String {
    "POST".into()
}
fn default_status() -> u16 {
    200
}

/// What to do with binary frames from clients.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BinaryFrames {
    /// Deliver them base64-encoded with `isBase64Encoded: true`.
    #[default]
    Accept,
    /// Close the connection with 1003, as Amazon API Gateway does.
    Reject,
}

/// `limits:` section. Defaults follow Amazon API Gateway where it has a value.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Close (1001) after this long without data frames in either direction.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub idle_timeout: Duration,
    /// Close (1001) a connection this long after it opened.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub max_connection_duration: Duration,
    /// Largest message (after reassembly of fragments); larger closes with 1009.
    pub max_message_bytes: usize,
    /// Largest single frame; larger closes with 1009.
    pub max_frame_bytes: usize,
    /// Largest frame the gateway writes: a message over it goes out in fragments of at most
    /// this many payload bytes, as Amazon API Gateway splits messages into 32 KB frames
    /// (`0`: never split).
    pub max_outbound_frame_bytes: usize,
    /// Time allowed to send the upgrade request's headers.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub handshake_timeout: Duration,
    /// Concurrent WebSocket connections on this node (including ones in `$connect`).
    pub max_connections: usize,
    /// TCP connections each listener serves as HTTP at once (until they are upgraded to
    /// WebSocket or closed). When all are taken the listener stops accepting; new connections
    /// wait in the kernel's accept backlog.
    pub max_http_connections: usize,
    /// Protocol ping interval (0 disables pings).
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub ping_interval: Duration,
    /// Close (1011) when a ping has had no pong for this long.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub pong_timeout: Duration,
    /// Messages waiting to be written to one client; a full queue answers 429 to posts.
    pub outbound_queue_messages: usize,
    /// Bytes waiting to be written to one client (with `outbound_queue_messages`, whichever is
    /// reached first); a full queue answers 429 to posts. One message is always accepted into an
    /// empty queue.
    pub outbound_queue_bytes: usize,
    /// A write to the client that takes longer than this closes the connection (1013).
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub send_timeout: Duration,
    /// Messages read from one client and waiting for their integration; when full, reading pauses.
    pub inbound_queue_messages: usize,
    /// Bytes read from one client and waiting for their integration; when full, reading pauses.
    pub inbound_queue_bytes: usize,
    /// Bytes queued on this node in all inbound and outbound queues together. When spent, posts
    /// answer 429 and reading pauses until queues drain.
    pub node_queue_bytes: usize,
    /// After a client has gone, how long its queued inbound messages may still take to reach
    /// their integration before the rest are dropped and `$disconnect` runs.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub inbound_drain_timeout: Duration,
    /// Attempts at a `$disconnect` call that fails (transport error, timeout, 429 or 5xx).
    pub disconnect_attempts: u32,
    /// All attempts at one `$disconnect` end within this long (the backoff is cut to fit).
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub disconnect_retry_within: Duration,
    /// Binary frames from clients: `accept` (default) or `reject` (close 1003).
    pub binary_frames: BinaryFrames,
    /// Tungstenite read buffer per connection (memory per idle connection).
    pub read_buffer_bytes: usize,
    /// SO_SNDBUF of each accepted socket: bounds the kernel memory a client that stops reading
    /// holds on this node (unset: the kernel's autotuning, up to `net.ipv4.tcp_wmem`'s maximum).
    pub socket_send_buffer_bytes: Option<usize>,
    /// Largest integration answer read (body bytes); unset: `max_message_bytes`. Use
    /// [`LimitsConfig::integration_response_bytes`].
    pub max_integration_response_bytes: Option<usize>,
    /// Connections this node holds open to one `http://` or `unix:` integration backend (one
    /// host and port, or socket), idle or carrying a call. A call that finds every one busy
    /// waits for one within its integration `timeout`, so a burst (thousands of clients
    /// closing at once, each with a `$disconnect`) opens at most this many per node.
    pub backend_connections: usize,
    /// `store: memory`: most client message ids the acknowledged routes remember at once (in
    /// flight or acknowledged); when reached, new ids are answered with a retryable refusal
    /// until some expire.
    pub ack_ids: usize,
    /// `store: memory`: most bytes the remembered client message ids take (keys and
    /// bookkeeping, about 250 bytes each).
    pub ack_id_bytes: usize,
}

impl LimitsConfig {
    /// The cap on integration answers: `max_integration_response_bytes`, else
    /// `max_message_bytes`.
    pub fn integration_response_bytes(&self) -> usize {
        self.max_integration_response_bytes
            .unwrap_or(self.max_message_bytes)
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(600),
            max_connection_duration: Duration::from_secs(7200),
            max_message_bytes: 131_072,
            max_frame_bytes: 32_768,
            max_outbound_frame_bytes: 32_768,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 100_000,
            max_http_connections: 10_000,
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(30),
            outbound_queue_messages: 256,
            outbound_queue_bytes: 1 << 20,
            send_timeout: Duration::from_secs(10),
            inbound_queue_messages: 32,
            inbound_queue_bytes: 1 << 20,
            node_queue_bytes: 512 << 20,
            inbound_drain_timeout: Duration::from_secs(30),
            disconnect_attempts: 4,
            disconnect_retry_within: Duration::from_secs(30),
            binary_frames: BinaryFrames::Accept,
            read_buffer_bytes: 4096,
            max_integration_response_bytes: None,
            backend_connections: 512,
            socket_send_buffer_bytes: None,
            ack_ids: 100_000,
            ack_id_bytes: 32 << 20,
        }
    }
}

/// `callback:` section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackConfig {
    /// Serve the callback API on its own listener too (e.g. `127.0.0.1:9080`); a reload moves
    /// it to a new address (setting or unsetting it needs a restart).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Every connection on the callback listener starts with a PROXY protocol header.
    #[serde(default)]
    pub listen_proxy_protocol: bool,
    /// Serve it on the main listener as well (default true; set false with `listen` to keep
    /// it private).
    #[serde(default = "default_true")]
    pub on_main_listener: bool,
    /// How callers authenticate. Absent: only loopback callers are allowed.
    #[serde(default)]
    pub auth: Option<CallbackAuthConfig>,
    /// Time allowed to receive a callback request's body once its headers are in; a slower
    /// body is answered 408.
    #[serde(
        default = "default_body_timeout",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub body_timeout: Duration,
}

fn default_body_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_true() -> bool {
    true
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            listen: None,
            listen_proxy_protocol: false,
            on_main_listener: true,
            auth: None,
            body_timeout: default_body_timeout(),
        }
    }
}

/// Authentication of the callback API.
#[derive(Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CallbackAuthConfig {
    /// No authentication at all (must be chosen explicitly).
    None,
    /// `Authorization: Bearer <token>` with one of these tokens.
    Bearer {
        /// Accepted tokens.
        #[serde(serialize_with = "super::secret::hide_all")]
        tokens: Vec<String>,
    },
    /// AWS Signature V4, service `execute-api`, as the AWS SDKs sign.
    Sigv4 {
        /// Region in the credential scope.
        region: String,
        /// Accepted key pairs, each with its optional session token and IAM policy.
        credentials: Vec<SigV4CredentialConfig>,
        /// Allowed clock skew.
        #[serde(
            default = "default_skew",
            deserialize_with = "duration::deserialize",
            serialize_with = "duration::serialize"
        )]
        #[schemars(with = "duration::Text")]
        max_skew: Duration,
    },
}

fn default_skew() -> Duration {
    Duration::from_secs(300)
}

impl fmt::Debug for CallbackAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Bearer { tokens } => {
                write!(f, "Bearer {{ tokens: [{} redacted] }}", tokens.len())
            }
            Self::Sigv4 {
                region,
                credentials,
                max_skew,
            } => f
                .debug_struct("Sigv4")
                .field("region", region)
                .field("credentials", credentials)
                .field("max_skew", max_skew)
                .finish(),
        }
    }
}

/// One key pair of `callback.auth` (the shape of an `iam.principals` entry).
pub type SigV4CredentialConfig = super::IamPrincipalConfig;

/// `shutdown:` section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Upper bound on closing sockets and running `$disconnect` after SIGTERM/SIGINT.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// `log:` section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `wsgate=debug` (`RUST_LOG` wins when set).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
