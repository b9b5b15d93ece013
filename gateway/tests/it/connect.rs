//! The connect path: `$connect` before the 101, rejections, the CONNECT event, subprotocols.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::Notify;

use crate::support::*;

#[tokio::test]
async fn connect_event_reaches_backend_in_aws_shape() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let _ws = connect(&gw.ws_url("/prod?room=lobby&room=two&token=abc")).await;
    let event = backend.next_to("/connect").await;
    assert_eq!(event.method, "POST");
    assert_eq!(event.headers["content-type"], "application/json");
    let e = event.json();
    let rc = &e["requestContext"];
    assert_eq!(rc["routeKey"], "$connect");
    assert_eq!(rc["eventType"], "CONNECT");
    assert_eq!(rc["messageDirection"], "IN");
    assert_eq!(rc["stage"], "prod");
    assert_eq!(rc["apiId"], "chat");
    assert_eq!(rc["domainName"], gw.addr.to_string());
    assert_eq!(rc["identity"]["sourceIp"], "127.0.0.1");
    assert!(rc["connectedAt"].as_i64().expect("number") > 1_700_000_000_000);
    assert!(
        rc["requestTimeEpoch"].as_i64().expect("number")
            >= rc["connectedAt"].as_i64().expect("number")
    );
    assert_eq!(rc["requestId"], rc["extendedRequestId"]);
    let id = rc["connectionId"].as_str().expect("id");
    assert_eq!(id.len(), 16);
    assert_eq!(
        e["queryStringParameters"],
        json!({"room": "two", "token": "abc"})
    );
    assert_eq!(
        e["multiValueQueryStringParameters"]["room"],
        json!(["lobby", "two"])
    );
    assert_eq!(e["headers"]["Host"], gw.addr.to_string());
    assert_eq!(e["headers"]["Sec-WebSocket-Version"], "13");
    assert_eq!(e["headers"]["X-Forwarded-For"], "127.0.0.1");
    assert!(e["multiValueHeaders"]["Sec-WebSocket-Key"].is_array());
    assert_eq!(e["isBase64Encoded"], false);
    assert!(e.get("body").is_none());
}

#[tokio::test]
async fn upgrade_waits_for_connect_and_backend_status_rejects() {
    let backend = Backend::start(|r| {
        let q = String::from_utf8_lossy(&r.body).to_string();
        match r.path.as_str() {
            "/connect" if q.contains("deny") => Reply::lambda(403, None),
            "/connect" if q.contains("teapot") => Reply::lambda(418, None),
            "/connect" if q.contains("crash") => {
                Reply::http(200, r#"{"errorMessage":"boom","errorType":"Error"}"#)
            }
            _ => Reply::lambda(200, None),
        }
    })
    .await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (status, body) = connect_refused(&gw.ws_url("/prod?deny=1")).await;
    assert_eq!(status, 403);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json body")["message"],
        "Forbidden"
    );
    assert_eq!(connect_refused(&gw.ws_url("/prod?teapot=1")).await.0, 418);
    assert_eq!(connect_refused(&gw.ws_url("/prod?crash=1")).await.0, 502);
    // A rejected connection never produces a $disconnect.
    let _ok = connect(&gw.ws_url("/prod")).await;
    assert_eq!(gw.gateway().connection_count(), 1);
}

#[tokio::test]
async fn connect_integration_down_or_slow_gives_502() {
    let hold = Arc::new(Notify::new());
    let held = Arc::clone(&hold);
    let slow = Backend::start(move |_| Reply {
        hold: Some(Arc::clone(&held)),
        ..Reply::lambda(200, None)
    })
    .await;
    let gw = TestGateway::start(&config(&slow.url(), "")).await;
    // The $connect timeout in the test config is 2 s.
    assert_eq!(connect_refused(&gw.ws_url("/prod")).await.0, 502);
    hold.notify_waiters();

    let dead = TcpListenerGuard::closed_port().await;
    let gw = TestGateway::start(&config(&format!("http://127.0.0.1:{dead}"), "")).await;
    assert_eq!(connect_refused(&gw.ws_url("/prod")).await.0, 502);
}

/// A port nobody listens on.
struct TcpListenerGuard;
impl TcpListenerGuard {
    async fn closed_port() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        l.local_addr().expect("addr").port()
    }
}

#[tokio::test]
async fn no_connect_route_accepts_and_unknown_stage_is_404() {
    let yaml = r#"
listen: 127.0.0.1:0
api:
  name: bare
  route_selection_expression: $request.body.action
  stages: { dev: {} }
  routes:
    ping: { integration: { type: mock, response: pong }, route_response: true }
"#;
    let gw = TestGateway::start(yaml).await;
    let mut ws = connect(&gw.ws_url("/dev/")).await;
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, "pong");
    let (status, body) = connect_refused(&gw.ws_url("/nope")).await;
    assert_eq!(status, 404);
    assert!(body.contains("Not Found"));
}

#[tokio::test]
async fn plain_http_requests_get_clear_errors() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let client = http();
    let r = client
        .get(gw.http_url("/prod"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 426);
    assert_eq!(r.headers()["upgrade"], "websocket");
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("WebSocket")
    );
    let r = client
        .get(gw.http_url("/prod/some/thing"))
        .send()
        .await
        .expect("answer");
    // A path nothing serves: 403 Forbidden, as AWS answers.
    assert_eq!(r.status(), 403);
    let r = client
        .get(gw.http_url("/prod"))
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "8")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 426);
    assert_eq!(r.headers()["sec-websocket-version"], "13");
    // Nothing reached the backend.
    assert!(backend.try_next().await.is_none());
}

#[tokio::test]
async fn connect_response_selects_offered_subprotocol() {
    let backend = Backend::start(|r| {
        if r.path == "/connect" {
            Reply::http(
                200,
                r#"{"statusCode":200,"headers":{"Sec-WebSocket-Protocol":"chat.v2"}}"#,
            )
        } else {
            Reply::lambda(200, None)
        }
    })
    .await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            gw.ws_url("/prod"),
        )
        .expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        http::HeaderValue::from_static("chat.v1, chat.v2"),
    );
    let (_ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connects");
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v2");
    let connect_event = backend.next_to("/connect").await.json();
    assert_eq!(
        connect_event["headers"]["Sec-WebSocket-Protocol"],
        "chat.v1, chat.v2"
    );
}

#[tokio::test]
async fn handshake_timeout_drops_slow_clients() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(
        &backend.url(),
        "limits:\n  handshake_timeout: 300ms",
    ))
    .await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.expect("tcp");
    tcp.write_all(b"GET /prod HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // The server must close the socket on its own (read returns EOF or an error).
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a client that never finishes its headers is disconnected"
    );
    assert!(backend.try_next().await.is_none());
}

#[tokio::test]
async fn connection_cap_answers_503() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "limits:\n  max_connections: 2")).await;
    let _a = connect(&gw.ws_url("/prod")).await;
    let _b = connect(&gw.ws_url("/prod")).await;
    let (status, _) = connect_refused(&gw.ws_url("/prod")).await;
    assert_eq!(status, 503);
}
