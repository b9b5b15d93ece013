//! `type: sqs` consumers against moto's server on a loopback port: a message addressed by
//! message attribute or JSON envelope reaches its client and is deleted from the queue, a
//! message for a gone connection is deleted and counted, 50 messages of one FIFO message group
//! keep their order, a stopping gateway makes the messages it still holds visible again, and
//! two nodes polling one queue deliver each message once, through the node holding the
//! connection; a queue that does not exist yet is polled again with a backoff until it does.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::boto::run_script;
use crate::support::brokers::consumer_metric;
use crate::support::cluster::{eventually, node_config, shared_store};
use crate::support::lambda::{Moto, PROFILE, TempFile, credentials_file};
use crate::support::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/consumers_sqs/sqs_queue.py"
);

async fn script(moto: &Moto, args: &[&str], stdin: Option<&[u8]>) -> Value {
    let mut all = vec!["--endpoint", moto.url.as_str()];
    all.extend_from_slice(args);
    run_script(SCRIPT, all, stdin, DEADLINE * 3).await
}

/// A new queue's URL.
async fn create(moto: &Moto, name: &str, fifo: bool) -> String {
    let mut args = vec!["create", "--name", name];
    if fifo {
        args.push("--fifo");
    }
    let made = script(moto, &args, None).await;
    made["queue_url"].as_str().expect("queue url").to_string()
}

/// Sends `messages` (`{"body", "attributes"?, "group"?}`) in order.
async fn send(moto: &Moto, queue_url: &str, messages: &Value) {
    let input = messages.to_string();
    script(
        moto,
        &["send", "--queue-url", queue_url],
        Some(input.as_bytes()),
    )
    .await;
}

/// To one connection, by attribute.
fn to(id: &str, body: &str) -> Value {
    json!({"body": body, "attributes": {"wsgate-connection-id": id}})
}

/// (visible, in flight) messages of the queue.
async fn count(moto: &Moto, queue_url: &str) -> (u64, u64) {
    let counted = script(moto, &["count", "--queue-url", queue_url], None).await;
    let n = |key: &str| counted[key].as_u64().expect("count");
    (n("visible"), n("in_flight"))
}

/// Waits until the queue holds `want` (visible, in flight) messages.
async fn wait_count(moto: &Moto, queue_url: &str, want: (u64, u64)) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let got = count(moto, queue_url).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queue_url}: {got:?} messages (visible, in flight), expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `aws:` section with the test credentials only: the endpoint comes from the queue URL.
fn aws_section(file: &TempFile) -> String {
    format!(
        "aws:\n  credentials_file: {}\n  profile: {PROFILE}\n",
        file.0.display()
    )
}

/// One consumer entry on `queue_url`, `extra` added.
fn entry(name: &str, queue_url: &str, extra: &str) -> String {
    format!(
        "  - {{name: {name}, type: sqs, queue_url: '{queue_url}', region: us-east-1, stage: prod, wait_time: 1s{extra}}}\n"
    )
}

async fn metric_at_least(gw: &TestGateway, name: &str, outcome: &str, at_least: u64) {
    let client = http();
    let url = gw.http_url("/metrics");
    eventually(
        &format!("{name}: {outcome} reaches {at_least}"),
        DEADLINE,
        || {
            let (client, url) = (client.clone(), url.clone());
            async move { consumer_metric(&get_text(&client, url).await, name, outcome) >= at_least }
        },
    )
    .await;
}

#[tokio::test]
async fn messages_reach_their_connection_and_are_deleted() {
    let moto = Moto::start().await;
    let backend = Backend::ok().await;
    let headers = create(&moto, "replies", false).await;
    let envelope = create(&moto, "replies-json", false).await;
    let file = credentials_file();
    let yaml = config(
        &backend.url(),
        &format!(
            "{}consumers:\n{}{}",
            aws_section(&file),
            entry("sqs-h", &headers, ""),
            entry("sqs-j", &envelope, ", envelope: json"),
        ),
    );
    let mut gw = TestGateway::start(&yaml).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;

    send(&moto, &headers, &json!([to(&id, "by attribute")])).await;
    assert_eq!(next_text(&mut ws).await, "by attribute");
    let wrapped = json!({"connectionId": id, "data": "by envelope"}).to_string();
    send(&moto, &envelope, &json!([{"body": wrapped}])).await;
    assert_eq!(next_text(&mut ws).await, "by envelope");

    // A gone connection and a message with no address: deleted and counted.
    send(
        &moto,
        &headers,
        &json!([to("nosuchconnection", "lost"), {"body": "nowhere"}]),
    )
    .await;
    metric_at_least(&gw, "sqs-h", "gone", 1).await;
    metric_at_least(&gw, "sqs-h", "malformed", 1).await;
    // Every message was deleted: nothing visible, nothing in flight.
    wait_count(&moto, &headers, (0, 0)).await;
    wait_count(&moto, &envelope, (0, 0)).await;
    let text = get_text(&http(), gw.http_url("/metrics")).await;
    assert_eq!(consumer_metric(&text, "sqs-h", "delivered"), 1, "{text}");
    assert_eq!(consumer_metric(&text, "sqs-j", "delivered"), 1, "{text}");
    assert!(
        text.contains("wsgate_consumer_connected{consumer=\"sqs-h\"} 1"),
        "{text}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn one_message_group_keeps_its_order() {
    let moto = Moto::start().await;
    let backend = Backend::ok().await;
    let queue = create(&moto, "ordered", true).await;
    let file = credentials_file();
    let yaml = config(
        &backend.url(),
        &format!(
            "{}consumers:\n{}",
            aws_section(&file),
            entry("sqs-o", &queue, "")
        ),
    );
    let mut gw = TestGateway::start(&yaml).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let messages: Vec<Value> = (0..50)
        .map(|i| {
            json!({"body": format!("m{i}"), "attributes": {"wsgate-connection-id": id}, "group": "g"})
        })
        .collect();
    send(&moto, &queue, &Value::Array(messages)).await;
    for i in 0..50 {
        assert_eq!(next_text(&mut ws).await, format!("m{i}"), "order");
    }
    wait_count(&moto, &queue, (0, 0)).await;
    gw.shutdown().await;
}

/// A message the gateway cannot deliver yet (throttled) when it stops is made visible again at
/// once, not left hidden for `visibility_timeout`.
#[tokio::test]
async fn a_stopping_gateway_returns_unsettled_messages() {
    let moto = Moto::start().await;
    let backend = Backend::ok().await;
    let queue = create(&moto, "held", false).await;
    let file = credentials_file();
    let throttled = "throttling:\n  callback: {rate_limit: 0, burst_limit: 0}\n";
    let yaml = config(
        &backend.url(),
        &format!(
            "{throttled}{}consumers:\n{}",
            aws_section(&file),
            entry(
                "sqs-s",
                &queue,
                ", retry_backoff: 1s, max_deliver: 10, visibility_timeout: 300s"
            )
        ),
    );
    let mut gw = TestGateway::start(&yaml).await;
    send(&moto, &queue, &json!([to("someone", "held back")])).await;
    metric_at_least(&gw, "sqs-s", "retried", 1).await;
    assert_eq!(count(&moto, &queue).await, (0, 1));
    gw.shutdown().await;
    // Far sooner than the 300 s visibility timeout.
    wait_count(&moto, &queue, (1, 0)).await;
}

/// Two nodes on one queue: SQS hides each received message from the other node, so each
/// message is delivered once, by whichever node received it, to the node holding the
/// connection.
#[tokio::test]
async fn two_nodes_deliver_each_message_once() {
    let moto = Moto::start().await;
    let backend = Backend::ok().await;
    let (store, _cleanup) = shared_store();
    let queue = create(&moto, "shared", false).await;
    let file = credentials_file();
    let extra = format!(
        "{}consumers:\n{}",
        aws_section(&file),
        entry("sqs-n", &queue, "")
    );
    let yaml = node_config(&backend.url(), &store, &extra);
    let mut n1 = TestGateway::start(&yaml).await;
    let mut n2 = TestGateway::start(&yaml).await;
    let (mut a, id_a) = connect_and_id(&backend, &n1.ws_url("/prod")).await;
    let (mut b, id_b) = connect_and_id(&backend, &n2.ws_url("/prod")).await;
    let messages: Vec<Value> = (0..40)
        .map(|i| to(if i % 2 == 0 { &id_a } else { &id_b }, &format!("x{i}")))
        .collect();
    send(&moto, &queue, &Value::Array(messages)).await;
    for (ws, parity) in [(&mut a, 0), (&mut b, 1)] {
        let mut seen = BTreeSet::new();
        for _ in 0..20 {
            let text = next_text(ws).await;
            assert!(seen.insert(text.clone()), "{text} arrived twice");
        }
        let want: BTreeSet<String> = (0..40)
            .filter(|i| i % 2 == parity)
            .map(|i| format!("x{i}"))
            .collect();
        assert_eq!(seen, want);
    }
    wait_count(&moto, &queue, (0, 0)).await;
    // Nothing more behind: a duplicate would arrive before these markers.
    send(&moto, &queue, &json!([to(&id_a, "end"), to(&id_b, "end")])).await;
    assert_eq!(next_text(&mut a).await, "end");
    assert_eq!(next_text(&mut b).await, "end");
    n1.shutdown().await;
    n2.shutdown().await;
}

/// SQS refusing the receive (no such queue) takes the consumer down (`connected` 0); it keeps
/// trying with a backoff and comes up once the queue exists.
#[tokio::test]
async fn a_missing_queue_is_retried_until_it_exists() {
    let moto = Moto::start().await;
    let backend = Backend::ok().await;
    let other = create(&moto, "present", false).await;
    let late = other.replace("/present", "/late");
    let file = credentials_file();
    let yaml = config(
        &backend.url(),
        &format!(
            "{}consumers:\n{}",
            aws_section(&file),
            entry("sqs-l", &late, "")
        ),
    );
    let mut gw = TestGateway::start(&yaml).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let connected = "wsgate_consumer_connected{consumer=\"sqs-l\"} 1";
    let text = get_text(&http(), gw.http_url("/metrics")).await;
    assert!(!text.contains(connected), "{text}");
    assert_eq!(create(&moto, "late", false).await, late);
    send(&moto, &late, &json!([to(&id, "finally")])).await;
    assert_eq!(next_text(&mut ws).await, "finally");
    let text = get_text(&http(), gw.http_url("/metrics")).await;
    assert!(text.contains(connected), "{text}");
    gw.shutdown().await;
}
