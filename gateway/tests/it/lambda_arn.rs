//! Lambda functions by ARN as `aws_proxy` integrations and `request` authorizers, on real
//! sockets: a local endpoint stands in for the Lambda Invoke API (`aws.endpoint_url`) and
//! botocore recomputes every request's SigV4 signature; moto's Lambda (without Docker) answers
//! invocations by ARN and qualifier.
//!
//! The client-visible outcomes follow `shared/reference/aws-apigw-websocket.md` §1.2 (an
//! exception in the `$connect` Lambda → HTTP 502) and §1.4 (a Lambda error on a message →
//! `{"message": "Internal server error", ...}`, connection kept open; a timeout →
//! `Endpoint request timed out`).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::support::lambda::*;
use crate::support::secured::{handshake, secured_config};
use crate::support::*;

const ACCOUNT: &str = "123456789012";
const FUNCTIONS: &str = "/2015-03-31/functions/";

/// The Invoke API path of `name` (the unqualified ARN, `:` encoded as the AWS SDKs do).
fn invoke_path(name: &str) -> String {
    format!("{FUNCTIONS}arn%3Aaws%3Alambda%3A{REGION}%3A{ACCOUNT}%3Afunction%3A{name}/invocations")
}

fn arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
}

/// `$connect` → `connect` (unqualified ARN), `sendmessage` (two-way) → `chat:live`,
/// `$disconnect` → `disconnect` version 7 in API Gateway's integration URI form.
fn gateway_config(endpoint: &str, file: &TempFile, message_timeout: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod: {{}}
  routes:
    $connect:
      integration: {{ type: aws_proxy, uri: "{connect}", timeout: 2s }}
    $disconnect:
      integration: {{ type: aws_proxy, uri: "arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{disconnect}:7/invocations" }}
    sendmessage:
      integration: {{ type: aws_proxy, uri: "{chat}:live", timeout: {message_timeout} }}
      route_response: true
{aws}"#,
        connect = arn("connect"),
        disconnect = arn("disconnect"),
        chat = arn("chat"),
        aws = aws_section(endpoint, file),
    )
}

/// Whose invocation a request is, by its path.
fn function_of(r: &Received) -> &str {
    r.path
        .strip_prefix(&format!(
            "{FUNCTIONS}arn%3Aaws%3Alambda%3A{REGION}%3A{ACCOUNT}%3Afunction%3A"
        ))
        .and_then(|rest| rest.strip_suffix("/invocations"))
        .unwrap_or("")
}

#[tokio::test]
async fn connect_message_and_disconnect_invoke_signed_functions() {
    let endpoint = Backend::start(|r| match (function_of(r), r.json()["body"].as_str()) {
        ("chat", Some(body)) => Reply::lambda(200, Some(&format!("echo:{body}"))),
        _ => Reply::lambda(200, None),
    })
    .await;
    let file = credentials_file();
    let gw = TestGateway::start(&gateway_config(&endpoint.url(), &file, "2s")).await;
    let mut verifier = Verifier::start(true).await;

    let mut ws = connect(&gw.ws_url("/prod")).await;
    let connect = endpoint.next().await;
    assert_eq!(connect.method, "POST");
    assert_eq!(connect.path, invoke_path("connect"));
    assert_eq!(connect.query, None, "an unqualified ARN sends no Qualifier");
    assert_eq!(connect.headers["content-type"], "application/json");
    assert_eq!(connect.headers["x-amz-security-token"], SESSION_TOKEN);
    let event = connect.json();
    assert_eq!(event["requestContext"]["eventType"], "CONNECT");
    assert_eq!(event["requestContext"]["routeKey"], "$connect");
    verifier.assert_signed(&connect).await;
    let verdict = verifier.check(&connect).await;
    let signed: Vec<&str> = verdict["signed_headers"]
        .as_array()
        .expect("signed headers")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        signed,
        ["content-type", "host", "x-amz-date", "x-amz-security-token"]
    );
    // The verifier is not a rubber stamp: a changed body or path no longer verifies.
    let mut tampered = connect.clone();
    tampered.body = axum::body::Bytes::from_static(b"{}");
    assert_eq!(verifier.check(&tampered).await["ok"], false);
    let mut tampered = connect.clone();
    tampered.path = invoke_path("other");
    assert_eq!(verifier.check(&tampered).await["ok"], false);

    send_text(&mut ws, r#"{"action":"sendmessage","text":"hi"}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"echo:{"action":"sendmessage","text":"hi"}"#
    );
    let message = endpoint.next().await;
    assert_eq!(message.path, invoke_path("chat"));
    assert_eq!(message.query.as_deref(), Some("Qualifier=live"));
    let event = message.json();
    assert_eq!(event["requestContext"]["eventType"], "MESSAGE");
    assert_eq!(event["body"], r#"{"action":"sendmessage","text":"hi"}"#);
    verifier.assert_signed(&message).await;

    drop(ws);
    let disconnect = endpoint.next().await;
    assert_eq!(disconnect.path, invoke_path("disconnect"));
    assert_eq!(disconnect.query.as_deref(), Some("Qualifier=7"));
    assert_eq!(
        disconnect.json()["requestContext"]["eventType"],
        "DISCONNECT"
    );
    verifier.assert_signed(&disconnect).await;
}

/// A 200 with `X-Amz-Function-Error`: the function raised.
fn function_error() -> Reply {
    Reply {
        headers: vec![("x-amz-function-error".into(), "Unhandled".into())],
        ..Reply::http(
            200,
            r#"{"errorMessage":"boom","errorType":"Error","stackTrace":[]}"#,
        )
    }
}

/// An Invoke API error as Lambda answers it.
fn api_error(status: u16, error_type: &str) -> Reply {
    Reply {
        headers: vec![("x-amzn-errortype".into(), error_type.into())],
        ..Reply::http(status, r#"{"Type":"User","Message":"refused"}"#)
    }
}

#[tokio::test]
async fn function_errors_fail_connect_with_502_and_messages_with_internal_server_error() {
    let fail_connect = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = Arc::clone(&fail_connect);
    let endpoint = Backend::start(move |r| match function_of(r) {
        "connect" if flag.load(std::sync::atomic::Ordering::SeqCst) => function_error(),
        "chat" => function_error(),
        _ => Reply::lambda(200, None),
    })
    .await;
    let file = credentials_file();
    let gw = TestGateway::start(&gateway_config(&endpoint.url(), &file, "2s")).await;

    let (status, body) = connect_refused(&gw.ws_url("/prod")).await;
    assert_eq!(status, 502);
    assert_eq!(body, r#"{"message":"Internal server error"}"#);
    endpoint.next_to(&invoke_path("connect")).await;

    fail_connect.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut ws = connect(&gw.ws_url("/prod")).await;
    let event = endpoint.next_to(&invoke_path("connect")).await.json();
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();
    send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON frame");
    assert_eq!(frame["message"], "Internal server error");
    assert_eq!(frame["connectionId"], id.as_str());
}

#[tokio::test]
async fn invoke_api_errors_are_integration_errors() {
    let endpoint = Backend::start(|r| {
        let text = r.json()["body"].as_str().unwrap_or("").to_string();
        match function_of(r) {
            // Names arrive as the client spelled them; this client's HTTP library sends lowercase.
            "connect" if r.json()["headers"]["x-case"] == "missing" => {
                api_error(404, "ResourceNotFoundException")
            }
            "chat" if text.contains("throttled") => api_error(429, "TooManyRequestsException"),
            "chat" if text.contains("broken") => api_error(500, "ServiceException"),
            "chat" if text.contains("denied") => api_error(403, "AccessDeniedException"),
            _ => Reply::lambda(200, None),
        }
    })
    .await;
    let file = credentials_file();
    let gw = TestGateway::start(&gateway_config(&endpoint.url(), &file, "2s")).await;

    let outcome = handshake(&gw.ws_url("/prod"), &[("X-Case", "missing")]).await;
    assert_eq!(outcome.status(), 502);

    let mut ws = connect(&gw.ws_url("/prod")).await;
    for case in ["throttled", "broken", "denied"] {
        send_text(
            &mut ws,
            &format!(r#"{{"action":"sendmessage","case":"{case}"}}"#),
        )
        .await;
        let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON frame");
        assert_eq!(frame["message"], "Internal server error", "{case}");
    }
    let metrics = get_text(&http(), gw.http_url("/metrics")).await;
    for metric in [
        "wsgate_integration_error_total",
        "wsgate_execution_error_total",
    ] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(metric)
                    && l.contains("route=\"sendmessage\"")
                    && l.contains("stage=\"prod\"")
            })
            .unwrap_or_else(|| panic!("no sendmessage {metric} in:\n{metrics}"));
        let count: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count");
        // The recorder is shared by every test in this process: at least this test's three.
        assert!(count >= 3.0, "{line}");
    }
}

#[tokio::test]
async fn a_slow_function_times_out_as_endpoint_request_timed_out() {
    let never = Arc::new(Notify::new());
    let gate = Arc::clone(&never);
    let endpoint = Backend::start(move |r| match function_of(r) {
        "chat" => Reply {
            hold: Some(Arc::clone(&gate)),
            ..Reply::lambda(200, Some("late"))
        },
        _ => Reply::lambda(200, None),
    })
    .await;
    let file = credentials_file();
    let gw = TestGateway::start(&gateway_config(&endpoint.url(), &file, "200ms")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON frame");
    assert_eq!(frame["message"], "Endpoint request timed out");
    never.notify_waiters();
}

#[tokio::test]
async fn missing_credentials_fail_the_call_without_reaching_lambda() {
    let endpoint = Backend::ok().await;
    // A credentials file without the configured profile.
    let file = TempFile::with_contents(
        "credentials",
        "[other]\naws_access_key_id = AKIAOTHER00000000000\naws_secret_access_key = x\n",
    );
    let gw = TestGateway::start(&gateway_config(&endpoint.url(), &file, "2s")).await;
    let (status, _) = connect_refused(&gw.ws_url("/prod")).await;
    assert_eq!(status, 502);
    assert!(
        endpoint.try_next().await.is_none(),
        "nothing was sent unsigned"
    );
}

#[tokio::test]
async fn request_authorizer_by_arn_allows_and_denies() {
    let method_arn = "arn:aws:execute-api:us-east-1:000000000000:chat/prod/$connect";
    let endpoint = Backend::start(move |r| {
        if function_of(r) != "authorize" {
            return Reply::lambda(200, None);
        }
        let token = r.json()["headers"]["authorization"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let effect = if token == "allow" { "Allow" } else { "Deny" };
        Reply::http(
            200,
            &json!({
                "principalId": "user-1",
                "policyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}
                ]},
                "context": {"tenant": "acme"}
            })
            .to_string(),
        )
    })
    .await;
    let file = credentials_file();
    let authorizers = format!(
        "authorizers:\n  lambda:\n    type: request\n    uri: \"{}:live\"\n    identity_sources: [route.request.header.Authorization]\n    timeout: 2s",
        arn("authorize")
    );
    let yaml = secured_config(
        &endpoint.url(),
        "authorizer: lambda",
        &authorizers,
        &aws_section(&endpoint.url(), &file),
    );
    let gw = TestGateway::start(&yaml).await;
    let mut verifier = Verifier::start(true).await;

    let allowed = handshake(&gw.ws_url("/prod"), &[("Authorization", "allow")]).await;
    assert_eq!(allowed.status(), 101);
    let call = endpoint.next_to(&invoke_path("authorize")).await;
    assert_eq!(call.query.as_deref(), Some("Qualifier=live"));
    assert_eq!(call.json()["type"], "REQUEST");
    assert_eq!(call.json()["methodArn"], method_arn);
    verifier.assert_signed(&call).await;
    let connect = endpoint.next_to("/connect").await.json();
    assert_eq!(connect["requestContext"]["authorizer"]["tenant"], "acme");

    let denied = handshake(&gw.ws_url("/prod"), &[("Authorization", "deny")]).await;
    assert_eq!(denied.status(), 403);
    verifier
        .assert_signed(&endpoint.next_to(&invoke_path("authorize")).await)
        .await;
}

#[tokio::test]
async fn moto_lambda_answers_invocations_by_arn_and_alias() {
    let moto = Moto::start().await;
    let function = moto
        .function(
            "wsgate-chat",
            "live",
            &[
                r#"{"statusCode":200}"#,
                r#"{"statusCode":200,"body":"from moto"}"#,
            ],
        )
        .await;
    assert_eq!(function, arn("wsgate-chat"));
    let file = credentials_file();
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod: {{}}
  routes:
    $connect:
      integration: {{ type: aws_proxy, uri: "{function}:live", timeout: 5s }}
    sendmessage:
      integration: {{ type: aws_proxy, uri: "{function}:live", timeout: 5s }}
      route_response: true
    missing:
      integration: {{ type: aws_proxy, uri: "{missing}", timeout: 5s }}
      route_response: true
{aws}"#,
        missing = arn("wsgate-missing"),
        aws = aws_section(&moto.url, &file),
    );
    let gw = TestGateway::start(&yaml).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    assert_eq!(next_text(&mut ws).await, "from moto");
    // No such function: moto answers 404, an integration error.
    send_text(&mut ws, r#"{"action":"missing"}"#).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON frame");
    assert_eq!(frame["message"], "Internal server error");
}
