//! Tests of configuration loading: the reference file, env overrides, and error messages.

use std::time::Duration;

use super::*;

/// The configuration file from the product brief; it must load as it is.
pub(crate) const REFERENCE: &str = r#"
listen: 127.0.0.1:8080
store:
  kind: memory
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod:
      variables:
        backend: http://127.0.0.1:3000
  routes:
    $connect:
      integration: { type: aws_proxy, uri: "${stageVariables.backend}/connect" }
    $disconnect:
      integration: { type: aws_proxy, uri: "${stageVariables.backend}/disconnect" }
    sendmessage:
      integration: { type: aws_proxy, uri: "${stageVariables.backend}/sendmessage", timeout: 5s }
    $default:
      integration: { type: http_proxy, uri: "${stageVariables.backend}/default" }
      route_response: true
    ping:
      integration: { type: mock, response: '{"action":"pong"}' }
      route_response: true
limits:
  idle_timeout: 10m
  max_connection_duration: 2h
  max_message_bytes: 131072
  max_frame_bytes: 32768
"#;

fn err(text: &str) -> String {
    Config::from_yaml(text).expect_err("must fail").to_string()
}

#[test]
fn reference_file_loads() {
    let c = Config::from_yaml(REFERENCE).expect("reference config loads");
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.api.routes.len(), 5);
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(600));
    assert_eq!(c.limits.max_connection_duration, Duration::from_secs(7200));
    match &c.api.routes["sendmessage"].integration {
        IntegrationConfig::AwsProxy { timeout, .. } => assert_eq!(*timeout, Duration::from_secs(5)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(c.api.routes["$default"].route_response);
    assert!(matches!(c.store, StoreConfig::Memory));
}

#[test]
fn durations_accept_integer_seconds() {
    let text = REFERENCE.replace("idle_timeout: 10m", "idle_timeout: 90");
    let c = Config::from_yaml(&text).expect("loads");
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(90));
}

#[test]
fn unknown_key_is_named() {
    let text = REFERENCE.replace(
        "max_frame_bytes: 32768",
        "max_frame_bytes: 32768\n  max_fraem: 1",
    );
    let e = err(&text);
    assert!(
        e.starts_with("config key `limits.max_fraem`: unknown field"),
        "{e}"
    );
}

#[test]
fn invalid_duration_names_the_key() {
    let e = err(&REFERENCE.replace("idle_timeout: 10m", "idle_timeout: 10x"));
    assert!(e.starts_with("config key `limits.idle_timeout`"), "{e}");
    assert!(e.contains("invalid duration `10x`"), "{e}");
}

#[test]
fn backend_connections_must_allow_one() {
    let text = |n: &str| {
        REFERENCE.replace(
            "max_frame_bytes: 32768",
            &format!("max_frame_bytes: 32768\n  backend_connections: {n}"),
        )
    };
    let c = Config::from_yaml(&text("8")).expect("loads");
    assert_eq!(c.limits.backend_connections, 8);
    let e = err(&text("0"));
    assert!(
        e.starts_with("config key `limits.backend_connections`: must be between 1"),
        "{e}"
    );
}

#[test]
fn unknown_integration_type_is_named() {
    let e = err(&REFERENCE.replace("type: mock", "type: lambda"));
    assert!(e.contains("api.routes.ping.integration"), "{e}");
}

#[test]
fn unix_socket_uris_are_checked() {
    let unix = |variable: &str| REFERENCE.replace("http://127.0.0.1:3000", variable);
    Config::from_yaml(&unix("\"unix:/run/app.sock:\"")).expect("a unix: backend loads");
    for (variable, message) in [
        (
            "unix:/run/app.sock",
            "expected `unix:<socket path>:<http path>`",
        ),
        ("unix:run/app.sock:", "must be absolute"),
    ] {
        let e = err(&unix(&format!("\"{variable}\"")));
        assert!(e.contains(".integration.uri`"), "{e}");
        assert!(e.contains(message), "{variable}: {e}");
    }
    let e = err(&REFERENCE.replace(
        "\"${stageVariables.backend}/default\"",
        "\"unix:/run/app.sock:default\"",
    ));
    assert!(e.contains("api.routes.$default.integration.uri"), "{e}");
    assert!(e.contains("must start with `/`"), "{e}");
}

#[test]
fn missing_stage_variable_is_named() {
    let e = err(&REFERENCE.replace("/sendmessage\"", "/sendmessage${stageVariables.nope}\""));
    assert!(
        e.contains("api.routes.sendmessage.integration.uri") && e.contains("nope"),
        "{e}"
    );
}

#[test]
fn reserved_route_keys_and_stage_names_fail() {
    let e = err(&REFERENCE.replace("    ping:", "    $ping:"));
    assert!(e.contains("api.routes.$ping"), "{e}");
    let e = err(&REFERENCE.replace("    prod:", "    healthz:"));
    assert!(e.contains("api.stages.healthz"), "{e}");
}

#[test]
fn bad_selection_expression_fails() {
    let e = err(&REFERENCE.replace("$request.body.action", "${request.body.action"));
    assert!(e.contains("api.route_selection_expression"), "{e}");
}

#[test]
fn integration_response_cap_defaults_to_max_message_bytes() {
    let c = Config::from_yaml(REFERENCE).expect("valid");
    assert_eq!(c.limits.max_integration_response_bytes, None);
    assert_eq!(
        c.limits.integration_response_bytes(),
        c.limits.max_message_bytes
    );
    let set = REFERENCE.replace(
        "max_frame_bytes: 32768",
        "max_frame_bytes: 32768\n  max_integration_response_bytes: 1048576",
    );
    let c = Config::from_yaml(&set).expect("valid");
    assert_eq!(c.limits.integration_response_bytes(), 1_048_576);
    let e = err(&REFERENCE.replace(
        "max_frame_bytes: 32768",
        "max_frame_bytes: 32768\n  max_integration_response_bytes: 0",
    ));
    assert!(e.contains("limits.max_integration_response_bytes"), "{e}");
}

#[test]
fn outbound_frame_size_is_zero_or_in_range() {
    let c = Config::from_yaml(REFERENCE).expect("loads");
    assert_eq!(c.limits.max_outbound_frame_bytes, 32_768);
    for (value, ok) in [
        ("0", true),
        ("1024", true),
        ("16777216", true),
        ("1023", false),
        ("16777217", false),
    ] {
        let yaml = REFERENCE.replace(
            "max_frame_bytes: 32768",
            &format!("max_frame_bytes: 32768\n  max_outbound_frame_bytes: {value}"),
        );
        match Config::from_yaml(&yaml) {
            Ok(c) => {
                assert!(ok, "{value} accepted");
                assert_eq!(c.limits.max_outbound_frame_bytes.to_string(), value);
            }
            Err(e) => {
                assert!(!ok, "{value} refused: {e}");
                assert!(
                    e.to_string().contains("limits.max_outbound_frame_bytes"),
                    "{e}"
                );
            }
        }
    }
}

#[test]
fn frame_larger_than_message_fails() {
    let e = err(&REFERENCE.replace("max_frame_bytes: 32768", "max_frame_bytes: 262144"));
    assert!(e.contains("limits.max_frame_bytes"), "{e}");
}

#[test]
fn env_overrides_apply_and_win() {
    let vars = vec![
        ("WSGATE_LIMITS__IDLE_TIMEOUT".to_string(), "5m".to_string()),
        ("WSGATE_LISTEN".to_string(), "0.0.0.0:9000".to_string()),
        (
            "WSGATE_API__STAGES__PROD__VARIABLES__BACKEND".to_string(),
            "http://10.0.0.1:4000".to_string(),
        ),
        ("WSGATE_CONFIG".to_string(), "ignored.yaml".to_string()),
        ("OTHER".to_string(), "x".to_string()),
    ];
    let c = Config::from_yaml_with_env(REFERENCE, vars).expect("loads");
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(300));
    assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(
        c.api.stages["prod"].variables["backend"],
        "http://10.0.0.1:4000"
    );
}

#[test]
fn env_variables_outside_the_config_are_ignored_and_reported() {
    let vars = vec![
        ("WSGATE_KOSOKU".to_string(), "/usr/bin/kosoku".to_string()),
        ("WSGATE_CONFIG".to_string(), "x.yaml".to_string()),
    ];
    let c = Config::from_yaml_with_env(REFERENCE, vars).expect("loads");
    assert_eq!(c.ignored_env, ["WSGATE_KOSOKU"]);
}

#[test]
fn env_sections_match_the_config_fields() {
    // serde lists every field of Config in its unknown-field error.
    let e = Config::from_yaml("zzz_not_a_key: 1")
        .expect_err("fails")
        .to_string();
    let listed = e.split("expected one of ").nth(1).expect("field list");
    let mut fields: Vec<&str> = listed.split(", ").map(|f| f.trim_matches('`')).collect();
    fields.sort_unstable();
    let mut sections = env::SECTIONS.to_vec();
    sections.sort_unstable();
    assert_eq!(fields, sections);
}

#[test]
fn env_override_with_bad_value_names_the_key() {
    let vars = vec![(
        "WSGATE_LIMITS__MAX_CONNECTIONS".to_string(),
        "lots".to_string(),
    )];
    let e = Config::from_yaml_with_env(REFERENCE, vars)
        .expect_err("fails")
        .to_string();
    assert!(e.contains("limits.max_connections"), "{e}");
}

#[test]
fn secrets_are_redacted_in_debug() {
    let text = format!(
        "{REFERENCE}callback:\n  auth:\n    kind: sigv4\n    region: us-east-1\n    credentials:\n      - {{ access_key_id: AKIDEXAMPLE, secret_access_key: topsecretvalue }}\nstore_unused: 1\n"
    )
    .replace("store_unused: 1\n", "");
    let c = Config::from_yaml(&text).expect("loads");
    let debug = format!("{c:?}");
    assert!(debug.contains("AKIDEXAMPLE"));
    assert!(!debug.contains("topsecretvalue"), "{debug}");
    assert_eq!(
        model::redact_url("redis://user:hunter2@localhost:6379/0"),
        "redis://user:***@localhost:6379/0"
    );
}

fn with_store(store: &str, cluster: &str) -> String {
    REFERENCE.replace("store:\n  kind: memory\n", &format!("{store}{cluster}"))
}

#[test]
fn redis_store_and_cluster_sections_load_with_defaults() {
    let config = Config::from_yaml(&with_store(
        "store:\n  kind: redis\n  url: redis://127.0.0.1:6379\n",
        "",
    ))
    .expect("loads");
    let StoreConfig::Redis(redis) = &config.store else {
        panic!("redis store expected");
    };
    assert!(!redis.is_cluster());
    assert_eq!(redis.seeds(), ["redis://127.0.0.1:6379"]);
    assert_eq!(config.cluster.lease_ttl, Duration::from_secs(10));
    assert_eq!(config.cluster.reaper_interval, Duration::from_secs(5));
    assert_eq!(config.cluster.disconnect_claim_ttl, Duration::from_secs(60));

    let config = Config::from_yaml(&with_store(
        "store:\n  kind: redis\n  urls: [redis://127.0.0.1:7000, redis://127.0.0.1:7001]\n  timeout: 500ms\n",
        "cluster:\n  lease_ttl: 3s\n  reaper_interval: 1s\n",
    ))
    .expect("loads");
    let StoreConfig::Redis(redis) = &config.store else {
        panic!("redis store expected");
    };
    assert!(redis.is_cluster());
    assert_eq!(redis.seeds().len(), 2);
    assert_eq!(config.cluster.lease_ttl, Duration::from_secs(3));
}

#[test]
fn bad_redis_and_cluster_settings_name_the_key() {
    let both = "store:\n  kind: redis\n  url: redis://a\n  urls: [redis://b]\n";
    assert!(err(&with_store(both, "")).contains("store.urls"));
    let none = "store:\n  kind: redis\n";
    assert!(err(&with_store(none, "")).contains("store.url"));
    let braces = "store:\n  kind: redis\n  url: redis://a\n  prefix: \"{x}\"\n";
    assert!(err(&with_store(braces, "")).contains("store.prefix"));
    let redis = "store:\n  kind: redis\n  url: redis://a\n  timeout: 2s\n";
    let short = "cluster:\n  lease_ttl: 4s\n";
    assert!(err(&with_store(redis, short)).contains("cluster.lease_ttl"));
    let zero = "cluster:\n  reaper_interval: 0s\n";
    assert!(err(&with_store("", zero)).contains("cluster.reaper_interval"));
    let zero_claim = "cluster:\n  disconnect_claim_ttl: 0s\n";
    assert!(err(&with_store("", zero_claim)).contains("cluster.disconnect_claim_ttl"));
}

#[test]
fn lambda_arns_are_checked_and_bad_aws_keys_named() {
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:chat";
    let with_backend = |backend: &str| REFERENCE.replace("http://127.0.0.1:3000", backend);
    // `${stageVariables.backend}/connect` resolves to the ARN with a `/connect` suffix, which is
    // not a function ARN; a plain ARN route loads.
    let text = REFERENCE.replace(
        "uri: \"${stageVariables.backend}/connect\"",
        &format!("uri: \"{arn}:live\""),
    );
    Config::from_yaml(&text).expect("an ARN integration loads");
    let e = err(&with_backend(arn));
    assert!(
        e.starts_with("config key `api.routes.$connect.integration.uri`"),
        "{e}"
    );
    assert!(e.contains("expected arn:aws:lambda:"), "{e}");
    let e = err(&REFERENCE.replace(
        "uri: \"${stageVariables.backend}/default\"",
        &format!("uri: \"{arn}\""),
    ));
    assert!(e.contains("needs `type: aws_proxy`"), "{e}");
    let e = err(&format!(
        "{REFERENCE}\naws:\n  endpoint_url: localhost:4566\n"
    ));
    assert!(e.starts_with("config key `aws.endpoint_url`"), "{e}");
    let e = err(&format!("{REFERENCE}\naws:\n  endpoint: http://x\n"));
    assert!(
        e.starts_with("config key `aws.endpoint`: unknown field"),
        "{e}"
    );
}

#[test]
fn two_stages_on_one_access_log_file_fail() {
    let yaml = REFERENCE.replace(
        "    prod:\n      variables:\n        backend: http://127.0.0.1:3000\n",
        "    prod:\n      variables:\n        backend: http://127.0.0.1:3000\n      access_log: { format: '$context.status', destination: /var/log/wsgate/a.log }\n    beta:\n      variables:\n        backend: http://127.0.0.1:3000\n      access_log: { format: '$context.status', destination: /var/log/wsgate/../wsgate/a.log }\n",
    );
    let error = err(&yaml);
    assert!(
        error.contains("api.stages.") && error.contains("is already the access log of stage"),
        "{error}"
    );
    // Each on its own file is fine.
    let yaml = yaml.replace("/var/log/wsgate/../wsgate/a.log", "/var/log/wsgate/b.log");
    Config::from_yaml(&yaml).expect("distinct files load");
}
