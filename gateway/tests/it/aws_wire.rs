//! Byte-level compatibility with Amazon API Gateway WebSocket APIs: error frames, event headers,
//! authorizer context values and callback API errors, each checked against what AWS sends
//! (sources cited per test; see /work/shared/reference/aws-apigw-websocket.md).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;

use crate::support::*;

/// The `(connectionId, requestId)` of an error frame, and its exact expected text.
fn expected_error_frame(frame: &str, message: &str) -> String {
    let parsed: Value = serde_json::from_str(frame).expect("the frame is JSON");
    let cid = parsed["connectionId"].as_str().expect("connectionId");
    let rid = parsed["requestId"].as_str().expect("requestId");
    // A space after the first colon only, as AWS writes it.
    format!(r#"{{"message": "{message}", "connectionId":"{cid}", "requestId":"{rid}"}}"#)
}

fn strict_api(backend: &str, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: strict
  route_selection_expression: $request.body.action
  stages:
    prod:
      variables: {{ b: "{backend}" }}
  routes:
    fail: {{ integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/fail", timeout: 2s }} }}
    slow: {{ integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/slow", timeout: 200ms }} }}
    slowhttp: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/slow", timeout: 200ms }} }}
    limited: {{ integration: {{ type: mock, response: fine }} }}
throttling:
  stages:
    prod:
      route_settings:
        limited: {{ throttling_rate_limit: 0.01, throttling_burst_limit: 1 }}
{extra}
"#
    )
}

/// The error frames, byte for byte. AWS's text, with its odd spacing, is
/// `{"message": "Forbidden", "connectionId":"<id>", "requestId":"<id>"}` – reference file §1.1/§1.3
/// (observed; e.g. https://github.com/aws/chalice/issues/1406 and
/// https://github.com/Kludex/mangum/issues/128 quote frames of this exact shape); the same shape
/// for "Internal server error" (https://github.com/aws/aws-cdk/issues/18208) and for the
/// throttled-message frame, whose text AWS does not document (reference §4.3, [U]).
#[tokio::test]
async fn error_frames_are_byte_exact() {
    let backend = Backend::start(|_| Reply::http(500, "crash")).await;
    let gw = TestGateway::start(&strict_api(&backend.url(), "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;

    send_text(&mut ws, r#"{"action":"unknown"}"#).await;
    let frame = next_text(&mut ws).await;
    assert_eq!(frame, expected_error_frame(&frame, "Forbidden"));

    send_text(&mut ws, r#"{"action":"fail"}"#).await;
    let frame = next_text(&mut ws).await;
    assert_eq!(frame, expected_error_frame(&frame, "Internal server error"));

    send_text(&mut ws, r#"{"action":"limited"}"#).await;
    send_text(&mut ws, r#"{"action":"limited"}"#).await;
    let frame = next_text(&mut ws).await;
    assert_eq!(frame, expected_error_frame(&frame, "Too Many Requests"));
}

/// An integration that does not answer within its timeout: AWS sends
/// `{"message": "Endpoint request timed out", "connectionId":"…", "requestId":"…"}` and keeps the
/// connection open. The reference file has this text as not found (§5, [U]); the frame is quoted
/// byte for byte from AWS in https://github.com/aws/chalice/issues/1406 and
/// https://github.com/Kludex/mangum/issues/128.
#[tokio::test]
async fn integration_timeout_sends_endpoint_request_timed_out() {
    let gate = Arc::new(Notify::new());
    let held = Arc::clone(&gate);
    let backend = Backend::start(move |r| match r.path.as_str() {
        "/slow" => Reply {
            hold: Some(Arc::clone(&held)),
            ..Reply::lambda(200, None)
        },
        _ => Reply::http(500, "crash"),
    })
    .await;
    let gw = TestGateway::start(&strict_api(&backend.url(), "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for action in ["slow", "slowhttp"] {
        send_text(&mut ws, &format!(r#"{{"action":"{action}"}}"#)).await;
        let frame = next_text(&mut ws).await;
        assert_eq!(
            frame,
            expected_error_frame(&frame, "Endpoint request timed out"),
            "{action}"
        );
    }
    // Other failures keep their own frame, and the connection is still open.
    send_text(&mut ws, r#"{"action":"fail"}"#).await;
    let frame = next_text(&mut ws).await;
    assert_eq!(frame, expected_error_frame(&frame, "Internal server error"));
    gate.notify_waiters();
}

/// Sends an upgrade request with `extra` header lines on a raw socket, so the exact header
/// spelling is under the test's control; returns the socket once the answer's head is read.
async fn raw_upgrade(addr: std::net::SocketAddr, extra: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let request = format!(
        "GET /prod?room=lobby HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(DEADLINE, tcp.read(&mut byte))
            .await
            .expect("answer within the deadline")
            .expect("read");
        assert_eq!(n, 1, "connection closed before the answer");
        head.push(byte[0]);
    }
    (tcp, String::from_utf8_lossy(&head).into_owned())
}

fn header_names(event: &Value, field: &str) -> Vec<String> {
    let mut names: Vec<String> = event[field]
        .as_object()
        .unwrap_or_else(|| panic!("{field} is an object: {event}"))
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

/// Header names reach the CONNECT event as the client spelled them (`HeaderAuth1`, `x-api-key`
/// and `X-Forwarded-For` side by side in the same event): the captures in
/// https://github.com/awslabs/aws-lambda-rust-runtime/blob/main/lambda-events/src/fixtures/example-apigw-websocket-request-without-method.json
/// and the reference file §2.2; `HeaderAuth1` is the header of the DG sample,
/// https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html.
#[tokio::test]
async fn connect_event_header_names_are_as_the_client_sent_them() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (_tcp, answer) = raw_upgrade(
        gw.addr,
        "HeaderAuth1: x\r\nx-api-key: k\r\nX-Custom-MiXed: v\r\nX-Custom-MiXed: w\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let event = backend.next_to("/connect").await.json();
    for field in ["headers", "multiValueHeaders"] {
        let names = header_names(&event, field);
        for sent in [
            "HeaderAuth1",
            "x-api-key",
            "X-Custom-MiXed",
            "Sec-WebSocket-Key",
        ] {
            assert!(
                names.iter().any(|n| n == sent),
                "{field}: {sent} in {names:?}"
            );
        }
        for name in &names {
            let same = names.iter().filter(|n| n.eq_ignore_ascii_case(name));
            assert_eq!(same.count(), 1, "{field}: {name} spelled once: {names:?}");
        }
    }
    assert_eq!(event["headers"]["HeaderAuth1"], "x");
    assert_eq!(event["headers"]["x-api-key"], "k");
    assert_eq!(event["headers"]["X-Custom-MiXed"], "w");
    assert_eq!(
        event["multiValueHeaders"]["X-Custom-MiXed"],
        serde_json::json!(["v", "w"])
    );
}
