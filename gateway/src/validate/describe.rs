//! The validation error string (Amazon API Gateway's `$context.error.validationErrorString`):
//! the first few schema errors in words, in brackets, bounded in count and bytes. The words name
//! the keyword, its limit from the schema and where in the body it failed, never a value taken
//! from the body (they are logged).

use std::fmt::Write as _;

use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

/// At most this many errors are described.
pub(super) const MAX_ERRORS: usize = 8;
/// The string is cut to at most this many bytes (plus the closing `…]`).
pub(super) const MAX_BYTES: usize = 1024;

/// `[first error, second error, …]` from the errors of one validation.
pub(super) fn error_string<'a>(errors: impl Iterator<Item = ValidationError<'a>>) -> String {
    let mut out = String::from("[");
    let mut more = false;
    for (i, error) in errors.enumerate() {
        if i == MAX_ERRORS {
            more = true;
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        describe(&error, &mut out);
        if out.len() > MAX_BYTES {
            more = true;
            break;
        }
    }
    if out.len() > MAX_BYTES {
        let mut cut = MAX_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    if more {
        out.push('…');
    }
    out.push(']');
    out
}

/// One error: `/path: words` (the path left out at the top level).
fn describe(error: &ValidationError<'_>, out: &mut String) {
    let path = error.instance_path().as_str();
    if !path.is_empty() {
        out.push_str(path);
        out.push_str(": ");
    }
    let instance: &Value = error.instance();
    let _ = match error.kind() {
        ValidationErrorKind::Type { kind } => {
            let allowed: Vec<&str> = match kind {
                TypeKind::Single(t) => vec![t.as_str()],
                TypeKind::Multiple(set) => set.iter().map(|t| t.as_str()).collect(),
            };
            write!(
                out,
                "instance type ({}) does not match any allowed primitive type (allowed: {})",
                type_of(instance),
                quoted_list(allowed.iter().copied())
            )
        }
        ValidationErrorKind::Required { property } => {
            write!(out, "object has missing required properties ([{property}])")
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => write!(
            out,
            "object instance has properties which are not allowed by the schema: {}",
            quoted_list(unexpected.iter().map(String::as_str))
        ),
        ValidationErrorKind::MaxLength { limit } => write!(
            out,
            "string is too long (length: {}, maximum allowed: {limit})",
            chars(instance)
        ),
        ValidationErrorKind::MinLength { limit } => write!(
            out,
            "string is too short (length: {}, required minimum: {limit})",
            chars(instance)
        ),
        ValidationErrorKind::Maximum { limit } => write!(
            out,
            "numeric instance is greater than the required maximum (maximum: {limit})"
        ),
        ValidationErrorKind::ExclusiveMaximum { limit } => write!(
            out,
            "numeric instance is not lower than the required maximum (exclusive maximum: {limit})"
        ),
        ValidationErrorKind::Minimum { limit } => write!(
            out,
            "numeric instance is lower than the required minimum (minimum: {limit})"
        ),
        ValidationErrorKind::ExclusiveMinimum { limit } => write!(
            out,
            "numeric instance is not greater than the required minimum (exclusive minimum: {limit})"
        ),
        ValidationErrorKind::MultipleOf { multiple_of } => {
            write!(out, "numeric instance is not a multiple of {multiple_of}")
        }
        ValidationErrorKind::Enum { options } => {
            write!(
                out,
                "instance value not found in enum (possible values: {options})"
            )
        }
        ValidationErrorKind::Constant { expected_value } => {
            write!(out, "instance value is not the constant {expected_value}")
        }
        ValidationErrorKind::Pattern { pattern } => {
            write!(out, "string does not match the regex pattern {pattern}")
        }
        ValidationErrorKind::BacktrackLimitExceeded { .. } => {
            write!(
                out,
                "string is too costly to match against the regex pattern"
            )
        }
        ValidationErrorKind::Format { format } => {
            write!(out, "string is not a valid \"{format}\"")
        }
        ValidationErrorKind::MaxItems { limit } => write!(
            out,
            "array is too long (found {}, maximum allowed: {limit})",
            count(instance)
        ),
        ValidationErrorKind::MinItems { limit } => write!(
            out,
            "array is too short (found {}, required minimum: {limit})",
            count(instance)
        ),
        ValidationErrorKind::UniqueItems => {
            write!(out, "array must not contain duplicate elements")
        }
        ValidationErrorKind::AdditionalItems { limit } => write!(
            out,
            "array has more items than the {limit} the schema allows"
        ),
        ValidationErrorKind::MaxProperties { limit } => write!(
            out,
            "object has too many properties (found {}, maximum allowed: {limit})",
            count(instance)
        ),
        ValidationErrorKind::MinProperties { limit } => write!(
            out,
            "object has too few properties (found {}, required minimum: {limit})",
            count(instance)
        ),
        ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
            write!(
                out,
                "instance failed to match at least one required schema ({})",
                error.kind().keyword()
            )
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            write!(out, "instance matched more than one schema of oneOf")
        }
        ValidationErrorKind::Not { .. } => {
            write!(
                out,
                "instance matched a schema which it should not have (not)"
            )
        }
        ValidationErrorKind::FalseSchema => write!(out, "no value is allowed here (schema false)"),
        other => write!(out, "instance fails the \"{}\" keyword", other.keyword()),
    };
}

/// The JSON type of a value as draft 4 names it (an integral number is an `integer`).
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn chars(value: &Value) -> usize {
    value.as_str().map_or(0, |s| s.chars().count())
}

fn count(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        _ => 0,
    }
}

/// `["a","b"]`, each name JSON-escaped.
fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, name) in names.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(name).to_string());
    }
    out.push(']');
    out
}
