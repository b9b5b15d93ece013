//! The inbound path: route selection, integrations, route responses, error frames, ordering.

use std::sync::Arc;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

#[tokio::test]
async fn custom_route_gets_message_event() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let body = r#"{"action":"sendmessage","data":"hi"}"#;
    send_text(&mut ws, body).await;
    let e = backend.next_to("/sendmessage").await.json();
    assert_eq!(e["body"], body);
    assert_eq!(e["isBase64Encoded"], false);
    assert!(
        e.get("headers").is_none(),
        "MESSAGE events carry no headers"
    );
    let rc = &e["requestContext"];
    assert_eq!(rc["routeKey"], "sendmessage");
    assert_eq!(rc["eventType"], "MESSAGE");
    assert_eq!(rc["connectionId"], id.as_str());
    assert_eq!(rc["messageId"].as_str().expect("messageId").len(), 16);
    assert_eq!(rc["messageDirection"], "IN");
}

#[tokio::test]
async fn two_way_routes_reply_and_one_way_routes_do_not() {
    let backend = Backend::start(|r| match r.path.as_str() {
        "/echo" => {
            let e: Value = serde_json::from_slice(&r.body).expect("json");
            let body = e["body"].as_str().unwrap_or_default().to_string();
            Reply::lambda(200, Some(&format!("echo:{body}")))
        }
        "/sendmessage" => Reply::lambda(200, Some("never sent: one-way route")),
        "/default" => Reply::http(200, "default-reply"),
        _ => Reply::lambda(200, None),
    })
    .await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    send_text(&mut ws, r#"{"action":"echo","n":1}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"echo:{"action":"echo","n":1}"#);
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
    // Non-JSON goes to $default (http_proxy): raw body and context headers.
    send_text(&mut ws, "plain text").await;
    assert_eq!(next_text(&mut ws).await, "default-reply");
    let r = backend.next_to("/default").await;
    assert_eq!(&r.body[..], b"plain text");
    assert_eq!(r.headers["x-wsgate-connection-id"], id.as_str());
    assert_eq!(r.headers["x-wsgate-route-key"], "$default");
    assert_eq!(r.headers["x-wsgate-event-type"], "MESSAGE");
    assert_eq!(r.headers["x-wsgate-stage"], "prod");
    assert!(r.headers.contains_key("x-wsgate-request-id"));
    // Unmatched JSON also goes to $default.
    send_text(&mut ws, r#"{"action":"nosuch"}"#).await;
    assert_eq!(next_text(&mut ws).await, "default-reply");
}

#[tokio::test]
async fn no_route_gives_forbidden_frame_and_failures_internal_error() {
    let yaml = |backend: &str| {
        format!(
            r#"
listen: 127.0.0.1:0
api:
  name: strict
  route_selection_expression: $request.body.action
  stages: {{ prod: {{ variables: {{ b: "{backend}" }} }} }}
  routes:
    fail: {{ integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/fail", timeout: 1s }} }}
    ok: {{ integration: {{ type: mock, response: fine }}, route_response: true }}
"#
        )
    };
    let backend = Backend::start(|_| Reply::http(500, "crash")).await;
    let gw = TestGateway::start(&yaml(&backend.url())).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"unknown"}"#).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("json");
    assert_eq!(frame["message"], "Forbidden");
    assert_eq!(frame["connectionId"].as_str().expect("id").len(), 16);
    assert!(frame["requestId"].is_string());
    send_text(&mut ws, "not json").await;
    assert_eq!(
        serde_json::from_str::<Value>(&next_text(&mut ws).await).expect("json")["message"],
        "Forbidden"
    );
    send_text(&mut ws, r#"{"action":"fail"}"#).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("json");
    assert_eq!(frame["message"], "Internal server error");
    // The connection stays open.
    send_text(&mut ws, r#"{"action":"ok"}"#).await;
    assert_eq!(next_text(&mut ws).await, "fine");
}

#[tokio::test]
async fn integrations_reuse_pooled_connections() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    for _ in 0..50 {
        send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
        backend.next_to("/sendmessage").await;
    }
    // One connection for $connect and the 50 messages (sequential, so the pool never needs two).
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn messages_of_one_connection_arrive_in_order() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    for i in 0..100 {
        send_text(&mut ws, &format!(r#"{{"action":"sendmessage","seq":{i}}}"#)).await;
    }
    for i in 0..100 {
        let e = backend.next_to("/sendmessage").await.json();
        let body: Value = serde_json::from_str(e["body"].as_str().expect("body")).expect("json");
        assert_eq!(body["seq"], i);
    }
}

#[tokio::test]
async fn slow_integration_for_one_connection_does_not_stall_others() {
    let gate = Arc::new(Notify::new());
    let held = Arc::clone(&gate);
    let backend = Backend::start(move |r| {
        let body = String::from_utf8_lossy(&r.body).to_string();
        if r.path == "/sendmessage" && body.contains("slow") {
            Reply {
                hold: Some(Arc::clone(&held)),
                ..Reply::lambda(200, None)
            }
        } else {
            Reply::lambda(200, None)
        }
    })
    .await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut slow, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let (mut fast, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    send_text(&mut slow, r#"{"action":"sendmessage","data":"slow"}"#).await;
    let first = backend.next_to("/sendmessage").await.json();
    assert!(first["body"].as_str().expect("body").contains("slow"));
    // While the slow call is held, the other connection still gets served, and so do pings on
    // the slow one.
    send_text(&mut fast, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut fast).await, r#"{"action":"pong"}"#);
    send_text(&mut slow, r#"{"action":"ping"}"#).await;
    send_text(&mut fast, r#"{"action":"sendmessage","data":"fast"}"#).await;
    let second = backend.next_to("/sendmessage").await.json();
    assert!(second["body"].as_str().expect("body").contains("fast"));
    gate.notify_waiters();
    assert_eq!(next_text(&mut slow).await, r#"{"action":"pong"}"#);
}

/// A message's integration call runs in the connection's own task, beside its socket: while
/// it waits, pushes to that connection and protocol pings are still served at once, and the
/// call's answer follows when it comes.
#[tokio::test]
async fn a_connection_waiting_on_its_integration_still_gets_pushes_and_pongs() {
    let gate = Arc::new(Notify::new());
    let held = Arc::clone(&gate);
    let backend = Backend::start(move |r| {
        if r.path == "/echo" {
            Reply {
                hold: Some(Arc::clone(&held)),
                ..Reply::lambda(200, Some(r#"{"answer":"late"}"#))
            }
        } else {
            Reply::lambda(200, None)
        }
    })
    .await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"echo","data":"x"}"#).await;
    backend.next_to("/echo").await;

    let posted = http()
        .post(gw.http_url(&format!("/prod/@connections/{id}")))
        .body("pushed")
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), 200);
    assert_eq!(next_text(&mut ws).await, "pushed");
    ws.send(Message::Ping(vec![7u8].into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .expect("pong within the deadline");
    assert_eq!(
        pong.expect("open").expect("frame"),
        Message::Pong(vec![7u8].into())
    );

    gate.notify_waiters();
    assert_eq!(next_text(&mut ws).await, r#"{"answer":"late"}"#);
    // The connection goes on as before: the next message is handled too.
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
}

#[tokio::test]
async fn binary_frames_are_base64_events_or_rejected_with_1003() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    ws.send(Message::Binary(vec![0u8, 159, 146, 150].into()))
        .await
        .expect("send");
    let r = backend.next_to("/default").await;
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    assert_eq!(&r.body[..], &[0u8, 159, 146, 150]);

    let yaml = config(&backend.url(), "").replace(
        "  $default:\n      integration: { type: http_proxy",
        "  $default:\n      integration: { type: aws_proxy",
    );
    let gw2 = TestGateway::start(&yaml).await;
    let (mut ws2, _) = connect_and_id(&backend, &gw2.ws_url("/prod")).await;
    ws2.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .expect("send");
    let e = backend.next_to("/default").await.json();
    assert_eq!(e["isBase64Encoded"], true);
    assert_eq!(
        e["body"],
        base64::engine::general_purpose::STANDARD.encode([1u8, 2, 3])
    );

    let gw3 = TestGateway::start(&config(&backend.url(), "limits:\n  binary_frames: reject")).await;
    let (mut ws3, _) = connect_and_id(&backend, &gw3.ws_url("/prod")).await;
    ws3.send(Message::Binary(vec![1u8].into()))
        .await
        .expect("send");
    assert_eq!(expect_close(&mut ws3).await.0, 1003);
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["disconnectStatusCode"], 1003);
}

#[tokio::test]
async fn oversize_messages_and_frames_close_with_1009() {
    let backend = Backend::ok().await;
    let limits = "limits:\n  max_message_bytes: 1024\n  max_frame_bytes: 512";
    let gw = TestGateway::start(&config(&backend.url(), limits)).await;
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    send_text(&mut ws, &"x".repeat(600)).await;
    assert_eq!(expect_close(&mut ws).await.0, 1009);
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["disconnectStatusCode"], 1009);

    // Fragments under the frame limit that add up past the message limit.
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    use tokio_tungstenite::tungstenite::protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    };
    let part = vec![b'y'; 400];
    ws.send(Message::Frame(Frame::message(
        part.clone(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .expect("send");
    ws.send(Message::Frame(Frame::message(
        part.clone(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .await
    .expect("send");
    ws.send(Message::Frame(Frame::message(
        part,
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .expect("send");
    assert_eq!(expect_close(&mut ws).await.0, 1009);
}

#[tokio::test]
async fn idle_timeout_and_max_duration_close_with_1001() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(
        &backend.url(),
        "limits:\n  idle_timeout: 300ms\n  ping_interval: 0",
    ))
    .await;
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, 1001);
    assert!(reason.contains("idle"), "{reason}");
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["disconnectStatusCode"], 1001);

    let gw = TestGateway::start(&config(
        &backend.url(),
        "limits:\n  max_connection_duration: 400ms",
    ))
    .await;
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    // Activity does not extend the maximum duration.
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, 1001);
    assert!(reason.contains("maximum"), "{reason}");
}

#[tokio::test]
async fn protocol_pings_keep_alive_and_dead_peers_are_closed() {
    let backend = Backend::ok().await;
    let extra = "limits:\n  ping_interval: 100ms\n  pong_timeout: 300ms";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    // The client library answers pings while we read; wait for a ping to arrive.
    let ping = tokio::time::timeout(DEADLINE, async {
        use futures_util::StreamExt;
        loop {
            if let Some(Ok(Message::Ping(_))) = ws.next().await {
                return;
            }
        }
    })
    .await;
    assert!(ping.is_ok(), "the gateway sends protocol pings");
    // A client that stops reading never answers; the gateway closes it (code 1011 is sent but
    // the client is not reading, so the backend's $disconnect tells the code).
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["disconnectStatusCode"], 1011);
}

#[tokio::test]
async fn clients_cannot_select_reserved_route_keys() {
    let yaml = |backend: &str, default: bool| {
        let default = if default {
            r#"    $default: { integration: { type: http_proxy, uri: "${stageVariables.b}/default" }, route_response: true }"#
        } else {
            ""
        };
        format!(
            r#"
listen: 127.0.0.1:0
api:
  name: reserved
  route_selection_expression: $request.body.action
  stages: {{ prod: {{ variables: {{ b: "{backend}" }} }} }}
  routes:
    $join: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/join" }}, route_response: true }}
    $leave: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/leave" }}, route_response: true }}
    $disconnect: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/disconnect" }} }}
    probe: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/probe" }}, route_response: true }}
{default}
"#
        )
    };
    let backend = Backend::start(|r| Reply::http(200, &format!("reached {}", r.path))).await;
    // With $default: reserved keys go there.
    let gw = TestGateway::start(&yaml(&backend.url(), true)).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for key in ["$join", "$leave", "$disconnect", "$connect", "$other"] {
        send_text(&mut ws, &format!(r#"{{"action":"{key}"}}"#)).await;
        assert_eq!(next_text(&mut ws).await, "reached /default", "{key}");
        assert_eq!(backend.next().await.path, "/default", "{key}");
    }
    // Without $default: the Forbidden frame, and the backend hears nothing before the probe.
    let gw = TestGateway::start(&yaml(&backend.url(), false)).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for key in ["$join", "$leave", "$default"] {
        send_text(&mut ws, &format!(r#"{{"action":"{key}"}}"#)).await;
        let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("json");
        assert_eq!(frame["message"], "Forbidden", "{key}");
    }
    send_text(&mut ws, r#"{"action":"probe"}"#).await;
    assert_eq!(next_text(&mut ws).await, "reached /probe");
    assert_eq!(backend.next().await.path, "/probe");
}

/// A client that sends its first frame in the same write as the upgrade request: the bytes the
/// HTTP parser read past the handshake reach the session before anything read from the socket
/// (the session's socket is unwrapped from the upgrade, so this is where they could be lost).
#[tokio::test]
async fn a_frame_sent_with_the_upgrade_request_is_not_lost() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.expect("tcp");
    let mut bytes = format!(
        "GET /prod HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        gw.addr
    )
    .into_bytes();
    // One masked text frame, as a client must send it.
    let payload = br#"{"action":"ping"}"#;
    let mask = [0x11_u8, 0x22, 0x33, 0x44];
    bytes.extend_from_slice(&[0x81, 0x80 | payload.len() as u8]);
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&bytes).await.expect("write");
    let mut seen = Vec::new();
    let expected = br#"{"action":"pong"}"#;
    let frame = tokio::time::timeout(DEADLINE, async {
        loop {
            let mut chunk = [0_u8; 1024];
            let n = tcp.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "closed before the answer: {:?}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&chunk[..n]);
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                let rest = &seen[end + 4..];
                if rest.len() >= 2 + expected.len() {
                    return rest[..2 + expected.len()].to_vec();
                }
            }
        }
    })
    .await
    .expect("the answer within the deadline");
    assert!(seen.starts_with(b"HTTP/1.1 101"), "{seen:?}");
    assert_eq!(frame[0], 0x81);
    assert_eq!(usize::from(frame[1]), expected.len());
    assert_eq!(&frame[2..], expected);
}
