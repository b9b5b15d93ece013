//! A route's `ack:` block: acknowledged client messages with duplicate suppression (where the
//! client's message id is in the body, how long ids are remembered), and its checks.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ApiConfig, ConfigError, LimitsConfig, duration};

/// Shortest `window`.
pub const MIN_ACK_WINDOW: Duration = Duration::from_millis(100);
/// Longest `window`.
pub const MAX_ACK_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Most fields in an `id` path.
const MAX_ID_PATH_FIELDS: usize = 8;

/// A route's `ack:` block (message routes only).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteAckConfig {
    /// Where the client's message id is in a JSON message: `$.id`, `$.meta.id` (fields only).
    /// The id is a string or an integer of at most 128 bytes.
    pub id: String,
    /// How long an acknowledged id is remembered (duplicates within it are acknowledged again
    /// without reaching the integration); 100ms to 24h, default 5m.
    #[serde(
        default = "default_window",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub window: Duration,
}

fn default_window() -> Duration {
    Duration::from_secs(300)
}

/// The fields of an `id` path (`$.a.b` is `["a", "b"]`).
///
/// # Errors
/// What is wrong with the path, in words.
pub fn id_path_fields(path: &str) -> Result<Vec<String>, String> {
    let rest = path
        .strip_prefix("$.")
        .ok_or_else(|| format!("`{path}` must start with `$.` (e.g. `$.id`)"))?;
    let fields: Vec<String> = rest.split('.').map(str::to_owned).collect();
    if fields.len() > MAX_ID_PATH_FIELDS {
        return Err(format!(
            "`{path}` has more than {MAX_ID_PATH_FIELDS} fields"
        ));
    }
    let valid = |f: &String| {
        !f.is_empty()
            && f.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !fields.iter().all(valid) {
        return Err(format!(
            "`{path}` must be `$.` and dot-separated field names of letters, digits, `_` or `-`"
        ));
    }
    Ok(fields)
}

/// Checks every route's `ack:` block and the memory store's bounds of their ids.
pub(super) fn validate(api: &ApiConfig, limits: &LimitsConfig) -> Result<(), ConfigError> {
    if limits.ack_ids == 0 {
        return Err(ConfigError::invalid("limits.ack_ids", "must be at least 1"));
    }
    if limits.ack_id_bytes < 4096 {
        return Err(ConfigError::invalid(
            "limits.ack_id_bytes",
            "must be at least 4096",
        ));
    }
    for (key, route) in &api.routes {
        let Some(ack) = &route.ack else { continue };
        let at = format!("api.routes.{key}.ack");
        if key == "$connect" || key == "$disconnect" {
            return Err(ConfigError::invalid(
                at,
                "only message routes acknowledge messages",
            ));
        }
        id_path_fields(&ack.id).map_err(|m| ConfigError::invalid(format!("{at}.id"), m))?;
        if !(MIN_ACK_WINDOW..=MAX_ACK_WINDOW).contains(&ack.window) {
            return Err(ConfigError::invalid(
                format!("{at}.window"),
                "must be between 100ms and 24h",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_paths_parse_to_fields() {
        assert_eq!(id_path_fields("$.id").unwrap(), ["id"]);
        assert_eq!(id_path_fields("$.meta.msg_id").unwrap(), ["meta", "msg_id"]);
        for bad in [
            "id",
            "$",
            "$.",
            "$.a..b",
            "$.a[0]",
            "$.a b",
            "$.a.b.c.d.e.f.g.h.i",
        ] {
            assert!(id_path_fields(bad).is_err(), "{bad}");
        }
    }

    fn config(route: &str, ack: &str) -> Result<crate::config::Config, ConfigError> {
        with_limits(route, ack, "{}")
    }

    fn with_limits(
        route: &str,
        ack: &str,
        limits: &str,
    ) -> Result<crate::config::Config, ConfigError> {
        crate::config::Config::from_yaml(&format!(
            r#"
listen: 127.0.0.1:0
limits: {limits}
api:
  name: t
  route_selection_expression: $request.body.action
  stages: {{ prod: {{}} }}
  routes:
    "{route}": {{ integration: {{ type: mock }}, ack: {ack} }}
"#
        ))
    }

    #[test]
    fn ack_blocks_are_checked() {
        let ok = config("send", "{ id: $.id }").expect("valid");
        let ack = ok.api.routes["send"].ack.as_ref().expect("ack");
        assert_eq!(ack.window, Duration::from_secs(300));
        let cases = [
            ("$connect", "{ id: $.id }", "api.routes.$connect.ack"),
            ("send", "{ id: id }", "api.routes.send.ack.id"),
            (
                "send",
                "{ id: $.id, window: 10ms }",
                "api.routes.send.ack.window",
            ),
            (
                "send",
                "{ id: $.id, window: 25h }",
                "api.routes.send.ack.window",
            ),
        ];
        for (route, ack, key) in cases {
            match config(route, ack) {
                Err(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key, "{ack}"),
                other => panic!("{route} {ack}: {other:?}"),
            }
        }
        for (limits, key) in [
            ("{ ack_ids: 0 }", "limits.ack_ids"),
            ("{ ack_id_bytes: 100 }", "limits.ack_id_bytes"),
        ] {
            match with_limits("send", "{ id: $.id }", limits) {
                Err(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key),
                other => panic!("{limits}: {other:?}"),
            }
        }
    }
}
