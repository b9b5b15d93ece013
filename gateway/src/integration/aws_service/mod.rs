//! `type: aws` integrations: one AWS service action (SQS `SendMessage`, SNS `Publish`, Kinesis
//! `PutRecord`, EventBridge `PutEvents`, Step Functions `StartExecution`, DynamoDB `PutItem`,
//! Lambda `Invoke` as `Event`) called in the service's own wire protocol, SigV4-signed with the
//! credentials of the `aws:` section. The body is a request template's output or the simple
//! mapping's ([`json`], [`query`]); the answer goes through the integration responses.

mod action;
mod bench;
mod json;
mod message;
mod query;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

pub(crate) use action::Action;
pub use bench::AwsRequest;
pub(crate) use message::{Message, Params};

use super::backend::{Backend, Incoming, Outgoing};
use super::h1::Keep;
use super::http::{Mapping, payload_of};
use super::lambda::{self, api_error, sign_post};
use super::{Integration, IntegrationError, IntegrationResponse, Invocation};
use crate::config::{AwsServiceConfig, IntegrationConfig, StageConfig, substitute_stage_variables};
use crate::telemetry;
use crate::transform::{Answer, Payload};
use action::{FORM, Protocol};

/// One `type: aws` integration of one stage.
#[derive(Debug)]
pub(super) struct AwsService {
    action: Action,
    aws: lambda::Aws,
    backend: Backend,
    /// The request URL (signed).
    url: String,
    /// The `host` header the clients send for `url`.
    host: String,
    region: String,
    params: Params,
    timeout: Duration,
    response_cap: usize,
    mapping: Mapping,
}

/// One request's variable parts.
#[derive(Debug)]
pub(crate) struct Request {
    pub body: Vec<u8>,
    pub content_type: &'static str,
    /// `x-amz-target` (JSON protocols).
    pub target: Option<&'static str>,
}

impl AwsService {
    /// The integration `config` (of route `key`, inside `integration`) for the stage `settings`.
    ///
    /// # Errors
    /// What is wrong, in words (config validation reports these first).
    pub(super) fn new(
        config: &AwsServiceConfig,
        integration: &IntegrationConfig,
        aws: &lambda::Aws,
        settings: &StageConfig,
        key: &str,
        response_cap: usize,
    ) -> Result<Self, String> {
        let at = format!("api.routes.{key}.integration");
        let action = config.action().map_err(|e| format!("{at}: {e}"))?;
        let mut params = std::collections::BTreeMap::new();
        for (name, value) in &config.parameters {
            let value = substitute_stage_variables(value, &settings.variables)
                .map_err(|v| format!("{at}.parameters.{name}: missing stage variable `{v}`"))?;
            params.insert(name.clone(), value);
        }
        let params = Params(params);
        let region = (config.region.as_deref())
            .or(aws.region())
            .ok_or_else(|| format!("{at}.region: no region (set it here or in `aws.region`)"))?
            .to_string();
        let endpoint = match (config.endpoint_url.as_deref()).or(aws.endpoint_url()) {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("https://{}.{region}.amazonaws.com", action.service()),
        };
        let url = format!("{endpoint}{}", path(action, &params)?);
        let host = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_string();
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .ok_or_else(|| format!("{at}.endpoint_url: `{url}` is not a URL with a host"))?;
        aws.will_sign();
        Ok(Self {
            action,
            backend: Backend::http1(aws.clients(), url.clone(), "POST", &[]),
            aws: aws.clone(),
            url,
            host,
            region,
            params,
            timeout: config.timeout,
            response_cap,
            mapping: Mapping::new(integration, settings, key)?,
        })
    }

    /// The request for `inv`: the selected request template's output, else the simple mapping
    /// of the (passed through) payload.
    fn request(
        &self,
        inv: &Invocation<'_>,
    ) -> Result<(Request, super::http::Values), IntegrationError> {
        let (payload, message) = payload_of(&inv.kind);
        let values = self.mapping.values(inv);
        let mapped = self.mapping.map_request(&values, payload, message)?;
        let request = if mapped.templated {
            templated(self.action, mapped.payload.bytes.to_vec())
        } else {
            let msg = Message {
                payload: &mapped.payload.bytes,
                binary: mapped.payload.binary,
                connection_id: &inv.meta.connection_id,
                route_key: inv.route_key,
                request_id: inv.request_id,
                stage: &inv.meta.stage,
                event_type: inv.kind.event_type(),
            };
            build(self.action, &self.params, &msg).map_err(IntegrationError::Mapping)?
        };
        Ok((request, values))
    }

    /// Signs and sends `request`, and reads the answer within the deadline.
    async fn send(
        &self,
        request: &Request,
        inv: &Invocation<'_>,
    ) -> Result<Incoming, IntegrationError> {
        // One deadline for the whole call: finding credentials counts against it too.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let credentials = tokio::time::timeout_at(deadline, self.aws.credentials())
            .await
            .map_err(|_| IntegrationError::Timeout(self.timeout))?
            .map_err(|error| {
                tracing::error!(
                    connection_id = %inv.meta.connection_id,
                    route_key = %inv.route_key,
                    service = self.action.service(),
                    %error,
                    "no AWS credentials to call the service"
                );
                IntegrationError::Credentials(error)
            })?;
        let mut signed = vec![
            ("host", self.host.as_str()),
            ("content-type", request.content_type),
        ];
        if let Some(target) = request.target {
            signed.push(("x-amz-target", target));
        }
        if self.action == Action::LambdaInvoke {
            signed.push(("x-amz-invocation-type", "Event"));
        }
        let mut lines = sign_post(
            self.action.service(),
            &self.region,
            &self.url,
            &signed,
            &credentials,
            &request.body,
            SystemTime::now(),
        )
        .map_err(|e| IntegrationError::Credentials(e.to_string()))?;
        for (name, value) in &signed[1..] {
            lines.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        let out = Outgoing {
            headers: &lines,
            body: &request.body,
            ..Outgoing::default()
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.backend
            .send(&out, Keep::All, self.response_cap, left, inv)
            .await
    }

    /// The AWS error an answer carries: a status other than 2xx, or an EventBridge entry that
    /// failed; logged with its type and counted as an integration error.
    fn refused(&self, answer: &Incoming, inv: &Invocation<'_>) -> Result<(), IntegrationError> {
        let error_type = if (200..300).contains(&answer.status) {
            match failed_entry(self.action, &answer.body) {
                Some(code) => code,
                None => return Ok(()),
            }
        } else if self.action.protocol() == Protocol::Query {
            query::xml_error_code(&answer.body).unwrap_or_else(|| "Unknown".into())
        } else {
            // `com.amazonaws.sqs#QueueDoesNotExist` → `QueueDoesNotExist`.
            let error_type = api_error(answer).0;
            error_type
                .rsplit('#')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        tracing::warn!(
            connection_id = %inv.meta.connection_id,
            route_key = %inv.route_key,
            request_id = %inv.request_id,
            service = self.action.service(),
            action = self.action.name(),
            status = answer.status,
            error_type = %error_type,
            "the AWS service refused the call"
        );
        // The integration endpoint answered an error: CloudWatch's `IntegrationError`.
        metrics::counter!(
            telemetry::INTEGRATION_ERROR_TOTAL,
            "stage" => inv.meta.stage.clone(),
            "route" => inv.route_key.to_string()
        )
        .increment(1);
        Err(IntegrationError::EndpointStatus(answer.status))
    }
}

#[async_trait]
impl Integration for AwsService {
    async fn invoke(&self, inv: &Invocation<'_>) -> Result<IntegrationResponse, IntegrationError> {
        let (request, values) = self.request(inv)?;
        let answer = self.send(&request, inv).await?;
        self.refused(&answer, inv)?;
        let (_, message) = payload_of(&inv.kind);
        let received = Payload {
            binary: answer.is_binary(),
            bytes: answer.body,
        };
        let seen = Answer {
            status: answer.status,
            headers: &answer.headers,
            message,
        };
        // An `Event` invocation has no answer body on AWS (emulators may echo the payload).
        let empty = received.bytes.is_empty() || self.action == Action::LambdaInvoke;
        let received = if self.action == Action::LambdaInvoke {
            Payload {
                bytes: Bytes::new(),
                binary: false,
            }
        } else {
            received
        };
        let mapped = self.mapping.map_response(&values, &seen, received)?;
        // Lambda's `Event` invocation answers 202 without a body: nothing to send back.
        let body = (!empty || mapped.templated).then_some(mapped.payload.bytes);
        Ok(IntegrationResponse {
            status: answer.status,
            headers: Vec::new(),
            body,
            binary: mapped.payload.binary,
        })
    }

    fn kind(&self) -> &'static str {
        "aws"
    }
}

/// The simple mapping's request of `action` for `msg`.
///
/// # Errors
/// A missing parameter or a payload the action cannot take, in words.
pub(crate) fn build(action: Action, params: &Params, msg: &Message<'_>) -> Result<Request, String> {
    let body = match action {
        Action::SqsSendMessage => json::sqs_send_message(params, msg)?,
        Action::KinesisPutRecord => json::kinesis_put_record(params, msg)?,
        Action::EventsPutEvents => json::events_put_events(params, msg)?,
        Action::StatesStartExecution => json::states_start_execution(params, msg)?,
        Action::DynamodbPutItem => json::dynamodb_put_item(params, msg)?,
        Action::LambdaInvoke => json::lambda_payload(msg),
        Action::SnsPublish => {
            return Ok(Request {
                body: query::sns_publish(params, msg)?.into_bytes(),
                content_type: FORM,
                target: None,
            });
        }
    };
    let (content_type, target) = match action.protocol() {
        Protocol::Json {
            content_type,
            target,
        } => (content_type, Some(target)),
        Protocol::Query | Protocol::LambdaRest => ("application/json", None),
    };
    Ok(Request {
        body: body.to_string().into_bytes(),
        content_type,
        target,
    })
}

/// The request carrying a template's output: the action's JSON protocol, except SNS (always a
/// form) and SQS given a form (`Action=SendMessage&...`, SQS's query protocol).
fn templated(action: Action, body: Vec<u8>) -> Request {
    let (content_type, target) = match action.protocol() {
        Protocol::Json { .. }
            if action == Action::SqsSendMessage
                && !matches!(body.trim_ascii_start().first(), Some(b'{')) =>
        {
            (FORM, None)
        }
        Protocol::Json {
            content_type,
            target,
        } => (content_type, Some(target)),
        Protocol::Query => (FORM, None),
        Protocol::LambdaRest => ("application/json", None),
    };
    Request {
        body,
        content_type,
        target,
    }
}

/// The request path: `/`, or Lambda's Invoke path for `FunctionName` (and `Qualifier`).
fn path(action: Action, params: &Params) -> Result<String, String> {
    if action != Action::LambdaInvoke {
        return Ok("/".into());
    }
    let name = (params.get("FunctionName")).ok_or("`lambda` `Invoke` needs `FunctionName`")?;
    let mut path = String::from("/2015-03-31/functions/");
    query::encode_into(&mut path, name);
    path.push_str("/invocations");
    if let Some(qualifier) = params.get("Qualifier") {
        path.push_str("?Qualifier=");
        query::encode_into(&mut path, qualifier);
    }
    Ok(path)
}

/// The error code of the first failed entry of a 200 `PutEvents` answer.
fn failed_entry(action: Action, body: &Bytes) -> Option<String> {
    if action != Action::EventsPutEvents {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    if answer["FailedEntryCount"].as_u64().unwrap_or(0) == 0 {
        return None;
    }
    let entries = answer["Entries"].as_array()?;
    let code = entries.iter().find_map(|e| e["ErrorCode"].as_str());
    Some(code.unwrap_or("FailedEntry").to_string())
}
