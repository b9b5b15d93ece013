//! The IAM policy evaluator: wildcards, explicit deny, implicit deny, and the fail-closed
//! handling of what it cannot decide (`Condition`, policy variables). Semantics per the IAM
//! User Guide, "Policy evaluation logic" and "IAM JSON policy elements" (`NotAction`,
//! `NotResource`, `ArnLike`): https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html

use serde_json::json;

use super::*;
use crate::config::PolicyDocument;

const CONN: &str = "arn:aws:execute-api:us-east-1:123456789012:chat/prod/POST/@connections/abc=";
const GET: &str = "arn:aws:execute-api:us-east-1:123456789012:chat/prod/GET/@connections/abc=";
const MANAGE: &str = "execute-api:ManageConnections";

fn policy(statements: serde_json::Value) -> Policy {
    let document: PolicyDocument =
        serde_json::from_value(json!({"Version": "2012-10-17", "Statement": statements}))
            .expect("a policy document");
    Policy::new(&document)
}

#[test]
fn wildcards_match_as_iam_does() {
    assert!(wildcard_match("*", ""));
    assert!(wildcard_match("a*b*c", "aXXbYYc"));
    assert!(!wildcard_match("a*b", "aXXc"));
    assert!(wildcard_match("a?c", "abc"));
    assert!(!wildcard_match("a?c", "ac"));
    assert!(!wildcard_match("abc", "abcd"));
}

#[test]
fn allow_by_action_forms_and_resource_wildcards() {
    for action in [
        json!("execute-api:ManageConnections"),
        json!("execute-api:managecONNECTIONS"),
        json!("execute-api:*"),
        json!("*"),
        json!(["execute-api:Invoke", "execute-api:Manage*"]),
        json!("execute-api:Manage?onnections"),
    ] {
        let p = policy(json!([{"Effect": "Allow", "Action": action, "Resource": "*"}]));
        assert_eq!(p.evaluate(MANAGE, CONN), Decision::Allow, "{action}");
    }
    for resource in [
        "arn:aws:execute-api:us-east-1:123456789012:chat/prod/POST/@connections/*",
        "arn:aws:execute-api:*:*:chat/*",
        "arn:aws:execute-api:us-east-1:123456789012:chat/prod/*/@connections/abc?",
    ] {
        let p = policy(json!([{"Effect": "Allow", "Action": MANAGE, "Resource": resource}]));
        assert_eq!(p.evaluate(MANAGE, CONN), Decision::Allow, "{resource}");
    }
}

#[test]
fn nothing_allowing_is_an_implicit_deny() {
    let p = policy(json!([
        {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"},
        {"Effect": "Allow", "Action": MANAGE,
         "Resource": "arn:aws:execute-api:us-east-1:123456789012:chat/prod/GET/@connections/*"},
        // Resources match case-sensitively, ARN part by ARN part.
        {"Effect": "Allow", "Action": MANAGE,
         "Resource": "arn:aws:execute-api:us-east-1:123456789012:CHAT/prod/POST/@connections/*"},
        {"Effect": "Allow", "Action": MANAGE,
         "Resource": "arn:aws:execute-api:us-east-1:1234*:other/*"},
    ]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::ImplicitDeny);
    assert_eq!(p.evaluate(MANAGE, GET), Decision::Allow);
}

#[test]
fn explicit_deny_overrides_allow() {
    let p = policy(json!([
        {"Effect": "Allow", "Action": "execute-api:*", "Resource": "*"},
        {"Effect": "Deny", "Action": MANAGE,
         "Resource": "arn:aws:execute-api:*:*:chat/prod/POST/@connections/*"},
    ]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::ExplicitDeny);
    assert_eq!(p.evaluate(MANAGE, GET), Decision::Allow);
}

#[test]
fn not_action_and_not_resource_cover_the_complement() {
    // Allow everything but Invoke: ManageConnections is allowed.
    let p =
        policy(json!([{"Effect": "Allow", "NotAction": "execute-api:Invoke", "Resource": "*"}]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::Allow);
    assert_eq!(
        p.evaluate("execute-api:Invoke", CONN),
        Decision::ImplicitDeny
    );
    // Deny everything but Invoke: ManageConnections is denied, even beside an Allow.
    let p = policy(json!([
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "NotAction": "execute-api:Invoke", "Resource": "*"},
    ]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::ExplicitDeny);
    // Deny every resource but GETs.
    let p = policy(json!([
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "*",
         "NotResource": "arn:aws:execute-api:*:*:chat/prod/GET/*"},
    ]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::ExplicitDeny);
    assert_eq!(p.evaluate(MANAGE, GET), Decision::Allow);
}

#[test]
fn conditions_never_allow_and_always_deny() {
    let condition = json!({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}});
    let p = policy(json!([
        {"Effect": "Allow", "Action": MANAGE, "Resource": "*", "Condition": condition},
    ]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::ImplicitDeny);
    let p = policy(json!([
        {"Effect": "Allow", "Action": MANAGE, "Resource": "*"},
        {"Effect": "Deny", "Action": MANAGE, "Resource": "*", "Condition": condition},
    ]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::ExplicitDeny);
    // A conditional Deny on other actions leaves this one alone: what can be evaluated is.
    let p = policy(json!([
        {"Effect": "Allow", "Action": MANAGE, "Resource": "*"},
        {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": "*", "Condition": condition},
    ]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::Allow);
    // NotAction under a Condition fails closed the same way.
    let p = policy(json!([
        {"Effect": "Allow", "NotAction": "execute-api:Invoke", "Resource": "*", "Condition": condition},
    ]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::ImplicitDeny);
}

#[test]
fn policy_variables_never_allow_and_always_deny() {
    let variable = "arn:aws:execute-api:*:*:chat/prod/*/@connections/${aws:userid}";
    let p = policy(json!([{"Effect": "Allow", "Action": MANAGE, "Resource": variable}]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::ImplicitDeny);
    let p = policy(json!([
        {"Effect": "Allow", "Action": MANAGE, "Resource": "*"},
        {"Effect": "Deny", "Action": MANAGE, "Resource": variable},
    ]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::ExplicitDeny);
    // Under NotResource the unknown stays unknown: no Allow from it either.
    let p = policy(json!([{"Effect": "Allow", "Action": MANAGE, "NotResource": variable}]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::ImplicitDeny);
}

#[test]
fn statements_the_check_refuses_still_fail_closed() {
    // Neither Action nor NotAction, or an unknown Effect: never an Allow.
    let p = policy(json!([
        {"Effect": "Allow", "Resource": "*"},
        {"Effect": "allow", "Action": "*", "Resource": "*"},
    ]));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::ExplicitDeny);
    // A single statement object (not a list) is read too.
    let p = policy(json!({"Effect": "Allow", "Action": MANAGE, "Resource": CONN}));
    assert_eq!(p.evaluate(MANAGE, CONN), Decision::Allow);
}
