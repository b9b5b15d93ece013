//! Mapping for non-proxy integrations (`http`, `mock`), as Amazon API Gateway does it: request
//! templates (VTL, rendered by `wsgate-vtl`) picked by a template selection expression, with
//! AWS's passthrough behaviours; integration responses picked by status, with response templates;
//! content handling; request parameters. Plain data in and out: this module knows neither the
//! configuration loader nor the integrations that call it.

mod expression;
mod params;

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};
use wsgate_vtl::{Input, Limits, Template};

pub(crate) use expression::{Expression, Side, Subject};
pub(crate) use params::{Mapped, Parameter, Parameters, Sources};

/// What happens to a payload when no request template is selected (`PassthroughBehavior`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PassthroughBehavior {
    /// The payload goes through unchanged (AWS's default).
    #[default]
    WhenNoMatch,
    /// Through unchanged only when the integration has no request templates at all; otherwise
    /// refused (`Unsupported Media Type`).
    WhenNoTemplates,
    /// Always refused when no template is selected.
    Never,
}

/// `ContentHandlingStrategy`: converting a payload between binary and text.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContentHandling {
    /// Base64 text becomes binary (decoded), after any template.
    ConvertToBinary,
    /// Binary becomes base64 text, before any template.
    ConvertToText,
}

/// Why a mapping failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransformError {
    /// No template was selected and the passthrough behaviour refuses the payload.
    #[error("no request template matches and passthrough is refused")]
    Unsupported,
    /// A template failed (an error of the template, or a bound was passed).
    #[error("mapping template: {0}")]
    Template(#[from] wsgate_vtl::RenderError),
    /// `CONVERT_TO_BINARY` of text that is not base64.
    #[error("CONVERT_TO_BINARY: the payload is not base64")]
    NotBase64,
}

/// A payload on its way through a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Payload {
    /// The bytes.
    pub bytes: Bytes,
    /// Sent as binary (a binary frame, or `application/octet-stream`).
    pub binary: bool,
}

impl Payload {
    /// The text a template sees as `$input.body`: the payload as it is when it is UTF-8 text,
    /// else its base64.
    fn text(&self) -> std::borrow::Cow<'_, str> {
        match std::str::from_utf8(&self.bytes) {
            Ok(text) if !self.binary => text.into(),
            _ => STANDARD.encode(&self.bytes).into(),
        }
    }

    fn into_text(self) -> Self {
        if self.binary {
            Self {
                bytes: STANDARD.encode(&self.bytes).into(),
                binary: false,
            }
        } else {
            self
        }
    }

    fn into_binary(self) -> Result<Self, TransformError> {
        if self.binary {
            return Ok(self);
        }
        let trimmed = self.bytes.trim_ascii();
        let bytes = STANDARD
            .decode(trimmed)
            .map_err(|_| TransformError::NotBase64)?;
        Ok(Self {
            bytes: bytes.into(),
            binary: true,
        })
    }

    fn before_template(self, how: Option<ContentHandling>) -> Self {
        match how {
            Some(ContentHandling::ConvertToText) => self.into_text(),
            _ => self,
        }
    }

    fn after_template(self, how: Option<ContentHandling>) -> Result<Self, TransformError> {
        match how {
            Some(ContentHandling::ConvertToBinary) => self.into_binary(),
            _ => Ok(self),
        }
    }
}

/// A mapped payload and whether a template made it (else it went through as it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapping {
    /// The payload after the mapping.
    pub payload: Payload,
    /// A template rendered it.
    pub templated: bool,
}

/// What a template sees besides `$input.body`: `$context`, `$stageVariables`, `$input.params()`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    /// `$context`.
    pub context: &'a Value,
    /// `$stageVariables`.
    pub stage_variables: &'a Value,
    /// `$input.params()`: `{"header": {..}, "querystring": {..}, "path": {}}`.
    pub params: &'a Value,
}

/// `$input.params()` for an upgrade request's `headers` and `query` (empty maps for messages).
pub(crate) fn params_value(headers: &[(String, String)], query: &[(String, String)]) -> Value {
    let map = |pairs: &[(String, String)]| {
        Value::Object(
            (pairs.iter())
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<String, Value>>(),
        )
    };
    serde_json::json!({"header": map(headers), "querystring": map(query), "path": {}})
}

/// A stage's variables as `$stageVariables`.
pub(crate) fn stage_variables_value(variables: &BTreeMap<String, String>) -> Value {
    Value::Object(
        (variables.iter())
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn render(template: &Template, body: &str, scope: &Scope<'_>) -> Result<String, TransformError> {
    let input = Input {
        body,
        context: scope.context,
        stage_variables: scope.stage_variables,
        params: scope.params,
    };
    Ok(template.render(&input, &Limits::default())?)
}

fn compile_all(
    at: &str,
    templates: &BTreeMap<String, String>,
) -> Result<HashMap<String, Template>, String> {
    (templates.iter())
        .map(|(key, source)| {
            let template = Template::parse(source).map_err(|e| format!("{at}.{key}: {e}"))?;
            Ok((key.clone(), template))
        })
        .collect()
}

/// The request side of a non-proxy integration, compiled.
#[derive(Debug)]
pub(crate) struct RequestTemplates {
    selection: Option<Expression>,
    templates: HashMap<String, Template>,
    passthrough: PassthroughBehavior,
    content: Option<ContentHandling>,
}

impl RequestTemplates {
    /// Compiles the templates (config validation has checked them; errors name the key).
    ///
    /// # Errors
    /// A template or an expression that does not parse.
    pub(crate) fn compile(
        selection: Option<&str>,
        templates: &BTreeMap<String, String>,
        passthrough: PassthroughBehavior,
        content: Option<ContentHandling>,
    ) -> Result<Self, String> {
        let selection = selection
            .map(|text| Expression::parse(text, Side::Request))
            .transpose()
            .map_err(|e| format!("template_selection_expression: {e}"))?;
        Ok(Self {
            selection,
            templates: compile_all("request_templates", templates)?,
            passthrough,
            content,
        })
    }

    /// True when there are no templates (a mock then keeps its configured status).
    pub(crate) fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Maps the client's payload: the selected template's output, or the payload itself when
    /// passthrough allows it; `message` is the client's message for the selection expression.
    ///
    /// # Errors
    /// [`TransformError::Unsupported`] when passthrough refuses, a template's error.
    pub(crate) fn apply(
        &self,
        payload: Payload,
        message: &[u8],
        scope: &Scope<'_>,
    ) -> Result<Mapping, TransformError> {
        let key = match &self.selection {
            Some(expression) => expression.evaluate(&Subject {
                body: message,
                status: None,
                headers: &[],
            }),
            None => "$default".to_string(),
        };
        let chosen = (self.templates.get(&key)).or_else(|| self.templates.get("$default"));
        let payload = payload.before_template(self.content);
        let mapped = match chosen {
            Some(template) => Payload {
                bytes: render(template, &payload.text(), scope)?.into(),
                binary: false,
            },
            None => match self.passthrough {
                PassthroughBehavior::WhenNoMatch => payload,
                PassthroughBehavior::WhenNoTemplates if self.templates.is_empty() => payload,
                PassthroughBehavior::WhenNoTemplates | PassthroughBehavior::Never => {
                    return Err(TransformError::Unsupported);
                }
            },
        };
        Ok(Mapping {
            payload: mapped.after_template(self.content)?,
            templated: chosen.is_some(),
        })
    }
}

/// An integration response key: `$default` or a regular expression (between slashes) that the
/// whole status code must match.
#[derive(Debug, Clone)]
pub(crate) enum ResponseKey {
    /// `$default`.
    Default,
    /// `/pattern/`.
    Pattern(regex::Regex),
}

impl ResponseKey {
    /// Parses a key.
    ///
    /// # Errors
    /// Neither `$default` nor a valid `/regex/`.
    pub(crate) fn parse(key: &str) -> Result<Self, String> {
        if key == "$default" {
            return Ok(Self::Default);
        }
        let pattern = key
            .strip_prefix('/')
            .and_then(|k| k.strip_suffix('/'))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                "integration response keys are `$default` or a regular expression between slashes, e.g. `/4\\d\\d/`".to_string()
            })?;
        regex::Regex::new(&format!("^(?:{pattern})$"))
            .map(Self::Pattern)
            .map_err(|e| format!("invalid regular expression: {e}"))
    }
}

/// One integration response, compiled.
#[derive(Debug)]
struct ResponseEntry {
    selection: Option<Expression>,
    templates: HashMap<String, Template>,
    content: Option<ContentHandling>,
}

/// The integration's answer, for the integration responses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer<'a> {
    /// Its status.
    pub status: u16,
    /// Its headers, names lowercase.
    pub headers: &'a [(String, String)],
    /// The client's message (for `${request.body...}` in selection expressions).
    pub message: &'a [u8],
}

/// The integration responses of a non-proxy integration, compiled.
#[derive(Debug, Default)]
pub(crate) struct IntegrationResponses {
    /// `/regex/` keys, tried in key order.
    patterns: Vec<(regex::Regex, ResponseEntry)>,
    default: Option<ResponseEntry>,
}

/// The integration-response settings as configured (one per key).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResponseSettings<'a> {
    /// `template_selection_expression`.
    pub selection: Option<&'a str>,
    /// `response_templates`.
    pub templates: &'a BTreeMap<String, String>,
    /// `content_handling_strategy`.
    pub content: Option<ContentHandling>,
}

impl IntegrationResponses {
    /// Compiles `(key, settings)` pairs.
    ///
    /// # Errors
    /// A key, expression or template that does not parse.
    pub(crate) fn compile<'a>(
        entries: impl IntoIterator<Item = (&'a str, ResponseSettings<'a>)>,
    ) -> Result<Self, String> {
        let mut compiled = Self::default();
        for (key, settings) in entries {
            let entry = ResponseEntry {
                selection: (settings.selection)
                    .map(|text| Expression::parse(text, Side::Response))
                    .transpose()
                    .map_err(|e| {
                        format!("integration_responses.{key}.template_selection_expression: {e}")
                    })?,
                templates: compile_all(
                    &format!("integration_responses.{key}.response_templates"),
                    settings.templates,
                )?,
                content: settings.content,
            };
            match ResponseKey::parse(key)
                .map_err(|e| format!("integration_responses.{key}: {e}"))?
            {
                ResponseKey::Default => compiled.default = Some(entry),
                ResponseKey::Pattern(regex) => compiled.patterns.push((regex, entry)),
            }
        }
        Ok(compiled)
    }

    /// True when there are none (the answer goes through unchanged).
    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.default.is_none()
    }

    /// Maps an answer: the integration response whose key matches its status (else `$default`),
    /// then its selected response template. `None` when no integration response or no template
    /// is selected: the answer then goes through unchanged (after content handling).
    ///
    /// # Errors
    /// A template's error; `CONVERT_TO_BINARY` of text that is not base64.
    pub(crate) fn apply(
        &self,
        answer: &Answer<'_>,
        payload: Payload,
        scope: &Scope<'_>,
    ) -> Result<Mapping, TransformError> {
        let status = answer.status.to_string();
        let entry = (self.patterns.iter())
            .find(|(regex, _)| regex.is_match(&status))
            .map(|(_, entry)| entry)
            .or(self.default.as_ref());
        let Some(entry) = entry else {
            return Ok(Mapping {
                payload,
                templated: false,
            });
        };
        let key = match &entry.selection {
            Some(expression) => expression.evaluate(&Subject {
                body: answer.message,
                status: Some(answer.status),
                headers: answer.headers,
            }),
            None => "$default".to_string(),
        };
        let template = (entry.templates.get(&key)).or_else(|| entry.templates.get("$default"));
        let payload = payload.before_template(entry.content);
        let mapped = match template {
            Some(template) => Payload {
                bytes: render(template, &payload.text(), scope)?.into(),
                binary: false,
            },
            None => payload,
        };
        Ok(Mapping {
            payload: mapped.after_template(entry.content)?,
            templated: template.is_some(),
        })
    }
}

#[cfg(test)]
mod tests;
