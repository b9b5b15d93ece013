//! The dashboard without a browser: a WebSocket client on the gateway gets the publisher's
//! updates, in order, on the in-memory store and across two nodes on Redis; the page is served
//! with the right gateway URL.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::timeout;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use wsgate_example_dashboard::{Options, Running, start};

const WAIT: Duration = Duration::from_secs(10);

/// Reads `count` updates from the page's gateway; checks their shape and order.
async fn watch_updates(running: &Running, count: usize) {
    let (mut ws, _) = timeout(WAIT, connect_async(running.websocket_url()))
        .await
        .expect("connect in time")
        .expect("gateway accepts");
    let mut last_seq = None;
    let mut seen = 0;
    while seen < count {
        let frame = timeout(WAIT, ws.next())
            .await
            .expect("an update in time")
            .expect("stream open")
            .expect("valid frame");
        let Message::Text(text) = frame else { continue };
        let update: Value = serde_json::from_str(&text).expect("JSON update");
        let seq = update["seq"].as_u64().expect("seq");
        if let Some(last) = last_seq {
            assert!(seq > last, "updates in order: {seq} after {last}");
        }
        last_seq = Some(seq);
        let series = update["series"].as_object().expect("series");
        for name in ["cpu", "memory", "requests", "latency"] {
            assert!(series[name].is_number(), "{name} in {update}");
        }
        assert_eq!(update["units"]["cpu"], "%");
        seen += 1;
    }
}

fn fast() -> Options {
    Options {
        rate: 20.0,
        ..Options::ephemeral()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_reach_a_client_on_the_memory_store() {
    let running = start(fast()).await.expect("example starts");
    assert_eq!(running.gateway_addrs().len(), 1);
    watch_updates(&running, 5).await;

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let html = http
        .get(running.page_url())
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(html.contains(&format!(r#""gatewayUrl":"{}""#, running.websocket_url())));
    let script = http
        .get(format!("{}dashboard.js", running.page_url()))
        .send()
        .await
        .expect("script");
    assert!(script.text().await.unwrap().contains("backoffDelay"));
    running.shutdown().await;
}

/// Deletes every key of a prefix on the test Redis when dropped.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(redis_url()).and_then(|c| c.get_connection()) else {
            return;
        };
        for pattern in [format!("{}:*", self.0), format!("{{{}}}:*", self.0)] {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _ = redis::cmd("DEL").arg(keys).exec(&mut conn);
            }
        }
    }
}

fn redis_url() -> String {
    std::env::var("WSGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_cross_nodes_on_redis() {
    let prefix = format!("wsgate-dashboard-test-{}", std::process::id());
    let _cleanup = Cleanup(prefix.clone());
    let running = start(Options {
        redis: Some(redis_url()),
        redis_prefix: prefix,
        ..fast()
    })
    .await
    .expect("example starts on Redis");
    let nodes = running.gateway_addrs();
    assert_eq!(nodes.len(), 2, "two nodes");
    assert_ne!(nodes[0], nodes[1]);
    // The client is on node A; the publisher posts through node B.
    watch_updates(&running, 5).await;
    running.shutdown().await;
}
