//! A route's request models built outside a gateway, for the micro-benchmarks; not a stable
//! interface.

use serde_json::Value;

use super::{Model, RouteModels, compile};
use crate::routing::SelectionExpression;

/// The request models of one route.
#[derive(Debug)]
pub struct RequestModels(RouteModels);

impl RequestModels {
    /// A route whose models under the keys `$default` and `bench` are both `schema`, picked by
    /// `expression` when given (a message whose key is not `bench` falls back to `$default`
    /// after the expression is evaluated and looked up).
    ///
    /// # Errors
    /// The schema or the expression cannot be used.
    pub fn new(schema: &Value, expression: Option<&str>) -> Result<Self, String> {
        let validator = compile::schema_validator(schema)?;
        let expression = expression
            .map(SelectionExpression::parse)
            .transpose()
            .map_err(|e| e.to_string())?;
        let model = std::sync::Arc::new(Model {
            name: "Bench".into(),
            validator,
        });
        let mut by_key = std::collections::HashMap::new();
        by_key.insert("bench".to_string(), std::sync::Arc::clone(&model));
        Ok(Self(RouteModels {
            expression,
            by_key,
            default: Some(model),
        }))
    }

    /// Validates one text message; `Err` holds the validation error string.
    ///
    /// # Errors
    /// The message fails validation.
    pub fn check(&self, body: &[u8]) -> Result<(), String> {
        self.0.check(body, false).map_err(|e| e.to_string())
    }
}
