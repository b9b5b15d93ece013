//! Request validation with models, as Amazon API Gateway validates WebSocket messages: a route's
//! `request_models` (model selection key → model) and `model_selection_expression` pick the JSON
//! Schema a message body must match; a body that fails never reaches the integration and the
//! client gets the "Bad request body" frame. Schemas are compiled once at start; a route without
//! models costs one `Option` check per message.

#[doc(hidden)]
pub(crate) mod bench;
mod compile;
mod describe;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use jsonschema::Validator;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::config::{ApiConfig, ConfigError, DEFAULT_MODEL_KEY};
use crate::events::ConnectionMeta;
use crate::integration::Route;
use crate::routing::SelectionExpression;
use crate::telemetry;

/// Every model's compiled schema, and the models of each route that has some.
#[derive(Debug, Default)]
pub(crate) struct Models {
    routes: HashMap<String, Arc<RouteModels>>,
}

impl Models {
    /// Reads and compiles every model of `api.models` (each once, whatever number of routes and
    /// stages use it) and resolves each route's `request_models`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault: `api.models.{name}.schema` (or `.schema_file`)
    /// for a schema that cannot be read or compiled, `api.routes.{key}...` for a reference the
    /// config check let through.
    pub(crate) fn compile(api: &ApiConfig) -> Result<Self, ConfigError> {
        let mut compiled = HashMap::new();
        for (name, model) in &api.models {
            let validator = compile::model(name, model)?;
            compiled.insert(
                name.as_str(),
                Arc::new(Model {
                    name: name.as_str().into(),
                    validator,
                }),
            );
        }
        let mut routes = HashMap::new();
        for (key, route) in &api.routes {
            if route.request_models.is_empty() {
                continue;
            }
            let at = format!("api.routes.{key}");
            let expression =
                match &route.model_selection_expression {
                    Some(text) => Some(SelectionExpression::parse(text).map_err(|e| {
                        ConfigError::Invalid {
                            key: format!("{at}.model_selection_expression"),
                            message: e.to_string(),
                        }
                    })?),
                    None => None,
                };
            let mut by_key = HashMap::new();
            let mut default = None;
            for (selection_key, name) in &route.request_models {
                let model = compiled
                    .get(name.as_str())
                    .ok_or_else(|| ConfigError::Invalid {
                        key: format!("{at}.request_models.{selection_key}"),
                        message: format!("no model named {name}"),
                    })?;
                if selection_key == DEFAULT_MODEL_KEY {
                    default = Some(Arc::clone(model));
                } else {
                    by_key.insert(selection_key.clone(), Arc::clone(model));
                }
            }
            let models = RouteModels {
                expression,
                by_key,
                default,
            };
            routes.insert(key.clone(), Arc::new(models));
        }
        Ok(Self { routes })
    }

    /// The models of the route `key`, if it has any.
    pub(crate) fn for_route(&self, key: &str) -> Option<Arc<RouteModels>> {
        self.routes.get(key).cloned()
    }
}

/// One compiled model.
struct Model {
    name: Arc<str>,
    validator: Validator,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The request models of one route.
#[derive(Debug)]
pub(crate) struct RouteModels {
    /// `model_selection_expression`; `None`: only the `$default` model applies.
    expression: Option<SelectionExpression>,
    /// Models by selection key, `$default` aside.
    by_key: HashMap<String, Arc<Model>>,
    /// The `$default` model.
    default: Option<Arc<Model>>,
}

/// Why a message body failed validation. Its `Display` is the validation error string (Amazon API
/// Gateway's `$context.error.validationErrorString`), bounded in length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InvalidBody {
    /// A binary message on a route with models.
    #[error("[binary message: request models validate JSON text]")]
    Binary,
    /// The body is not JSON.
    #[error("[message body is not valid JSON]")]
    NotJson,
    /// No model matches the model selection key and the route has no `$default` model.
    #[error(
        "[no request model matches the message's model selection key, and there is no $default model]"
    )]
    NoModel,
    /// The body does not match its model's schema.
    #[error("{errors}")]
    Schema {
        /// The model's name.
        model: Arc<str>,
        /// The schema errors, `[…, …]`.
        errors: Box<str>,
    },
}

impl RouteModels {
    /// Validates one message body (parsed once, here): picks its model with the model selection
    /// expression (else `$default`), then checks the body against that model's schema.
    ///
    /// # Errors
    /// An [`InvalidBody`] saying why the message is refused.
    pub(crate) fn check(&self, body: &[u8], binary: bool) -> Result<(), InvalidBody> {
        if binary {
            return Err(InvalidBody::Binary);
        }
        let json: Value = serde_json::from_slice(body).map_err(|_| InvalidBody::NotJson)?;
        let selected = match &self.expression {
            Some(expression) if !self.by_key.is_empty() => {
                self.by_key.get(&expression.evaluate_json(&json))
            }
            _ => None,
        };
        let model = (selected.or(self.default.as_ref())).ok_or(InvalidBody::NoModel)?;
        if model.validator.is_valid(&json) {
            return Ok(());
        }
        Err(InvalidBody::Schema {
            model: Arc::clone(&model.name),
            errors: describe::error_string(model.validator.iter_errors(&json)).into(),
        })
    }
}

/// A message refused by its route's models: logged (never its body) and counted
/// (`wsgate_validation_error_total` of the route and `wsgate_client_error_total`). Returns the
/// frame the client gets; the connection stays open.
pub(crate) fn refused(
    invalid: &InvalidBody,
    route: &Route,
    meta: &ConnectionMeta,
    message_id: &str,
) -> Message {
    route.metrics.validation_errors.increment(1);
    metrics::counter!(telemetry::CLIENT_ERROR_TOTAL).increment(1);
    tracing::info!(
        connection_id = %meta.connection_id,
        route_key = %route.key,
        message_id,
        model = match invalid {
            InvalidBody::Schema { model, .. } => &**model,
            _ => "",
        },
        error = %invalid,
        "message refused: request body failed validation"
    );
    Message::text(bad_request_frame(&meta.connection_id, message_id))
}

/// `{"message" : "Bad request body", "connectionId": "…", "messageId": "…"}`, byte for byte as
/// Amazon API Gateway writes it (a space on both sides of the first colon, after the others),
/// so built by hand; the values are JSON-escaped.
pub(crate) fn bad_request_frame(connection_id: &str, message_id: &str) -> String {
    let quoted = |s: &str| Value::from(s).to_string();
    format!(
        "{{\"message\" : \"Bad request body\", \"connectionId\": {}, \"messageId\": {}}}",
        quoted(connection_id),
        quoted(message_id)
    )
}
