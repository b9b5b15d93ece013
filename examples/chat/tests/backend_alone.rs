//! The `chat-backend` binary beside a gateway it does not run (as in `deploy/compose`): the
//! gateway's integrations reach it, its room posts reach the gateway with a bearer token, and
//! its page carries the public WebSocket URL it was given.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use wsgate::{Config, Gateway, Listeners};

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "a-callback-token-for-the-test";

/// Starts the binary on an ephemeral port; answers the process and its address (read from the
/// line it prints once it listens).
async fn start_backend(callback_url: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-backend"))
        .args(["--listen", "127.0.0.1:0", "--callback-url", callback_url])
        .args(["--gateway-url", "ws://chat.example/prod"])
        .env("CHAT_CALLBACK_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start chat-backend");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = timeout(WAIT, lines.next_line())
        .await
        .expect("chat-backend prints its address")
        .expect("read")
        .expect("a line");
    let addr = line
        .strip_prefix("chat backend on http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    // Keep reading its output (its logs), so its writes never fail.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

async fn next_json(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    loop {
        match timeout(WAIT, ws.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("JSON"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_backend_alone_serves_a_gateway_that_asks_for_a_token() {
    let yaml = format!(
        "{}\ncallback:\n  auth: {{ kind: bearer, tokens: [{TOKEN}] }}\n",
        std::fs::read_to_string(wsgate_example_chat::DEFAULT_CONFIG).expect("config")
    );
    let mut config = Config::from_yaml(&yaml).expect("config");
    config.listen = "127.0.0.1:0".parse().expect("addr");
    // The gateway first, so the backend knows where to post; its integrations learn the
    // backend's address through the stage variable before the first connection.
    let listeners = Listeners::bind(&config).await.expect("bind");
    let gateway_addr = listeners.main.local_addr().expect("addr");
    let (_backend, backend_addr) = start_backend(&format!("http://{gateway_addr}")).await;
    config
        .api
        .stages
        .get_mut("prod")
        .expect("prod")
        .variables
        .insert("backend".into(), format!("http://{backend_addr}"));
    let gateway = Gateway::start(config, listeners).await.expect("gateway");

    let page = reqwest::get(format!("http://{backend_addr}/"))
        .await
        .expect("page")
        .text()
        .await
        .expect("page text");
    assert!(
        page.contains("ws://chat.example/prod"),
        "the page names the public URL"
    );

    let url = |name: &str| format!("ws://{gateway_addr}/prod?name={name}&room=ops");
    let (mut ada, _) = connect_async(url("Ada").as_str()).await.expect("Ada");
    let (mut bob, _) = connect_async(url("Bob").as_str()).await.expect("Bob");
    ada.send(Message::text(
        json!({"action": "sendmessage", "data": "hello", "id": "m1"}).to_string(),
    ))
    .await
    .expect("send");
    // The sender also gets the gateway's ack (`sendmessage` is acknowledged), before or after
    // the room's copy.
    let mut ada_frames = vec![next_json(&mut ada).await, next_json(&mut ada).await];
    let ack = ada_frames
        .iter()
        .position(|f| *f == json!({"ack": "m1"}))
        .expect("Ada's message is acknowledged");
    ada_frames.remove(ack);
    for message in [ada_frames.remove(0), next_json(&mut bob).await] {
        assert_eq!(message["from"], "Ada", "{message}");
        assert_eq!(message["data"], "hello", "{message}");
        assert_eq!(message["room"], "ops", "{message}");
    }
    gateway.shutdown().await;
}
