//! Callback API safe defaults: forwarded requests are not loopback callers, credentials are
//! checked before the body is read, the body has a deadline, and each listener serves a bounded
//! number of HTTP connections.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// A response read off a raw socket.
struct RawResponse {
    status: u16,
    head: String,
    body: String,
}

/// Reads one HTTP/1.1 response (headers, then `Content-Length` bytes of body).
async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.expect("read response");
        assert!(n > 0, "connection closed before a response");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("read body");
        assert!(n > 0, "connection closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    RawResponse { status, head, body }
}

/// Sends `request` (headers and whatever part of the body is given) and waits for the answer
/// without sending more.
async fn send_and_stall(addr: SocketAddr, request: &str) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    tokio::time::timeout(DEADLINE, read_response(&mut stream))
        .await
        .expect("answered without the body being sent")
}

/// A POST announcing a 1000-byte body, with `extra` header lines, and no body.
fn post_without_body(extra: &str) -> String {
    format!(
        "POST /prod/@connections/AAAAAAAAAAAAAAAA HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         content-length: 1000\r\n{extra}\r\n"
    )
}

fn assert_forbidden(response: &RawResponse) {
    assert_refused(response, "ForbiddenException");
}

/// A 403 with this `x-amzn-ErrorType` and a JSON message.
fn assert_refused(response: &RawResponse, error_type: &str) {
    assert_eq!(response.status, 403, "{}", response.head);
    let expected = format!("x-amzn-errortype: {}", error_type.to_ascii_lowercase());
    assert!(
        response.head.to_ascii_lowercase().contains(&expected),
        "{}",
        response.head
    );
    let body: Value = serde_json::from_str(&response.body).expect("JSON body");
    assert!(body["message"].is_string(), "{}", response.body);
}

#[tokio::test]
async fn callback_forwarded_request_is_not_a_loopback_caller() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let url = gw.http_url(&format!("/prod/@connections/{id}"));
    let client = http();
    for (name, value) in [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9;proto=https"),
        ("x-real-ip", "203.0.113.9"),
    ] {
        let r = client
            .post(&url)
            .header(name, value)
            .body("forwarded")
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 403, "{name}");
        assert_eq!(r.headers()["x-amzn-errortype"], "ForbiddenException");
        let body: Value = r.json().await.expect("json");
        assert!(body["message"].is_string());
    }
    // A direct loopback caller is still trusted; nothing forwarded was delivered before it.
    let r = client.post(&url).body("direct").send().await.expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(next_text(&mut ws).await, "direct");
}

#[tokio::test]
async fn callback_bearer_token_is_checked_before_the_body() {
    let backend = Backend::ok().await;
    let extra = "callback:\n  auth:\n    kind: bearer\n    tokens: [\"0123456789abcdef-token\"]";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    for auth in ["", "authorization: Bearer wrong-token-000000\r\n"] {
        let r = send_and_stall(gw.addr, &post_without_body(auth)).await;
        assert_forbidden(&r);
    }
}

#[tokio::test]
async fn callback_sigv4_refuses_unauthenticated_requests_before_the_body() {
    let backend = Backend::ok().await;
    let extra = "callback:\n  auth:\n    kind: sigv4\n    region: us-east-1\n    credentials:\n      \
                 - { access_key_id: AKIDTEST, secret_access_key: secret-secret-secret }";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let now = chrono::Utc::now();
    let stale = now - chrono::TimeDelta::hours(1);
    let auth = |key: &str, at: chrono::DateTime<chrono::Utc>| {
        format!(
            "x-amz-date: {}\r\nauthorization: AWS4-HMAC-SHA256 Credential={key}/{}/us-east-1/\
             execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature={}\r\n",
            at.format("%Y%m%dT%H%M%SZ"),
            at.format("%Y%m%d"),
            "0".repeat(64)
        )
    };
    for (extra, error_type) in [
        (String::new(), "MissingAuthenticationTokenException"),
        (
            "authorization: Bearer not-sigv4\r\n".to_string(),
            "IncompleteSignatureException",
        ),
        (auth("AKIDUNKNOWN", now), "UnrecognizedClientException"),
        (auth("AKIDTEST", stale), "InvalidSignatureException"),
    ] {
        let r = send_and_stall(gw.addr, &post_without_body(&extra)).await;
        assert_refused(&r, error_type);
    }
}

#[tokio::test]
async fn callback_stalled_body_gets_408() {
    let backend = Backend::ok().await;
    let extra = "callback:\n  body_timeout: 300ms";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let mut request = post_without_body("");
    request.push_str("only a few bytes");
    let r = send_and_stall(gw.addr, &request).await;
    assert_eq!(r.status, 408, "{}", r.head);
    let body: Value = serde_json::from_str(&r.body).expect("JSON body");
    assert_eq!(body["message"], "Request Timeout");
}

#[tokio::test]
async fn callback_listener_serves_at_most_max_http_connections() {
    let backend = Backend::ok().await;
    let extra = "limits:\n  max_http_connections: 2\n  handshake_timeout: 60s\n\
                 callback:\n  listen: 127.0.0.1:0";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let cb = gw.gateway().callback_addr().expect("callback listener");
    let first = TcpStream::connect(cb).await.expect("connect");
    let _second = TcpStream::connect(cb).await.expect("connect");
    let mut third = TcpStream::connect(cb)
        .await
        .expect("connect (kernel backlog)");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    // A negative can only be shown by waiting a while.
    let early = tokio::time::timeout(Duration::from_millis(500), read_response(&mut third)).await;
    assert!(
        early.is_err(),
        "answered while two connections were being served"
    );
    drop(first);
    let r = tokio::time::timeout(DEADLINE, read_response(&mut third))
        .await
        .expect("answered once a connection closed");
    assert_eq!(r.status, 200, "{}", r.head);
}

#[tokio::test]
async fn callback_cap_counts_websocket_connections_only_until_the_upgrade() {
    let backend = Backend::ok().await;
    let extra = "limits:\n  max_http_connections: 1";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    // The upgraded connection no longer holds the only HTTP slot: a callback is served.
    let r = http()
        .post(gw.http_url(&format!("/prod/@connections/{id}")))
        .body("after the upgrade")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(next_text(&mut ws).await, "after the upgrade");
}
