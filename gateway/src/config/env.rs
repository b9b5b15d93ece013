//! `WSGATE_*` environment overrides: `WSGATE_LIMITS__IDLE_TIMEOUT=5m` sets `limits.idle_timeout`.
//!
//! The prefix is `WSGATE_`; `__` separates path segments; segments are lowercased. Values are read
//! as YAML scalars (so `true`, `42` and `5m` mean what they say). Only variables whose first
//! segment names a top-level section ([`SECTIONS`]) are applied; the others (`WSGATE_CONFIG`, tool
//! settings that happen to share the prefix) are returned so the caller can warn about them.

use serde_json::Value;

use super::ConfigError;

const PREFIX: &str = "WSGATE_";

/// The top-level keys of [`super::Config`]; kept in sync by a test.
pub(super) const SECTIONS: [&str; 24] = [
    "listen",
    "listen_proxy_protocol",
    "node_id",
    "store",
    "cluster",
    "api",
    "limits",
    "callback",
    "shutdown",
    "log",
    "api_keys",
    "security",
    "tls",
    "domains",
    "throttling",
    "groups",
    "aws",
    "iam",
    "cache",
    "consumers",
    "admin",
    "tracing",
    "reload",
    "deployments",
];

/// Applies the overrides; returns the `WSGATE_*` variables that name no section.
pub(super) fn apply_overrides(
    tree: &mut Value,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX) && k != "WSGATE_CONFIG")
        .collect();
    vars.sort();
    let mut ignored = Vec::new();
    for (var, raw) in vars {
        let path: Vec<String> = var[PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if !SECTIONS.contains(&path[0].as_str()) {
            ignored.push(var);
            continue;
        }
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var,
                message: "empty path segment".into(),
            });
        }
        let value: Value = serde_saphyr::from_str(&raw).unwrap_or(Value::String(raw.clone()));
        set_path(tree, &path, value).map_err(|message| ConfigError::Env { var, message })?;
    }
    Ok(ignored)
}

fn set_path(tree: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let mut node = tree;
    for (depth, segment) in path.iter().enumerate() {
        if node.is_null() {
            *node = Value::Object(Default::default());
        }
        let Value::Object(map) = node else {
            return Err(format!(
                "`{}` is not a section, so `{segment}` cannot be set inside it",
                path[..depth].join(".")
            ));
        };
        if depth + 1 == path.len() {
            map.insert(segment.clone(), value);
            return Ok(());
        }
        node = map.entry(segment.clone()).or_insert(Value::Null);
    }
    Ok(())
}
