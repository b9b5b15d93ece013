//! The queue-chat flow end to end on a private `nats-server`: clients through the real gateway,
//! JetStream both ways and the worker; a worker that dies and comes back loses nothing.

use std::time::Duration;

use async_nats::jetstream;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use wsgate_example_queue_chat::nats_server::NatsServer;
use wsgate_example_queue_chat::worker::{MEMBERS_BUCKET, Member};
use wsgate_example_queue_chat::{Options, Running, start};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(15);

async fn example() -> (NatsServer, Running) {
    let nats = NatsServer::start()
        .await
        .expect("a private nats-server (the Debian package nats-server) must start for this test");
    let running = start(Options::ephemeral(nats.url()))
        .await
        .expect("the example starts");
    (nats, running)
}

async fn join(running: &Running, name: &str, room: &str) -> Client {
    let url = format!("{}?name={name}&room={room}", running.websocket_url());
    let (ws, response) = timeout(WAIT, connect_async(url.as_str()))
        .await
        .expect("connect in time")
        .expect("gateway accepts the connection");
    assert_eq!(response.status(), 101);
    ws
}

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

async fn say(ws: &mut Client, text: &str) {
    ws.send(Message::text(
        json!({ "action": "sendmessage", "data": text }).to_string(),
    ))
    .await
    .expect("send");
}

fn assert_chat(message: &Value, from: &str, data: &str) {
    assert_eq!(message["from"], from, "{message}");
    assert_eq!(message["data"], data, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_go_through_the_queue_to_everyone_in_the_room() {
    let (_nats, running) = example().await;
    let mut ada = join(&running, "Ada", "").await;
    let mut bob = join(&running, "Bob", "").await;
    let mut eve = join(&running, "Eve", "elsewhere").await;

    say(&mut ada, "hello").await;
    assert_chat(&next_json(&mut ada).await, "Ada", "hello");
    assert_chat(&next_json(&mut bob).await, "Ada", "hello");

    // One connection's messages arrive in the order it sent them.
    for i in 0..50 {
        say(&mut bob, &format!("m{i}")).await;
    }
    for i in 0..50 {
        assert_chat(&next_json(&mut ada).await, "Bob", &format!("m{i}"));
        assert_chat(&next_json(&mut bob).await, "Bob", &format!("m{i}"));
    }

    // Another room hears nothing of that, and its own messages stay there.
    say(&mut eve, "anyone?").await;
    let heard = next_json(&mut eve).await;
    assert_chat(&heard, "Eve", "anyone?");
    assert_eq!(heard["room"], "elsewhere");

    // An unknown action is answered by the gateway itself.
    ada.send(Message::text(r#"{"action":"dance"}"#))
        .await
        .expect("send");
    assert_eq!(
        next_json(&mut ada).await,
        json!({ "message": "unknown action" })
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_loses_nothing_and_members_outlive_it() {
    let (nats, mut running) = example().await;
    let mut ada = join(&running, "Ada", "").await;
    let mut bob = join(&running, "Bob", "").await;
    say(&mut ada, "before").await;
    assert_chat(&next_json(&mut bob).await, "Ada", "before");
    assert_chat(&next_json(&mut ada).await, "Ada", "before");

    // The worker dies; messages the gateway accepted meanwhile wait in JetStream.
    assert!(running.kill_worker());
    for text in ["while", "away"] {
        say(&mut ada, text).await;
    }
    // A fresh worker knows the members from the bucket and handles what waited, in order.
    running.start_worker().await.expect("a new worker");
    for text in ["while", "away"] {
        assert_chat(&next_json(&mut bob).await, "Ada", text);
        assert_chat(&next_json(&mut ada).await, "Ada", text);
    }

    // A client that leaves is forgotten through its $disconnect event.
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    let bucket = js.get_key_value(MEMBERS_BUCKET).await.expect("bucket");
    let mut watch = bucket.watch_all().await.expect("watch");
    bob.close(None).await.expect("close");
    let bob_id = timeout(WAIT, async {
        while let Some(entry) = watch.next().await {
            let entry = entry.expect("watch entry");
            if entry.operation != async_nats::jetstream::kv::Operation::Put {
                return entry.key;
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("a member forgotten in time");
    let mut keys = bucket.keys().await.expect("keys");
    let mut left = Vec::new();
    while let Some(key) = keys.next().await {
        left.push(key.expect("key"));
    }
    assert_eq!(left.len(), 1, "only Ada is left: {left:?}");
    assert_ne!(left[0], bob_id);
    let ada_member: Member =
        serde_json::from_slice(&bucket.get(&left[0]).await.expect("get").expect("Ada"))
            .expect("member JSON");
    assert_eq!(ada_member.name, "Ada");
    running.shutdown().await;
}
