//! Deployment ids: which definition a node serves. The id is the content hash of the loaded
//! configuration (12 hex digits of SHA-256 over its canonical JSON: keys sorted, secrets masked
//! as `wsgate config defaults` prints them) and the load time, so two nodes serving the same
//! file show the same hash, and a node that re-read an unchanged file shows a new id with the
//! same hash.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Config;

/// One loaded definition's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// `{hash}-{loaded_at_ms}`: unique per load.
    pub id: String,
    /// The content hash (12 hex digits).
    pub hash: String,
    /// When it was loaded, in milliseconds since the Unix epoch.
    pub loaded_at_ms: i64,
}

impl Deployment {
    /// The identity of `config` loaded now.
    pub(crate) fn of(config: &Config) -> Self {
        Self::at(config, chrono::Utc::now().timestamp_millis())
    }

    fn at(config: &Config, loaded_at_ms: i64) -> Self {
        let hash = content_hash(config);
        Self {
            id: format!("{hash}-{loaded_at_ms}"),
            hash,
            loaded_at_ms,
        }
    }
}

impl Deployment {
    /// The identity of the stored deployment `info`, loaded now.
    pub(crate) fn stored(info: &wsgate_connection_store::DeploymentInfo) -> Self {
        Self {
            id: info.id.clone(),
            hash: info.hash.clone(),
            loaded_at_ms: chrono::Utc::now().timestamp_millis(),
        }
    }
}

/// 12 hex digits of SHA-256 over the canonical JSON of `config`.
pub(crate) fn content_hash(config: &Config) -> String {
    let value = serde_json::to_value(config).unwrap_or(Value::Null);
    content_hash_of(&value)
}

/// 12 hex digits of SHA-256 over the canonical JSON of `value` (a deployment's definition).
pub(crate) fn content_hash_of(value: &Value) -> String {
    let mut text = String::new();
    canonical(value, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..6])
}

/// Writes `value` as JSON with object keys in sorted order whatever the map type was.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "listen: 127.0.0.1:0\napi:\n  name: a\n  route_selection_expression: $request.body.action\n  stages: { prod: {}, dev: {} }\n  routes:\n    $default: { integration: { type: mock } }\n";

    #[test]
    fn the_hash_depends_on_content_not_on_spelling_or_time() {
        let a = Config::from_yaml(ONE).unwrap();
        // Same content, other order and layout.
        let b = Config::from_yaml("api:\n  routes: { $default: { integration: { type: mock } } }\n  stages: { dev: {}, prod: {} }\n  route_selection_expression: $request.body.action\n  name: a\nlisten: 127.0.0.1:0\n").unwrap();
        let c = Config::from_yaml(&ONE.replace("name: a", "name: b")).unwrap();
        let (da, db) = (Deployment::at(&a, 1), Deployment::at(&b, 2));
        assert_eq!(da.hash, db.hash);
        assert_eq!(da.hash.len(), 12);
        assert_ne!(da.id, db.id);
        assert_eq!(da.id, format!("{}-1", da.hash));
        assert_ne!(Deployment::at(&c, 1).hash, da.hash);
    }
}
