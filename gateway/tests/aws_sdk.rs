//! The callback API through the official AWS SDK for Python: boto3's `apigatewaymanagementapi`
//! client, signing with SigV4, posts to, reads and deletes a live connection of a real gateway,
//! and gets the AWS exception classes for a deleted id, a bad signature and a large payload.
//!
//! Runs `tests/sdk/boto3_client.py` with `$WSGATE_PYTHON` (default `python3`), which must be
//! able to `import boto3` (`pip install boto3`); without it the test fails and says so.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::routing::post;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::time::timeout;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use wsgate::{Config, Gateway, Listeners};

const ACCESS_KEY_ID: &str = "AKIDTEST";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const USER_AGENT: &str = "wsgate-sdk-test/1.0";
#[path = "it/support/boto.rs"]
mod boto;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/boto3_client.py");

/// Bound on each wait: the connection, a frame, the script.
const WAIT: Duration = Duration::from_secs(60);

/// A UTF-8 payload (goes out as a text frame) with characters an encoder could alter.
const TEXT_PAYLOAD: &str = "{\"msg\":\"héllo from boto3 ✓\",\"n\":1}\r\n\t\u{0}end";

/// What the script posts right before deleting the connection.
const LAST_WORDS: &str = "goodbye";

/// Bytes that are not UTF-8 (go out as a binary frame).
fn binary_payload() -> Vec<u8> {
    (0..=255u8).rev().collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A backend whose `whoami` route answers the caller's connection id, as a Lambda would.
async fn whoami_backend() -> SocketAddr {
    async fn whoami(Json(event): Json<Value>) -> Json<Value> {
        let id = event["requestContext"]["connectionId"].clone();
        Json(json!({ "statusCode": 200, "body": id }))
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/whoami", post(whoami));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn gateway_config(backend: SocketAddr) -> Config {
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
api:
  name: sdk
  route_selection_expression: $request.body.action
  stages:
    prod: {{}}
  routes:
    $connect:
      integration: {{ type: mock }}
    whoami:
      integration: {{ type: aws_proxy, uri: "http://{backend}/whoami", timeout: 5s }}
      route_response: true
callback:
  auth:
    kind: sigv4
    region: us-east-1
    credentials:
      - access_key_id: {ACCESS_KEY_ID}
        secret_access_key: {SECRET_ACCESS_KEY}
"#
    );
    Config::from_yaml(&yaml).expect("test config loads")
}

/// Fails the test, naming the fix, when the interpreter lacks boto3.
async fn python_with_boto3() {
    let python = boto::python();
    let probe = Command::new(&python)
        .args(["-c", "import boto3"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot run `{python}` ({error}); install Python 3 and `pip install boto3`, \
                 or set WSGATE_PYTHON to an interpreter that has boto3"
            )
        });
    assert!(
        probe.status.success(),
        "`{python}` cannot import boto3: run `pip install boto3` (or set WSGATE_PYTHON to an \
         interpreter that has it)\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
}

/// Runs the script against `endpoint` and returns its results object.
async fn run_boto3_script(endpoint: &str, connection_id: &str) -> Value {
    let args = [
        "--endpoint".to_string(),
        endpoint.to_string(),
        format!("--connection-id={connection_id}"),
        "--access-key-id".into(),
        ACCESS_KEY_ID.into(),
        "--secret-access-key".into(),
        SECRET_ACCESS_KEY.into(),
        "--text-hex".into(),
        hex(TEXT_PAYLOAD.as_bytes()),
        "--binary-hex".into(),
        hex(&binary_payload()),
        "--last-words".into(),
        LAST_WORDS.into(),
    ];
    boto::run_script(SCRIPT, args, None, WAIT).await
}

fn now_ms() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(elapsed.as_millis()).unwrap()
}

/// Asserts that a step raised the named AWS error with this status.
fn assert_raised(results: &Value, step: &str, class: &str, code: &str, status: u16) {
    let outcome = &results[step];
    assert_eq!(
        outcome["raised"], class,
        "{step}: expected {class}, got {outcome}"
    );
    assert_eq!(outcome["code"], code, "{step}: {outcome}");
    assert_eq!(outcome["status"], status, "{step}: {outcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_manages_connections() {
    python_with_boto3().await;
    let backend = whoami_backend().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = Gateway::start(
        gateway_config(backend),
        Listeners {
            main: listener,
            callback: None,
        },
    )
    .await
    .expect("gateway starts");
    let addr = gateway.local_addr();

    let mut request = format!("ws://{addr}/prod").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("user-agent", USER_AGENT.parse().unwrap());
    let (mut ws, _) = timeout(WAIT, connect_async(request))
        .await
        .expect("connect in time")
        .expect("gateway accepts the connection");
    ws.send(Message::text(r#"{"action":"whoami"}"#))
        .await
        .unwrap();
    let connection_id = match timeout(WAIT, ws.next()).await.expect("reply in time") {
        Some(Ok(Message::Text(id))) => id.to_string(),
        other => panic!("expected the connection id, got {other:?}"),
    };
    assert_eq!(connection_id.len(), 16, "{connection_id}");

    // Everything the gateway sends this client, up to and including its close frame.
    let reader = tokio::spawn(async move {
        let mut frames = Vec::new();
        let mut close: Option<Option<CloseFrame>> = None;
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Close(frame)) => close = Some(frame),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(message) => frames.push(message),
                Err(error) => panic!("WebSocket error: {error}"),
            }
        }
        (frames, close)
    });

    let started = now_ms();
    let endpoint = format!("http://{addr}/prod");
    let results = run_boto3_script(&endpoint, &connection_id).await;
    let finished = now_ms();

    // post_to_connection: 200, and the client gets exactly the posted bytes, text then binary,
    // then the last words posted just before the delete; nothing a wrongly signed or oversized
    // call tried to post.
    for step in ["post_text", "post_binary", "post_last"] {
        assert_eq!(results[step], json!({ "status": 200 }), "{step}: {results}");
    }
    let (frames, close) = timeout(WAIT, reader)
        .await
        .expect("the client was closed in time")
        .expect("reader task");
    assert_eq!(
        frames,
        [
            Message::text(TEXT_PAYLOAD),
            Message::binary(binary_payload()),
            Message::text(LAST_WORDS),
        ]
    );

    // A wrong secret: InvalidSignatureException; an unknown key: UnrecognizedClientException;
    // both 403, as AWS answers (see tests/it/aws_wire.rs). Neither is modelled for this API, so
    // boto3 raises its generic ClientError with the code from x-amzn-ErrorType.
    assert_raised(
        &results,
        "wrong_secret",
        "ClientError",
        "InvalidSignatureException",
        403,
    );
    assert_raised(
        &results,
        "unknown_key",
        "ClientError",
        "UnrecognizedClientException",
        403,
    );

    // Over 128 KiB: PayloadTooLargeException, 413.
    assert_raised(
        &results,
        "too_large",
        "PayloadTooLargeException",
        "PayloadTooLargeException",
        413,
    );

    // get_connection: timestamps parse as datetimes and are plausible; the identity is ours.
    let get = &results["get"];
    assert_eq!(get["status"], 200, "{get}");
    assert_eq!(get["connected_at_is_datetime"], true, "{get}");
    assert_eq!(get["last_active_at_is_datetime"], true, "{get}");
    assert_eq!(get["source_ip"], "127.0.0.1", "{get}");
    assert_eq!(get["user_agent"], USER_AGENT, "{get}");
    let connected_at = get["connected_at_ms"].as_i64().expect("ConnectedAt");
    let last_active_at = get["last_active_at_ms"].as_i64().expect("LastActiveAt");
    assert!(
        connected_at <= started && started - connected_at < 60_000,
        "ConnectedAt {connected_at} is not shortly before {started}"
    );
    assert!(
        (connected_at..=finished).contains(&last_active_at),
        "LastActiveAt {last_active_at} is outside {connected_at}..={finished}"
    );

    // delete_connection: 204, and the client sees a normal close.
    assert_eq!(results["delete"], json!({ "status": 204 }), "{results}");
    let close = close
        .expect("the client got a close frame")
        .expect("the close frame has a code");
    assert_eq!(u16::from(close.code), 1000, "{close:?}");

    // The deleted id: GoneException, 410.
    assert_raised(
        &results,
        "post_after_delete",
        "GoneException",
        "GoneException",
        410,
    );

    gateway.shutdown().await;
}
