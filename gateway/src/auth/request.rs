//! The `request` authorizer: the Lambda REQUEST authorizer contract over HTTP. The event is
//! POSTed as JSON (as the Lambda Invoke API and the Runtime Interface Emulator take it) to a URL,
//! or the function is invoked by ARN through the signed Invoke API, so existing authorizer
//! handlers work unchanged. Missing identity sources answer 401 without a call; results are
//! cached per identity-source values for `result_ttl`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use super::build::SecurityError;
use super::identity::IdentitySource;
use super::policy::{self, Decision};
use super::{AuthError, AuthRequest, Authorized, Authorizer, CallError};
use crate::config::{ContextValues, RequestAuthorizerConfig, StageConfig, redact_url};
use crate::events::{EventKind, authorizer_event};
use crate::integration::body::{self, ReadError};
use crate::integration::lambda::{self, FUNCTION_ERROR, Function, FunctionArn};
use crate::integration::{IntegrationError, Invocation, substitute_stage_variables};

/// Largest authorizer answer read (the AWS limit on authorizer results).
pub(crate) const MAX_RESULT_BYTES: usize = 8 * 1024;

/// Where one stage's authorizer calls go.
enum Target {
    /// A URL the event is POSTed to.
    Url(String),
    /// A Lambda function by ARN.
    Function(Box<Function>),
}

/// A configured `request` authorizer.
pub(crate) struct RequestAuthorizer {
    client: reqwest::Client,
    targets: HashMap<String, Target>,
    timeout: Duration,
    sources: Vec<IdentitySource>,
    cache: Option<Cache<[u8; 32], Decision>>,
    arn_prefix: String,
    context_values: ContextValues,
}

impl RequestAuthorizer {
    /// Builds the authorizer configured at `at`, with its URI resolved for every stage.
    ///
    /// # Errors
    /// A [`SecurityError`] naming the key at fault.
    pub(crate) fn new(
        at: &str,
        config: &RequestAuthorizerConfig,
        client: reqwest::Client,
        aws: &lambda::Aws,
        stages: &BTreeMap<String, StageConfig>,
    ) -> Result<Self, SecurityError> {
        let invalid = |what: &str| SecurityError::Invalid {
            key: format!("{at}.{what}"),
        };
        let sources = config
            .identity_sources
            .iter()
            .map(|s| IdentitySource::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid("identity_sources"))?;
        let mut targets = HashMap::new();
        for (stage, settings) in stages {
            let uri = substitute_stage_variables(&config.uri, &settings.variables)
                .map_err(|_| invalid("uri"))?;
            let target = if lambda::is_arn(&uri) {
                let arn = FunctionArn::parse(&uri).map_err(|_| invalid("uri"))?;
                Target::Function(Box::new(aws.function(&arn)))
            } else {
                Target::Url(uri)
            };
            targets.insert(stage.clone(), target);
        }
        let cache = (!config.result_ttl.is_zero() && !sources.is_empty()).then(|| {
            Cache::builder()
                .max_capacity(config.max_cached_results)
                .time_to_live(config.result_ttl)
                .build()
        });
        Ok(Self {
            client,
            targets,
            timeout: config.timeout,
            sources,
            cache,
            arn_prefix: format!(
                "arn:aws:execute-api:{}:{}:",
                config.region, config.account_id
            ),
            context_values: config.context_values,
        })
    }

    async fn call(
        &self,
        request: &AuthRequest<'_>,
        method_arn: &str,
    ) -> Result<Decision, AuthError> {
        let failed = AuthError::AuthorizerFailed;
        let target = self
            .targets
            .get(&request.meta.stage)
            .ok_or(failed(CallError::Malformed("no URI for this stage")))?;
        let event = authorizer_event(
            request.meta,
            request.request_id,
            request.view.connect,
            request.view.stage_variables,
            method_arn,
        );
        let (status, function_error, body) = match target {
            Target::Url(uri) => self.post(uri, event).await?,
            Target::Function(function) => {
                let invocation = Invocation {
                    meta: request.meta,
                    route_key: "$connect",
                    request_id: request.request_id,
                    trace: crate::traces::Parent::NONE,
                    kind: EventKind::Connect(request.view.connect),
                };
                let answer = function
                    .invoke(&event, MAX_RESULT_BYTES, self.timeout, &invocation)
                    .await
                    .map_err(|e| failed(lambda_failure(e)))?;
                (answer.status, !answer.headers.is_empty(), answer.body)
            }
        };
        if function_error {
            return Err(policy::function_error(&body));
        }
        if !(200..300).contains(&status) {
            return Err(failed(CallError::Status(status)));
        }
        let mut decision = policy::parse(&body, method_arn)?;
        if let (Decision::Allow(authorized), ContextValues::String) =
            (&mut decision, self.context_values)
        {
            policy::stringify_context(&mut authorized.context);
        }
        Ok(decision)
    }

    /// POSTs the event to a URL: the status, whether it carries a function error, the body.
    async fn post(
        &self,
        uri: &str,
        event: Vec<u8>,
    ) -> Result<(u16, bool, bytes::Bytes), AuthError> {
        let failed = AuthError::AuthorizerFailed;
        let response = self
            .client
            .post(uri)
            .timeout(self.timeout)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(event)
            .send()
            .await
            .map_err(|e| failed(transport(e)))?;
        let status = response.status().as_u16();
        let function_error = response.headers().contains_key(FUNCTION_ERROR);
        let body = read_capped(response, MAX_RESULT_BYTES)
            .await
            .map_err(failed)?;
        Ok((status, function_error, body))
    }
}

impl std::fmt::Debug for RequestAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestAuthorizer")
            .field(
                "uris",
                &self
                    .targets
                    .values()
                    .map(|t| match t {
                        Target::Url(u) => redact_url(u),
                        Target::Function(f) => format!("{f:?}"),
                    })
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("sources", &self.sources)
            .field("cached", &self.cache.as_ref().map(Cache::entry_count))
            .finish_non_exhaustive()
    }
}

/// A failed Lambda invocation as an authorizer call failure.
fn lambda_failure(error: IntegrationError) -> CallError {
    match error {
        IntegrationError::Timeout(_) => CallError::Timeout,
        IntegrationError::ResponseTooLarge { limit } => CallError::TooLarge(limit),
        other => CallError::Lambda(other),
    }
}

fn transport(error: reqwest::Error) -> CallError {
    if error.is_timeout() {
        CallError::Timeout
    } else {
        CallError::Transport(error)
    }
}

/// Reads an authorizer's or JWKS endpoint's answer under `cap` (the shared capped reader).
///
/// # Errors
/// [`CallError::TooLarge`] or the transport error.
pub(super) async fn read_capped(
    response: reqwest::Response,
    cap: usize,
) -> Result<bytes::Bytes, CallError> {
    body::read_capped(response, cap)
        .await
        .map_err(|error| match error {
            ReadError::TooLarge { limit } => CallError::TooLarge(limit),
            ReadError::Transport(e) => transport(e),
        })
}

/// The cache key: a digest of the stage and every identity-source value (length-prefixed, so
/// values cannot run into each other); raw credentials are not kept as keys.
fn cache_key(stage: &str, values: &[String]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in std::iter::once(stage).chain(values.iter().map(String::as_str)) {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

#[async_trait]
impl Authorizer for RequestAuthorizer {
    async fn authorize(&self, request: &AuthRequest<'_>) -> Result<Authorized, AuthError> {
        let values = self
            .sources
            .iter()
            .map(|s| request.view.value(s))
            .collect::<Option<Vec<String>>>()
            .ok_or(AuthError::MissingIdentity)?;
        let key = cache_key(&request.meta.stage, &values);
        let cached = match &self.cache {
            Some(cache) => cache.get(&key).await,
            None => None,
        };
        let decision = match cached {
            Some(decision) => decision,
            None => {
                let method_arn = format!(
                    "{}{}/{}/$connect",
                    self.arn_prefix, request.meta.api_id, request.meta.stage
                );
                let decision = self.call(request, &method_arn).await?;
                if let Some(cache) = &self.cache {
                    cache.insert(key, decision.clone()).await;
                }
                decision
            }
        };
        match decision {
            Decision::Allow(authorized) => Ok(authorized),
            Decision::Deny => Err(AuthError::Denied),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_separate_values() {
        let a = cache_key("prod", &["ab".into(), "c".into()]);
        let b = cache_key("prod", &["a".into(), "bc".into()]);
        let c = cache_key("dev", &["ab".into(), "c".into()]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, cache_key("prod", &["ab".into(), "c".into()]));
    }
}
