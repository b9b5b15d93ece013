//! `http` integration (non-proxy `HTTP`): the request body is the selected request template's
//! output (or the payload, as the passthrough behaviour allows), headers and query string come
//! from `request_parameters`, and the answer goes through the integration responses. [`Mapping`]
//! (templates and responses, compiled per stage) is shared with `mock`.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;

use super::backend::{Backend, Outgoing};
use super::h1::Keep;
use super::http_proxy::{ContextHeaders, map_parameters};
use super::{Integration, IntegrationError, IntegrationResponse, Invocation};
use crate::config::{IntegrationConfig, StageConfig};
use crate::events::EventKind;
use crate::transform::{
    Answer, IntegrationResponses, Parameters, Payload, RequestTemplates, ResponseSettings, Scope,
    TransformError, params_value, stage_variables_value,
};

/// The templates of a non-proxy integration for one stage.
#[derive(Debug)]
pub(super) struct Mapping {
    pub(super) request: RequestTemplates,
    pub(super) responses: IntegrationResponses,
    stage_variables: Value,
}

impl Mapping {
    /// Compiles `integration`'s templates for the stage `settings` (`route` names errors).
    pub(super) fn new(
        integration: &IntegrationConfig,
        settings: &StageConfig,
        route: &str,
    ) -> Result<Self, String> {
        let at = |e: String| format!("api.routes.{route}.integration.{e}");
        let transform = integration.request_transform().unwrap_or_default();
        let empty = Default::default();
        let request = RequestTemplates::compile(
            transform.selection,
            transform.templates.unwrap_or(&empty),
            transform.passthrough,
            transform.content_handling,
        )
        .map_err(at)?;
        let responses = IntegrationResponses::compile(
            transform.responses.into_iter().flatten().map(|(key, r)| {
                let settings = ResponseSettings {
                    selection: r.template_selection_expression.as_deref(),
                    templates: &r.response_templates,
                    content: r.content_handling_strategy,
                };
                (key.as_str(), settings)
            }),
        )
        .map_err(at)?;
        Ok(Self {
            request,
            responses,
            stage_variables: stage_variables_value(&settings.variables),
        })
    }

    /// True when it changes nothing (no templates, no integration responses).
    pub(super) fn is_empty(&self) -> bool {
        self.request.is_empty() && self.responses.is_empty()
    }

    /// The request body for `payload` (`message` feeds the selection expression).
    pub(super) fn map_request(
        &self,
        values: &Values,
        payload: Payload,
        message: &[u8],
    ) -> Result<crate::transform::Mapping, IntegrationError> {
        (self.request.apply(payload, message, &self.scope(values))).map_err(mapping_error)
    }

    /// The answer to send for what the backend answered.
    pub(super) fn map_response(
        &self,
        values: &Values,
        answer: &Answer<'_>,
        received: Payload,
    ) -> Result<crate::transform::Mapping, IntegrationError> {
        (self.responses.apply(answer, received, &self.scope(values))).map_err(mapping_error)
    }

    /// What the templates of `inv` read, built once per call: `$context` and
    /// `$input.params()`; nothing when there are no templates to read them.
    pub(super) fn values(&self, inv: &Invocation<'_>) -> Values {
        if self.is_empty() {
            return Values {
                context: Value::Null,
                params: Value::Null,
            };
        }
        Values {
            context: crate::events::context_value(
                inv.meta,
                inv.route_key,
                inv.request_id,
                &inv.kind,
            ),
            params: match &inv.kind {
                EventKind::Connect(upgrade) => params_value(&upgrade.headers, &upgrade.query),
                _ => params_value(&[], &[]),
            },
        }
    }

    fn scope<'a>(&'a self, values: &'a Values) -> Scope<'a> {
        Scope {
            context: &values.context,
            stage_variables: &self.stage_variables,
            params: &values.params,
        }
    }
}

/// `$context` and `$input.params()` of one call.
#[derive(Debug)]
pub(super) struct Values {
    context: Value,
    params: Value,
}

/// The client's payload of an event (nothing on `$connect` and `$disconnect`, as AWS sends no
/// body then) and the message bytes selection expressions read.
pub(super) fn payload_of<'a>(kind: &EventKind<'a>) -> (Payload, &'a [u8]) {
    match kind {
        EventKind::Message { raw, is_base64, .. } => (
            Payload {
                bytes: Bytes::copy_from_slice(raw),
                binary: *is_base64,
            },
            raw,
        ),
        EventKind::Presence { body, .. } => (
            Payload {
                bytes: Bytes::copy_from_slice(body.as_bytes()),
                binary: false,
            },
            body.as_bytes(),
        ),
        EventKind::Connect(_) | EventKind::Disconnect { .. } => (
            Payload {
                bytes: Bytes::new(),
                binary: false,
            },
            &[],
        ),
    }
}

/// A mapping failure as the integration error the client's frame is chosen by.
pub(super) fn mapping_error(error: TransformError) -> IntegrationError {
    match error {
        TransformError::Unsupported => IntegrationError::UnsupportedMediaType,
        other => IntegrationError::Mapping(other.to_string()),
    }
}

#[derive(Debug)]
pub(super) struct Http {
    pub(super) backend: Backend,
    pub(super) timeout: Duration,
    /// Largest answer read.
    pub(super) response_cap: usize,
    /// `request_parameters`, for this stage.
    pub(super) parameters: Parameters,
    pub(super) mapping: Mapping,
}

#[async_trait]
impl Integration for Http {
    async fn invoke(&self, inv: &Invocation<'_>) -> Result<IntegrationResponse, IntegrationError> {
        let (payload, message) = payload_of(&inv.kind);
        let values = self.mapping.values(inv);
        let body = self.mapping.map_request(&values, payload, message)?.payload;
        let mut headers = ContextHeaders::new(&inv.meta.connection_id, inv.route_key);
        super::context::put_trace(inv, |name, value| headers.put(name, value));
        if !body.bytes.is_empty() {
            headers.put("content-type", content_type(&body));
        }
        let mapped = map_parameters(&self.parameters, inv, message);
        for (name, value) in &mapped.headers {
            headers.put_forwarded(name, value);
        }
        let out = Outgoing {
            query: (!mapped.query.is_empty()).then_some(mapped.query.as_str()),
            headers: &headers.lines,
            forwarded: false,
            body: &body.bytes,
        };
        let answer = self
            .backend
            .send(&out, Keep::All, self.response_cap, self.timeout, inv)
            .await?;
        let received = Payload {
            binary: answer.is_binary(),
            bytes: answer.body,
        };
        let seen = Answer {
            status: answer.status,
            headers: &answer.headers,
            message,
        };
        let mapped = self.mapping.map_response(&values, &seen, received)?;
        // 204 without a template means "nothing to send back", as for `http_proxy`.
        let body = (answer.status != 204 || mapped.templated).then_some(mapped.payload.bytes);
        Ok(IntegrationResponse {
            status: answer.status,
            headers: answer.headers,
            body,
            binary: mapped.payload.binary,
        })
    }

    fn kind(&self) -> &'static str {
        "http"
    }
}

/// `application/octet-stream` for binary, `application/json` for text that looks like JSON
/// (what templates usually make), else `text/plain; charset=utf-8`.
fn content_type(body: &Payload) -> &'static str {
    if body.binary {
        return "application/octet-stream";
    }
    match body.bytes.trim_ascii_start().first() {
        Some(b'{' | b'[') => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

/// What the mapping benchmark measures: one message through a request template and a
/// `$default` response template, with the `$context` they read (no I/O). Not a stable interface.
#[doc(hidden)]
#[derive(Debug)]
pub struct MessageMapping(Mapping);

impl MessageMapping {
    /// Compiles the two templates.
    ///
    /// # Errors
    /// A template that does not parse.
    pub fn new(request_template: &str, response_template: &str) -> Result<Self, String> {
        let one =
            |t: &str| std::collections::BTreeMap::from([("$default".to_string(), t.to_string())]);
        let (request, response) = (one(request_template), one(response_template));
        Ok(Self(Mapping {
            request: RequestTemplates::compile(
                None,
                &request,
                crate::transform::PassthroughBehavior::WhenNoMatch,
                None,
            )?,
            responses: IntegrationResponses::compile([(
                "$default",
                ResponseSettings {
                    selection: None,
                    templates: &response,
                    content: None,
                },
            )])?,
            stage_variables: serde_json::json!({"table": "messages"}),
        }))
    }

    /// Maps `frame` on `meta`'s connection and the backend's `answer`; returns the bytes made.
    ///
    /// # Errors
    /// A template's failure, in words.
    pub fn run(
        &self,
        meta: &crate::events::ConnectionMeta,
        frame: &str,
        answer: &[u8],
    ) -> Result<usize, String> {
        let inv = Invocation {
            meta,
            route_key: "sendmessage",
            request_id: "L0SM9cOFvHcCIhw=",
            trace: crate::traces::Parent::NONE,
            kind: EventKind::Message {
                body: frame,
                raw: frame.as_bytes(),
                is_base64: false,
                message_id: "L0SM9cOFvHcCIhx=",
            },
        };
        let (payload, message) = payload_of(&inv.kind);
        let values = self.0.values(&inv);
        let request = (self.0.map_request(&values, payload, message)).map_err(|e| e.to_string())?;
        let received = Payload {
            bytes: Bytes::copy_from_slice(answer),
            binary: false,
        };
        let seen = Answer {
            status: 200,
            headers: &[],
            message,
        };
        let response =
            (self.0.map_response(&values, &seen, received)).map_err(|e| e.to_string())?;
        Ok(request.payload.bytes.len() + response.payload.bytes.len())
    }
}
