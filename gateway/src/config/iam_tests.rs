//! Tests of the IAM configuration: `authorization_type`, `iam.principals` and
//! `callback.auth.credentials` entries, and policy documents; every mistake names its key.

use super::*;

fn err(text: &str) -> String {
    Config::from_yaml(text).expect_err("must fail").to_string()
}

fn base(connect_extra: &str, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages: {{ prod: {{}} }}
  routes:
    $connect:
      integration: {{ type: mock }}
{connect_extra}
    $default:
      integration: {{ type: mock }}
{extra}
"#
    )
}

const IAM: &str = "      authorization_type: AWS_IAM";

fn principal(extra: &str) -> String {
    format!("iam:\n  principals:\n    - access_key_id: AKIDA\n{extra}")
}

const SECRET: &str = "      secret_access_key: s\n";

#[test]
fn aws_iam_loads_with_defaults() {
    let config = Config::from_yaml(&base(IAM, &principal(SECRET))).expect("loads");
    let connect = &config.api.routes["$connect"];
    assert_eq!(connect.authorization(), AuthorizationType::AwsIam);
    assert_eq!(config.iam.region, DEFAULT_IAM_REGION);
    assert_eq!(config.iam.account_id, DEFAULT_IAM_ACCOUNT);
    assert_eq!(config.iam.max_skew, std::time::Duration::from_secs(300));
    assert_eq!(
        Config::from_yaml(&base("", "")).expect("loads").api.routes["$connect"].authorization(),
        AuthorizationType::None
    );
}

#[test]
fn authorization_type_mistakes_name_their_key() {
    let e = err(&base(IAM, ""));
    assert!(e.contains("`iam.principals`"), "{e}");
    let e = err(&base("      authorization_type: CUSTOM", ""));
    assert!(e.contains("api.routes.$connect.authorization_type"), "{e}");
    let e = err(&base("      authorization_type: JWT", ""));
    assert!(e.contains("api.routes.$connect.authorization_type"), "{e}");
    let text = base("", &principal(SECRET)).replace(
        "    $default:\n      integration: { type: mock }",
        "    $default:\n      integration: { type: mock }\n      authorization_type: AWS_IAM",
    );
    assert!(err(&text).contains("api.routes.$default.authorization_type"));
}

#[test]
fn principal_mistakes_name_their_key() {
    let cases = [
        ("", "iam.principals[0].secret_access_key"),
        (
            "      secret_access_key: s\n      secret_access_key_env: S\n",
            "iam.principals[0].secret_access_key",
        ),
        (
            "      secret_access_key: s\n      session_token: t\n      session_token_env: T\n",
            "iam.principals[0].session_token",
        ),
        (
            "      secret_access_key: s\n      user_arn: alice\n",
            "iam.principals[0].user_arn",
        ),
        (
            "      secret_access_key: s\n    - access_key_id: AKIDA\n      secret_access_key: t\n",
            "iam.principals[1].access_key_id",
        ),
    ];
    for (extra, key) in cases {
        let e = err(&base(IAM, &principal(extra)));
        assert!(e.contains(&format!("`{key}`")), "{key}: {e}");
    }
}

#[test]
fn policy_mistakes_name_their_key() {
    let policy = |statement: &str| {
        principal(&format!(
            "{SECRET}      policy:\n        Version: \"2012-10-17\"\n        Statement:\n          - {statement}\n"
        ))
    };
    let cases = [
        (
            "{ Effect: Permit, Action: \"*\", Resource: \"*\" }",
            "Statement[0].Effect",
        ),
        ("{ Effect: Allow, Resource: \"*\" }", "Statement[0].Action"),
        (
            "{ Effect: Allow, Action: \"*\", NotAction: \"*\", Resource: \"*\" }",
            "Statement[0].Action",
        ),
        ("{ Effect: Allow, Action: \"*\" }", "Statement[0].Resource"),
        (
            "{ Effect: Allow, Action: invoke, Resource: \"*\" }",
            "Statement[0].Action",
        ),
        (
            "{ Effect: Allow, Action: \"*\", Resource: \"arn:aws:execute-api\" }",
            "Statement[0].Resource",
        ),
        (
            "{ Effect: Allow, Action: [], Resource: \"*\" }",
            "Statement[0].Action",
        ),
        (
            "{ Effect: Allow, Action: \"*\", Resource: \"*\", Principal: \"*\" }",
            "Statement",
        ),
    ];
    for (statement, key) in cases {
        let e = err(&base(IAM, &policy(statement)));
        assert!(
            e.contains(&format!("iam.principals[0].policy.{key}")) || e.contains("policy"),
            "{statement}: {e}"
        );
        assert!(e.contains("iam.principals[0]"), "{statement}: {e}");
    }
    // The same checks apply to callback keys.
    let callback = "callback:\n  auth:\n    kind: sigv4\n    region: us-east-1\n    credentials:\n      - access_key_id: AKIDA\n        secret_access_key: s\n        policy: { Statement: [{ Effect: Deny, Action: \"*\" }] }\n";
    let e = err(&base("", callback));
    assert!(
        e.contains("callback.auth.credentials[0].policy.Statement[0].Resource"),
        "{e}"
    );
}

#[test]
fn secrets_are_redacted_in_debug() {
    let config = Config::from_yaml(&base(
        IAM,
        &principal(
            "      secret_access_key: top-secret-value\n      session_token: session-token-value\n",
        ),
    ))
    .expect("loads");
    let shown = format!("{:?}", config.iam);
    assert!(shown.contains("AKIDA"), "{shown}");
    assert!(!shown.contains("top-secret-value") && !shown.contains("session-token-value"));
}

/// The `iam:` part of the example in docs/security.md ("`AWS_IAM` on `$connect`") loads.
#[test]
fn documented_iam_example_loads() {
    let doc = include_str!("../../../docs/security.md");
    let section = &doc[doc.find("## `AWS_IAM` on `$connect`").expect("the section")..];
    let start = section.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let block = &section[start..start + section[start..].find("```").expect("block end")];
    let iam = &block[..block.find("\napi:").expect("the api part")];
    let config = Config::from_yaml(&base(IAM, iam)).expect("the documented example loads");
    assert_eq!(config.iam.principals.len(), 2);
    assert!(config.iam.principals[1].policy.is_some());
}
