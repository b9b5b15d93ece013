//! Integrations: the backends behind routes. One trait, five kinds (`aws_proxy`, `http_proxy`,
//! `http` with mapping templates, `aws` service actions ([`aws_service`]), `mock`), built per
//! stage from config with stage variables substituted, sharing pooled keep-alive HTTP clients
//! (the lean [`h1`] client for `http://` and `unix:`, reqwest for `https://`); `aws_proxy` may
//! also name a Lambda function by ARN ([`lambda`]).

mod aws_proxy;
pub(crate) mod aws_service;
mod backend;
pub(crate) mod body;
pub(crate) mod broker;
mod context;
pub(crate) mod h1;
mod http;
mod http_proxy;
pub(crate) mod lambda;
mod mock;

pub(crate) use backend::Clients;

pub use aws_proxy::parse_response as parse_proxy_response;
pub use aws_service::AwsRequest;
pub use http::MessageMapping;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::access_log::execution::ExecutionLog;
use crate::activity::{Activity, Counted, RouteTally};
pub(crate) use crate::config::substitute_stage_variables;
use crate::config::{ApiConfig, IntegrationConfig};
use crate::events::{ConnectionMeta, EventKind};
use crate::telemetry;
use crate::transform::Parameters;

/// One call to an integration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Invocation<'a> {
    /// The connection.
    pub meta: &'a ConnectionMeta,
    /// Route key being invoked.
    pub route_key: &'a str,
    /// `requestId` of this event.
    pub request_id: &'a str,
    /// The call's span (tracing on): HTTP integrations send it as `traceparent`.
    pub trace: crate::traces::Parent<'a>,
    /// Event kind and its fields.
    pub kind: EventKind<'a>,
}

/// What an integration answered.
#[derive(Debug, Clone, Default)]
pub struct IntegrationResponse {
    /// HTTP status (for `aws_proxy`, the Lambda `statusCode`).
    pub status: u16,
    /// Response headers (names lowercase).
    pub headers: Vec<(String, String)>,
    /// Body bytes (base64 already decoded when the backend said `isBase64Encoded`); `None` when
    /// the backend sent no body (a Lambda result without `body`, HTTP 204, a mock without
    /// `response`), so a two-way route sends nothing. An empty body is sent as an empty frame.
    pub body: Option<Bytes>,
    /// The body is binary and should go to the client as a binary frame.
    pub binary: bool,
}

impl IntegrationResponse {
    /// First header value by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why an integration call produced no usable response.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// The backend did not answer in time.
    #[error("integration timed out after {0:?}")]
    Timeout(Duration),
    /// Connecting, sending or reading failed.
    #[error("integration request failed: {0}")]
    Transport(#[source] TransportError),
    /// The backend answered something that is not a valid response for its kind.
    #[error("malformed integration response: {0}")]
    Malformed(&'static str),
    /// The function behind an `aws_proxy` integration raised an error.
    #[error("function error: {0}")]
    FunctionError(String),
    /// The backend answered with a status that means the invocation itself failed.
    #[error("integration endpoint answered HTTP {0}")]
    EndpointStatus(u16),
    /// The Lambda Invoke API refused or failed the call (the function did not run): no such
    /// function or qualifier, throttled, access denied, a service error.
    #[error("the Lambda Invoke API answered HTTP {status} ({error_type})")]
    LambdaApi {
        /// The Invoke API's status.
        status: u16,
        /// The AWS error type (`ResourceNotFoundException`, `TooManyRequestsException`, ...).
        error_type: String,
    },
    /// No AWS credentials to sign a Lambda Invoke request with.
    #[error("no AWS credentials for the Lambda Invoke API: {0}")]
    Credentials(String),
    /// No request template was selected and the integration's passthrough behaviour refuses
    /// the payload (AWS answers 415 Unsupported Media Type).
    #[error("no request template matches and passthrough_behavior refuses the payload")]
    UnsupportedMediaType,
    /// A mapping template failed, or a payload could not be converted.
    #[error("mapping failed: {0}")]
    Mapping(String),
    /// A broker integration's publish failed or was refused.
    #[error("broker publish failed: {0}")]
    Broker(#[source] broker::BrokerError),
    /// The answer was larger than the cap (`limits.max_integration_response_bytes`; for
    /// `aws_proxy`, the envelope cap or the decoded body's).
    #[error("integration response larger than {limit} bytes")]
    ResponseTooLarge {
        /// The cap that was passed, in bytes.
        limit: usize,
    },
}

/// A failure of one of the HTTP clients.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The general client (`https://`).
    #[error(transparent)]
    General(reqwest::Error),
    /// The lean HTTP/1.1 client (`http://`, `unix:`).
    #[error(transparent)]
    H1(h1::H1Error),
}

/// A backend that handles a route.
#[async_trait]
pub(crate) trait Integration: Send + Sync + fmt::Debug {
    /// Invokes the backend for one event.
    async fn invoke(
        &self,
        invocation: &Invocation<'_>,
    ) -> Result<IntegrationResponse, IntegrationError>;
    /// `aws_proxy`, `http_proxy` or `mock` (metrics and logs).
    fn kind(&self) -> &'static str;
}

/// A route of one stage.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The route key.
    pub key: Arc<str>,
    /// Its backend.
    pub integration: Arc<dyn Integration>,
    /// Two-way: send the reply body to the client.
    pub route_response: bool,
    /// Its request models (`None`: messages are not validated).
    pub models: Option<Arc<crate::validate::RouteModels>>,
    /// Its metric handles, registered once.
    pub metrics: RouteMetrics,
    /// Its response cache, when it caches answers.
    pub cache: Option<Arc<crate::cache::RouteCache>>,
    /// Its execution logging on this stage.
    pub execution: crate::access_log::execution::ExecutionLog,
    /// Its acknowledgements and duplicate suppression (`ack:`), when on.
    pub ack: Option<Arc<crate::acks::RouteAck>>,
}

/// The metrics of one route of one stage, registered when the stage is built (a label lookup
/// per message costs more than the counting).
#[derive(Debug, Clone)]
pub(crate) struct RouteMetrics {
    /// `IntegrationLatency`.
    pub latency: metrics::Histogram,
    /// `IntegrationError`: the backend answered 4xx or 5xx.
    pub integration_errors: metrics::Counter,
    /// `ExecutionError`: no usable answer.
    pub execution_errors: metrics::Counter,
    /// Messages refused by the route's request models.
    pub validation_errors: metrics::Counter,
    /// This gateway's own counts (the admin page), gateway-wide.
    pub activity: Arc<Activity>,
    /// This gateway's own counts of this route.
    pub tally: Arc<RouteTally>,
}

impl RouteMetrics {
    fn new(stage: &str, route: &str, activity: &Arc<Activity>) -> Self {
        let labels = [("stage", stage.to_string()), ("route", route.to_string())];
        Self {
            latency: metrics::histogram!(telemetry::INTEGRATION_LATENCY, &labels),
            integration_errors: metrics::counter!(telemetry::INTEGRATION_ERROR_TOTAL, &labels),
            execution_errors: metrics::counter!(telemetry::EXECUTION_ERROR_TOTAL, &labels),
            validation_errors: metrics::counter!(telemetry::VALIDATION_ERROR_TOTAL, &labels),
            activity: Arc::clone(activity),
            tally: Arc::default(),
        }
    }

    /// Takes over the admin counts of `before` (the same route of the definition replaced).
    fn keeping_tally_of(mut self, before: Option<&Route>) -> Self {
        if let Some(before) = before {
            self.tally = Arc::clone(&before.metrics.tally);
        }
        self
    }
}

/// The routes of one stage, with URIs resolved against its stage variables.
#[derive(Debug)]
pub(crate) struct StageRoutes {
    routes: HashMap<String, Route>,
    /// `MessageCount` in (messages from clients).
    pub received: Counted,
    /// `MessageCount` out (frames written to clients).
    pub sent: Counted,
    /// What connections keep for cache keys, and the caches (for invalidation).
    pub cache: crate::cache::StageCache,
    /// The stage's access log (`None`: events build no record).
    pub access_log: Option<Arc<crate::access_log::AccessLog>>,
    /// The stage's default execution logging (events without a route).
    pub execution: crate::access_log::execution::ExecutionLog,
}

impl StageRoutes {
    /// The route for an exact key.
    pub(crate) fn get(&self, key: &str) -> Option<&Route> {
        self.routes.get(key)
    }

    /// Every route of the stage.
    pub(crate) fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.values()
    }
}

/// What watches the stages' traffic: the access log of each stage (by name) and the counts of
/// the admin page; `previous` (a reload) gives each route that still exists its counts back.
#[derive(Clone, Copy)]
pub(crate) struct Observers<'a> {
    pub(crate) access_logs: &'a HashMap<String, Arc<crate::access_log::AccessLog>>,
    pub(crate) activity: &'a Arc<Activity>,
    pub(crate) previous: Option<&'a HashMap<String, Arc<StageRoutes>>>,
}

/// Builds every stage's routes, each with its request models from `models` (compiled once for all
/// stages) and its execution logging, each stage with its access log from `observers`;
/// `response_cap` bounds every answer read (see [`body`]); their counts go to the observers'
/// activity too.
///
/// # Errors
/// What is wrong, in words: a missing stage variable (config validation reports these first),
/// or an HTTP/2 route without the HTTP/2 client.
pub(crate) fn build_stages(
    api: &ApiConfig,
    models: &crate::validate::Models,
    clients: &Clients,
    aws: &lambda::Aws,
    response_cap: usize,
    cache: Option<&Arc<crate::cache::ResponseCache>>,
    observers: Observers<'_>,
) -> Result<HashMap<String, Arc<StageRoutes>>, String> {
    let Observers {
        access_logs,
        activity,
        previous,
    } = observers;
    let mut stages = HashMap::new();
    for (stage, settings) in &api.stages {
        let mut routes = HashMap::new();
        for (key, route) in &api.routes {
            let integration: Arc<dyn Integration> = match &route.integration {
                IntegrationConfig::Nats(_)
                | IntegrationConfig::Rabbitmq(_)
                | IntegrationConfig::RedisStream(_) => {
                    broker::build(&route.integration, settings, &clients.brokers)?
                }
                IntegrationConfig::AwsProxy {
                    uri,
                    timeout,
                    protocol,
                } => Arc::new(aws_proxy::AwsProxy::new(
                    clients,
                    aws,
                    substitute_stage_variables(uri, &settings.variables)
                        .map_err(missing_variable)?,
                    *protocol,
                    *timeout,
                    response_cap,
                )?),
                IntegrationConfig::HttpProxy {
                    uri,
                    method,
                    timeout,
                    protocol,
                    request_parameters,
                } => Arc::new(http_proxy::HttpProxy::new(
                    clients,
                    substitute_stage_variables(uri, &settings.variables)
                        .map_err(missing_variable)?,
                    method,
                    *protocol,
                    *timeout,
                    response_cap,
                    Parameters::for_stage(
                        request_parameters,
                        &settings.variables,
                        key == "$connect",
                    )?,
                )?),
                IntegrationConfig::Http {
                    uri,
                    method,
                    timeout,
                    protocol,
                    request_parameters,
                    ..
                } => {
                    let mapping = http::Mapping::new(&route.integration, settings, key)?;
                    let backend = backend::Backend::new(
                        clients,
                        substitute_stage_variables(uri, &settings.variables)
                            .map_err(missing_variable)?,
                        method,
                        &[],
                        *protocol,
                    )?;
                    Arc::new(http::Http {
                        backend,
                        timeout: *timeout,
                        response_cap,
                        parameters: Parameters::for_stage(
                            request_parameters,
                            &settings.variables,
                            key == "$connect",
                        )?,
                        mapping,
                    })
                }
                IntegrationConfig::Aws(service) => Arc::new(aws_service::AwsService::new(
                    service,
                    &route.integration,
                    aws,
                    settings,
                    key,
                    response_cap,
                )?),
                IntegrationConfig::Mock {
                    response,
                    status_code,
                    ..
                } => Arc::new(mock::Mock::new(
                    *status_code,
                    response.clone(),
                    http::Mapping::new(&route.integration, settings, key)?,
                )),
            };
            routes.insert(
                key.clone(),
                Route {
                    key: key.as_str().into(),
                    integration,
                    route_response: route.route_response,
                    models: models.for_route(key),
                    metrics: RouteMetrics::new(stage, key, activity).keeping_tally_of(
                        previous
                            .and_then(|p| p.get(stage))
                            .and_then(|routes| routes.get(key)),
                    ),
                    cache: cache.and_then(|c| c.route(stage, key)),
                    execution: ExecutionLog::new(&crate::config::execution_log_for(settings, key)),
                    ack: match &route.ack {
                        Some(ack) => Some(Arc::new(crate::acks::RouteAck::new(
                            ack,
                            stage,
                            key,
                            route.integration.timeout(),
                        )?)),
                        None => None,
                    },
                },
            );
        }
        let direction = |d: &'static str| metrics::counter!(telemetry::MESSAGE_TOTAL, "stage" => stage.clone(), "direction" => d);
        let stage_routes = StageRoutes {
            routes,
            received: Counted::new(direction("in"), &activity.messages_in),
            sent: Counted::new(direction("out"), &activity.messages_out),
            cache: crate::cache::StageCache::new(cache),
            access_log: access_logs.get(stage).cloned(),
            execution: ExecutionLog::new(&settings.execution_log),
        };
        stages.insert(stage.clone(), Arc::new(stage_routes));
    }
    Ok(stages)
}

/// The shared HTTP client: pooled keep-alive connections, bounded idle pool, no proxy from the
/// environment (integrations must go where the config says).
///
/// # Errors
/// When the TLS backend cannot be initialised.
pub(crate) fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(512)
        .tcp_nodelay(true)
        .user_agent(concat!("wsgate/", env!("CARGO_PKG_VERSION")))
        // A backend's redirect is its answer, as with AWS: following it would let a backend,
        // or whoever controls its answer, point the gateway at any address
        // (security.integration_hosts is checked on configured URLs only).
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

fn missing_variable(name: String) -> String {
    format!("missing stage variable `{name}`")
}

/// The HTTP/2 client of integrations with `protocol: http2`: h2c with prior knowledge for
/// `http://`, h2 negotiated by ALPN for `https://`. The requests in flight to one backend share
/// one connection (and its writes).
///
/// # Errors
/// When the TLS backend cannot be initialised.
pub(crate) fn http2_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(concat!("wsgate/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .http2_prior_knowledge()
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(10))
        .build()
}

/// Reads an integration's answer under `cap`; an answer over it is counted and logged.
async fn read_body(
    response: reqwest::Response,
    cap: usize,
    timeout: Duration,
    inv: &Invocation<'_>,
) -> Result<Bytes, IntegrationError> {
    match body::read_capped(response, cap).await {
        Ok(bytes) => Ok(bytes),
        Err(body::ReadError::Transport(e)) => Err(map_reqwest(e, timeout)),
        Err(body::ReadError::TooLarge { limit }) => Err(too_large(inv, limit)),
    }
}

/// The error for an answer over `limit` bytes, counted in
/// [`telemetry::INTEGRATION_RESPONSE_TOO_LARGE_TOTAL`] and logged.
fn too_large(inv: &Invocation<'_>, limit: usize) -> IntegrationError {
    metrics::counter!(
        telemetry::INTEGRATION_RESPONSE_TOO_LARGE_TOTAL,
        "stage" => inv.meta.stage.clone(),
        "route" => inv.route_key.to_string()
    )
    .increment(1);
    tracing::warn!(
        connection_id = %inv.meta.connection_id,
        route_key = %inv.route_key,
        request_id = %inv.request_id,
        limit,
        "integration answer over the size cap; not read further"
    );
    IntegrationError::ResponseTooLarge { limit }
}

fn map_reqwest(err: reqwest::Error, timeout: Duration) -> IntegrationError {
    if err.is_timeout() {
        IntegrationError::Timeout(timeout)
    } else {
        IntegrationError::Transport(TransportError::General(err))
    }
}
