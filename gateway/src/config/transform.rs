//! Configuration of non-proxy integrations: request templates and their selection, passthrough,
//! integration responses with response templates, content handling and request parameters, named
//! as Amazon API Gateway names them (`RequestTemplates`, `PassthroughBehavior`, ...).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::transform::{ContentHandling, PassthroughBehavior};

use super::{ApiConfig, ConfigError};

/// One integration response (`IntegrationResponse`), under its key: `$default` or a regular
/// expression between slashes matched against the integration's status code (`/4\d\d/`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationResponseConfig {
    /// Picks a response template: `${integration.response.statuscode}`,
    /// `${integration.response.header.<name>}`, `${request.body.<path>}`, static text; absent:
    /// `$default`.
    #[serde(default)]
    pub template_selection_expression: Option<String>,
    /// Response templates (VTL) by selection key; `$default` catches the rest. When none is
    /// selected the answer goes through unchanged.
    #[serde(default)]
    pub response_templates: BTreeMap<String, String>,
    /// Converts the answer before it is sent to the client.
    #[serde(default)]
    pub content_handling_strategy: Option<ContentHandling>,
}

/// The request side of a non-proxy integration (`type: http` and `type: mock`).
#[derive(Debug, Clone, Default)]
pub struct RequestTransform<'a> {
    /// `template_selection_expression`.
    pub selection: Option<&'a str>,
    /// `request_templates`.
    pub templates: Option<&'a BTreeMap<String, String>>,
    /// `passthrough_behavior`.
    pub passthrough: PassthroughBehavior,
    /// `content_handling_strategy`.
    pub content_handling: Option<ContentHandling>,
    /// `integration_responses`.
    pub responses: Option<&'a BTreeMap<String, IntegrationResponseConfig>>,
}

/// Largest template, as API Gateway's mapping-template quota (300 KB).
pub const MAX_TEMPLATE_BYTES: usize = 300 * 1024;

/// Checks a non-proxy integration's templates, selection expressions, response keys and request
/// parameters; `at` is the integration's key (`api.routes.x.integration`).
pub(super) fn validate(
    at: &str,
    transform: &RequestTransform<'_>,
    parameters: Option<&BTreeMap<String, String>>,
    connect: bool,
    api: &ApiConfig,
) -> Result<(), ConfigError> {
    if let Some(expression) = transform.selection {
        crate::transform::Expression::parse(expression, crate::transform::Side::Request).map_err(
            |e| ConfigError::invalid(format!("{at}.template_selection_expression"), e.to_string()),
        )?;
    }
    for (key, template) in transform.templates.into_iter().flatten() {
        check_template(&format!("{at}.request_templates.{key}"), template)?;
    }
    for (key, response) in transform.responses.into_iter().flatten() {
        let here = format!("{at}.integration_responses.{key}");
        crate::transform::ResponseKey::parse(key)
            .map_err(|e| ConfigError::invalid(here.clone(), e))?;
        if let Some(expression) = &response.template_selection_expression {
            crate::transform::Expression::parse(expression, crate::transform::Side::Response)
                .map_err(|e| {
                    ConfigError::invalid(
                        format!("{here}.template_selection_expression"),
                        e.to_string(),
                    )
                })?;
        }
        for (name, template) in &response.response_templates {
            check_template(&format!("{here}.response_templates.{name}"), template)?;
        }
    }
    for (target, source) in parameters.into_iter().flatten() {
        crate::transform::Parameter::parse(target, source, connect)
            .map_err(|e| ConfigError::invalid(format!("{at}.request_parameters.{target}"), e))?;
    }
    if let Some(parameters) = parameters {
        for (stage, settings) in &api.stages {
            crate::transform::Parameters::for_stage(parameters, &settings.variables, connect)
                .map_err(|e| {
                    ConfigError::invalid(
                        format!("{at}.request_parameters"),
                        format!("stage `{stage}`: {e}"),
                    )
                })?;
        }
    }
    Ok(())
}

fn check_template(at: &str, template: &str) -> Result<(), ConfigError> {
    if template.len() > MAX_TEMPLATE_BYTES {
        return Err(ConfigError::invalid(
            at,
            format!(
                "a mapping template is at most {MAX_TEMPLATE_BYTES} bytes (this one is {})",
                template.len()
            ),
        ));
    }
    wsgate_vtl::Template::parse(template).map_err(|e| ConfigError::invalid(at, e.to_string()))?;
    Ok(())
}
