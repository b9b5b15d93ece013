//! Schemas read and compiled once, when the gateway starts: inline or from `schema_file`, draft 4
//! unless `$schema` names another draft, never fetching a `$ref` (no network, no file).

use std::path::Path;

use jsonschema::{Draft, Validator};
use serde_json::Value;

use crate::config::{ConfigError, ModelConfig};

/// The largest `schema_file` read (a schema, not a data set).
pub(super) const MAX_SCHEMA_FILE_BYTES: u64 = 1 << 20;

/// Backtracking steps a `pattern` with look-around or back-references may take on one string
/// before the string counts as not matching (other patterns run in linear time).
pub(super) const PATTERN_BACKTRACK_LIMIT: usize = 100_000;

/// Compiles the model `name`; errors name `api.models.{name}.schema` or `.schema_file`.
pub(super) fn model(name: &str, model: &ModelConfig) -> Result<Validator, ConfigError> {
    let (key, read);
    let schema = match (&model.schema, &model.schema_file) {
        (Some(schema), _) => {
            key = format!("api.models.{name}.schema");
            schema
        }
        (None, Some(path)) => {
            key = format!("api.models.{name}.schema_file");
            read = read_file(path).map_err(|message| ConfigError::Invalid {
                key: key.clone(),
                message,
            })?;
            &read
        }
        (None, None) => {
            return Err(ConfigError::Invalid {
                key: format!("api.models.{name}"),
                message: "give exactly one of schema, schema_file".into(),
            });
        }
    };
    schema_validator(schema).map_err(|message| ConfigError::Invalid { key, message })
}

/// A validator for `schema`: draft 4 when it has no `$schema` (as Amazon API Gateway's models
/// are), else the draft its `$schema` names. Every `$ref` must resolve inside the schema.
pub(super) fn schema_validator(schema: &Value) -> Result<Validator, String> {
    let mut options = jsonschema::options().offline().with_pattern_options(
        jsonschema::PatternOptions::fancy_regex().backtrack_limit(PATTERN_BACKTRACK_LIMIT),
    );
    if schema.get("$schema").is_none() {
        options = options.with_draft(Draft::Draft4);
    }
    options
        .build(schema)
        .map_err(|e| format!("not a usable JSON Schema: {e}"))
}

fn read_file(path: &Path) -> Result<Value, String> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if size > MAX_SCHEMA_FILE_BYTES {
        return Err(format!(
            "{shown} is {size} bytes; a schema file may have at most {MAX_SCHEMA_FILE_BYTES}"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{shown} is not JSON: {e}"))
}
