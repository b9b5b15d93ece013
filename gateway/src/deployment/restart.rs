//! Which keys of a new configuration cannot take effect without a restart.
//!
//! Live (applied by a reload): `api` except `api.id`, `api.name` and the routes' `cache`
//! settings; `throttling`; the certificate and key files of `tls` (re-read on every reload).
//! Everything else (listeners, store, node id, limits, callback, cluster, security, API keys,
//! IAM, domains, groups, consumers, cache, tracing, admin, log, reload, deployments, whether TLS
//! is on) is fixed at start: a reload that changes any of it is refused as a whole, naming the
//! keys, and the running definition stays. Values are compared as `wsgate config defaults` prints
//! them (defaults written out, inline secrets masked).

use serde_json::{Map, Value};

use crate::config::Config;

/// At most this many keys are named in the refusal.
const MAX_NAMED: usize = 8;

/// Dotted paths of the keys that differ between `old` and `new` and cannot change live,
/// sorted.
pub(crate) fn restart_keys(old: &Config, new: &Config) -> Vec<String> {
    let (old, new) = (fixed_part(old), fixed_part(new));
    let mut keys = Vec::new();
    diff(&old, &new, "", &mut keys);
    keys.sort();
    keys
}

/// The refusal's list: `a, b, c` (and how many more).
pub(crate) fn describe(keys: &[String]) -> String {
    let mut text = keys
        .iter()
        .take(MAX_NAMED)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > MAX_NAMED {
        text.push_str(&format!(" and {} more", keys.len() - MAX_NAMED));
    }
    text
}

/// `config` without what a reload applies.
fn fixed_part(config: &Config) -> Value {
    let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
    let Some(root) = value.as_object_mut() else {
        return value;
    };
    root.remove("throttling");
    // The listeners move to the addresses a reload names (`crate::accept`); whether there is a
    // separate callback listener at all stays fixed.
    root.remove("listen");
    // So do the custom domains (`crate::domains`; their certificates are read again anyway).
    root.remove("domains");
    if let Some(Value::Object(callback)) = root.get_mut("callback") {
        let separate = callback.get("listen").is_some_and(|l| !l.is_null());
        callback.insert("listen".into(), Value::Bool(separate));
    }
    if let Some(Value::Object(tls)) = root.get_mut("tls") {
        tls.remove("cert_file");
        tls.remove("key_file");
    }
    if let Some(Value::Object(api)) = root.remove("api") {
        let mut kept = Map::new();
        for key in ["id", "name"] {
            kept.insert(key.into(), api.get(key).cloned().unwrap_or(Value::Null));
        }
        // Route caches are built once at start (their keys, TTLs and entries).
        let mut caches = Map::new();
        if let Some(Value::Object(routes)) = api.get("routes") {
            for (route, settings) in routes {
                if let Some(cache) = settings.get("cache").filter(|c| !c.is_null()) {
                    caches.insert(route.clone(), serde_json::json!({ "cache": cache }));
                }
            }
        }
        kept.insert("routes".into(), Value::Object(caches));
        root.insert("api".into(), Value::Object(kept));
    }
    value
}

fn diff(old: &Value, new: &Value, at: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let path = join(at, key);
                match b.get(key) {
                    Some(other) => diff(value, other, &path, out),
                    None => out.push(path),
                }
            }
            for key in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(join(at, key));
            }
        }
        (a, b) if a != b => out.push(if at.is_empty() {
            "(top level)".into()
        } else {
            at.into()
        }),
        _ => {}
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str, route: &str) -> Config {
        Config::from_yaml(&format!(
            "listen: 127.0.0.1:0\n{extra}\napi:\n  name: a\n  route_selection_expression: $request.body.action\n  stages: {{ prod: {{ variables: {{ v: '1' }} }} }}\n  routes:\n    $default: {{ integration: {{ type: mock }} }}\n{route}"
        ))
        .unwrap()
    }

    #[test]
    fn the_api_definition_and_throttling_are_live() {
        let old = config("", "");
        let new = Config::from_yaml(
            "listen: 127.0.0.1:0\nthrottling: { gateway: { rate_limit: 5, burst_limit: 5 } }\napi:\n  name: a\n  route_selection_expression: $request.body.type\n  stages: { prod: { variables: { v: '2' } }, dev: {} }\n  routes:\n    $default: { integration: { type: mock } }\n    other: { integration: { type: mock } }\n",
        )
        .unwrap();
        assert!(restart_keys(&old, &new).is_empty());
    }

    #[test]
    fn fixed_keys_are_named() {
        let old = config("", "");
        let new = config(
            "listen_proxy_protocol: true\nlimits: { max_connections: 7 }\nstore: { kind: memory }",
            "",
        );
        assert_eq!(
            restart_keys(&old, &new),
            ["limits.max_connections", "listen_proxy_protocol"]
        );
        let renamed = Config::from_yaml(
            "listen: 127.0.0.1:1\napi:\n  name: b\n  route_selection_expression: $request.body.action\n  stages: { prod: {} }\n  routes:\n    $default: { integration: { type: mock } }\n",
        )
        .unwrap();
        assert_eq!(restart_keys(&old, &renamed), ["api.name"], "listen moves");
        let separate = config("callback: { listen: 127.0.0.1:9 }", "");
        assert_eq!(restart_keys(&old, &separate), ["callback.listen"]);
        let moved = config("callback: { listen: 127.0.0.1:10 }", "");
        assert!(restart_keys(&separate, &moved).is_empty(), "it moves");
        assert_eq!(
            describe(&(0..10).map(|i| format!("k{i}")).collect::<Vec<_>>()),
            "`k0`, `k1`, `k2`, `k3`, `k4`, `k5`, `k6`, `k7` and 2 more"
        );
    }
}
