//! Tests of the security configuration: the documented example loads, and every mistake names
//! its key.

use std::time::Duration;

use super::*;

/// The first YAML block of `docs/security.md`: the documentation's example must load.
fn documented_example() -> String {
    let doc = include_str!("../../../docs/security.md");
    let start = doc.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let end = start + doc[start..].find("```").expect("block end");
    doc[start..end].to_string()
}

fn err(text: &str) -> String {
    Config::from_yaml(text).expect_err("must fail").to_string()
}

fn base(connect_extra: &str, api_extra: &str, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages: {{ prod: {{ variables: {{ auth: "http://127.0.0.1:9000" }} }} }}
  routes:
    $connect:
      integration: {{ type: mock }}
{connect_extra}
    $default:
      integration: {{ type: mock }}
{api_extra}
{extra}
"#
    )
}

const JWT: &str = r#"  authorizers:
    users:
      type: jwt
      algorithms: [RS256]
      jwks: { url: "https://idp.example.test/jwks.json" }"#;

#[test]
fn documented_example_loads() {
    let c = Config::from_yaml(&documented_example()).expect("docs/security.md example loads");
    assert_eq!(c.api.authorizers.len(), 2);
    let connect = &c.api.routes["$connect"];
    assert_eq!(connect.authorizer.as_deref(), Some("users"));
    assert!(connect.api_key_required);
    match &c.api.authorizers["users"] {
        AuthorizerConfig::Jwt(jwt) => {
            assert_eq!(jwt.leeway, Duration::from_secs(30));
            assert_eq!(jwt.keys.len(), 2);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(c.api_keys.len(), 2);
    assert_eq!(c.security.max_connections_per_ip, Some(50));
    assert!(!c.security.allow_missing_origin);
}

#[test]
fn defaults_change_nothing() {
    let c = Config::from_yaml(&base("", "", "")).expect("loads");
    assert!(c.api.authorizers.is_empty());
    assert_eq!(
        c.api.api_key_selection_expression,
        "$request.header.x-api-key"
    );
    assert!(c.security.allowed_origins.is_empty());
    assert!(c.security.allow_missing_origin);
    assert_eq!(c.security.max_connections_per_ip, None);
}

#[test]
fn route_settings_are_checked() {
    let e = err(&base("      authorizer: nobody", JWT, ""));
    assert!(
        e.contains("api.routes.$connect.authorizer") && e.contains("nobody"),
        "{e}"
    );
    let text = base("", JWT, "").replace(
        "    $default:\n      integration: { type: mock }",
        "    $default:\n      integration: { type: mock }\n      authorizer: users",
    );
    let e = err(&text);
    assert!(e.contains("api.routes.$default.authorizer"), "{e}");
    let e = err(&base("      api_key_required: true", "", ""));
    assert!(e.contains("api.routes.$connect.api_key_required"), "{e}");
}

#[test]
fn jwt_mistakes_name_their_key() {
    let cases = [
        // Inside a tagged section the path stops at the section; the message names the value.
        (JWT.replace("[RS256]", "[none]"), "unknown variant `none`"),
        (
            JWT.replace("[RS256]", "[]"),
            "api.authorizers.users.algorithms",
        ),
        (
            JWT.replace(
                "      jwks: { url: \"https://idp.example.test/jwks.json\" }",
                "",
            ),
            "api.authorizers.users",
        ),
        (
            format!("{JWT}\n      leeway: 5m"),
            "api.authorizers.users.leeway",
        ),
        (
            format!("{JWT}\n      identity_sources: [method.request.header.x]"),
            "api.authorizers.users.identity_sources",
        ),
        (
            format!("{JWT}\n      keys: [{{ secret: a, pem_file: b }}]"),
            "api.authorizers.users.keys[0]",
        ),
        (format!("{JWT}\n      kyes: []"), "unknown field `kyes`"),
        (
            JWT.replace("https://idp.example.test/jwks.json", "file:///etc/passwd"),
            "api.authorizers.users.jwks.url",
        ),
    ];
    for (api, key) in cases {
        let e = err(&base("      authorizer: users", &api, ""));
        assert!(e.contains(key), "{key}: {e}");
    }
}

#[test]
fn request_authorizer_mistakes_name_their_key() {
    let request = r#"  authorizers:
    lambda:
      type: request
      uri: "${stageVariables.auth}/invoke""#;
    let cases = [
        (
            format!("{request}\n      result_ttl: 5m"),
            "api.authorizers.lambda.result_ttl",
        ),
        (
            format!(
                "{request}\n      identity_sources: [route.request.header.a]\n      result_ttl: 2h"
            ),
            "api.authorizers.lambda.result_ttl",
        ),
        (
            request.replace("auth}", "nope}"),
            "api.authorizers.lambda.uri",
        ),
        (
            format!("{request}\n      timeout: 1ms"),
            "api.authorizers.lambda.timeout",
        ),
    ];
    for (api, key) in cases {
        let e = err(&base("      authorizer: lambda", &api, ""));
        assert!(e.contains(key), "{key}: {e}");
    }
    let text = base(
        "      authorizer: lambda\n      api_key_required: true",
        &format!(
            "{request}\n  api_key_selection_expression: $context.authorizer.usageIdentifierKey"
        ),
        &format!(
            "api_keys: [{{ id: a, value_sha256: \"{}\", usage_plan: p }}]",
            "0".repeat(64)
        ),
    );
    Config::from_yaml(&text).expect("usageIdentifierKey with a request authorizer loads");
    let e = err(&text.replace("type: request", "type: jwt"));
    assert!(e.contains("api.authorizers.lambda"), "{e}");
}

#[test]
fn api_key_and_security_mistakes_name_their_key() {
    let key = |extra: &str| format!("api_keys:\n  - {{ id: a, usage_plan: p{extra} }}");
    let digest = format!(", value_sha256: \"{}\"", "a".repeat(64));
    let cases = [
        (key(""), "api_keys[0]"),
        (key(", value_sha256: xyz"), "api_keys[0].value_sha256"),
        (key(&format!("{digest}, value_env: K")), "api_keys[0]"),
        (
            format!("{}\n  - {{ id: a, usage_plan: q{digest} }}", key(&digest)),
            "api_keys[1].id",
        ),
        (
            "security:\n  allowed_origins: [\"https://ok.test\", \"https://a.test/path\"]".into(),
            "security.allowed_origins[1]",
        ),
        (
            "security:\n  max_connections_per_ip: 0".into(),
            "security.max_connections_per_ip",
        ),
        (
            "security:\n  handshake_rate_per_ip: { rate: 0, burst: 5 }".into(),
            "security.handshake_rate_per_ip.rate",
        ),
        (
            "security:\n  handshake_rate_per_ip: { rate: 5, burst: 0 }".into(),
            "security.handshake_rate_per_ip.burst",
        ),
        (
            "security:\n  allowed_origin: []".into(),
            "security.allowed_origin",
        ),
        (
            "security:\n  trusted_proxies: [10.0.0.0/8, lb.internal]".into(),
            "security.trusted_proxies[1]",
        ),
        (
            "callback:\n  listen_proxy_protocol: true".into(),
            "callback.listen_proxy_protocol",
        ),
    ];
    for (extra, path) in cases {
        let e = err(&base("", "", &extra));
        assert!(e.contains(path), "{path}: {e}");
    }
    let e = err(&base(
        "",
        "  api_key_selection_expression: $request.body.key",
        "",
    ));
    assert!(e.contains("api.api_key_selection_expression"), "{e}");
}

#[test]
fn secrets_are_redacted_in_debug() {
    let text = base(
        "",
        r#"  authorizers:
    users:
      type: jwt
      algorithms: [HS256]
      keys: [{ secret: "TOPSECRET-0123456789-0123456789-x" }]"#,
        &format!(
            "api_keys: [{{ id: a, value_sha256: \"{}\", usage_plan: p }}]",
            "b".repeat(64)
        ),
    );
    let c = Config::from_yaml(&text).expect("loads");
    let debug = format!("{c:?}");
    assert!(!debug.contains("TOPSECRET"), "{debug}");
    assert!(!debug.contains(&"b".repeat(64)), "{debug}");
}
