//! API definitions in and out: `wsgate import sam|cloudformation|asyncapi` turns an AWS
//! template or an AsyncAPI document into a wsgate configuration, reporting on stderr what it
//! cannot express; `wsgate export asyncapi|openapi` describes a configuration's API as AsyncAPI
//! 3.0 and its HTTP APIs (callback, groups, admin) as OpenAPI 3.1. Output is deterministic.

mod asyncapi_export;
mod asyncapi_import;
mod cfn_eval;
mod cfn_import;
#[cfg(test)]
mod cfn_import_tests;
mod cli;
mod openapi;
mod output;
mod yaml;

pub use asyncapi_export::asyncapi;
pub use asyncapi_import::{AsyncApiOptions, import_asyncapi};
pub use cfn_import::{CfnOptions, import_cloudformation};
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
