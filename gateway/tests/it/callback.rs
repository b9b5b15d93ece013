//! The callback API: POST/GET/DELETE `@connections`, AWS error names, held posts, auth.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

fn conn_url(gw: &TestGateway, id: &str) -> String {
    gw.http_url(&format!("/prod/@connections/{id}"))
}

#[tokio::test]
async fn post_get_delete_round_trip() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let client = http();

    let r = client
        .post(conn_url(&gw, &id))
        .body("hello there")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.expect("body").is_empty());
    assert_eq!(next_text(&mut ws).await, "hello there");

    // Non-UTF-8 bodies arrive as binary frames; percent-encoded paths work.
    let r = client
        .post(gw.http_url(&format!("/prod/%40connections/{id}")))
        .body(vec![0xffu8, 0x00, 0x01])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(
        next_frame(&mut ws).await,
        Message::Binary(vec![0xffu8, 0x00, 0x01].into())
    );

    let r = client.get(conn_url(&gw, &id)).send().await.expect("get");
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.expect("json");
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    assert!(info["identity"]["userAgent"].is_string());
    for key in ["connectedAt", "lastActiveAt"] {
        let text = info[key].as_str().expect("timestamp");
        assert!(
            chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            "{key}={text}"
        );
        assert!(text.ends_with('Z'));
    }
    assert!(info["lastActiveAt"].as_str() >= info["connectedAt"].as_str());

    let r = client
        .delete(conn_url(&gw, &id))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert_eq!(expect_close(&mut ws).await.0, 1000);
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["disconnectStatusCode"], 1000);
    assert_eq!(d["requestContext"]["connectionId"], id.as_str());

    for r in [
        client
            .post(conn_url(&gw, &id))
            .body("late")
            .send()
            .await
            .expect("post"),
        client.get(conn_url(&gw, &id)).send().await.expect("get"),
        client
            .delete(conn_url(&gw, &id))
            .send()
            .await
            .expect("delete"),
    ] {
        assert_eq!(r.status(), 410);
        assert_eq!(r.headers()["x-amzn-errortype"], "GoneException");
    }
}

#[tokio::test]
async fn delete_with_custom_close_code_and_reason() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let client = http();
    let r = client
        .delete(format!("{}?code=999", conn_url(&gw, &id)))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 400);
    let r = client
        .delete(format!(
            "{}?code=4001&reason=kicked%20out",
            conn_url(&gw, &id)
        ))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert_eq!(
        expect_close(&mut ws).await,
        (4001, "kicked out".to_string())
    );
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["disconnectStatusCode"], 4001);
    assert_eq!(d["requestContext"]["disconnectReason"], "kicked out");
}

#[tokio::test]
async fn errors_match_aws() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(
        &backend.url(),
        "limits:\n  max_message_bytes: 1024\n  max_frame_bytes: 1024",
    ))
    .await;
    let (_ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let client = http();
    let r = client
        .post(conn_url(&gw, "AAAAAAAAAAAAAAAA"))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 410);
    assert_eq!(r.headers()["x-amzn-errortype"], "GoneException");
    let r = client
        .post(conn_url(&gw, &id))
        .body(vec![b'a'; 1025])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["x-amzn-errortype"], "PayloadTooLargeException");
    let body: Value = r.json().await.expect("json");
    assert!(body["message"].is_string());
    let r = client
        .post(conn_url(&gw, &id))
        .body(vec![b'a'; 1024])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let r = client
        .post(gw.http_url(&format!("/nostage/@connections/{id}")))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(
        r.status(),
        403,
        "an unknown stage is Forbidden, as AWS answers"
    );
}

#[tokio::test]
async fn full_outbound_queue_answers_429_and_slow_consumer_is_closed() {
    let backend = Backend::ok().await;
    let extra = "limits:\n  outbound_queue_messages: 4\n  send_timeout: 1s\n  ping_interval: 0";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    // A client that never reads.
    let (_ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let client = http();
    let payload = vec![b'z'; 120_000];
    let mut saw_429 = false;
    for _ in 0..2000 {
        let r = client
            .post(conn_url(&gw, &id))
            .body(payload.clone())
            .send()
            .await
            .expect("post");
        match r.status().as_u16() {
            200 => continue,
            429 => {
                assert_eq!(r.headers()["x-amzn-errortype"], "LimitExceededException");
                saw_429 = true;
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(saw_429, "a client that does not read fills its queue");
    // The stuck write times out and the connection is closed as a slow consumer.
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["disconnectStatusCode"], 1013);
    let r = client
        .post(conn_url(&gw, &id))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 410);
}

#[tokio::test]
async fn sequential_posts_arrive_in_order() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let client = http();
    for i in 0..200 {
        let r = client
            .post(conn_url(&gw, &id))
            .body(i.to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
    }
    for i in 0..200 {
        assert_eq!(next_text(&mut ws).await, i.to_string());
    }
}

#[tokio::test]
async fn post_during_connect_is_held_until_the_upgrade() {
    let release = Arc::new(Notify::new());
    let (id_tx, mut id_rx) = mpsc::channel::<String>(4);
    let gate = Arc::clone(&release);
    let backend = Backend::start(move |r| {
        if r.path == "/connect" {
            let e: Value = serde_json::from_slice(&r.body).expect("json");
            let id = e["requestContext"]["connectionId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let _ = id_tx.try_send(id);
            let reply = if e["queryStringParameters"]["deny"].is_string() {
                Reply::lambda(401, None)
            } else {
                Reply::lambda(200, None)
            };
            Reply {
                hold: Some(Arc::clone(&gate)),
                ..reply
            }
        } else {
            Reply::lambda(200, None)
        }
    })
    .await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let url = gw.ws_url("/prod");
    let connecting = tokio::spawn(async move { connect(&url).await });
    let id = tokio::time::timeout(DEADLINE, id_rx.recv())
        .await
        .expect("connect event")
        .expect("id");
    let client = http();
    let r = client
        .post(conn_url(&gw, &id))
        .body("welcome")
        .send()
        .await
        .expect("post");
    assert_eq!(
        r.status(),
        200,
        "a post during $connect is accepted and held"
    );
    // GET answers 410 until the connection is established, as AWS does.
    assert_eq!(
        client
            .get(conn_url(&gw, &id))
            .send()
            .await
            .expect("get")
            .status(),
        410
    );
    release.notify_waiters();
    let mut ws = connecting.await.expect("join");
    assert_eq!(next_text(&mut ws).await, "welcome");

    // When $connect rejects, held messages are dropped and the id is gone.
    let url = gw.ws_url("/prod?deny=1");
    let rejected = tokio::spawn(async move { connect_refused(&url).await });
    let id = tokio::time::timeout(DEADLINE, id_rx.recv())
        .await
        .expect("connect event")
        .expect("id");
    assert_eq!(
        client
            .post(conn_url(&gw, &id))
            .body("x")
            .send()
            .await
            .expect("post")
            .status(),
        200
    );
    release.notify_waiters();
    assert_eq!(rejected.await.expect("join").0, 401);
    assert_eq!(
        client
            .post(conn_url(&gw, &id))
            .body("x")
            .send()
            .await
            .expect("post")
            .status(),
        410
    );
}

#[tokio::test]
async fn callback_auth_modes() {
    let backend = Backend::ok().await;
    let bearer = "callback:\n  auth:\n    kind: bearer\n    tokens: [\"0123456789abcdef-token\"]";
    let gw = TestGateway::start(&config(&backend.url(), bearer)).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let client = http();
    let r = client
        .post(conn_url(&gw, &id))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-amzn-errortype"], "ForbiddenException");
    let r = client
        .post(conn_url(&gw, &id))
        .bearer_auth("wrong-token-000000")
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let r = client
        .post(conn_url(&gw, &id))
        .bearer_auth("0123456789abcdef-token")
        .body("authorised")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(next_text(&mut ws).await, "authorised");
}

#[tokio::test]
async fn separate_callback_listener() {
    let backend = Backend::ok().await;
    let extra = "callback:\n  listen: 127.0.0.1:0\n  on_main_listener: false";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let cb = gw.gateway().callback_addr().expect("callback listener");
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let client = http();
    let r = client
        .post(conn_url(&gw, &id))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403, "not served on the main listener");
    let r = client
        .post(format!("http://{cb}/prod/@connections/{id}"))
        .body("via callback")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(next_text(&mut ws).await, "via callback");
}

/// "Last words, then disconnect": a message answered 200 reaches the client before the close
/// frame of a `DELETE` sent right after it, on every try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_messages_arrive_before_the_close_of_a_following_delete() {
    use futures_util::StreamExt;
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let client = http();
    for attempt in 0..100 {
        let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
        let posted = client
            .post(conn_url(&gw, &id))
            .body("last words")
            .send()
            .await
            .expect("post");
        assert_eq!(posted.status(), 200);
        let deleted = client
            .delete(conn_url(&gw, &id))
            .send()
            .await
            .expect("delete");
        assert_eq!(deleted.status(), 204);
        let received = tokio::time::timeout(DEADLINE, async {
            let mut received = Vec::new();
            while let Some(Ok(message)) = ws.next().await {
                if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
                    received.push(message);
                }
            }
            received
        })
        .await
        .expect("closed in time");
        let close = Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1000.into(),
            reason: "Connection Closed Normally".into(),
        }));
        assert_eq!(
            received,
            [Message::text("last words"), close],
            "try {attempt}"
        );
    }
}
