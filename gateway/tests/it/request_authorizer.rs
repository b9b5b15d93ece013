//! The `request` authorizer (the Lambda REQUEST authorizer contract over HTTP) on real sockets:
//! the event it gets, allow/deny/401/500 outcomes, and the result cache proven by counting calls.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::support::secured::{handshake, secured_config};
use crate::support::*;

/// The Lambda Runtime Interface Emulator's invoke path.
const INVOKE: &str = "/2015-03-31/functions/function/invocations";
const ARN: &str = "arn:aws:execute-api:us-east-1:000000000000:chat/prod/$connect";
const API_KEY: &str = "k3yV4lue0123456789abcdEF";

fn authorizer(ttl: &str) -> String {
    format!(
        r#"authorizers:
  lambda:
    type: request
    uri: "${{stageVariables.backend}}{INVOKE}"
    identity_sources: [route.request.header.Authorization]
    timeout: 500ms
    result_ttl: {ttl}"#
    )
}

fn policy(effect: &str, extra: Value) -> String {
    let mut answer = json!({
        "principalId": "user-1",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": ARN}]
        },
        "context": {"tenant": "acme", "n": 1, "beta": true}
    });
    if let (Some(answer), Value::Object(extra)) = (answer.as_object_mut(), extra) {
        answer.extend(extra);
    }
    answer.to_string()
}

/// An authorizer that decides by the `Authorization` header it is sent.
fn decide(r: &Received, never: &Arc<Notify>) -> Reply {
    if r.path != INVOKE {
        return Reply::lambda(200, None);
    }
    let event = r.json();
    // Names arrive as the client spelled them; this client's HTTP library sends lowercase.
    let token = event["headers"]["authorization"].as_str().unwrap_or("");
    match token {
        t if t.starts_with("allow") => Reply::http(200, &policy("Allow", json!({}))),
        "deny" => Reply::http(200, &policy("Deny", json!({}))),
        "key" => Reply::http(
            200,
            &policy("Allow", json!({"usageIdentifierKey": API_KEY})),
        ),
        "wrong-key" => Reply::http(
            200,
            &policy("Allow", json!({"usageIdentifierKey": "x".repeat(24)})),
        ),
        "unauthorized" => Reply::http(
            200,
            r#"{"errorMessage":"Unauthorized","errorType":"Error"}"#,
        ),
        "function-error" => Reply {
            headers: vec![("x-amz-function-error".into(), "Unhandled".into())],
            ..Reply::http(200, r#"{"errorMessage":"Unauthorized"}"#)
        },
        "crash" => Reply::http(200, r#"{"errorMessage":"boom","errorType":"TypeError"}"#),
        "http-500" => Reply::http(500, "oops"),
        "nested" => Reply::http(200, &policy("Allow", json!({"context": {"a": {"b": 1}}}))),
        "malformed" => Reply::http(200, "not json"),
        "big" => Reply::http(
            200,
            &policy("Allow", json!({"context": {"pad": "x".repeat(9000)}})),
        ),
        "simple-yes" => Reply::http(200, r#"{"isAuthorized":true,"context":{"user":"s1"}}"#),
        "simple-no" => Reply::http(200, r#"{"isAuthorized":false}"#),
        "slow" => Reply {
            hold: Some(Arc::clone(never)),
            ..Reply::http(200, &policy("Allow", json!({})))
        },
        _ => Reply::http(200, r#"{"errorMessage":"Unauthorized"}"#),
    }
}

async fn start(
    ttl: &str,
    connect_extra: &str,
    api_extra: &str,
    top_extra: &str,
) -> (Backend, TestGateway, Arc<Notify>) {
    let never = Arc::new(Notify::new());
    let held = Arc::clone(&never);
    let backend = Backend::start(move |r| decide(r, &held)).await;
    let api = format!("{}\n{api_extra}", authorizer(ttl));
    let yaml = secured_config(
        &backend.url(),
        &format!("authorizer: lambda\n{connect_extra}"),
        &api,
        top_extra,
    );
    (backend, TestGateway::start(&yaml).await, never)
}

async fn status(gw: &TestGateway, token: &str) -> u16 {
    handshake(&gw.ws_url("/prod"), &[("Authorization", token)])
        .await
        .status()
}

/// Every request the backend has received so far, counted by path.
async fn drain(backend: &Backend) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    while let Some(r) = backend.try_next().await {
        *counts.entry(r.path).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn allow_gets_the_aws_event_and_its_context_reaches_connect() {
    let (backend, gw, _never) = start("0s", "", "", "").await;
    let (_ws, _) = handshake(
        &gw.ws_url("/prod?room=lobby&room=two"),
        &[("Authorization", "allow-1"), ("X-Multi", "a")],
    )
    .await
    .open();
    let auth = backend.next_to(INVOKE).await.json();
    assert_eq!(auth["type"], "REQUEST");
    assert_eq!(auth["methodArn"], ARN);
    assert_eq!(auth["headers"]["authorization"], "allow-1");
    assert_eq!(auth["multiValueHeaders"]["x-multi"], json!(["a"]));
    assert_eq!(auth["queryStringParameters"], json!({"room": "two"}));
    assert_eq!(
        auth["multiValueQueryStringParameters"]["room"],
        json!(["lobby", "two"])
    );
    assert_eq!(auth["stageVariables"]["backend"], backend.url());
    let rc = &auth["requestContext"];
    assert_eq!(rc["routeKey"], "$connect");
    assert_eq!(rc["eventType"], "CONNECT");
    assert_eq!(rc["stage"], "prod");
    assert!(rc.get("authorizer").is_none());
    let connect = backend.next_to("/connect").await.json();
    assert_eq!(
        connect["requestContext"]["connectionId"],
        rc["connectionId"]
    );
    assert_eq!(connect["requestContext"]["requestId"], rc["requestId"]);
    assert_eq!(
        connect["requestContext"]["authorizer"],
        // Stringified by default, as AWS delivers them (see aws_wire.rs).
        json!({"principalId": "user-1", "tenant": "acme", "n": "1", "beta": "true"})
    );
    // The simple response form works too.
    let (_ws2, _) = handshake(&gw.ws_url("/prod"), &[("Authorization", "simple-yes")])
        .await
        .open();
    let connect = backend.next_to("/connect").await.json();
    assert_eq!(
        connect["requestContext"]["authorizer"],
        json!({"user": "s1"})
    );
}

#[tokio::test]
async fn refusals_have_aws_statuses_and_never_reach_connect() {
    let (backend, gw, never) = start("0s", "", "", "").await;
    let cases = [
        ("deny", 403),
        ("simple-no", 403),
        ("unauthorized", 401),
        ("function-error", 401),
        ("crash", 500),
        ("http-500", 500),
        ("nested", 500),
        ("malformed", 500),
        ("big", 500),
        ("slow", 500),
    ];
    for (token, expected) in cases {
        assert_eq!(status(&gw, token).await, expected, "{token}");
    }
    // A missing identity source is 401 without a call.
    let missing = handshake(&gw.ws_url("/prod"), &[]).await;
    assert_eq!(missing.status(), 401);
    let counts = drain(&backend).await;
    assert_eq!(counts.get(INVOKE), Some(&cases.len()));
    assert_eq!(counts.get("/connect"), None);
    never.notify_waiters();
}

#[tokio::test]
async fn results_are_cached_per_identity_for_the_ttl() {
    let (backend, gw, _never) = start("5m", "", "", "").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            handshake(&gw.ws_url("/prod"), &[("Authorization", "allow-1")])
                .await
                .open(),
        );
    }
    open.push(
        handshake(&gw.ws_url("/prod"), &[("Authorization", "allow-2")])
            .await
            .open(),
    );
    for _ in 0..2 {
        assert_eq!(status(&gw, "deny").await, 403);
    }
    // Errors are not cached.
    for _ in 0..2 {
        assert_eq!(status(&gw, "unauthorized").await, 401);
    }
    let counts = drain(&backend).await;
    assert_eq!(counts.get("/connect"), Some(&4));
    assert_eq!(
        counts.get(INVOKE),
        Some(&(1 + 1 + 1 + 2)),
        "one call per identity, errors retried"
    );
    for _ in 0..4 {
        // Cached allows still carry the context.
        let (mut ws, _) = open.pop().expect("socket");
        ws.close(None).await.expect("close");
    }
}

#[tokio::test]
async fn usage_identifier_key_selects_the_api_key() {
    let digest = hex::encode(Sha256::digest(API_KEY.as_bytes()));
    let (backend, gw, _never) = start(
        "0s",
        "api_key_required: true",
        "api_key_selection_expression: $context.authorizer.usageIdentifierKey",
        &format!("api_keys:\n  - {{ id: key-1, value_sha256: \"{digest}\", usage_plan: gold }}"),
    )
    .await;
    assert_eq!(status(&gw, "wrong-key").await, 403);
    assert_eq!(status(&gw, "allow-1").await, 403);
    let (_ws, _) = handshake(&gw.ws_url("/prod"), &[("Authorization", "key")])
        .await
        .open();
    let connect = backend.next_to("/connect").await.json();
    let identity = &connect["requestContext"]["identity"];
    assert_eq!(identity["apiKey"], API_KEY);
    assert_eq!(identity["apiKeyId"], "key-1");
}
