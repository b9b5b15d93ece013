//! Lambda functions named by ARN: the Invoke API request (`POST /2015-03-31/functions/{ARN}/
//! invocations`, SigV4-signed with credentials from the standard AWS chain) sent over the same
//! clients, caps and timeouts as URL integrations, and the Invoke API's own errors told apart
//! from the function's answer. `aws_proxy` integrations and `request` authorizers use it.

mod arn;
mod credentials;
mod sign;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

pub(crate) use arn::{FunctionArn, is_arn};
pub(crate) use sign::sign_post;

use super::backend::{Backend, Clients, Incoming, Outgoing};
use super::h1::Keep;
use super::{IntegrationError, Invocation};
use crate::config::AwsConfig;
use crate::telemetry;
use credentials::{Credentialing, SharedCredentialing};
use sign::Signing;

/// The header the Invoke API sets on a 200 when the function raised an error.
pub(crate) const FUNCTION_ERROR: &str = "x-amz-function-error";

/// What every Lambda function of a gateway shares: the clients, the endpoint override and the
/// credentials (loaded once, refreshed before they expire).
#[derive(Debug, Clone)]
pub(crate) struct Aws {
    clients: Clients,
    endpoint_url: Option<String>,
    region: Option<String>,
    credentials: SharedCredentialing,
    /// A function has been set up (credentials are then checked at start).
    used: Arc<AtomicBool>,
}

impl Aws {
    /// The shared context for `config`; nothing is loaded until a function is called.
    pub(crate) fn new(config: &AwsConfig, clients: &Clients) -> Self {
        Self {
            clients: clients.clone(),
            endpoint_url: config
                .endpoint_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            region: config.region.clone(),
            credentials: Arc::new(Credentialing::new(config)),
            used: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The function `arn` names, reached at its region's endpoint or `aws.endpoint_url`.
    pub(crate) fn function(&self, arn: &FunctionArn) -> Function {
        self.used.store(true, Ordering::Relaxed);
        let endpoint = self.endpoint_url.clone().unwrap_or_else(|| arn.endpoint());
        let url = format!("{endpoint}{}", arn.invoke_path());
        let host = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_string();
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_default();
        Function {
            backend: Backend::http1(
                &self.clients,
                url.clone(),
                "POST",
                &[("content-type", "application/json")],
            ),
            signing: Signing {
                url,
                host,
                region: self.region.clone().unwrap_or_else(|| arn.region.clone()),
            },
            arn: arn.unqualified.clone(),
            qualifier: arn.qualifier.clone(),
            credentials: Arc::clone(&self.credentials),
        }
    }

    /// The `aws:` endpoint override (without a trailing `/`).
    pub(crate) fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    /// The `aws:` region.
    pub(crate) fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The shared clients.
    pub(crate) fn clients(&self) -> &Clients {
        &self.clients
    }

    /// Marks the credentials as needed (a `type: aws` integration was set up), so they are
    /// checked at start.
    pub(crate) fn will_sign(&self) {
        self.used.store(true, Ordering::Relaxed);
    }

    /// Credentials from the configured source (cached; see [`credentials`]).
    ///
    /// # Errors
    /// Why there are none, in words.
    pub(crate) async fn credentials(&self) -> Result<aws_credential_types::Credentials, String> {
        self.credentials.get().await.map_err(|e| e.to_string())
    }

    /// When a function was set up: loads credentials once in the background, so a missing or
    /// broken source shows in the log at start (without holding the start up) and the first
    /// call finds them cached.
    pub(crate) fn check_in_background(&self) {
        if !self.used.load(Ordering::Relaxed) {
            return;
        }
        let credentials = Arc::clone(&self.credentials);
        tokio::spawn(async move {
            match credentials.get().await {
                Ok(_) => tracing::info!(
                    source = credentials.describe(),
                    "AWS credentials for Lambda functions loaded"
                ),
                Err(error) => tracing::error!(
                    %error,
                    "AWS credentials for Lambda functions are not available; calls to them fail until they are"
                ),
            }
        });
    }
}

/// One function (with its qualifier): where its Invoke requests go and how they are signed.
#[derive(Debug)]
pub(crate) struct Function {
    backend: Backend,
    signing: Signing,
    arn: String,
    qualifier: Option<String>,
    credentials: SharedCredentialing,
}

impl Function {
    /// Invokes the function with `payload` and reads its answer under `cap` within `timeout`.
    /// The answer keeps only the [`FUNCTION_ERROR`] header; a status other than 2xx from the
    /// Invoke API (no such function, throttled, access denied, service error) is
    /// [`IntegrationError::LambdaApi`], logged with the AWS error type and counted in
    /// `wsgate_integration_error_total`.
    ///
    /// # Errors
    /// [`IntegrationError`].
    pub(crate) async fn invoke(
        &self,
        payload: &[u8],
        cap: usize,
        timeout: Duration,
        inv: &Invocation<'_>,
    ) -> Result<Incoming, IntegrationError> {
        // One deadline for the whole call: finding credentials counts against it too.
        let deadline = tokio::time::Instant::now() + timeout;
        let credentials = tokio::time::timeout_at(deadline, self.credentials.get())
            .await
            .map_err(|_| IntegrationError::Timeout(timeout))?;
        let credentials = credentials.map_err(|error| {
            tracing::error!(
                connection_id = %inv.meta.connection_id,
                route_key = %inv.route_key,
                function = %self.arn,
                %error,
                "no AWS credentials to invoke the Lambda function"
            );
            IntegrationError::Credentials(error.to_string())
        })?;
        let mut headers = self
            .signing
            .header_lines(&credentials, payload, SystemTime::now())
            .map_err(|e| IntegrationError::Credentials(e.to_string()))?;
        crate::integration::context::put_amzn_trace(inv, |name, value| {
            for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
                headers.extend_from_slice(part);
            }
        });
        let out = Outgoing {
            headers: &headers,
            body: payload,
            ..Outgoing::default()
        };
        let mut answer = self
            .backend
            .send(
                &out,
                Keep::All,
                cap,
                deadline.saturating_duration_since(tokio::time::Instant::now()),
                inv,
            )
            .await?;
        if !(200..300).contains(&answer.status) {
            let (error_type, message) = api_error(&answer);
            tracing::warn!(
                connection_id = %inv.meta.connection_id,
                route_key = %inv.route_key,
                function = %self.arn,
                qualifier = self.qualifier.as_deref().unwrap_or(""),
                status = answer.status,
                error_type = %error_type,
                message = %message,
                "the Lambda Invoke API refused the call"
            );
            // The integration endpoint answered 4xx/5xx: CloudWatch's `IntegrationError`.
            metrics::counter!(
                telemetry::INTEGRATION_ERROR_TOTAL,
                "stage" => inv.meta.stage.clone(),
                "route" => inv.route_key.to_string()
            )
            .increment(1);
            return Err(IntegrationError::LambdaApi {
                status: answer.status,
                error_type,
            });
        }
        answer.headers.retain(|(name, _)| name == FUNCTION_ERROR);
        Ok(answer)
    }
}

/// The AWS error type and message of an Invoke API error answer: `x-amzn-ErrorType` (up to a
/// `:`), else the body's `__type`/`Type`; the body's `Message`/`message`.
pub(crate) fn api_error(answer: &Incoming) -> (String, String) {
    let body: Option<serde_json::Value> = serde_json::from_slice(&answer.body).ok();
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| body.as_ref()?.get(*name)?.as_str().map(str::to_string))
    };
    let error_type = answer
        .headers
        .iter()
        .find(|(name, _)| name == "x-amzn-errortype")
        .map(|(_, value)| value.split(':').next().unwrap_or(value).to_string())
        .or_else(|| {
            field(&["__type", "Type"]).map(|t| t.rsplit('#').next().unwrap_or(&t).to_string())
        })
        .unwrap_or_else(|| "Unknown".into());
    let message = field(&["Message", "message"]).unwrap_or_default();
    (error_type, message)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn answer(headers: &[(&str, &str)], body: &str) -> Incoming {
        Incoming {
            status: 404,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn api_error_types() {
        let a = answer(
            &[(
                "x-amzn-errortype",
                "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazonaws.awslambda/",
            )],
            r#"{"Type":"User","Message":"Function not found: arn:aws:lambda:us-east-1:123456789012:function:x"}"#,
        );
        let (error_type, message) = api_error(&a);
        assert_eq!(error_type, "ResourceNotFoundException");
        assert!(message.starts_with("Function not found"));
        let a = answer(
            &[],
            r#"{"__type":"com.amazon#TooManyRequestsException","message":"Rate exceeded"}"#,
        );
        assert_eq!(
            api_error(&a),
            ("TooManyRequestsException".into(), "Rate exceeded".into())
        );
        assert_eq!(
            api_error(&answer(&[], "<html>")),
            ("Unknown".into(), String::new())
        );
    }
}
