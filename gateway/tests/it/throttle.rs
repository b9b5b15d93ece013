//! Throttling on real sockets: what a throttled handshake, message and callback request see,
//! the metric, and accuracy on one node and on two nodes sharing Redis.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

/// Throttling settings under the standard test config.
fn throttled(backend: &Backend, throttling: &str) -> String {
    config(&backend.url(), &format!("throttling:\n{throttling}"))
}

#[tokio::test]
async fn a_throttled_handshake_gets_429_and_never_reaches_connect() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&throttled(
        &backend,
        "  new_connections: { rate_limit: 0.01, burst_limit: 2 }\n",
    ))
    .await;
    let url = gw.ws_url("/prod");
    let _a = connect_and_id(&backend, &url).await;
    let _b = connect_and_id(&backend, &url).await;
    let (status, body) = connect_refused(&url).await;
    assert_eq!(status, 429);
    let body: Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(body["message"], "Too Many Requests");
    // $connect runs before the answer, so a call would already be recorded.
    assert!(backend.try_next().await.is_none());
}

#[tokio::test]
async fn a_throttled_message_gets_an_error_frame_and_the_connection_stays_open() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&throttled(
        &backend,
        "  stages:
    prod:
      route_settings:
        sendmessage: { throttling_rate_limit: 0.01, throttling_burst_limit: 2 }\n",
    ))
    .await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    for _ in 0..3 {
        send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    }
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON frame");
    assert_eq!(frame["message"], "Too Many Requests");
    assert_eq!(frame["connectionId"], id.as_str());
    assert_eq!(frame["requestId"].as_str().map(str::len), Some(16));
    backend.next_to("/sendmessage").await;
    backend.next_to("/sendmessage").await;
    // Messages are handled in order, so the third would have reached the backend by now.
    assert!(backend.try_next().await.is_none());
    // Other routes are unaffected and the connection is open.
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);

    let metrics = get_text(&http(), gw.http_url("/metrics")).await;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("wsgate_throttled_total{")
                && l.contains(r#"route="sendmessage""#)
                && l.contains(r#"scope="route""#)
                && l.contains(r#"stage="prod""#)
        })
        .unwrap_or_else(|| panic!("no throttled line in {metrics}"));
    let count: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("value");
    assert!(count >= 1.0, "{line}");
}

#[tokio::test]
async fn a_throttled_callback_request_gets_429_limit_exceeded() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&throttled(
        &backend,
        "  callback: { rate_limit: 0.01, burst_limit: 1 }\n",
    ))
    .await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let url = gw.http_url(&format!("/prod/@connections/{id}"));
    let first = http().post(&url).body("hello").send().await.expect("post");
    assert_eq!(first.status(), 200);
    assert_eq!(next_text(&mut ws).await, "hello");
    let second = http().post(&url).body("again").send().await.expect("post");
    assert_eq!(second.status(), 429);
    assert_eq!(
        second.headers()["x-amzn-errortype"],
        "LimitExceededException"
    );
}

/// Sends `count` pings at `per_second` on a new connection; returns (pongs, throttled frames)
/// and the time from the first send to the last.
async fn offer(url: String, per_second: u64, count: usize) -> (usize, usize, Duration) {
    let (mut sink, mut stream) = connect(&url).await.split();
    let reader = tokio::spawn(async move {
        let (mut accepted, mut throttled) = (0, 0);
        while accepted + throttled < count {
            let frame = tokio::time::timeout(DEADLINE, stream.next())
                .await
                .expect("frame within the deadline")
                .expect("open")
                .expect("frame");
            match frame {
                Message::Text(t) if t.as_str() == r#"{"action":"pong"}"# => accepted += 1,
                Message::Text(t) if t.as_str().contains("Too Many Requests") => throttled += 1,
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        (accepted, throttled)
    });
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / per_second));
    let mut first = None;
    for _ in 0..count {
        tick.tick().await;
        first.get_or_insert_with(Instant::now);
        sink.send(Message::text(r#"{"action":"ping"}"#))
            .await
            .expect("send");
    }
    let span = first.map(|f| f.elapsed()).unwrap_or_default();
    let (accepted, throttled) = reader.await.expect("reader");
    (accepted, throttled, span)
}

fn assert_within_ten_percent(what: &str, accepted: usize, span: Duration) {
    let expected = 10.0 + 50.0 * span.as_secs_f64();
    println!("{what}: accepted {accepted}, expected {expected:.1} (offered over {span:?})");
    let accepted = accepted as f64;
    assert!(
        (accepted - expected).abs() <= expected * 0.10,
        "accepted {accepted}, expected {expected:.0} ± 10%"
    );
}

const PING_50_10: &str = "  stages:
    prod:
      route_settings:
        ping: { throttling_rate_limit: 50, throttling_burst_limit: 10 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_admits_burst_plus_rate_times_time() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&throttled(&backend, PING_50_10)).await;
    let (accepted, throttled, span) = offer(gw.ws_url("/prod"), 200, 800).await;
    assert_eq!(accepted + throttled, 800);
    assert_within_ten_percent("one node", accepted, span);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sharing_redis_share_one_bucket() {
    let backend = Backend::ok().await;
    let prefix = format!("wsgate-throttle-test-{}", uuid::Uuid::new_v4().simple());
    let yaml = throttled(
        &backend,
        &format!(
            "{PING_50_10}store: {{ kind: redis, url: \"redis://127.0.0.1:6379\", prefix: {prefix} }}\n"
        ),
    );
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;
    let (first, second) = tokio::join!(
        offer(a.ws_url("/prod"), 100, 400),
        offer(b.ws_url("/prod"), 100, 400)
    );
    assert_eq!(first.0 + first.1 + second.0 + second.1, 800);
    let span = first.2.max(second.2);
    assert_within_ten_percent("two nodes", first.0 + second.0, span);
    // Both nodes got a share.
    assert!(first.0 > 0 && second.0 > 0, "{first:?} {second:?}");
}
