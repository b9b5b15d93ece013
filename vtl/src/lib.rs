//! Amazon API Gateway mapping templates: the subset of the Velocity Template Language (Velocity
//! 1.7) that API Gateway speaks, with `$input`, `$context`, `$stageVariables` and `$util`,
//! evaluated in a sandbox bounded in output bytes, loop iterations, steps and time.
//!
//! ```
//! use wsgate_vtl::{Input, Limits, Template};
//! let t = Template::parse(r#"{"id":"$context.connectionId","n":$input.json('$.n')}"#).unwrap();
//! let ctx = serde_json::json!({"connectionId": "abc"});
//! let empty = serde_json::json!({});
//! let input = Input { body: r#"{"n":[1,2]}"#, context: &ctx, stage_variables: &empty, params: &empty };
//! assert_eq!(t.render(&input, &Limits::default()).unwrap(), r#"{"id":"abc","n":[1,2]}"#);
//! ```

mod ast;
mod eval;
mod jsonpath;
mod methods;
mod parse;
mod util;
mod value;

use std::sync::Arc;
use std::time::Duration;

/// A parsed mapping template. Cheap to clone and shareable across threads.
#[derive(Clone, Debug)]
pub struct Template {
    nodes: Arc<Vec<ast::Node>>,
}

/// A template that does not parse: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    pub message: String,
}

/// Why a render failed. Nothing partial is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the template output exceeds {limit} bytes")]
    OutputTooLarge { limit: usize },
    #[error("a #foreach loop exceeds {limit} iterations")]
    TooManyIterations { limit: usize },
    #[error("the template exceeds its step budget")]
    StepBudget,
    #[error("the template exceeds its time budget")]
    Timeout,
    #[error("{0}")]
    Invalid(String),
}

/// What a template sees of one request (or integration answer).
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// `$input.body`; `$input.json()`/`$input.path()` parse it (once per render) as JSON.
    pub body: &'a str,
    /// `$context.*`: a JSON object (nested objects for identity, authorizer, error, ...).
    pub context: &'a serde_json::Value,
    /// `$stageVariables.*`: a JSON object of strings.
    pub stage_variables: &'a serde_json::Value,
    /// `$input.params()`: `{"header":{..},"querystring":{..},"path":{..}}`;
    /// `$input.params('x')` searches path, querystring, then header.
    pub params: &'a serde_json::Value,
}

/// The result of [`Template::render_detailed`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The rendered text.
    pub output: String,
    /// `$context` after the render; `None` when the template never referred to `$context`.
    pub context: Option<serde_json::Value>,
}

/// Bounds on one render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Output size in bytes, checked as the output grows (also bounds any single string value).
    pub max_output_bytes: usize,
    /// Iterations of any one `#foreach`.
    pub max_loop_iterations: usize,
    /// Evaluation steps (nodes, expressions, method calls, loop turns, and bulk work per KiB).
    pub max_steps: u64,
    /// Wall-clock time, checked every 256 steps.
    pub max_duration: Duration,
}

impl Default for Limits {
    /// API Gateway's bounds: 300 KiB of template output, 1000 iterations per `#foreach`; plus a
    /// budget of one million steps and 100 ms.
    fn default() -> Self {
        Limits {
            max_output_bytes: 300 * 1024,
            max_loop_iterations: 1000,
            max_steps: 1_000_000,
            max_duration: Duration::from_millis(100),
        }
    }
}

impl Template {
    /// Parses a template. Fails on unbalanced directives, bad expressions, unsupported directives
    /// (`#macro`, `#define`, `#parse`, `#include`, `#evaluate`) and nesting deeper than 100 levels.
    pub fn parse(source: &str) -> Result<Template, ParseError> {
        let nodes = parse::parse_template(source)?;
        Ok(Template {
            nodes: Arc::new(nodes),
        })
    }

    /// Renders the template against one input, within `limits`.
    pub fn render(&self, input: &Input<'_>, limits: &Limits) -> Result<String, RenderError> {
        eval::Renderer::new(input, limits).run(&self.nodes)
    }

    /// Like [`Template::render`], and also gives `$context` as the template left it, for API
    /// Gateway's overrides (`#set($context.responseOverride.status = 400)`,
    /// `#set($context.requestOverride.header.X = 'v')`): the input context must hold those maps.
    pub fn render_detailed(
        &self,
        input: &Input<'_>,
        limits: &Limits,
    ) -> Result<Rendered, RenderError> {
        eval::Renderer::new(input, limits).run_detailed(&self.nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn template_is_send_sync() {
        assert_send_sync::<Template>();
    }
}
