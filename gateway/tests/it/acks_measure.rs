//! Measures what acknowledgement costs a message: sequential round trips (send → the frame that
//! answers it) on a two-way mock route without `ack:` against a one-way mock route with it, on
//! the memory store and on the shared Redis. Ignored by default (it measures, it does not
//! check):
//!
//! `cargo test --release -p wsgate --test it acks_measure -- --ignored --nocapture`

use std::time::{Duration, Instant};

use crate::support::cluster::*;
use crate::support::*;

const MESSAGES: usize = 2000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn config(store: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: measure
  route_selection_expression: $request.body.action
  stages: {{ prod: {{}} }}
  routes:
    plain: {{ integration: {{ type: mock, response: '{{"ok":1}}' }}, route_response: true }}
    acked: {{ integration: {{ type: mock }}, ack: {{ id: $.id, window: 5m }} }}
{store}"#
    )
}

async fn round_trips(ws: &mut Ws, action: &str) -> Vec<Duration> {
    let mut took = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let message = format!(r#"{{"action":"{action}","id":"{action}-{i}"}}"#);
        let started = Instant::now();
        send_text(ws, &message).await;
        next_text(ws).await;
        took.push(started.elapsed());
    }
    took.sort_unstable();
    took
}

async fn measure(store_name: &str, store: &str) {
    let gw = TestGateway::start(&config(store)).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    // Warm up both paths.
    round_trips(&mut ws, "plain").await;
    for action in ["plain", "acked"] {
        let took = round_trips(&mut ws, action).await;
        println!(
            "store={store_name} route={action} messages={MESSAGES} p50={:?} p99={:?}",
            percentile(&took, 0.5),
            percentile(&took, 0.99)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn acks_measure() {
    measure("memory", "").await;
    let (store, _cleanup) = shared_store();
    measure("redis", &store).await;
}
