//! Measures what each consumer pushes to connected clients per second against what the
//! broker's own client consumes (and acknowledges) per second on the same machine in the same
//! run. Ignored by default (it measures, it does not check); run it with:
//!
//! `cargo test --release -p wsgate --test it consumers_measure -- --ignored --nocapture`

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use redis::AsyncCommands;

use crate::support::brokers::*;
use crate::support::*;

const MESSAGES: usize = 20_000;
const CLIENTS: usize = 8;
const PAYLOAD: &str = "0123456789012345678901234567890123456789012345678901234567890123456789";

/// Publishes `count` messages, connection ids round robin from `ids` (`None`: no header),
/// pipelined as far as each client allows.
async fn publish_all(publisher: &Publisher, ids: Option<&[String]>, count: usize) {
    let header = |i: usize| ids.map(|ids| ids[i % ids.len()].clone());
    match publisher {
        Publisher::Jetstream { js, subject, .. } => {
            let mut acks = Vec::with_capacity(1000);
            for i in 0..count {
                let mut headers = async_nats::HeaderMap::new();
                if let Some(id) = header(i) {
                    headers.insert("wsgate-connection-id", id.as_str());
                }
                let ack = js
                    .publish_with_headers(subject.clone(), headers, PAYLOAD.into())
                    .await
                    .expect("publish");
                acks.push(ack);
                if acks.len() == 1000 || i + 1 == count {
                    for ack in acks.drain(..) {
                        ack.await.expect("publish ack");
                    }
                }
            }
        }
        Publisher::RedisStream { client, stream } => {
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis");
            for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
                let mut pipe = redis::pipe();
                for &i in chunk {
                    let mut fields: Vec<(String, String)> = vec![("data".into(), PAYLOAD.into())];
                    if let Some(id) = header(i) {
                        fields.push(("wsgate-connection-id".into(), id));
                    }
                    pipe.xadd(stream, "*", &fields).ignore();
                }
                let () = pipe.query_async(&mut conn).await.expect("XADD pipeline");
            }
        }
        _ => {
            for i in 0..count {
                match header(i) {
                    Some(id) => publisher.to_connection(&id, PAYLOAD).await,
                    None => publisher.publish(&[], PAYLOAD.as_bytes()).await,
                }
            }
        }
    }
}

/// The broker's own client consuming `count` preloaded messages with an ack each (core NATS:
/// receiving while they are published). Messages per second.
async fn raw_rate(kind: Kind) -> f64 {
    let name = unique("raw");
    let publisher = Publisher::new(kind, &name, None).await;
    let rate = match &publisher {
        Publisher::Nats { client, subject } => {
            let mut sub = client.subscribe(subject.clone()).await.expect("subscribe");
            client.flush().await.expect("flush");
            let started = Instant::now();
            let publishing = async { publish_all(&publisher, None, MESSAGES).await };
            let receiving = async {
                let mut n = 0;
                while n < MESSAGES {
                    match tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
                        Ok(Some(_)) => n += 1,
                        _ => break,
                    }
                }
                n
            };
            let ((), received) = tokio::join!(publishing, receiving);
            received as f64 / started.elapsed().as_secs_f64()
        }
        Publisher::Jetstream { js, stream, .. } => {
            publish_all(&publisher, None, MESSAGES).await;
            let stream = js.get_stream(stream).await.expect("stream");
            let consumer = stream
                .get_or_create_consumer(
                    "raw",
                    async_nats::jetstream::consumer::pull::Config {
                        durable_name: Some("raw".into()),
                        ..Default::default()
                    },
                )
                .await
                .expect("consumer");
            let started = Instant::now();
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(64)
                .messages()
                .await
                .expect("pull");
            for _ in 0..MESSAGES {
                let message = messages.next().await.expect("message").expect("ok");
                message.ack().await.expect("ack");
            }
            MESSAGES as f64 / started.elapsed().as_secs_f64()
        }
        Publisher::Rabbitmq { channel, queue, .. } => {
            publish_all(&publisher, None, MESSAGES).await;
            channel
                .basic_qos(64, BasicQosOptions::default())
                .await
                .expect("qos");
            let started = Instant::now();
            let mut consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    "raw".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("consume");
            for _ in 0..MESSAGES {
                let delivery = consumer.next().await.expect("delivery").expect("ok");
                delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .expect("ack");
            }
            MESSAGES as f64 / started.elapsed().as_secs_f64()
        }
        Publisher::RedisStream { client, stream } => {
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis");
            let _: Result<(), _> = conn.xgroup_create_mkstream(stream, "raw", "0").await;
            publish_all(&publisher, None, MESSAGES).await;
            let started = Instant::now();
            let options = redis::streams::StreamReadOptions::default()
                .group("raw", "measure")
                .count(64);
            let mut n = 0;
            while n < MESSAGES {
                let reply: redis::streams::StreamReadReply = conn
                    .xread_options(&[stream.as_str()], &[">"], &options)
                    .await
                    .expect("XREADGROUP");
                for id in reply.keys.into_iter().flat_map(|k| k.ids) {
                    let _: i64 = conn.xack(stream, "raw", &[&id.id]).await.expect("XACK");
                    n += 1;
                }
            }
            MESSAGES as f64 / started.elapsed().as_secs_f64()
        }
    };
    publisher.cleanup().await;
    rate
}

/// The gateway consuming `MESSAGES` addressed round robin to `CLIENTS` connections: from the
/// first publish to the last frame received. Pushes per second, publish time, frames lost.
async fn gateway_rate(kind: Kind) -> (f64, Duration, usize) {
    let backend = Backend::ok().await;
    let name = unique("m");
    let publisher = Publisher::new(kind, &name, None).await;
    let entry = publisher.consumer(&name, None, "");
    let yaml = config(
        &backend.url(),
        &format!("log:\n  level: warn\nconsumers:\n{entry}"),
    );
    let mut gw = TestGateway::start(&yaml).await;
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..CLIENTS {
        let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
        wait_consuming(&publisher, &mut ws, &id).await;
        clients.push(ws);
        ids.push(id);
    }
    let per_client = MESSAGES / CLIENTS;
    let started = Instant::now();
    let receivers = clients.into_iter().map(|mut ws| {
        tokio::spawn(async move {
            let mut n = 0;
            let mut last = Instant::now();
            while n < per_client {
                match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
                    Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                        if t.as_str() == PAYLOAD {
                            n += 1;
                            last = Instant::now();
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            // The last frame counted, not the end of the wait for frames that were lost.
            (n, last)
        })
    });
    let receivers: Vec<_> = receivers.collect();
    publish_all(&publisher, Some(&ids), MESSAGES).await;
    let published = started.elapsed();
    let mut received = 0;
    let mut last = started;
    for r in receivers {
        let (n, at) = r.await.expect("receiver");
        received += n;
        last = last.max(at);
    }
    gw.shutdown().await;
    publisher.cleanup().await;
    let rate = received as f64 / (last - started).as_secs_f64();
    (rate, published, MESSAGES - received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn consumer_throughput() {
    println!(
        "{MESSAGES} messages of {} bytes, {CLIENTS} clients, max_in_flight 64",
        PAYLOAD.len()
    );
    println!(
        "| source | broker client consume+ack msg/s | gateway pushes/s | publish time | lost |"
    );
    println!("|---|---|---|---|---|");
    for kind in [
        Kind::Nats,
        Kind::Jetstream,
        Kind::Rabbitmq,
        Kind::RedisStream,
    ] {
        let raw = raw_rate(kind).await;
        let (pushes, published, lost) = gateway_rate(kind).await;
        println!(
            "| {kind:?} | {raw:.0} | {pushes:.0} | {:.2} s | {lost} |",
            published.as_secs_f64()
        );
    }
}
