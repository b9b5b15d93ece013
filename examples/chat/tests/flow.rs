//! The chat flow without a browser: two WebSocket clients through the real gateway and backend
//! (names, broadcast, acknowledged messages and their resends, the `$default` answer, a leaver
//! forgotten, shutdown), and the page served with the right gateway URL.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use wsgate_example_chat::backend::Members;
use wsgate_example_chat::{Options, Running, start};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

async fn join(running: &Running, name: &str) -> Client {
    join_room(running, name, "").await
}

async fn join_room(running: &Running, name: &str, room: &str) -> Client {
    let url = format!("{}?name={name}&room={room}", running.websocket_url());
    let (ws, response) = timeout(WAIT, connect_async(url.as_str()))
        .await
        .expect("connect in time")
        .expect("gateway accepts the connection");
    assert_eq!(response.status(), 101);
    ws
}

/// The next text message, skipping control frames.
async fn next_json(ws: &mut Client) -> Value {
    loop {
        let frame = timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("valid frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON message"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The close frame that ends the stream, skipping anything before it; reading on to the end
/// sends the client's half of the close handshake.
async fn next_close(ws: &mut Client) -> CloseFrame {
    timeout(WAIT, async {
        let mut close = None;
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Close(frame)) => close = Some(frame.expect("a close code")),
                Ok(_) if close.is_none() => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
        close.expect("a close frame before the end")
    })
    .await
    .expect("closed in time")
}

/// Sends a chat message with the id `text` (`sendmessage` is an acknowledged route).
async fn say(ws: &mut Client, text: &str) {
    ws.send(Message::text(
        json!({ "action": "sendmessage", "data": text, "id": text }).to_string(),
    ))
    .await
    .expect("send");
}

/// The sender's view of its message `text` (id `text`): the room's copy and the gateway's ack,
/// in either order (the backend posts to the room before it answers the gateway).
async fn own_message(ws: &mut Client, text: &str) -> Value {
    let (first, second) = (next_json(ws).await, next_json(ws).await);
    let ack = json!({ "ack": text });
    match (first == ack, second == ack) {
        (true, false) => second,
        (false, true) => first,
        _ => panic!("expected the message and its ack, got {first} and {second}"),
    }
}

fn assert_chat_message(message: &Value, from: &str, data: &str) {
    assert_eq!(message["from"], from, "{message}");
    assert_eq!(message["data"], data, "{message}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at = message["at"].as_u64().expect("`at` is epoch milliseconds");
    assert!(at <= now && now - at < 60_000, "`at` {at} is not recent");
}

async fn wait_members(
    members: &mut tokio::sync::watch::Receiver<Members>,
    mut done: impl FnMut(&Members) -> bool,
) -> Members {
    timeout(WAIT, members.wait_for(|m| done(m)))
        .await
        .expect("members change in time")
        .expect("backend running")
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_chat_and_a_leaver_is_forgotten() {
    let running = start(Options::ephemeral()).await.expect("example starts");
    let mut members = running.members();

    let mut alice = join(&running, "alice").await;
    let mut bob = join(&running, "bob").await;
    let joined = wait_members(&mut members, |m| m.len() == 2).await;
    let mut names: Vec<&str> = joined.values().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["alice", "bob"]);

    say(&mut alice, "hello bob").await;
    assert_chat_message(&next_json(&mut bob).await, "alice", "hello bob");
    assert_chat_message(
        &own_message(&mut alice, "hello bob").await,
        "alice",
        "hello bob",
    );

    say(&mut bob, "hi alice").await;
    assert_chat_message(&next_json(&mut alice).await, "bob", "hi alice");
    assert_chat_message(&own_message(&mut bob, "hi alice").await, "bob", "hi alice");

    // A message resent with its id (as the page's client does after a reconnect) is only
    // acknowledged again: the room gets it once.
    say(&mut alice, "once").await;
    assert_chat_message(&next_json(&mut bob).await, "alice", "once");
    own_message(&mut alice, "once").await;
    say(&mut alice, "once").await;
    assert_eq!(next_json(&mut alice).await, json!({ "ack": "once" }));
    // A message without an id is refused with the gateway's error frame.
    alice
        .send(Message::text(r#"{"action":"sendmessage","data":"no id"}"#))
        .await
        .expect("send");
    assert_eq!(
        next_json(&mut alice).await["message"],
        "Missing message id at $.id"
    );
    say(&mut alice, "twice?").await;
    assert_chat_message(&next_json(&mut bob).await, "alice", "twice?");
    own_message(&mut alice, "twice?").await;

    // Anything but `sendmessage` lands on `$default`, a two-way mock, answered to the sender only.
    alice
        .send(Message::text(r#"{"action":"dance"}"#))
        .await
        .expect("send");
    assert_eq!(
        next_json(&mut alice).await,
        json!({ "message": "unknown action" })
    );

    bob.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .expect("close");
    let left = wait_members(&mut members, |m| m.len() == 1).await;
    assert_eq!(
        left.values().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["alice"]
    );

    // Only alice is left to receive, and she still does.
    say(&mut alice, "anyone?").await;
    assert_chat_message(
        &own_message(&mut alice, "anyone?").await,
        "alice",
        "anyone?",
    );

    // Shutting down closes alice with 1001 (she answers the close while the gateway drains).
    let (_, closed) = tokio::join!(running.shutdown(), next_close(&mut alice));
    assert_eq!(closed.code, CloseCode::Away);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_keep_their_messages_to_themselves() {
    let running = start(Options::ephemeral()).await.expect("example starts");
    let mut members = running.members();
    let mut alice = join(&running, "alice").await;
    let mut carol = join_room(&running, "carol", "Garden").await;
    let joined = wait_members(&mut members, |m| m.len() == 2).await;
    let mut rooms: Vec<&str> = joined.values().map(|m| m.room.as_str()).collect();
    rooms.sort_unstable();
    assert_eq!(rooms, ["garden", "lobby"]);

    say(&mut alice, "lobby only").await;
    assert_chat_message(
        &own_message(&mut alice, "lobby only").await,
        "alice",
        "lobby only",
    );
    say(&mut carol, "garden only").await;
    let message = own_message(&mut carol, "garden only").await;
    assert_chat_message(&message, "carol", "garden only");
    assert_eq!(message["room"], "garden");
    // Carol never got the lobby's message, nor alice the garden's: each next message is their own.
    say(&mut alice, "again").await;
    assert_chat_message(&own_message(&mut alice, "again").await, "alice", "again");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_default_to_anonymous_and_the_page_names_the_gateway() {
    let running = start(Options::ephemeral()).await.expect("example starts");
    let mut members = running.members();

    let mut nameless = join(&running, "").await;
    wait_members(&mut members, |m| m.values().any(|n| n.name == "anonymous")).await;
    say(&mut nameless, "who am I").await;
    assert_chat_message(
        &own_message(&mut nameless, "who am I").await,
        "anonymous",
        "who am I",
    );

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let page = http
        .get(running.page_url())
        .send()
        .await
        .expect("page request");
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let expected = format!(r#""gatewayUrl":"{}""#, running.websocket_url());
    assert!(html.contains(&expected), "page lacks {expected}");
    assert!(html.contains(r#"<script type="module" src="/chat.js">"#));

    let script = http
        .get(format!("{}chat.js", running.page_url()))
        .send()
        .await
        .expect("script request");
    assert_eq!(script.status(), 200);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let script = script.text().await.unwrap();
    assert!(script.contains("sendmessage") && script.contains("./chat-client.js"));

    // The module it imports: the client generated from wsgate.yaml.
    let client = http
        .get(format!("{}chat-client.js", running.page_url()))
        .send()
        .await
        .expect("client request");
    assert_eq!(client.status(), 200);
    assert!(
        client
            .text()
            .await
            .unwrap()
            .contains("export class ChatClient")
    );

    nameless.close(None).await.expect("close");
    wait_members(&mut members, Members::is_empty).await;
    running.shutdown().await;
}
