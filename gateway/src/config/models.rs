//! `api.models` (request models: JSON Schemas by name) and the `request_models` /
//! `model_selection_expression` / `response_models` of routes, checked for what can be told without compiling a
//! schema: names, references, one schema source per model, routes that carry no body. Schemas are
//! read and compiled when the gateway starts (`crate::validate`).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ApiConfig, ConfigError};
use crate::routing::{SelectionExpression, is_reserved};

/// The only content type a model can have: message bodies are validated as JSON.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// One model (Amazon API Gateway's `Model`): a JSON Schema, draft 4 unless its `$schema` names
/// another draft.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `application/json` (the default and the only one: message bodies are validated as JSON).
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Free-form description.
    #[serde(default)]
    pub description: Option<String>,
    /// The schema, inline (YAML or JSON).
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
    /// A file holding the schema as JSON; a relative path is taken from the gateway's working
    /// directory, as `tls.cert_file` is.
    #[serde(default)]
    pub schema_file: Option<PathBuf>,
}

fn default_content_type() -> String {
    JSON_CONTENT_TYPE.into()
}

/// The model selection key that matches when no other key does.
pub const DEFAULT_MODEL_KEY: &str = "$default";

/// Checks `api.models` and every route's `request_models` and `model_selection_expression`.
///
/// # Errors
/// A [`ConfigError`] naming the key at fault.
pub(super) fn validate(api: &ApiConfig) -> Result<(), ConfigError> {
    for (name, model) in &api.models {
        let at = format!("api.models.{name}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ConfigError::invalid(
                at,
                "model names are letters and digits only (as Amazon API Gateway's Model.Name)",
            ));
        }
        if !is_json(&model.content_type) {
            return Err(ConfigError::invalid(
                format!("{at}.content_type"),
                "only application/json models can validate a message (message bodies are validated as JSON)",
            ));
        }
        match (&model.schema, &model.schema_file) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(ConfigError::invalid(
                    at,
                    "give exactly one of schema, schema_file",
                ));
            }
        }
    }
    for (key, route) in &api.routes {
        let at = format!("api.routes.{key}");
        let has_models = !route.request_models.is_empty();
        if is_reserved(key) && (has_models || route.model_selection_expression.is_some()) {
            let field = if has_models {
                "request_models"
            } else {
                "model_selection_expression"
            };
            return Err(ConfigError::invalid(
                format!("{at}.{field}"),
                format!(
                    "{key} carries no message body to validate; request models apply to $default and custom routes"
                ),
            ));
        }
        if let Some(expression) = &route.model_selection_expression {
            SelectionExpression::parse(expression).map_err(|e| {
                ConfigError::invalid(format!("{at}.model_selection_expression"), e.to_string())
            })?;
            if !has_models {
                return Err(ConfigError::invalid(
                    format!("{at}.model_selection_expression"),
                    "selects among request_models, and the route has none",
                ));
            }
        } else if let Some(other) = (route.request_models.keys()).find(|k| *k != DEFAULT_MODEL_KEY)
        {
            return Err(ConfigError::invalid(
                format!("{at}.request_models.{other}"),
                "only the $default model applies without a model_selection_expression",
            ));
        }
        for (selection_key, model) in &route.response_models {
            let at = format!("{at}.response_models.{selection_key}");
            if !route.route_response {
                return Err(ConfigError::invalid(
                    at,
                    "response models need route_response: true",
                ));
            }
            if selection_key != DEFAULT_MODEL_KEY {
                return Err(ConfigError::invalid(
                    at,
                    "only the $default response model is supported",
                ));
            }
            if !api.models.contains_key(model) {
                return Err(ConfigError::invalid(at, format!("no model named {model}")));
            }
        }
        for (selection_key, model) in &route.request_models {
            if !api.models.contains_key(model) {
                return Err(ConfigError::invalid(
                    format!("{at}.request_models.{selection_key}"),
                    format!("no model named {model}"),
                ));
            }
        }
    }
    Ok(())
}

/// `application/json`, in any case, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case(JSON_CONTENT_TYPE)
}
