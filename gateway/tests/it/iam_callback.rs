//! IAM on the callback API through boto3: per-key identity policies on
//! `execute-api:ManageConnections` (allow, implicit deny, explicit deny, `NotAction`, a
//! `Condition` that fails closed) answered with `AccessDeniedException`, and STS session tokens.
//!
//! AWS sources: the action and its resource
//! `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{POST|GET|DELETE}/@connections/{id}`
//! ("Use @connections commands in your backend service" and "Control access to WebSocket APIs
//! with IAM authorization", reference §3.2, CDK PR #18544); IAM evaluation (explicit deny wins,
//! no allow is an implicit deny, `NotAction`) per
//! https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html;
//! the refusal `403 AccessDeniedException` worded "User: … is not authorized to perform: … on
//! resource: …[ with an explicit deny]"
//! (https://repost.aws/knowledge-center/api-gateway-access-denied); boto3 raises `ClientError`
//! with the code from `x-amzn-ErrorType` (botocore `RestJSONParser`, reference §3.1).

use serde_json::Value;

use crate::support::iam::{Key, manage};
use crate::support::{Backend, TestGateway, config, connect_and_id, expect_close};

fn key(access_key_id: &'static str) -> Key<'static> {
    Key {
        access_key_id,
        secret: "secret-key-for-tests",
        token: None,
    }
}

const RESOURCE: &str = "arn:aws:execute-api:us-east-1:123456789012:chat/prod";

fn keys() -> String {
    let entry = |id: &str, extra: &str| {
        format!(
            "      - access_key_id: {id}\n        secret_access_key: secret-key-for-tests\n{extra}"
        )
    };
    let policy = |statements: &str| {
        format!(
            "        policy:\n          Version: \"2012-10-17\"\n          Statement:\n{statements}"
        )
    };
    [
        entry("AKIDFULL", ""),
        entry(
            "AKIDPOSTONLY",
            &policy(&format!(
                "            - {{ Effect: Allow, Action: execute-api:ManageConnections, Resource: \"{RESOURCE}/POST/@connections/*\" }}\n"
            )),
        ),
        entry(
            "AKIDNODELETE",
            &policy(&format!(
                "            - {{ Effect: Allow, Action: \"execute-api:*\", Resource: \"*\" }}\n            - {{ Effect: Deny, Action: execute-api:ManageConnections, Resource: \"{RESOURCE}/DELETE/@connections/*\" }}\n"
            )),
        ),
        entry(
            "AKIDNOTACTION",
            &policy(
                "            - { Effect: Allow, Action: \"*\", Resource: \"*\" }\n            - { Effect: Deny, NotAction: execute-api:Invoke, Resource: \"*\" }\n",
            ),
        ),
        entry(
            "AKIDCONDITION",
            &policy(
                "            - Effect: Allow\n              NotAction: execute-api:Invoke\n              Resource: \"*\"\n              Condition: { IpAddress: { \"aws:SourceIp\": 127.0.0.1/32 } }\n",
            ),
        ),
        entry(
            "ASIASESSION",
            "        session_token: the-session-token/with+chars=\n        user_arn: arn:aws:sts::111122223333:assumed-role/Pusher/s1\n",
        ),
    ]
    .concat()
}

async fn iam_gateway(backend: &Backend) -> TestGateway {
    let extra = format!(
        "iam:\n  account_id: \"123456789012\"\ncallback:\n  auth:\n    kind: sigv4\n    region: us-east-1\n    credentials:\n{}",
        keys()
    );
    TestGateway::start(&config(&backend.url(), &extra)).await
}

fn assert_ok(result: &Value, status: u16) {
    assert_eq!(result["status"], status, "{result}");
    assert!(result.get("raised").is_none(), "{result}");
}

fn assert_denied(result: &Value, user: &str, method: &str, id: &str, explicit: bool) {
    assert_eq!(result["raised"], "ClientError", "{result}");
    assert_eq!(result["code"], "AccessDeniedException", "{result}");
    assert_eq!(result["status"], 403, "{result}");
    let suffix = if explicit {
        " with an explicit deny"
    } else {
        ""
    };
    let expected = format!(
        "User: {user} is not authorized to perform: execute-api:ManageConnections on resource: {RESOURCE}/{method}/@connections/{id}{suffix}"
    );
    assert_eq!(result["message"], expected.as_str(), "{result}");
}

fn ops(list: &[&str], id: &str) -> Vec<String> {
    list.iter().map(|op| format!("{op}:{id}")).collect()
}

/// Policies per key: a key without one may do everything; an Allow limited to POST allows
/// only POST (GET and DELETE: implicit deny); an explicit Deny on DELETE overrides
/// `execute-api:*`; a Deny with `NotAction` covers ManageConnections; an Allow under a
/// `Condition` the gateway cannot evaluate never allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_policies_allow_and_deny_manage_connections() {
    let backend = Backend::ok().await;
    let mut gw = iam_gateway(&backend).await;
    let endpoint = gw.http_url("/prod");
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let user = |key: &str| format!("arn:aws:iam::123456789012:user/{key}");

    let post_only = manage(
        &endpoint,
        key("AKIDPOSTONLY"),
        &ops(&["post", "get", "delete"], &id),
    )
    .await;
    assert_ok(&post_only[0], 200);
    assert_denied(&post_only[1], &user("AKIDPOSTONLY"), "GET", &id, false);
    assert_denied(&post_only[2], &user("AKIDPOSTONLY"), "DELETE", &id, false);

    let no_delete = manage(
        &endpoint,
        key("AKIDNODELETE"),
        &ops(&["get", "delete"], &id),
    )
    .await;
    assert_ok(&no_delete[0], 200);
    assert_denied(&no_delete[1], &user("AKIDNODELETE"), "DELETE", &id, true);

    let not_action = manage(&endpoint, key("AKIDNOTACTION"), &ops(&["post"], &id)).await;
    assert_denied(&not_action[0], &user("AKIDNOTACTION"), "POST", &id, true);

    let condition = manage(&endpoint, key("AKIDCONDITION"), &ops(&["post"], &id)).await;
    assert_denied(&condition[0], &user("AKIDCONDITION"), "POST", &id, false);

    // The connection is still there; the key without a policy may delete it.
    let full = manage(&endpoint, key("AKIDFULL"), &ops(&["get", "delete"], &id)).await;
    assert_ok(&full[0], 200);
    assert_ok(&full[1], 204);
    assert_eq!(expect_close(&mut ws).await.0, 1000);
    gw.shutdown().await;
}

/// STS session credentials on the callback API: the right token is accepted; none, a wrong
/// one, or one on a key without a token is refused with `UnrecognizedClientException` "The
/// security token included in the request is invalid." (as AWS answers an invalid token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tokens_are_checked_on_callbacks() {
    let backend = Backend::ok().await;
    let mut gw = iam_gateway(&backend).await;
    let endpoint = gw.http_url("/prod");
    let (_ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let session = Key {
        token: Some("the-session-token/with+chars="),
        ..key("ASIASESSION")
    };
    let ok = manage(&endpoint, session, &ops(&["post", "get"], &id)).await;
    assert_ok(&ok[0], 200);
    assert_ok(&ok[1], 200);
    for bad in [
        Key {
            token: None,
            ..session
        },
        Key {
            token: Some("the-session-token/wrong"),
            ..session
        },
        Key {
            token: Some("unexpected"),
            ..key("AKIDFULL")
        },
    ] {
        let result = &manage(&endpoint, bad, &ops(&["post"], &id)).await[0];
        assert_eq!(result["raised"], "ClientError", "{result}");
        assert_eq!(result["code"], "UnrecognizedClientException", "{result}");
        assert_eq!(result["status"], 403, "{result}");
        assert_eq!(
            result["message"], "The security token included in the request is invalid.",
            "{result}"
        );
    }
    gw.shutdown().await;
}
