//! Redis trouble under two in-process gateways: an outage (kill -9, then a restart that lost
//! every key), FLUSHALL, and the same cross-node paths on a three-master Redis Cluster.

use std::time::{Duration, Instant};

use reqwest::Method;
use wsgate_connection_store::conformance::servers::{RedisCluster, RedisServer};

use crate::support::cluster::*;
use crate::support::*;

/// Outage answers must come this fast (store timeout 500 ms, forward timeout 1 s).
const FAIL_FAST: Duration = Duration::from_secs(2);
/// Recovery after Redis returns.
const RECOVERY: Duration = Duration::from_secs(10);

async fn status_within(
    client: &reqwest::Client,
    method: Method,
    base: &str,
    id: &str,
    body: &str,
) -> (u16, Duration) {
    let started = Instant::now();
    let status = callback(client, method, base, id, body).await;
    (status, started.elapsed())
}

async fn readyz(client: &reqwest::Client, gw: &TestGateway) -> u16 {
    client
        .get(gw.http_url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .status()
        .as_u16()
}

#[tokio::test]
async fn redis_outage_fails_fast_keeps_clients_and_recovers_after_data_loss() {
    let mut redis = RedisServer::start().await;
    let backend = Backend::ok().await;
    let store = redis_store(&redis.url(), &unique_prefix());
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;
    let (mut a_ws, a_id) = connect_and_id(&backend, &a.ws_url("/prod")).await;
    let (mut b_ws, b_id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let client = http();
    let (a_base, b_base) = (a.http_url(""), b.http_url(""));

    redis.kill();
    // Local pushes keep working; cross-node ones and handshakes fail fast with 503.
    let (status, _) = status_within(&client, Method::POST, &a_base, &a_id, "local").await;
    assert_eq!(status, 200);
    assert_eq!(next_text(&mut a_ws).await, "local");
    for method in [Method::POST, Method::GET, Method::DELETE] {
        let (status, took) = status_within(&client, method.clone(), &a_base, &b_id, "x").await;
        assert_eq!(status, 503, "{method} across nodes during the outage");
        assert!(took < FAIL_FAST, "{method} took {took:?}");
    }
    let started = Instant::now();
    let (status, _) = connect_refused(&a.ws_url("/prod")).await;
    assert_eq!(status, 503);
    assert!(
        started.elapsed() < FAIL_FAST,
        "handshake took {:?}",
        started.elapsed()
    );
    // That attempt passed `$connect` before the store refused it, so it gets its `$disconnect`.
    let refused =
        backend.next_to("/connect").await.json()["requestContext"]["connectionId"].clone();
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["connectionId"], refused);
    assert_eq!(readyz(&client, &a).await, 503);

    // Redis comes back empty: the nodes re-assert their records and resubscribe.
    redis.restart().await;
    eventually("cross-node post after the restart", RECOVERY, || async {
        callback(&client, Method::POST, &a_base, &b_id, "back").await == 200
    })
    .await;
    assert_eq!(next_text(&mut b_ws).await, "back");
    eventually("GET through either node", RECOVERY, || async {
        callback(&client, Method::GET, &a_base, &b_id, "").await == 200
            && callback(&client, Method::GET, &b_base, &a_id, "").await == 200
    })
    .await;
    assert_eq!(readyz(&client, &a).await, 200);
    let (_c_ws, c_id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    assert_eq!(
        callback(&client, Method::GET, &a_base, &c_id, "").await,
        200
    );

    // FLUSHALL: the same recovery without a restart.
    let mut raw = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut raw)
        .await
        .expect("FLUSHALL");
    eventually("records re-asserted after FLUSHALL", RECOVERY, || async {
        callback(&client, Method::GET, &a_base, &b_id, "").await == 200
            && callback(&client, Method::POST, &b_base, &a_id, "again").await == 200
    })
    .await;
    assert_eq!(next_text(&mut a_ws).await, "again");
    // Nobody was disconnected by any of this.
    while let Some(request) = backend.try_next().await {
        assert_ne!(request.path, "/disconnect", "false $disconnect");
    }
}

#[tokio::test]
async fn a_hung_redis_answers_503_fast_and_recovers_when_it_resumes() {
    let redis = RedisServer::start().await;
    let backend = Backend::ok().await;
    let store = redis_store(&redis.url(), &unique_prefix());
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;
    let (mut a_ws, a_id) = connect_and_id(&backend, &a.ws_url("/prod")).await;
    let (mut b_ws, b_id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let client = http();
    let a_base = a.http_url("");

    redis.freeze(true);
    let (status, took) = status_within(&client, Method::POST, &a_base, &b_id, "x").await;
    assert_eq!(
        (status, took < FAIL_FAST),
        (503, true),
        "cross-node post took {took:?}"
    );
    let (status, took) = status_within(&client, Method::GET, &a_base, &b_id, "").await;
    assert_eq!((status, took < FAIL_FAST), (503, true), "GET took {took:?}");
    let (status, _) = status_within(&client, Method::POST, &a_base, &a_id, "local").await;
    assert_eq!(status, 200);
    assert_eq!(next_text(&mut a_ws).await, "local");
    let started = Instant::now();
    assert_eq!(connect_refused(&a.ws_url("/prod")).await.0, 503);
    assert!(
        started.elapsed() < FAIL_FAST,
        "handshake took {:?}",
        started.elapsed()
    );
    let refused =
        backend.next_to("/connect").await.json()["requestContext"]["connectionId"].clone();
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["connectionId"], refused);

    redis.freeze(false);
    eventually("cross-node post after Redis resumed", RECOVERY, || async {
        callback(&client, Method::POST, &a_base, &b_id, "resumed").await == 200
    })
    .await;
    // The post answered 503 during the hang may still arrive; the acknowledged one must.
    loop {
        if next_text(&mut b_ws).await == "resumed" {
            break;
        }
    }
    while let Some(request) = backend.try_next().await {
        assert_ne!(request.path, "/disconnect", "false $disconnect");
    }
}

#[tokio::test]
async fn a_killed_subscription_loses_no_acknowledged_post() {
    let redis = RedisServer::start().await;
    let backend = Backend::ok().await;
    let store = redis_store(&redis.url(), &unique_prefix());
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;
    let (mut ws, id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let client = http();
    let a_base = a.http_url("");
    let mut raw = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut raw)
        .await
        .expect("CLIENT KILL");
    // Keep posting through A while B's subscription is gone and comes back.
    let mut acknowledged = Vec::new();
    let deadline = Instant::now() + RECOVERY;
    let mut seq = 0u32;
    while acknowledged.len() < 20 {
        assert!(
            Instant::now() < deadline,
            "posts did not recover: {acknowledged:?}"
        );
        seq += 1;
        match callback(&client, Method::POST, &a_base, &id, &seq.to_string()).await {
            200 => acknowledged.push(seq.to_string()),
            503 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("unexpected status {other}"),
        }
    }
    // Every post answered 200 reaches the client, in order (503s may or may not arrive).
    let mut pending = acknowledged.iter().peekable();
    while let Some(expected) = pending.peek() {
        if next_text(&mut ws).await == **expected {
            pending.next();
        }
    }
    assert!(
        backend.try_next().await.is_none(),
        "nobody was disconnected"
    );
}

#[tokio::test]
async fn cross_node_callbacks_work_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let backend = Backend::ok().await;
    let store = cluster_store(&cluster.urls(), &unique_prefix());
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;
    let client = http();
    let (a_base, b_base) = (a.http_url(""), b.http_url(""));
    let mut sockets = Vec::new();
    // Enough connections that their records spread over all three masters.
    for _ in 0..6 {
        sockets.push(connect_and_id(&backend, &b.ws_url("/prod")).await);
    }
    for (ws, id) in &mut sockets {
        for i in 0..20 {
            let via = if i % 2 == 0 { &a_base } else { &b_base };
            assert_eq!(
                callback(&client, Method::POST, via, id, &i.to_string()).await,
                200
            );
        }
        for i in 0..20 {
            assert_eq!(next_text(ws).await, i.to_string());
        }
        assert_eq!(callback(&client, Method::GET, &a_base, id, "").await, 200);
    }
    let (mut ws, id) = sockets.pop().expect("a socket");
    assert_eq!(
        callback(&client, Method::DELETE, &a_base, &id, "").await,
        204
    );
    assert_eq!(expect_close(&mut ws).await.0, 1000);
    eventually("gone after DELETE", DEADLINE, || async {
        callback(&client, Method::GET, &a_base, &id, "").await == 410
    })
    .await;
    assert_eq!(readyz(&client, &a).await, 200);
}
