//! Serialization of secrets in the configuration (`wsgate config defaults` and anything else
//! that writes a configuration back out): inline secrets become `***`, credentials in URLs are
//! masked. Reading is unaffected.

use serde::Serializer;

const MASK: &str = "***";

/// An optional inline secret, written as `***` when present.
///
/// # Errors
/// The serializer's.
pub(super) fn hide_opt<S: Serializer>(
    value: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => serializer.serialize_str(MASK),
        None => serializer.serialize_none(),
    }
}

/// A list of secrets (tokens), each written as `***`.
///
/// # Errors
/// The serializer's.
pub(super) fn hide_all<S: Serializer>(values: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(values.iter().map(|_| MASK))
}

/// A URL whose password, if any, is written as `***`.
///
/// # Errors
/// The serializer's.
pub(super) fn url<S: Serializer>(value: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&super::redact_url(value))
}

/// An optional URL, its password written as `***`.
///
/// # Errors
/// The serializer's.
pub(super) fn url_opt<S: Serializer>(
    value: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => url(value, serializer),
        None => serializer.serialize_none(),
    }
}

/// URLs, each with its password written as `***`.
///
/// # Errors
/// The serializer's.
pub(super) fn urls<S: Serializer>(values: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(values.iter().map(|v| super::redact_url(v)))
}
