//! `integration.protocol: http2`: the gateway speaks h2c to its backends, the calls of many
//! connections share one connection, and timeouts, error frames and the answer cap behave as
//! over HTTP/1.1.

use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::Value;
use tokio::sync::Notify;

use crate::response_caps::too_large_count;
use crate::support::*;

/// Every integration of the standard test config speaks HTTP/2.
fn http2_config(backend: &str, extra: &str) -> String {
    config(backend, extra)
        .replace("timeout: 2s }", "timeout: 2s, protocol: http2 }")
        .replace("/disconnect\" }", "/disconnect\", protocol: http2 }")
}

#[tokio::test]
async fn connect_messages_and_disconnect_go_over_one_h2c_connection() {
    let backend = Backend::start(|r| match r.path.as_str() {
        "/echo" => Reply::lambda(200, Some(r#"{"answer":"over h2"}"#)),
        "/default" => Reply::http(200, "raw over h2"),
        _ => Reply::lambda(200, None),
    })
    .await;
    let gw = TestGateway::start(&http2_config(&backend.url(), "")).await;

    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(connect(&gw.ws_url("/prod")).await);
        let connect = backend.next_to("/connect").await;
        assert_eq!(connect.version, http::Version::HTTP_2);
        assert_eq!(connect.json()["requestContext"]["eventType"], "CONNECT");
    }
    // Eight connections' messages at once: answered in full, each to its own client.
    join_all(clients.iter_mut().map(|ws| async move {
        send_text(ws, r#"{"action":"echo"}"#).await;
        assert_eq!(next_text(ws).await, r#"{"answer":"over h2"}"#);
        send_text(ws, "not json: $default").await;
        assert_eq!(next_text(ws).await, "raw over h2");
    }))
    .await;
    for _ in 0..8 {
        let echo = backend.next_to("/echo").await;
        assert_eq!(echo.version, http::Version::HTTP_2);
        assert_eq!(echo.json()["requestContext"]["routeKey"], "echo");
    }
    drop(clients);
    for _ in 0..8 {
        let disconnect = backend.next_to("/disconnect").await;
        assert_eq!(disconnect.version, http::Version::HTTP_2);
    }
    // Every call of every connection shared the gateway's one HTTP/2 connection.
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn an_h2_call_past_its_timeout_sends_the_timeout_frame_and_the_connection_goes_on() {
    let gate = Arc::new(Notify::new());
    let held = Arc::clone(&gate);
    let backend = Backend::start(move |r| match r.path.as_str() {
        "/echo" => Reply {
            hold: Some(Arc::clone(&held)),
            ..Reply::lambda(200, Some("late"))
        },
        "/default" => Reply::http(200, "after"),
        _ => Reply::lambda(200, None),
    })
    .await;
    let yaml =
        http2_config(&backend.url(), "").replace("/echo\", timeout: 2s", "/echo\", timeout: 200ms");
    let gw = TestGateway::start(&yaml).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"echo"}"#).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("json");
    assert_eq!(frame["message"], "Endpoint request timed out", "{frame}");
    gate.notify_waiters();
    // The stream was reset, not the connection: the next call works on it.
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
    send_text(&mut ws, "to $default").await;
    assert_eq!(next_text(&mut ws).await, "after");
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn an_h2_answer_over_the_cap_is_refused_and_counted() {
    let big = "x".repeat(4000);
    let backend = Backend::start(move |r| match r.path.as_str() {
        "/default" => Reply::http(200, &big),
        _ => Reply::lambda(200, None),
    })
    .await;
    let limits = "limits:\n  max_integration_response_bytes: 1000";
    let gw = TestGateway::start(&http2_config(&backend.url(), limits)).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, "to $default").await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("json");
    assert_eq!(frame["message"], "Internal server error", "{frame}");
    assert!(too_large_count(&gw, "$default").await >= 1);
}

#[tokio::test]
async fn an_unreachable_h2_backend_is_an_integration_error_not_a_hang() {
    let backend = Backend::ok().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nowhere = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let yaml = http2_config(&backend.url(), "").replace(
        "\"${stageVariables.backend}/echo\"",
        &format!("\"{nowhere}/echo\""),
    );
    let gw = TestGateway::start(&yaml).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"echo"}"#).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("json");
    assert_eq!(frame["message"], "Internal server error", "{frame}");
}

#[test]
fn http2_over_a_unix_socket_is_a_startup_error_naming_the_key() {
    let yaml = http2_config("\"unix:/tmp/nowhere.sock:\"", "");
    let error = wsgate::Config::from_yaml(&yaml)
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("api.routes.") && error.contains(".integration.protocol"),
        "{error}"
    );
}
