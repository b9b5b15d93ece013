//! Broker integrations against real brokers: NATS JetStream, RabbitMQ and Redis Streams. A
//! message lands with its context headers and in order; `$connect` publishes a connect event; a
//! broker that is down gives the client "Internal server error"; publishing resumes after the
//! broker comes back, without losing a message the gateway acknowledged; config errors name
//! their key.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::Value;
use wsgate::Config;
use wsgate_connection_store::conformance::servers::RedisServer;

use crate::support::brokers::{
    CuttingProxy, NATS_URL as NATS, NatsServer, RABBIT_URL as AMQP, REDIS_URL as REDIS,
    nats_client, require, unique,
};
use crate::support::{DEADLINE, TestGateway, Ws, connect, next_text, send_text};

/// A gateway whose `chat` route and `$connect` are `routes` (YAML), with a two-way `ping` mock
/// that answers `pong` and stage variable `room: lobby`.
async fn gateway(routes: &str) -> TestGateway {
    TestGateway::start(&yaml(routes)).await
}

fn yaml(routes: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: brokers
  route_selection_expression: $request.body.action
  stages:
    prod:
      variables:
        room: lobby
  routes:
    ping:
      integration: {{ type: mock, response: 'pong' }}
      route_response: true
{routes}
"#
    )
}

/// Sends `{"action":"chat","n":n}`.
async fn chat(ws: &mut Ws, n: usize) {
    send_text(ws, &format!(r#"{{"action":"chat","n":{n}}}"#)).await;
}

/// Sends a ping and returns the frames that came before its pong: the error frames of the
/// messages sent before it (the connection handles its messages in order).
async fn settle(ws: &mut Ws) -> Vec<String> {
    send_text(ws, r#"{"action":"ping"}"#).await;
    let mut before = Vec::new();
    loop {
        let text = next_text(ws).await;
        if text == "pong" {
            return before;
        }
        before.push(text);
    }
}

/// Sends message `n` and says whether the gateway acknowledged it (no error frame).
async fn acknowledged(ws: &mut Ws, n: usize) -> bool {
    chat(ws, n).await;
    let errors = settle(ws).await;
    for error in &errors {
        assert!(
            error.contains("Internal server error"),
            "unexpected frame {error}"
        );
    }
    errors.is_empty()
}

/// Sends messages from `n` on until one is acknowledged (the broker is back), within the
/// deadline; returns the numbers acknowledged (one) and the next number.
async fn until_acknowledged(ws: &mut Ws, mut n: usize) -> (usize, usize) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if acknowledged(ws, n).await {
            return (n, n + 1);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "publishing did not resume within {DEADLINE:?}"
        );
        n += 1;
    }
}

fn n_of(payload: &[u8]) -> usize {
    let json: Value = serde_json::from_slice(payload).expect("JSON payload");
    json["n"].as_u64().expect("n") as usize
}

const CONTEXT_HEADERS: [&str; 8] = [
    "x-wsgate-connection-id",
    "x-wsgate-route-key",
    "x-wsgate-event-type",
    "x-wsgate-stage",
    "x-wsgate-request-id",
    "x-wsgate-api-id",
    "x-wsgate-source-ip",
    "x-wsgate-message-id",
];

// ---------------------------------------------------------------------------------------------
// NATS JetStream

async fn nats_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    subjects: Vec<String>,
) -> async_nats::jetstream::stream::Stream {
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.to_owned(),
        subjects,
        ..Default::default()
    })
    .await
    .expect("create stream")
}

#[tokio::test]
async fn nats_messages_land_in_order_with_headers_and_connect_is_an_event() {
    require("NATS", "127.0.0.1:4222").await;
    let js = async_nats::jetstream::new(nats_client(NATS).await);
    let prefix = unique("wsgt");
    let stream = nats_stream(&js, &prefix, vec![format!("{prefix}.>")]).await;
    let gw = gateway(&format!(
        r#"
    $connect:
      integration: {{ type: nats, url: "{NATS}", subject: "{prefix}.connect" }}
    chat:
      integration: {{ type: nats, subject: "{prefix}.in.${{stageVariables.room}}", timeout: 2s }}
"#
    ))
    .await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for n in 0..200 {
        chat(&mut ws, n).await;
    }
    assert!(
        settle(&mut ws).await.is_empty(),
        "every publish acknowledged"
    );

    let connect = stream.get_raw_message(1).await.expect("connect event");
    assert_eq!(connect.subject.as_str(), format!("{prefix}.connect"));
    let event: Value = serde_json::from_slice(&connect.payload).expect("event JSON");
    assert_eq!(event["requestContext"]["eventType"], "CONNECT");
    let connection_id = event["requestContext"]["connectionId"].as_str().unwrap();
    assert_eq!(
        connect.headers.get("x-wsgate-event-type").unwrap().as_str(),
        "CONNECT"
    );
    for n in 0..200 {
        let message = stream.get_raw_message(n as u64 + 2).await.expect("message");
        assert_eq!(message.subject.as_str(), format!("{prefix}.in.lobby"));
        assert_eq!(n_of(&message.payload), n, "in order");
        if n == 0 {
            for name in CONTEXT_HEADERS {
                assert!(message.headers.get(name).is_some(), "header {name}");
            }
            let header = |name: &str| message.headers.get(name).unwrap().as_str().to_owned();
            assert_eq!(header("x-wsgate-connection-id"), connection_id);
            assert_eq!(header("x-wsgate-route-key"), "chat");
            assert_eq!(header("x-wsgate-event-type"), "MESSAGE");
            assert_eq!(header("x-wsgate-stage"), "prod");
            assert_eq!(header("content-type"), "text/plain; charset=utf-8");
            // The request id doubles as JetStream's deduplication id.
            assert_eq!(header("Nats-Msg-Id"), header("x-wsgate-request-id"));
        }
    }
    js.delete_stream(&prefix).await.expect("delete stream");
}

#[tokio::test]
async fn nats_without_a_stream_or_a_server_is_an_internal_server_error() {
    require("NATS", "127.0.0.1:4222").await;
    let prefix = unique("wsgt");
    // No stream takes the subject: JetStream has no responder.
    let gw = gateway(&format!(
        "    chat:\n      integration: {{ type: nats, subject: \"{prefix}.none\", timeout: 1s }}\n"
    ))
    .await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    assert!(!acknowledged(&mut ws, 1).await);

    // A server that is not there: the publish times out.
    let mut server = NatsServer::start().await;
    let url = server.url();
    server.kill();
    let gw = gateway(&format!(
        "    chat:\n      integration: {{ type: nats, url: \"{url}\", subject: \"{prefix}.x\", timeout: 300ms }}\n"
    ))
    .await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    assert!(!acknowledged(&mut ws, 1).await);
    let metrics = crate::support::get_text(&crate::support::http(), gw.http_url("/metrics")).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wsgate_execution_error_total") && l.contains("route=\"chat\"")),
        "the failure is counted: {metrics}"
    );
}

#[tokio::test]
async fn nats_restart_resumes_publishing_and_keeps_every_acknowledged_message() {
    let mut server = NatsServer::start().await;
    let js = async_nats::jetstream::new(nats_client(&server.url()).await);
    let prefix = unique("wsgt");
    nats_stream(&js, &prefix, vec![format!("{prefix}.>")]).await;
    drop(js);
    let gw = gateway(&format!(
        "    chat:\n      integration: {{ type: nats, url: \"{}\", subject: \"{prefix}.in\", timeout: 500ms }}\n",
        server.url()
    ))
    .await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    let mut acked = Vec::new();
    for n in 0..20 {
        assert!(acknowledged(&mut ws, n).await, "message {n}");
        acked.push(n);
    }
    server.kill();
    assert!(!acknowledged(&mut ws, 20).await, "the server is down");
    server.restart().await;
    let (n, mut next) = until_acknowledged(&mut ws, 21).await;
    acked.push(n);
    for _ in 0..20 {
        assert!(acknowledged(&mut ws, next).await, "message {next}");
        acked.push(next);
        next += 1;
    }

    let js = async_nats::jetstream::new(nats_client(&server.url()).await);
    let mut stream = js.get_stream(&prefix).await.expect("the stream survived");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut stored = Vec::new();
    for seq in 1..=last {
        if let Ok(message) = stream.get_raw_message(seq).await {
            stored.push(n_of(&message.payload));
        }
    }
    // Unacknowledged attempts may have landed too (at least once); every acknowledged one did,
    // in order.
    let mut stored_acked = stored
        .iter()
        .filter(|n| acked.contains(n))
        .copied()
        .collect::<Vec<_>>();
    stored_acked.dedup();
    assert_eq!(stored_acked, acked);
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ

async fn amqp_channel(url: &str) -> lapin::Channel {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at {url} is not reachable: {e}"));
    connection.create_channel().await.expect("channel")
}

async fn declare(channel: &lapin::Channel, queue: &str) {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare queue");
}

/// Every message in `queue`, taken off it.
async fn drain(channel: &lapin::Channel, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
    let mut messages = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        messages.push(message);
    }
    messages
}

fn amqp_header(message: &lapin::message::BasicGetMessage, name: &str) -> String {
    let headers = message
        .delivery
        .properties
        .headers()
        .as_ref()
        .expect("headers");
    match headers.inner().get(name) {
        Some(AMQPValue::LongString(value)) => value.to_string(),
        other => panic!("header {name}: {other:?}"),
    }
}

#[tokio::test]
async fn rabbitmq_messages_land_in_order_with_headers_and_confirms() {
    require("RabbitMQ", "127.0.0.1:5672").await;
    let channel = amqp_channel(AMQP).await;
    let queue = unique("wsgate-test-");
    let connect_queue = format!("{queue}-connect");
    declare(&channel, &queue).await;
    declare(&channel, &connect_queue).await;
    let gw = gateway(&format!(
        r#"
    $connect:
      integration: {{ type: rabbitmq, routing_key: "{connect_queue}" }}
    chat:
      integration: {{ type: rabbitmq, url: "{AMQP}", routing_key: "{queue}", timeout: 2s }}
    nowhere:
      integration: {{ type: rabbitmq, routing_key: "{queue}-missing", timeout: 2s }}
"#
    ))
    .await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for n in 0..200 {
        chat(&mut ws, n).await;
    }
    assert!(settle(&mut ws).await.is_empty(), "every publish confirmed");
    // Mandatory and unroutable: returned by the broker, so not delivered.
    send_text(&mut ws, r#"{"action":"nowhere"}"#).await;
    let errors = settle(&mut ws).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("Internal server error"));

    let connects = drain(&channel, &connect_queue).await;
    assert_eq!(connects.len(), 1);
    let event: Value = serde_json::from_slice(&connects[0].delivery.data).expect("event JSON");
    assert_eq!(event["requestContext"]["eventType"], "CONNECT");
    let messages = drain(&channel, &queue).await;
    assert_eq!(messages.len(), 200);
    for (n, message) in messages.iter().enumerate() {
        assert_eq!(n_of(&message.delivery.data), n, "in order");
    }
    let first = &messages[0];
    for name in CONTEXT_HEADERS {
        amqp_header(first, name);
    }
    assert_eq!(
        amqp_header(first, "x-wsgate-connection-id"),
        event["requestContext"]["connectionId"].as_str().unwrap()
    );
    let properties = &first.delivery.properties;
    assert_eq!(
        properties.message_id().as_ref().map(|s| s.to_string()),
        Some(amqp_header(first, "x-wsgate-request-id"))
    );
    assert_eq!(
        properties
            .content_type()
            .as_ref()
            .map(|s| s.to_string())
            .as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(*properties.delivery_mode(), Some(2));
    assert!(properties.timestamp().is_some());
    for q in [&queue, &connect_queue] {
        channel
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete queue");
    }
}

/// A private RabbitMQ node takes far longer than the other brokers to start, so the outage is
/// a TCP proxy in front of the shared broker that cuts every connection and refuses new ones.
#[tokio::test]
async fn rabbitmq_outage_fails_publishes_then_the_connection_is_reopened() {
    require("RabbitMQ", "127.0.0.1:5672").await;
    let channel = amqp_channel(AMQP).await;
    let queue = unique("wsgate-test-");
    declare(&channel, &queue).await;
    let proxy = CuttingProxy::start(([127, 0, 0, 1], 5672).into()).await;
    let url = format!("amqp://guest:guest@{}/%2f", proxy.addr);
    let gw = gateway(&format!(
        "    chat:\n      integration: {{ type: rabbitmq, url: \"{url}\", routing_key: \"{queue}\", timeout: 1s }}\n"
    ))
    .await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    let mut acked = Vec::new();
    for n in 0..10 {
        assert!(acknowledged(&mut ws, n).await, "message {n}");
        acked.push(n);
    }
    proxy.cut();
    assert!(
        !acknowledged(&mut ws, 10).await,
        "the broker is unreachable"
    );
    proxy.restore();
    let (n, mut next) = until_acknowledged(&mut ws, 11).await;
    acked.push(n);
    for _ in 0..10 {
        assert!(acknowledged(&mut ws, next).await, "message {next}");
        acked.push(next);
        next += 1;
    }
    let stored: Vec<usize> = drain(&channel, &queue)
        .await
        .iter()
        .map(|m| n_of(&m.delivery.data))
        .collect();
    let stored_acked: Vec<usize> = stored.into_iter().filter(|n| acked.contains(n)).collect();
    assert_eq!(stored_acked, acked);
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete queue");
}

// ---------------------------------------------------------------------------------------------
// Redis Streams

type Entries = Vec<(String, Vec<Vec<u8>>)>;

async fn xrange(url: &str, stream: &str) -> Entries {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} is not reachable: {e}"));
    redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE")
}

fn field<'a>(fields: &'a [Vec<u8>], name: &str) -> &'a [u8] {
    fields
        .chunks(2)
        .find(|pair| pair[0] == name.as_bytes())
        .map(|pair| pair[1].as_slice())
        .unwrap_or_else(|| panic!("field {name}"))
}

#[tokio::test]
async fn redis_stream_entries_land_in_order_with_fields() {
    require("Redis", "127.0.0.1:6379").await;
    let stream = unique("wsgate:test:");
    let gw = gateway(&format!(
        r#"
    $connect:
      integration: {{ type: redis_stream, stream: "{stream}:connect" }}
    chat:
      integration: {{ type: redis_stream, url: "{REDIS}", stream: "{stream}:${{stageVariables.room}}", max_len: 0, timeout: 2s }}
"#
    ))
    .await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for n in 0..200 {
        chat(&mut ws, n).await;
    }
    assert!(settle(&mut ws).await.is_empty(), "every XADD answered");
    let connects = xrange(REDIS, &format!("{stream}:connect")).await;
    assert_eq!(connects.len(), 1);
    let event: Value = serde_json::from_slice(field(&connects[0].1, "data")).expect("event");
    assert_eq!(event["requestContext"]["eventType"], "CONNECT");
    let entries = xrange(REDIS, &format!("{stream}:lobby")).await;
    assert_eq!(entries.len(), 200);
    for (n, (_, fields)) in entries.iter().enumerate() {
        assert_eq!(n_of(field(fields, "data")), n, "in order");
    }
    let first = &entries[0].1;
    for name in CONTEXT_HEADERS {
        field(first, name);
    }
    assert_eq!(
        field(first, "x-wsgate-connection-id"),
        event["requestContext"]["connectionId"]
            .as_str()
            .unwrap()
            .as_bytes()
    );
    let client = redis::Client::open(REDIS).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let _: () = redis::cmd("DEL")
        .arg(format!("{stream}:connect"))
        .arg(format!("{stream}:lobby"))
        .query_async(&mut conn)
        .await
        .expect("DEL");
}

#[tokio::test]
async fn redis_stream_down_then_back_resumes_publishing() {
    let mut redis = RedisServer::start().await;
    let stream = unique("wsgate:test:");
    let gw = gateway(&format!(
        "    chat:\n      integration: {{ type: redis_stream, url: \"{}\", stream: \"{stream}\", timeout: 500ms }}\n",
        redis.url()
    ))
    .await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for n in 0..5 {
        assert!(acknowledged(&mut ws, n).await, "message {n}");
    }
    redis.kill();
    assert!(!acknowledged(&mut ws, 5).await, "Redis is down");
    // This test server keeps nothing across restarts; what is checked is that publishing
    // resumes on the same gateway, and that what it acknowledged afterwards is there.
    redis.restart().await;
    let (n, mut next) = until_acknowledged(&mut ws, 6).await;
    let mut acked = vec![n];
    for _ in 0..5 {
        assert!(acknowledged(&mut ws, next).await, "message {next}");
        acked.push(next);
        next += 1;
    }
    let stored: Vec<usize> = xrange(&redis.url(), &stream)
        .await
        .iter()
        .map(|(_, fields)| n_of(field(fields, "data")))
        .filter(|n| acked.contains(n))
        .collect();
    assert_eq!(stored, acked);
}

// ---------------------------------------------------------------------------------------------
// $connect and config

#[tokio::test]
async fn a_failed_connect_publish_rejects_the_connection() {
    let mut server = NatsServer::start().await;
    let url = server.url();
    server.kill();
    let gw = gateway(&format!(
        "    $connect:\n      integration: {{ type: nats, url: \"{url}\", subject: \"c.x\", timeout: 200ms }}\n"
    ))
    .await;
    let (status, body) = crate::support::connect_refused(&gw.ws_url("/prod")).await;
    assert_eq!(status, 502);
    assert!(body.contains("Internal server error"), "{body}");
}

fn config_error(routes: &str) -> String {
    match Config::from_yaml(&yaml(routes)) {
        Ok(_) => panic!("config accepted: {routes}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn broker_config_errors_name_the_key() {
    let at = "api.routes.chat.integration";
    let cases = [
        ("{ type: nats }", "subject".to_string()),
        ("{ type: nats, subject: \"a.*\" }", format!("{at}.subject")),
        (
            "{ type: nats, subject: \"a.${stageVariables.nope}\" }",
            format!("{at}.subject"),
        ),
        (
            "{ type: nats, subject: a, url: \"http://x\" }",
            format!("{at}.url"),
        ),
        (
            "{ type: nats, subject: a, timeout: 10ms }",
            format!("{at}.timeout"),
        ),
        (
            "{ type: nats, subject: a, max_in_flight: 0 }",
            format!("{at}.max_in_flight"),
        ),
        (
            "{ type: nats, subject: a, payload: xml }",
            "`body` or `event`".to_string(),
        ),
        (
            "{ type: nats, subject: a, stream: b }",
            "stream".to_string(),
        ),
        ("{ type: rabbitmq }", "routing_key".to_string()),
        (
            "{ type: rabbitmq, routing_key: k, url: \"amqps://h\" }",
            format!("{at}.url"),
        ),
        (
            &format!(
                "{{ type: rabbitmq, routing_key: k, exchange: {} }}",
                "e".repeat(300)
            ),
            format!("{at}.exchange"),
        ),
        (
            "{ type: redis_stream, stream: \"\" }",
            format!("{at}.stream"),
        ),
        (
            "{ type: redis_stream, stream: s, url: \"rediss://h\" }",
            format!("{at}.url"),
        ),
    ];
    for (integration, key) in cases {
        let error = config_error(&format!("    chat:\n      integration: {integration}\n"));
        assert!(error.contains(&key), "{integration}: `{error}` names {key}");
    }
    let error = config_error(
        "    chat:\n      integration: { type: nats, subject: a }\n      route_response: true\n      cache: { ttl: 10s }\n",
    );
    assert!(error.contains("api.routes.chat.cache"), "{error}");
    // Defaults are accepted.
    Config::from_yaml(&yaml(
        "    chat:\n      integration: { type: nats, subject: a.b }\n    c2:\n      integration: { type: rabbitmq, routing_key: k }\n    c3:\n      integration: { type: redis_stream, stream: s }\n",
    ))
    .expect("minimal broker routes are valid");
}

/// The gateway starts while every broker it names is down, and serves other routes.
#[tokio::test]
async fn brokers_down_at_startup_do_not_stop_the_gateway() {
    let port = wsgate_connection_store::conformance::servers::free_port();
    let gw = gateway(&format!(
        r#"
    chat:
      integration: {{ type: nats, url: "nats://127.0.0.1:{port}", subject: a, timeout: 200ms }}
    c2:
      integration: {{ type: rabbitmq, url: "amqp://guest:guest@127.0.0.1:{port}/%2f", routing_key: k, timeout: 200ms }}
    c3:
      integration: {{ type: redis_stream, url: "redis://127.0.0.1:{port}", stream: s, timeout: 200ms }}
"#
    ))
    .await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for action in ["chat", "c2", "c3"] {
        send_text(&mut ws, &format!(r#"{{"action":"{action}"}}"#)).await;
        let errors = settle(&mut ws).await;
        assert_eq!(errors.len(), 1, "{action}: {errors:?}");
        assert!(errors[0].contains("Internal server error"));
    }
}

#[tokio::test]
async fn core_nats_publishes_with_headers() {
    require("NATS", "127.0.0.1:4222").await;
    let client = nats_client(NATS).await;
    let subject = unique("wsgt.core.");
    let mut subscriber = client.subscribe(subject.clone()).await.expect("subscribe");
    client.flush().await.expect("flush");
    let gw = gateway(&format!(
        "    chat:\n      integration: {{ type: nats, subject: \"{subject}\", jetstream: false, payload: event }}\n"
    ))
    .await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    assert!(acknowledged(&mut ws, 7).await);
    let message = tokio::time::timeout(DEADLINE, subscriber.next())
        .await
        .expect("a message within the deadline")
        .expect("subscription open");
    let event: Value = serde_json::from_slice(&message.payload).expect("event JSON");
    assert_eq!(event["requestContext"]["eventType"], "MESSAGE");
    assert_eq!(n_of(event["body"].as_str().unwrap().as_bytes()), 7);
    let headers = message.headers.expect("headers");
    assert_eq!(
        headers.get("content-type").unwrap().as_str(),
        "application/json"
    );
    assert_eq!(headers.get("x-wsgate-route-key").unwrap().as_str(), "chat");
}

// ---------------------------------------------------------------------------------------------
// Throughput: through the gateway against the client crate alone, in the same run.

/// Connections (and, for the client crates alone, concurrent publishers).
const CONNS: usize = 32;
/// Messages per connection.
const PER_CONN: usize = 250;

/// Messages/s through the gateway: `CONNS` connections each send `PER_CONN` one-way messages
/// (each published and acknowledged before the next, as the gateway handles a connection's
/// messages in order), timed until every connection's last message was acknowledged.
async fn through_gateway(gw: &TestGateway) -> f64 {
    let mut sockets = Vec::new();
    for _ in 0..CONNS {
        sockets.push(connect(&gw.ws_url("/prod")).await);
    }
    let started = std::time::Instant::now();
    let runs = sockets.into_iter().map(|mut ws| {
        tokio::spawn(async move {
            for n in 0..PER_CONN {
                chat(&mut ws, n).await;
            }
            assert!(settle(&mut ws).await.is_empty());
        })
    });
    for run in futures_util::future::join_all(runs).await {
        run.expect("connection run");
    }
    (CONNS * PER_CONN) as f64 / started.elapsed().as_secs_f64()
}

/// Messages/s of `CONNS` tasks publishing `PER_CONN` messages each, one acknowledged publish at
/// a time, with `publish`.
async fn through_client<F, Fut>(publish: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = std::time::Instant::now();
    let runs = (0..CONNS).map(|_| {
        let publish = publish.clone();
        tokio::spawn(async move {
            for n in 0..PER_CONN {
                publish(n).await;
            }
        })
    });
    for run in futures_util::future::join_all(runs).await {
        run.expect("publisher run");
    }
    (CONNS * PER_CONN) as f64 / started.elapsed().as_secs_f64()
}

fn report(broker: &str, gateway: f64, client: f64) {
    println!(
        "{broker}: {gateway:.0} msgs/s through the gateway, {client:.0} msgs/s with the client alone, ratio {:.2}",
        gateway / client
    );
}

/// A 64-byte message like the gateway's.
const PAYLOAD: &[u8] = br#"{"action":"chat","n":1,"data":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn throughput_per_broker() {
    require("NATS", "127.0.0.1:4222").await;
    require("RabbitMQ", "127.0.0.1:5672").await;
    require("Redis", "127.0.0.1:6379").await;

    // NATS JetStream.
    let js = async_nats::jetstream::new(nats_client(NATS).await);
    let prefix = unique("wsgt");
    nats_stream(&js, &prefix, vec![format!("{prefix}.>")]).await;
    let gw = gateway(&format!(
        "    chat:\n      integration: {{ type: nats, subject: \"{prefix}.gw\" }}\n"
    ))
    .await;
    let gateway_rate = through_gateway(&gw).await;
    let subject = format!("{prefix}.direct");
    let client_rate = through_client(move |n| {
        let js = js.clone();
        let subject = subject.clone();
        async move {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("x-wsgate-request-id", n.to_string());
            js.publish_with_headers(subject, headers, PAYLOAD.into())
                .await
                .expect("publish")
                .await
                .expect("PubAck");
        }
    })
    .await;
    report("nats (JetStream)", gateway_rate, client_rate);
    let js = async_nats::jetstream::new(nats_client(NATS).await);
    js.delete_stream(&prefix).await.expect("delete stream");

    // RabbitMQ.
    let channel = amqp_channel(AMQP).await;
    let queue = unique("wsgate-bench-");
    declare(&channel, &queue).await;
    let gw = gateway(&format!(
        "    chat:\n      integration: {{ type: rabbitmq, routing_key: \"{queue}\" }}\n"
    ))
    .await;
    let gateway_rate = through_gateway(&gw).await;
    let publisher = amqp_channel(AMQP).await;
    publisher
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    let key = queue.clone();
    let client_rate = through_client(move |_| {
        let publisher = publisher.clone();
        let key = key.clone();
        async move {
            let confirm = publisher
                .basic_publish(
                    "".into(),
                    key.as_str().into(),
                    lapin::options::BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    PAYLOAD,
                    lapin::BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
            assert_eq!(confirm, lapin::Confirmation::Ack(None));
        }
    })
    .await;
    report("rabbitmq", gateway_rate, client_rate);
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete queue");

    // Redis Streams.
    let stream = unique("wsgate:bench:");
    let gw = gateway(&format!(
        "    chat:\n      integration: {{ type: redis_stream, stream: \"{stream}:gw\" }}\n"
    ))
    .await;
    let gateway_rate = through_gateway(&gw).await;
    let target = wsgate_connection_store::redis_conn::RedisTarget::new(
        vec![REDIS.to_owned()],
        false,
        Duration::from_secs(5),
    );
    let conn = wsgate_connection_store::redis_conn::connect(&target, None)
        .await
        .expect("Redis");
    let key = format!("{stream}:direct");
    let client_rate = through_client(move |_| {
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let _: String = redis::cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(1_000_000)
                .arg("*")
                .arg("data")
                .arg(PAYLOAD)
                .query_async(&mut conn)
                .await
                .expect("XADD");
        }
    })
    .await;
    report("redis_stream", gateway_rate, client_rate);
    let client = redis::Client::open(REDIS).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let _: () = redis::cmd("DEL")
        .arg(format!("{stream}:gw"))
        .arg(format!("{stream}:direct"))
        .query_async(&mut conn)
        .await
        .expect("DEL");
}
