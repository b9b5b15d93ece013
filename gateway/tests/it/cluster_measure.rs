//! Measures callback push latency and throughput, same-node versus cross-node, on two
//! in-process gateways and the shared Redis. Ignored by default (it measures, it does not
//! check); run it as documented in docs/scaling.md:
//!
//! `cargo test --release -p wsgate --test it cluster_measure -- --ignored --nocapture`

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::support::cluster::*;
use crate::support::*;

const LATENCY_POSTS: usize = 2000;
const CONNECTIONS: usize = 32;
const POSTS_PER_CONNECTION: usize = 500;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sequential post → client receive, one at a time.
async fn latency(
    client: &reqwest::Client,
    via: &str,
    ws: &mut Ws,
    id: &str,
) -> (Duration, Duration) {
    let url = format!("{via}/prod/@connections/{id}");
    let mut samples = Vec::with_capacity(LATENCY_POSTS);
    for i in 0..LATENCY_POSTS {
        let started = Instant::now();
        let r = client
            .post(&url)
            .body(i.to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
        assert_eq!(next_text(ws).await, i.to_string());
        samples.push(started.elapsed());
    }
    samples.sort();
    (percentile(&samples, 0.50), percentile(&samples, 0.99))
}

/// `CONNECTIONS` posters in parallel, each posting sequentially to its own connection.
async fn throughput(client: &reqwest::Client, via: &str, sockets: Vec<(Ws, String)>) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (ws, id) in sockets {
        let client = client.clone();
        let url = format!("{via}/prod/@connections/{id}");
        // The write half stays alive (unused) so the client does not close the connection.
        let (write, mut read) = ws.split();
        let reader = tokio::spawn(async move {
            let mut got = 0;
            while got < POSTS_PER_CONNECTION {
                match tokio::time::timeout(DEADLINE, read.next()).await {
                    Ok(Some(Ok(Message::Text(_)))) => got += 1,
                    Ok(Some(Ok(_))) => {}
                    other => panic!("reader ended: {other:?}"),
                }
            }
            drop(write);
        });
        let writer = tokio::spawn(async move {
            for i in 0..POSTS_PER_CONNECTION {
                let r = client
                    .post(&url)
                    .body(i.to_string())
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status(), 200);
            }
        });
        tasks.push((writer, reader));
    }
    for (writer, reader) in tasks {
        writer.await.expect("writer");
        reader.await.expect("reader");
    }
    (CONNECTIONS * POSTS_PER_CONNECTION) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn cluster_measure() {
    let backend = Arc::new(Backend::ok().await);
    let (store, _cleanup) = shared_store();
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;
    let client = http();
    let (a_base, b_base) = (a.http_url(""), b.http_url(""));

    let (mut ws, id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    // Warm-up both paths.
    for via in [&b_base, &a_base] {
        let _ = latency(&client, via, &mut ws, &id).await;
    }
    let (same_p50, same_p99) = latency(&client, &b_base, &mut ws, &id).await;
    let (cross_p50, cross_p99) = latency(&client, &a_base, &mut ws, &id).await;

    let mut sockets = Vec::new();
    for _ in 0..CONNECTIONS {
        sockets.push(connect_and_id(&backend, &b.ws_url("/prod")).await);
    }
    let same_rate = throughput(&client, &b_base, sockets).await;
    let mut sockets = Vec::new();
    for _ in 0..CONNECTIONS {
        sockets.push(connect_and_id(&backend, &b.ws_url("/prod")).await);
    }
    let cross_rate = throughput(&client, &a_base, sockets).await;

    println!("| path | p50 | p99 | throughput ({CONNECTIONS} connections) |");
    println!("|---|---|---|---|");
    println!(
        "| same node | {:.3} ms | {:.3} ms | {same_rate:.0} posts/s |",
        same_p50.as_secs_f64() * 1e3,
        same_p99.as_secs_f64() * 1e3
    );
    println!(
        "| cross node | {:.3} ms | {:.3} ms | {cross_rate:.0} posts/s |",
        cross_p50.as_secs_f64() * 1e3,
        cross_p99.as_secs_f64() * 1e3
    );
}
