//! `aws_proxy` integration: POST the Lambda proxy event JSON (as the Lambda Invoke API and the
//! Lambda Runtime Interface Emulator take it) to a URL, or invoke a Lambda function by ARN
//! ([`super::lambda`]), and read the Lambda proxy response.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::backend::{Backend, Clients, Outgoing};
use super::h1::Keep;
use super::lambda::{self, Function};
use super::{Integration, IntegrationError, IntegrationResponse, Invocation, too_large};
use crate::config::BackendProtocol;
use crate::events::lambda_event;

#[derive(Debug)]
pub(super) struct AwsProxy {
    target: Target,
    timeout: Duration,
    /// Largest decoded `body` accepted.
    body_cap: usize,
    /// Largest proxy-response JSON read: [`envelope_cap`] of `body_cap`.
    envelope_cap: usize,
}

/// The JSON envelope around a body of up to `body_cap` bytes may be larger: base64 takes 4/3 of
/// the bytes, and 64 KiB more leaves room for `statusCode`, headers and JSON escapes.
pub(super) fn envelope_cap(body_cap: usize) -> usize {
    (body_cap / 3)
        .saturating_mul(4)
        .saturating_add(4)
        .saturating_add(64 * 1024)
}

/// Where the event goes.
#[derive(Debug)]
enum Target {
    /// A URL (a Lambda-compatible endpoint such as the Runtime Interface Emulator).
    Url(Backend),
    /// A Lambda function by ARN, through the signed Invoke API.
    Function(Function),
}

impl AwsProxy {
    /// An integration for `uri`: a URL spoken to over `protocol`, or a function ARN (already
    /// validated) through `aws`.
    ///
    /// # Errors
    /// `protocol: http2` without an HTTP/2 client in `clients`.
    pub(super) fn new(
        clients: &Clients,
        aws: &lambda::Aws,
        uri: String,
        protocol: BackendProtocol,
        timeout: Duration,
        body_cap: usize,
    ) -> Result<Self, String> {
        let target = match lambda::FunctionArn::parse(&uri) {
            Ok(arn) if lambda::is_arn(&uri) => Target::Function(aws.function(&arn)),
            _ => Target::Url(Backend::new(
                clients,
                uri,
                "POST",
                &[("content-type", "application/json")],
                protocol,
            )?),
        };
        Ok(Self {
            target,
            timeout,
            body_cap,
            envelope_cap: envelope_cap(body_cap),
        })
    }
}

/// The Lambda proxy response (`statusCode`, `headers`, `multiValueHeaders`, `body`, `isBase64Encoded`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProxyResponse {
    status_code: u16,
    #[serde(default)]
    headers: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    multi_value_headers: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Interprets what a function behind an `aws_proxy` integration returned (the Lambda proxy
/// response; `null` or nothing accepts with 200, `errorMessage` is a function error).
///
/// # Errors
/// [`IntegrationError::Malformed`] or [`IntegrationError::FunctionError`].
pub fn parse_response(bytes: &[u8]) -> Result<IntegrationResponse, IntegrationError> {
    // The usual answer, a well-formed proxy response, is read in one pass; anything else takes
    // the path below, which tells the cases apart.
    if let Ok(parsed) = serde_json::from_slice::<ProxyResponse>(bytes) {
        return proxy_response(parsed);
    }
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .map_err(|_| IntegrationError::Malformed("the function's result is not JSON"))?
    };
    let object = match value {
        // A handler that returns nothing accepts (as for `$connect` handlers that only record ids).
        Value::Null => {
            return Ok(IntegrationResponse {
                status: 200,
                ..Default::default()
            });
        }
        Value::Object(map) => map,
        _ => {
            return Err(IntegrationError::Malformed(
                "the function's result is not a proxy response object",
            ));
        }
    };
    if !object.contains_key("statusCode") {
        if let Some(message) = object.get("errorMessage").and_then(scalar) {
            return Err(IntegrationError::FunctionError(message));
        }
        return Err(IntegrationError::Malformed(
            "the function's result has no statusCode",
        ));
    }
    let parsed: ProxyResponse = serde_json::from_value(Value::Object(object)).map_err(|_| {
        IntegrationError::Malformed("the function's result is not a valid proxy response")
    })?;
    proxy_response(parsed)
}

fn proxy_response(parsed: ProxyResponse) -> Result<IntegrationResponse, IntegrationError> {
    let mut headers = Vec::new();
    for (name, value) in parsed.headers.iter().flatten() {
        if let Some(v) = scalar(value) {
            headers.push((name.to_ascii_lowercase(), v));
        }
    }
    for (name, values) in parsed.multi_value_headers.iter().flatten() {
        for v in values.as_array().into_iter().flatten().filter_map(scalar) {
            headers.push((name.to_ascii_lowercase(), v));
        }
    }
    let body = match (parsed.body, parsed.is_base64_encoded) {
        (None, _) => None,
        (Some(text), false) => Some(Bytes::from(text)),
        (Some(text), true) => {
            Some(Bytes::from(STANDARD.decode(text.trim()).map_err(|_| {
                IntegrationError::Malformed("isBase64Encoded body is not base64")
            })?))
        }
    };
    Ok(IntegrationResponse {
        status: parsed.status_code,
        headers,
        body,
        binary: parsed.is_base64_encoded,
    })
}

#[async_trait]
impl Integration for AwsProxy {
    async fn invoke(&self, inv: &Invocation<'_>) -> Result<IntegrationResponse, IntegrationError> {
        let event = lambda_event(inv.meta, inv.route_key, inv.request_id, &inv.kind);
        let trace_headers = super::context::trace_lines(inv);
        let out = Outgoing {
            body: &event,
            headers: &trace_headers,
            ..Outgoing::default()
        };
        let answer = match &self.target {
            Target::Url(backend) => {
                backend
                    .send(
                        &out,
                        Keep::Only(&[lambda::FUNCTION_ERROR]),
                        self.envelope_cap,
                        self.timeout,
                        inv,
                    )
                    .await?
            }
            Target::Function(function) => {
                function
                    .invoke(&event, self.envelope_cap, self.timeout, inv)
                    .await?
            }
        };
        let function_error = !answer.headers.is_empty();
        let bytes = answer.body;
        if function_error {
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("errorMessage").and_then(scalar))
                .unwrap_or_else(|| "unhandled".into());
            return Err(IntegrationError::FunctionError(message));
        }
        if !(200..300).contains(&answer.status) {
            return Err(IntegrationError::EndpointStatus(answer.status));
        }
        let parsed = parse_response(&bytes)?;
        if parsed
            .body
            .as_ref()
            .is_some_and(|b| b.len() > self.body_cap)
        {
            return Err(too_large(inv, self.body_cap));
        }
        Ok(parsed)
    }

    fn kind(&self) -> &'static str {
        "aws_proxy"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_responses() {
        let r = parse_response(
            br#"{"statusCode":200,"headers":{"Sec-WebSocket-Protocol":"chat"},"body":"hi"}"#,
        )
        .expect("valid");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("sec-websocket-protocol"), Some("chat"));
        assert_eq!(r.body.as_deref(), Some(&b"hi"[..]));
        let r = parse_response(br#"{"statusCode":403}"#).expect("valid");
        assert_eq!(r.status, 403);
        assert!(r.body.is_none());
        let r = parse_response(br#"{"statusCode":200,"body":""}"#).expect("valid");
        assert_eq!(r.body.as_deref(), Some(&b""[..]));
        let r = parse_response(br#"{"statusCode":200,"body":"AAEC","isBase64Encoded":true}"#)
            .expect("valid");
        assert!(r.binary);
        assert_eq!(r.body.as_deref(), Some(&[0u8, 1, 2][..]));
        let r = parse_response(b"null").expect("null accepts");
        assert_eq!(r.status, 200);
        let r = parse_response(b"").expect("empty accepts");
        assert_eq!(r.status, 200);
        let r = parse_response(br#"{"statusCode":200,"multiValueHeaders":{"X-A":["1","2"]}}"#)
            .expect("valid");
        assert_eq!(r.headers.len(), 2);
    }

    #[test]
    fn envelope_cap_leaves_room_for_base64() {
        let cap = 131_072;
        let base64_len = STANDARD.encode(vec![0u8; cap]).len();
        assert!(envelope_cap(cap) >= base64_len + 64 * 1024);
        assert!(envelope_cap(cap) <= base64_len + 64 * 1024 + 8);
        assert_eq!(envelope_cap(usize::MAX), usize::MAX);
    }

    #[test]
    fn errors_and_malformed() {
        assert!(matches!(
            parse_response(br#"{"errorMessage":"boom","errorType":"Exception"}"#),
            Err(IntegrationError::FunctionError(m)) if m == "boom"
        ));
        assert!(matches!(
            parse_response(b"not json"),
            Err(IntegrationError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(b"42"),
            Err(IntegrationError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(br#"{"body":"x"}"#),
            Err(IntegrationError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(br#"{"statusCode":200,"body":"%%%","isBase64Encoded":true}"#),
            Err(IntegrationError::Malformed(_))
        ));
    }
}
