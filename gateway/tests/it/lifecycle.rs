//! Lifecycle: DISCONNECT events, graceful shutdown, health, readiness and metrics.

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

#[tokio::test]
async fn client_close_reaches_disconnect_with_code_and_reason() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "bye".into(),
    })))
    .await
    .expect("close");
    let d = backend.next_to("/disconnect").await.json();
    let rc = &d["requestContext"];
    assert_eq!(rc["eventType"], "DISCONNECT");
    assert_eq!(rc["routeKey"], "$disconnect");
    assert_eq!(rc["connectionId"], id.as_str());
    assert_eq!(rc["disconnectStatusCode"], 1001);
    assert_eq!(rc["disconnectReason"], "bye");
    assert_eq!(d["headers"]["x-restapi"], "");

    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    ws.send(Message::Close(None)).await.expect("close");
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["disconnectStatusCode"], 1005);

    // A dropped TCP connection is 1006.
    let (ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    drop(ws);
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["disconnectStatusCode"], 1006);
}

#[tokio::test]
async fn messages_read_before_close_reach_the_backend_before_disconnect() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    for i in 0..5 {
        send_text(&mut ws, &format!(r#"{{"action":"sendmessage","seq":{i}}}"#)).await;
    }
    ws.send(Message::Close(None)).await.expect("close");
    for i in 0..5 {
        let r = backend.next().await;
        assert_eq!(r.path, "/sendmessage", "message {i} before $disconnect");
    }
    assert_eq!(backend.next().await.path, "/disconnect");
}

#[tokio::test]
async fn shutdown_closes_with_1001_and_runs_disconnect() {
    let backend = Backend::ok().await;
    let mut gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut a, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let (mut b, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let client = http();
    assert_eq!(
        client
            .get(gw.http_url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
    let closing =
        tokio::spawn(async move { (expect_close(&mut a).await, expect_close(&mut b).await) });
    gw.shutdown().await;
    let (ca, cb) = closing.await.expect("join");
    assert_eq!(ca.0, 1001);
    assert_eq!(cb.0, 1001);
    for _ in 0..2 {
        let d = backend.next_to("/disconnect").await.json();
        assert_eq!(d["requestContext"]["disconnectStatusCode"], 1001);
    }
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    backend.next_to("/sendmessage").await;
    let client = http();
    let r = client
        .get(gw.http_url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    let r = client
        .get(gw.http_url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
    let text = get_text(&client, gw.http_url("/metrics")).await;
    for name in [
        "wsgate_connect_total",
        "wsgate_message_total",
        "wsgate_integration_latency_seconds_bucket",
        "wsgate_connections_current",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn close_reason_with_control_characters_reaches_http_proxy_percent_encoded() {
    let backend = Backend::ok().await;
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages: {{ prod: {{ variables: {{ b: "{}" }} }} }}
  routes:
    $disconnect:
      integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/disconnect" }}
"#,
        backend.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    let reason = "bye\nnow ü";
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::from(4000),
        reason: reason.into(),
    })))
    .await
    .expect("close");
    let r = backend.next_to("/disconnect").await;
    assert_eq!(r.headers["x-wsgate-event-type"], "DISCONNECT");
    assert_eq!(r.headers["x-wsgate-disconnect-status-code"], "4000");
    let encoded = r.headers["x-wsgate-disconnect-reason"]
        .to_str()
        .expect("ASCII header");
    assert_eq!(encoded, "bye%0Anow%20%C3%BC");
    let decoded = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .expect("UTF-8");
    assert_eq!(decoded, reason);
}
