//! API definitions in and out: `wsgate import sam|cloudformation|asyncapi` turns an AWS
//! template or an AsyncAPI document into a wsgate configuration, reporting on stderr what it
//! cannot express; `wsgate export asyncapi|openapi` describes a configuration's API as AsyncAPI
//! 3.0 and its HTTP APIs (callback, groups, admin) as OpenAPI 3.1. Output is deterministic.

mod asyncapi_export;
mod asyncapi_import;
mod cfn;
mod cli;
mod openapi;
mod output;
mod yaml;

pub use asyncapi_export::asyncapi;
pub use asyncapi_import::{AsyncApiOptions, import_asyncapi};
pub use cfn::{CfnOptions, import_cloudformation};
pub use cli::{ExportCommand, ImportCommand, export, import};
pub use openapi::openapi;
pub use output::to_yaml;

use std::fmt;

/// Something an import could not carry into the configuration, with its place in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Line in the source, when known.
    pub line: Option<usize>,
    /// Where in the source (`Resources.SendRoute.Properties.OperationName`).
    pub at: String,
    /// What happened to it.
    pub message: String,
}

impl Note {
    fn new(line: Option<usize>, at: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            line,
            at: at.into(),
            message: message.into(),
        }
    }

    /// The note as one stderr line for `file`.
    pub fn render(&self, file: &str) -> String {
        match self.line {
            Some(line) => format!("{file}:{line}: {}: {}", self.at, self.message),
            None => format!("{file}: {}: {}", self.at, self.message),
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("(input)"))
    }
}

/// The result of an import: the configuration and what it left out.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The configuration tree (what `wsgate check` reads).
    pub config: serde_json::Value,
    /// Everything not carried over, in source order.
    pub notes: Vec<Note>,
}

/// Why an import or export failed.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input is not valid YAML or JSON.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The path.
        path: String,
        /// Line of the fault (0 when unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The input has no API wsgate can serve, or something required is missing.
    #[error("{0}")]
    Invalid(String),
    /// The configuration to export does not load.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The output could not be written.
    #[error("cannot write the output: {0}")]
    Write(String),
}

/// The access key id of the IAM principal an imported `AWS_IAM` route gets.
pub const IMPORTED_ACCESS_KEY_ID: &str = "AKIAWSGATEIMPORTED01";
/// The variable that principal's secret is read from.
pub const IMPORTED_SECRET_ENV: &str = "WSGATE_IMPORTED_SECRET_ACCESS_KEY";

/// The variable the key of an imported API that requires API keys is read from.
pub const IMPORTED_KEY_ENV: &str = "WSGATE_IMPORTED_API_KEY";

/// A route that requires an API key needs `api_keys`, an `AWS_IAM` route `iam.principals`,
/// which neither a template's API nor an AsyncAPI document carries: the import adds one key read
/// from [`IMPORTED_KEY_ENV`] (in a usage plan without limits) and one principal whose secret is
/// read from [`IMPORTED_SECRET_ENV`]. The gateway refuses to start without those variables, so
/// nothing opens up; the report says so.
fn add_api_key_placeholder(config: &mut serde_json::Value, notes: &mut Vec<Note>) {
    let routes = config["api"]["routes"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if routes
        .values()
        .any(|r| r["authorization_type"] == "AWS_IAM")
        && config.get("iam").is_none()
    {
        config["iam"] = serde_json::json!({"principals": [
            {"access_key_id": IMPORTED_ACCESS_KEY_ID, "secret_access_key_env": IMPORTED_SECRET_ENV}
        ]});
        notes.push(Note::new(
            None,
            "iam",
            format!("$connect is AWS_IAM: iam.principals holds access key {IMPORTED_ACCESS_KEY_ID} whose secret is read from ${IMPORTED_SECRET_ENV} (the gateway does not start without it); put your principals and policies there"),
        ));
    }
    let required = routes.values().any(|r| r["api_key_required"] == true);
    if !required || config.get("api_keys").is_some() {
        return;
    }
    config["api_keys"] = serde_json::json!([
        {"id": "imported", "value_env": IMPORTED_KEY_ENV, "usage_plan": "imported"}
    ]);
    config["throttling"] = serde_json::json!({"usage_plans": {"imported": {}}});
    notes.push(Note::new(
        None,
        "api_keys",
        format!("$connect requires an API key: api_keys holds one key read from ${IMPORTED_KEY_ENV} (the gateway does not start without it) in usage plan `imported` without limits; put your keys and plans there"),
    ));
}
