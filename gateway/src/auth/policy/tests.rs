//! REQUEST authorizer answers: both forms, policy evaluation, and fail-closed cases.

use serde_json::json;

use super::*;

const ARN: &str = "arn:aws:execute-api:us-east-1:000000000000:chat/prod/$connect";

fn answer(value: Value) -> Result<Decision, AuthError> {
    parse(value.to_string().as_bytes(), ARN)
}

fn policy(effect: &str, resource: Value) -> Value {
    json!({
        "principalId": "user-1",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{ "Action": "execute-api:Invoke", "Effect": effect, "Resource": resource }]
        },
        "context": { "tenant": "acme", "level": 3, "admin": false },
        "usageIdentifierKey": "KEYVALUE0123456789abc"
    })
}

#[test]
fn allow_policy_gives_context_and_key() {
    let Ok(Decision::Allow(a)) = answer(policy("Allow", json!(ARN))) else {
        panic!("allowed");
    };
    assert_eq!(
        Value::Object(a.context),
        json!({"principalId": "user-1", "tenant": "acme", "level": 3, "admin": false})
    );
    assert_eq!(
        a.usage_identifier_key.as_deref(),
        Some("KEYVALUE0123456789abc")
    );
}

#[test]
fn wildcards_match_like_iam() {
    for resource in [
        json!("arn:aws:execute-api:*:*:chat/prod/*"),
        json!(["arn:aws:execute-api:us-east-1:000000000000:other/*", "*"]),
        json!("arn:aws:execute-api:us-east-?:*:*/*/$connect"),
    ] {
        assert!(
            matches!(
                answer(policy("Allow", resource.clone())),
                Ok(Decision::Allow(_))
            ),
            "{resource}"
        );
    }
    assert!(matches!(
        answer(policy("Allow", json!("arn:aws:execute-api:*:*:chat/dev/*"))),
        Ok(Decision::Deny)
    ));
}

#[test]
fn deny_wins_and_no_match_denies() {
    assert!(matches!(
        answer(policy("Deny", json!("*"))),
        Ok(Decision::Deny)
    ));
    let mut both = policy("Allow", json!("*"));
    both["policyDocument"]["Statement"]
        .as_array_mut()
        .expect("array")
        .push(json!({"Action": "*", "Effect": "Deny", "Resource": ARN}));
    assert!(matches!(answer(both), Ok(Decision::Deny)));
    let mut other_action = policy("Allow", json!("*"));
    other_action["policyDocument"]["Statement"][0]["Action"] =
        json!("execute-api:ManageConnections");
    assert!(matches!(answer(other_action), Ok(Decision::Deny)));
}

#[test]
fn simple_form() {
    let Ok(Decision::Allow(a)) = answer(json!({"isAuthorized": true, "context": {"user": "u1"}}))
    else {
        panic!("allowed");
    };
    assert_eq!(Value::Object(a.context), json!({"user": "u1"}));
    assert!(matches!(
        answer(json!({"isAuthorized": false})),
        Ok(Decision::Deny)
    ));
}

#[test]
fn unauthorized_and_failures() {
    assert!(matches!(
        answer(json!({"errorMessage": "Unauthorized", "errorType": "Error"})),
        Err(AuthError::Unauthorized)
    ));
    assert!(matches!(
        answer(json!({"errorMessage": "boom"})),
        Err(AuthError::AuthorizerFailed(CallError::FunctionError))
    ));
    let mut nested = policy("Allow", json!("*"));
    nested["context"]["claims"] = json!({"a": 1});
    let cases = [
        nested,
        json!({"policyDocument": {"Statement": []}}),
        json!({"principalId": "u"}),
        json!({"isAuthorized": "yes"}),
        json!([1, 2]),
        json!({"principalId": "u", "policyDocument": {"Statement": [{"Effect": "Allow"}]}}),
    ];
    for case in cases {
        assert!(
            matches!(answer(case.clone()), Err(AuthError::AuthorizerFailed(_))),
            "{case}"
        );
    }
    assert!(matches!(
        parse(b"not json", ARN),
        Err(AuthError::AuthorizerFailed(_))
    ));
}

#[test]
fn null_context_values_pass_and_stringify_keeps_strings_and_null() {
    let mut answer = policy("Allow", json!("*"));
    answer["context"] = json!({"n": 123, "f": 1.5, "b": false, "s": "x", "z": null});
    let Ok(Decision::Allow(mut a)) = parse(answer.to_string().as_bytes(), ARN) else {
        panic!("allowed");
    };
    assert_eq!(a.context["z"], Value::Null);
    assert_eq!(a.context["n"], json!(123));
    stringify_context(&mut a.context);
    assert_eq!(
        Value::Object(a.context),
        json!({"n": "123", "f": "1.5", "b": "false", "s": "x", "z": null, "principalId": "user-1"})
    );
}

/// A statement the gateway cannot fully evaluate never opens access: an `Allow` with a
/// `Condition` does not allow, a `Deny` with one denies; `NotAction` and `NotResource` are
/// evaluated as IAM does.
#[test]
fn conditions_never_fail_open_and_not_forms_are_evaluated() {
    let with = |statement: Value| {
        answer(json!({
            "principalId": "user-1",
            "policyDocument": { "Version": "2012-10-17", "Statement": [statement] }
        }))
    };
    let conditional_allow = json!({
        "Effect": "Allow", "Action": "execute-api:Invoke", "Resource": ARN,
        "Condition": { "IpAddress": { "aws:SourceIp": "10.0.0.0/8" } }
    });
    assert!(matches!(with(conditional_allow), Ok(Decision::Deny)));
    let conditional_deny = json!([
        { "Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*" },
        { "Effect": "Deny", "Action": "execute-api:Invoke", "Resource": "*",
          "Condition": { "Bool": { "aws:SecureTransport": "false" } } }
    ]);
    assert!(matches!(
        answer(json!({
            "principalId": "user-1",
            "policyDocument": { "Version": "2012-10-17", "Statement": conditional_deny }
        })),
        Ok(Decision::Deny)
    ));
    let not_action =
        json!({ "Effect": "Allow", "NotAction": "execute-api:ManageConnections", "Resource": ARN });
    assert!(matches!(with(not_action), Ok(Decision::Allow(_))));
    let not_action_excluding =
        json!({ "Effect": "Allow", "NotAction": "execute-api:*", "Resource": ARN });
    assert!(matches!(with(not_action_excluding), Ok(Decision::Deny)));
    let not_resource = json!({ "Effect": "Allow", "Action": "execute-api:Invoke",
        "NotResource": "arn:aws:execute-api:*:*:chat/dev/*" });
    assert!(matches!(with(not_resource), Ok(Decision::Allow(_))));
    let not_resource_excluding = json!({ "Effect": "Allow", "Action": "execute-api:Invoke",
        "NotResource": "arn:aws:execute-api:*:*:chat/prod/*" });
    assert!(matches!(with(not_resource_excluding), Ok(Decision::Deny)));
    // Lowercase effects, as some authorizers write them, keep working.
    assert!(matches!(
        answer(policy("allow", json!(ARN))),
        Ok(Decision::Allow(_))
    ));
}
