//! Every queue is bounded in bytes: 1,000 connections that stop reading while posts keep coming
//! hold at most the node's queue budget (the gateway runs as its own process, whose RSS is read
//! from /proc: other tests running in this process cannot blur it), the posts beyond it get 429,
//! and every post answered 200 reaches its client once it reads again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{StreamExt, stream};
use tokio_tungstenite::tungstenite::Message;

use crate::support::cluster::NodeProcess;
use crate::support::*;

const CLIENTS: usize = 1_000;
const POST_BYTES: usize = 8 * 1024;
const ROUNDS: usize = 20;
const NODE_BUDGET: usize = 16 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_stay_within_the_byte_budgets_and_no_accepted_post_is_lost() {
    let backend = Backend::ok().await;
    let connect = format!("{}/connect", backend.url());
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
api:
  name: mem
  route_selection_expression: $request.body.action
  stages:
    prod: {{}}
  routes:
    $connect:
      integration: {{ type: aws_proxy, uri: "{connect}" }}
    $default:
      integration: {{ type: mock }}
limits:
  ping_interval: 0
  send_timeout: 120s
  outbound_queue_messages: 256
  outbound_queue_bytes: 65536
  node_queue_bytes: {NODE_BUDGET}
  socket_send_buffer_bytes: 8192
throttling:
  new_connections: null
"#
    );
    let gw = NodeProcess::start(&yaml, "memory-bound").await;
    let url = gw.ws_url("/prod");
    let mut clients = Vec::with_capacity(CLIENTS);
    let mut ids = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(slow_client(&url, gw.addr).await);
        let connect = backend.next_to("/connect").await.json();
        let id = connect["requestContext"]["connectionId"]
            .as_str()
            .expect("id");
        ids.push(id.to_string());
    }
    let client = http();
    let base = gw.http_url("");
    assert_eq!(ids.len(), CLIENTS);

    let before = gw.rss_bytes();
    let accepted: Arc<Vec<AtomicUsize>> =
        Arc::new((0..CLIENTS).map(|_| AtomicUsize::new(0)).collect());
    let refused = AtomicUsize::new(0);
    let body = "m".repeat(POST_BYTES);
    let posts = (0..ROUNDS).flat_map(|_| 0..CLIENTS);
    stream::iter(posts)
        .for_each_concurrent(32, |i| {
            let (client, base, id, body) = (&client, &base, &ids[i], &body);
            let (accepted, refused) = (&accepted, &refused);
            async move {
                let status = client
                    .post(format!("{base}/prod/@connections/{id}"))
                    .body(body.clone())
                    .send()
                    .await
                    .expect("post")
                    .status()
                    .as_u16();
                match status {
                    200 => {
                        accepted[i].fetch_add(1, Ordering::Relaxed);
                    }
                    429 => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
        })
        .await;
    let grown = gw.rss_bytes().saturating_sub(before);
    let total_accepted: usize = accepted.iter().map(|a| a.load(Ordering::Relaxed)).sum();
    let offered = ROUNDS * CLIENTS;
    eprintln!(
        "accepted {total_accepted} of {offered} posts ({} MiB), refused {}, RSS grew {} MiB",
        (total_accepted * POST_BYTES) >> 20,
        refused.load(Ordering::Relaxed),
        grown >> 20
    );
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the budget must refuse posts"
    );
    // Queued bytes are at most the node budget; allow as much again for allocator slack and the
    // buffers of the callback requests in flight.
    assert!(
        grown <= 2 * NODE_BUDGET + (32 << 20),
        "RSS grew {} MiB, budget {} MiB",
        grown >> 20,
        NODE_BUDGET >> 20
    );

    // Every post answered 200 arrives.
    let received = stream::iter(clients.into_iter().enumerate())
        .map(|(i, mut ws)| {
            let want = accepted[i].load(Ordering::Relaxed);
            async move {
                let mut got = 0;
                while got < want {
                    match tokio::time::timeout(DEADLINE, ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) => {
                            assert_eq!(t.len(), POST_BYTES);
                            got += 1;
                        }
                        other => panic!("client {i}: {got} of {want} frames, then {other:?}"),
                    }
                }
                got
            }
        })
        .buffer_unordered(64)
        .fold(0, |sum, got| async move { sum + got })
        .await;
    assert_eq!(received, total_accepted);
}
