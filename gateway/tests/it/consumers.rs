//! Broker consumers against the real local brokers (NATS with JetStream on 4222, RabbitMQ on
//! 5672, Redis on 6379): a message addressed by header or JSON envelope reaches its client,
//! group messages reach every member, 200 messages keep their order, a message for a gone
//! connection is acknowledged and counted, a throttled delivery is retried until it lands.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::support::brokers::*;
use crate::support::groups::member;
use crate::support::*;

/// A gateway consuming one fresh source of `kind`, `extra` added to the consumer entry and
/// `top` to the config.
async fn setup(kind: Kind, extra: &str, top: &str) -> (Backend, TestGateway, Publisher, String) {
    let backend = Backend::ok().await;
    let name = unique("c");
    let publisher = Publisher::new(kind, &name, None).await;
    let entry = publisher.consumer(&name, None, extra);
    let gw = TestGateway::start(&config(
        &backend.url(),
        &format!("{top}consumers:\n{entry}"),
    ))
    .await;
    (backend, gw, publisher, name)
}

async fn metrics_text(gw: &TestGateway) -> String {
    get_text(&http(), gw.http_url("/metrics")).await
}

/// Whether `outcome` of consumer `name` reaches `at_least` within `within`.
async fn metric_reaches(
    gw: &TestGateway,
    name: &str,
    outcome: &str,
    at_least: u64,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if consumer_metric(&metrics_text(gw).await, name, outcome) >= at_least {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `outcome` of consumer `name` reaches `at_least`.
async fn wait_metric(gw: &TestGateway, name: &str, outcome: &str, at_least: u64) {
    assert!(
        metric_reaches(gw, name, outcome, at_least, DEADLINE).await,
        "{name}: outcome {outcome} did not reach {at_least}"
    );
}

/// Waits until the broker holds nothing more for the consumer (acks are asynchronous).
async fn wait_settled(publisher: &Publisher, kind: Kind) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match publisher.outstanding().await {
            None | Some(0) => return,
            Some(left) => assert!(
                tokio::time::Instant::now() < deadline,
                "{kind:?}: {left} messages left at the broker"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next text frame that is not a leftover probe.
async fn next_real(ws: &mut Ws) -> String {
    loop {
        let text = next_text(ws).await;
        if text != "probe" {
            return text;
        }
    }
}

async fn delivers_in_every_form(kind: Kind) {
    let (backend, mut gw, publisher, name) = setup(kind, "", "").await;
    let (mut a, id_a) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let (mut b, id_b) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    wait_consuming(&publisher, &mut a, &id_a).await;

    // By header, text.
    publisher.to_connection(&id_a, "by header").await;
    assert_eq!(next_real(&mut a).await, "by header");
    // By header with the stage named, binary (not UTF-8).
    publisher
        .publish(
            &[("wsgate-connection-id", &id_b), ("wsgate-stage", "prod")],
            &[0xff, 0x00],
        )
        .await;
    match next_frame(&mut b).await {
        Message::Binary(bytes) => assert_eq!(&bytes[..], &[0xff, 0x00]),
        other => panic!("expected binary, got {other:?}"),
    }

    // A group: both members receive it.
    let client = http();
    let base = gw.http_url("");
    assert_eq!(member(&client, &base, &id_a, "room", true).await, 204);
    assert_eq!(member(&client, &base, &id_b, "room", true).await, 204);
    publisher
        .publish(&[("wsgate-group", "room")], b"to the room")
        .await;
    assert_eq!(next_real(&mut a).await, "to the room");
    assert_eq!(next_real(&mut b).await, "to the room");
    // The stage.
    publisher
        .publish(&[("wsgate-broadcast", "true")], b"to all")
        .await;
    assert_eq!(next_real(&mut a).await, "to all");
    assert_eq!(next_real(&mut b).await, "to all");

    // 200 messages to one connection, in order.
    for i in 0..200 {
        publisher.to_connection(&id_a, &format!("m{i}")).await;
    }
    for i in 0..200 {
        assert_eq!(next_real(&mut a).await, format!("m{i}"), "{kind:?}: order");
    }

    // A gone connection: acknowledged and counted, never redelivered.
    publisher.to_connection("nosuchconnection", "lost").await;
    wait_metric(&gw, &name, "gone", 1).await;
    // No address at all: acknowledged and counted.
    publisher.publish(&[], b"nowhere").await;
    wait_metric(&gw, &name, "malformed", 1).await;
    // Settled: behind a marker that arrived, nothing is left at the broker.
    publisher.to_connection(&id_a, "marker").await;
    assert_eq!(next_real(&mut a).await, "marker");
    wait_settled(&publisher, kind).await;
    let text = metrics_text(&gw).await;
    assert_eq!(consumer_metric(&text, &name, "gone"), 1, "{text}");
    assert!(text.contains(&format!(
        "wsgate_consumer_connected{{consumer=\"{name}\"}} 1"
    )));
    gw.shutdown().await;
    publisher.cleanup().await;
}

async fn json_envelope(kind: Kind) {
    let (backend, mut gw, publisher, _name) = setup(kind, ", envelope: json", "").await;
    let (mut a, id_a) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let probe = serde_json::json!({"connectionId": id_a, "data": "probe"}).to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        publisher.publish(&[], probe.as_bytes()).await;
        if let Ok(Some(Ok(Message::Text(_)))) =
            tokio::time::timeout(Duration::from_millis(300), a.next()).await
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no probe delivered");
    }
    let text = serde_json::json!({"connectionId": id_a, "stage": "prod", "data": "from json"});
    publisher.publish(&[], text.to_string().as_bytes()).await;
    assert_eq!(next_real(&mut a).await, "from json");
    let binary = serde_json::json!({"connectionId": id_a, "dataBase64": "AP8="});
    publisher.publish(&[], binary.to_string().as_bytes()).await;
    match next_frame(&mut a).await {
        Message::Binary(bytes) => assert_eq!(&bytes[..], &[0x00, 0xff]),
        other => panic!("expected binary, got {other:?}"),
    }
    let group = serde_json::json!({"broadcast": true, "data": "everyone"});
    publisher.publish(&[], group.to_string().as_bytes()).await;
    assert_eq!(next_real(&mut a).await, "everyone");
    gw.shutdown().await;
    publisher.cleanup().await;
}

/// Deliveries count against `throttling.callback`: refused ones are retried after a pause
/// (in place, so the order holds) until they land.
async fn throttled_deliveries_are_retried(kind: Kind) {
    let throttle = "throttling:\n  callback: {rate_limit: 4, burst_limit: 1}\n";
    let (backend, mut gw, publisher, name) =
        setup(kind, ", retry_backoff: 100ms, max_deliver: 20", throttle).await;
    let (mut a, id_a) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    wait_consuming(&publisher, &mut a, &id_a).await;
    for i in 0..6 {
        publisher.to_connection(&id_a, &format!("t{i}")).await;
    }
    for i in 0..6 {
        assert_eq!(next_real(&mut a).await, format!("t{i}"));
    }
    let text = metrics_text(&gw).await;
    assert!(consumer_metric(&text, &name, "retried") >= 1, "{text}");
    assert_eq!(consumer_metric(&text, &name, "dropped"), 0, "{text}");
    gw.shutdown().await;
    publisher.cleanup().await;
}

/// With `max_deliver` attempts used up, the message is dropped and counted, not retried forever.
async fn undeliverable_after_max_deliver_is_dropped(kind: Kind) {
    let throttle = "throttling:\n  callback: {rate_limit: 0, burst_limit: 0}\n";
    let (backend, mut gw, publisher, name) =
        setup(kind, ", retry_backoff: 50ms, max_deliver: 3", throttle).await;
    let (_a, id_a) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    // Core NATS keeps nothing for a subscription not made yet: publish until one is read.
    loop {
        publisher.to_connection(&id_a, "never").await;
        if metric_reaches(&gw, &name, "dropped", 1, Duration::from_secs(2)).await {
            break;
        }
        assert_eq!(kind, Kind::Nats, "no message dropped");
    }
    let text = metrics_text(&gw).await;
    assert!(consumer_metric(&text, &name, "retried") >= 2, "{text}");
    wait_settled(&publisher, kind).await;
    gw.shutdown().await;
    publisher.cleanup().await;
}

/// Redis Streams: a message for a gone connection is copied to the dead-letter stream, with
/// its fields and the reason, and acknowledged.
#[tokio::test]
async fn redis_dead_letter_stream() {
    let dead = unique("s:dead:");
    let extra = format!(", dead_letter: '{dead}'");
    let (_backend, mut gw, publisher, name) = setup(Kind::RedisStream, &extra, "").await;
    publisher.to_connection("nosuchconnection", "lost").await;
    wait_metric(&gw, &name, "dead_lettered", 1).await;
    let Publisher::RedisStream { client, .. } = &publisher else {
        unreachable!()
    };
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let range: redis::streams::StreamRangeReply =
        redis::AsyncCommands::xrange_all(&mut conn, &dead)
            .await
            .expect("XRANGE");
    assert_eq!(range.ids.len(), 1);
    let entry = &range.ids[0];
    assert_eq!(entry.get::<String>("data").as_deref(), Some("lost"));
    assert_eq!(
        entry.get::<String>("wsgate-connection-id").as_deref(),
        Some("nosuchconnection")
    );
    assert_eq!(
        entry.get::<String>("wsgate-dead-letter-reason").as_deref(),
        Some("connection gone")
    );
    wait_settled(&publisher, Kind::RedisStream).await;
    let _: () = redis::AsyncCommands::del(&mut conn, &dead)
        .await
        .expect("DEL");
    gw.shutdown().await;
    publisher.cleanup().await;
}

/// JetStream: a message still throttled after `max_deliver` attempts is published to the
/// dead-letter subject with its headers and the reason, and acknowledged.
#[tokio::test]
async fn jetstream_dead_letter_subject() {
    let dead = format!("dl.{}", unique("j"));
    let extra = format!(", dead_letter: '{dead}', retry_backoff: 50ms, max_deliver: 2");
    let throttle = "throttling:\n  callback: {rate_limit: 0, burst_limit: 0}\n";
    let (_backend, mut gw, publisher, name) = setup(Kind::Jetstream, &extra, throttle).await;
    let Publisher::Jetstream { js, .. } = &publisher else {
        unreachable!()
    };
    let mut dead_letters = js
        .client()
        .subscribe(dead.clone())
        .await
        .expect("subscribe");
    js.client().flush().await.expect("flush");
    publisher.to_connection("someone", "too late").await;
    let message = tokio::time::timeout(DEADLINE, dead_letters.next())
        .await
        .expect("a dead letter within the deadline")
        .expect("subscription open");
    assert_eq!(&message.payload[..], b"too late");
    let headers = message.headers.expect("headers");
    assert_eq!(
        headers.get("wsgate-connection-id").map(|v| v.as_str()),
        Some("someone")
    );
    assert!(headers.get("wsgate-dead-letter-reason").is_some());
    wait_metric(&gw, &name, "dropped", 1).await;
    wait_metric(&gw, &name, "dead_lettered", 1).await;
    wait_settled(&publisher, Kind::Jetstream).await;
    gw.shutdown().await;
    publisher.cleanup().await;
}

macro_rules! per_source {
    ($($test:ident),*) => {
        $(
            mod $test {
                use super::*;
                #[tokio::test]
                async fn nats() { $test(Kind::Nats).await }
                #[tokio::test]
                async fn jetstream() { $test(Kind::Jetstream).await }
                #[tokio::test]
                async fn rabbitmq() { $test(Kind::Rabbitmq).await }
                #[tokio::test]
                async fn redis_stream() { $test(Kind::RedisStream).await }
            }
        )*
    };
}

per_source!(
    delivers_in_every_form,
    json_envelope,
    throttled_deliveries_are_retried,
    undeliverable_after_max_deliver_is_dropped
);
