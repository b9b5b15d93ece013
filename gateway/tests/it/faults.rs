//! The lifecycle promises under faults at the worst moment: a client that hangs up while
//! `$connect` runs, a drain during `$connect`, store calls that fail, a full inbound queue, a
//! shutdown with posts still queued, and a burst of handshakes against the connection cap.
//! Each test counts `$connect` 2xx answers and `$disconnect` calls per connection id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use wsgate_connection_store::conformance::servers::RedisServer;

use crate::support::cluster::*;
use crate::support::*;

/// A backend whose `$connect` answers wait for `gate`; everything else answers at once.
async fn gated_backend(gate: &Arc<Notify>) -> Backend {
    let gate = Arc::clone(gate);
    Backend::start(move |r| {
        let mut reply = Reply::lambda(200, None);
        if r.path == "/connect" {
            reply.hold = Some(Arc::clone(&gate));
        }
        reply
    })
    .await
}

/// Releases every answer waiting at `gate`, now and later, until the guard is dropped.
pub(crate) fn open_gate(gate: &Arc<Notify>) -> AbortOnDrop {
    let gate = Arc::clone(gate);
    AbortOnDrop(tokio::spawn(async move {
        loop {
            gate.notify_waiters();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }))
}

pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Changes what the default Redis user may run (a real, deterministic store error).
pub(crate) async fn acl(redis: &RedisServer, rule: &str) {
    let mut admin = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg(rule)
        .query_async(&mut admin)
        .await
        .expect("acl");
}

/// Sends an upgrade request on a raw socket (so the test can hang up mid-handshake).
pub(crate) async fn raw_upgrade(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("tcp");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    tcp
}

pub(crate) fn connection_id(event: &serde_json::Value) -> String {
    event["requestContext"]["connectionId"]
        .as_str()
        .expect("connectionId")
        .to_string()
}

/// Waits for the `$disconnect` of `id` and returns its status code; other requests are skipped.
async fn disconnect_of(backend: &Backend, id: &str) -> u64 {
    loop {
        let d = backend.next_to("/disconnect").await.json();
        if connection_id(&d) == id {
            return d["requestContext"]["disconnectStatusCode"]
                .as_u64()
                .expect("code");
        }
    }
}

/// The record of `id` is gone (GET answers 410) and no second `$disconnect` follows.
async fn no_record_and_no_second_disconnect(backend: &Backend, gw: &TestGateway, id: &str) {
    let client = http();
    eventually("no record left", DEADLINE, || async {
        callback(&client, Method::GET, &gw.http_url(""), id, "").await == 410
    })
    .await;
    assert_eq!(
        later_requests(backend, Duration::from_millis(500))
            .await
            .get("/disconnect"),
        None
    );
}

/// Counts what else reaches the backend in `window` (used after the expected events arrived,
/// to prove nothing is sent twice).
async fn later_requests(backend: &Backend, window: Duration) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(r) = tokio::time::timeout_at(deadline, backend.next()).await {
        *seen.entry(r.path).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn a_client_gone_during_connect_still_gets_its_disconnect() {
    let gate = Arc::new(Notify::new());
    let backend = gated_backend(&gate).await;
    let (store, _cleanup) = shared_store();
    let gw = TestGateway::start(&config(&backend.url(), &store)).await;
    let tcp = raw_upgrade(gw.addr, "/prod").await;
    let id = connection_id(&backend.next_to("/connect").await.json());
    // Whether the gateway notices the hang-up before `$connect` answers (the 101 cannot be
    // sent) or after (the upgrade fails), the connection ends with 1006.
    drop(tcp);
    gate.notify_one();
    assert_eq!(disconnect_of(&backend, &id).await, 1006);
    no_record_and_no_second_disconnect(&backend, &gw, &id).await;
}

#[tokio::test]
async fn a_drain_during_connect_refuses_the_upgrade_and_runs_disconnect() {
    let gate = Arc::new(Notify::new());
    let backend = gated_backend(&gate).await;
    let mut gw = TestGateway::start(&config(&backend.url(), "")).await;
    let mut tcp = raw_upgrade(gw.addr, "/prod").await;
    let id = connection_id(&backend.next_to("/connect").await.json());
    let gateway = gw.gateway.take().expect("running");
    let shutdown = tokio::spawn(gateway.shutdown());
    // The shutdown task marks the node draining before its first wait.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    gate.notify_one();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, tcp.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        !answer.starts_with("HTTP/1.1 101"),
        "upgraded while draining: {answer}"
    );
    assert_eq!(disconnect_of(&backend, &id).await, 1001);
    tokio::time::timeout(DEADLINE, shutdown)
        .await
        .expect("shutdown ends")
        .expect("join");
}

#[tokio::test]
async fn a_failed_record_removal_is_retried_and_disconnect_runs_once() {
    let redis = RedisServer::start().await;
    let backend = Backend::ok().await;
    let store = redis_store(&redis.url(), &unique_prefix());
    let gw = TestGateway::start(&node_config(&backend.url(), &store, "")).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    // The store refuses removals (a real Redis error) while the client closes.
    acl(&redis, "-@scripting").await;
    ws.send(Message::Close(None)).await.expect("close");
    expect_close(&mut ws).await;
    // The record could not be removed, so the `$disconnect` is still owed and not yet sent:
    // sending it now would let a reaper send a second one for the same record.
    assert_eq!(
        later_requests(&backend, Duration::from_millis(300))
            .await
            .get("/disconnect"),
        None
    );
    acl(&redis, "+@scripting").await;
    assert_eq!(disconnect_of(&backend, &id).await, 1005);
    let client = http();
    eventually(
        "the record is removed once Redis answers",
        DEADLINE,
        || async { callback(&client, Method::GET, &gw.http_url(""), &id, "").await == 410 },
    )
    .await;
    assert_eq!(
        later_requests(&backend, Duration::from_millis(500))
            .await
            .get("/disconnect"),
        None
    );
}

#[tokio::test]
async fn a_failed_registration_after_connect_runs_disconnect_once() {
    let redis = RedisServer::start().await;
    let gate = Arc::new(Notify::new());
    let backend = gated_backend(&gate).await;
    let store = redis_store(&redis.url(), &unique_prefix());
    let gw = TestGateway::start(&node_config(&backend.url(), &store, "")).await;
    let connecting = tokio::spawn(connect_refused(gw.ws_url("/prod").leak()));
    let id = connection_id(&backend.next_to("/connect").await.json());
    // The record is written but its node index entry is refused: registration fails halfway.
    acl(&redis, "-sadd").await;
    gate.notify_one();
    let (status, _) = connecting.await.expect("join");
    assert_eq!(status, 503);
    acl(&redis, "+sadd").await;
    disconnect_of(&backend, &id).await;
    no_record_and_no_second_disconnect(&backend, &gw, &id).await;
}

#[tokio::test]
async fn a_full_inbound_queue_does_not_kill_a_client_that_answers_pings() {
    let gate = Arc::new(Notify::new());
    let held = Arc::clone(&gate);
    let backend = Backend::start(move |r| {
        let mut reply = Reply::lambda(200, None);
        if r.path == "/sendmessage" {
            reply.hold = Some(Arc::clone(&held));
        }
        reply
    })
    .await;
    let extra =
        "limits:\n  inbound_queue_messages: 1\n  ping_interval: 100ms\n  pong_timeout: 150ms";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    for i in 0..4 {
        send_text(&mut ws, &format!(r#"{{"action":"sendmessage","seq":{i}}}"#)).await;
    }
    backend.next_to("/sendmessage").await;
    // The client answers the ping (tungstenite does while reading); the gateway, not reading
    // while its queue is full, must not count the unread pong as missing. Several pong
    // timeouts pass without a close.
    let quiet = tokio::time::timeout(Duration::from_millis(1000), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_))) => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "closed while its queue was full: {quiet:?}");
    gate.notify_one();
    for _ in 0..3 {
        backend.next_to("/sendmessage").await;
        gate.notify_one();
    }
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
}

#[tokio::test]
async fn queued_messages_get_a_bounded_drain_after_the_client_leaves() {
    let gate = Arc::new(Notify::new());
    let held = Arc::clone(&gate);
    let backend = Backend::start(move |r| {
        let mut reply = Reply::lambda(200, None);
        if r.path == "/sendmessage" {
            reply.hold = Some(Arc::clone(&held));
        }
        reply
    })
    .await;
    let extra = "limits:\n  inbound_drain_timeout: 300ms";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    for i in 0..5 {
        send_text(&mut ws, &format!(r#"{{"action":"sendmessage","seq":{i}}}"#)).await;
    }
    backend.next_to("/sendmessage").await;
    ws.send(Message::Close(None)).await.expect("close");
    // The integration never answers; `$disconnect` still comes after the drain bound.
    assert_eq!(disconnect_of(&backend, &id).await, 1005);
    drop(gate);
}

#[tokio::test]
async fn shutdown_flushes_posts_answered_200_before_the_1001() {
    let backend = Backend::ok().await;
    // More than the loopback socket buffers hold, so most posts are still queued at the SIGTERM.
    let extra = "limits:\n  ping_interval: 0\n  outbound_queue_messages: 1024\n  outbound_queue_bytes: 33554432";
    let mut gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let client = http();
    let body = "x".repeat(16 * 1024);
    let mut accepted = 0;
    for _ in 0..400 {
        if callback(&client, Method::POST, &gw.http_url(""), &id, &body).await == 200 {
            accepted += 1;
        }
    }
    assert!(accepted > 0);
    let gateway = gw.gateway.take().expect("running");
    let shutdown = tokio::spawn(gateway.shutdown());
    let mut received = 0;
    let code = loop {
        match next_frame(&mut ws).await {
            Message::Text(_) => received += 1,
            Message::Close(frame) => break frame.map(|f| u16::from(f.code)),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, Some(1001));
    assert_eq!(
        received, accepted,
        "every post answered 200 arrives before the 1001"
    );
    shutdown.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_connections_holds_under_a_burst_of_handshakes() {
    let gate = Arc::new(Notify::new());
    let backend = gated_backend(&gate).await;
    let extra = "limits:\n  max_connections: 5\nthrottling:\n  new_connections: null";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let url: &'static str = gw.ws_url("/prod").leak();
    let attempts: Vec<_> = (0..20)
        .map(|_| tokio::spawn(tokio_tungstenite::connect_async(url)))
        .collect();
    // Those let through wait in `$connect`; the rest are refused at once.
    for _ in 0..5 {
        backend.next_to("/connect").await;
    }
    let _open = open_gate(&gate);
    let mut refused = 0;
    let mut open = Vec::new();
    for attempt in attempts {
        match tokio::time::timeout(DEADLINE, attempt)
            .await
            .expect("answer")
            .expect("join")
        {
            Ok((ws, _)) => open.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 503);
                refused += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(open.len(), 5, "exactly max_connections are open");
    assert_eq!(refused, 15);
    assert_eq!(gw.gateway().connection_count(), 5);
}
