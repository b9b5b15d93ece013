//! Node failures with real `wsgate` processes on one real Redis: kill -9 (the survivor reaps
//! and sends `$disconnect` once per connection), SIGSTOP/SIGCONT (the frozen node closes its
//! reaped sockets with 1012 and sends no second `$disconnect`), SIGTERM (drain with 1001).

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;

use crate::support::cluster::*;
use crate::support::*;

/// The ids of the next `n` `$disconnect` events, with their status codes.
async fn disconnects(backend: &Backend, n: usize, within: Duration) -> Vec<(String, u64)> {
    let mut seen = Vec::new();
    tokio::time::timeout(within, async {
        while seen.len() < n {
            let d = backend.next_to("/disconnect").await.json();
            let rc = &d["requestContext"];
            seen.push((
                rc["connectionId"].as_str().expect("id").to_string(),
                rc["disconnectStatusCode"].as_u64().expect("status"),
            ));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} $disconnect events within {within:?}, got {seen:?}"));
    seen
}

#[tokio::test]
async fn a_killed_node_is_reaped_once_and_its_ids_answer_410() {
    let backend = Backend::ok().await;
    let (store, _cleanup) = shared_store();
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let mut b = NodeProcess::start(&yaml, "node-b-killed").await;
    let (mut a_ws, a_id) = connect_and_id(&backend, &a.ws_url("/prod")).await;
    let mut b_ids = BTreeSet::new();
    let mut b_clients = Vec::new();
    for _ in 0..3 {
        let (ws, id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
        b_ids.insert(id);
        b_clients.push(ws);
    }
    let client = http();

    b.kill9();
    let reaped = disconnects(&backend, 3, REAP_DEADLINE).await;
    let reaped_ids: BTreeSet<String> = reaped.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        reaped_ids, b_ids,
        "one $disconnect per connection of the dead node"
    );
    assert!(
        reaped.iter().all(|(_, status)| *status == 1006),
        "{reaped:?}"
    );
    for id in &b_ids {
        assert_eq!(
            callback(&client, Method::POST, &a.http_url(""), id, "x").await,
            410
        );
        assert_eq!(
            callback(&client, Method::GET, &a.http_url(""), id, "").await,
            410
        );
    }
    // The survivor's own connection is untouched.
    assert_eq!(
        callback(&client, Method::POST, &a.http_url(""), &a_id, "still here").await,
        200
    );
    assert_eq!(next_text(&mut a_ws).await, "still here");
    assert!(
        backend.try_next().await.is_none(),
        "no duplicate $disconnect"
    );
}

#[tokio::test]
async fn a_frozen_node_that_was_reaped_closes_its_sockets_without_ghosts() {
    let backend = Backend::ok().await;
    let (store, _cleanup) = shared_store();
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let b = NodeProcess::start(&yaml, "node-b-frozen").await;
    let (mut ws1, id1) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let (mut ws2, id2) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let client = http();

    b.freeze(true);
    // While B is frozen its lease runs out and A reaps it.
    let reaped = disconnects(&backend, 2, REAP_DEADLINE).await;
    let ids: BTreeSet<String> = reaped.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, BTreeSet::from([id1.clone(), id2.clone()]));
    assert_eq!(
        callback(&client, Method::POST, &a.http_url(""), &id1, "x").await,
        410
    );

    b.freeze(false);
    // On resuming, B learns it was reaped and closes the sockets it still holds.
    assert_eq!(expect_close(&mut ws1).await.0, 1012);
    assert_eq!(expect_close(&mut ws2).await.0, 1012);
    // B rejoins: it takes new connections, reachable from A, and its old ids stay gone.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut fresh = loop {
        // Refused (503) while B is re-joining; accepted once it holds a fresh lease.
        if let Ok(Ok((ws, _))) = tokio::time::timeout(
            DEADLINE,
            tokio_tungstenite::connect_async(b.ws_url("/prod")),
        )
        .await
        {
            break ws;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B accepts connections again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let new_id = loop {
        let event = backend.next().await;
        match event.path.as_str() {
            "/connect" => {
                let id = event.json()["requestContext"]["connectionId"]
                    .as_str()
                    .expect("id")
                    .to_string();
                if callback(&client, Method::GET, &b.base(), &id, "").await == 200 {
                    break id;
                }
            }
            "/disconnect" => {
                // Only handshakes refused while B was re-joining may end here (with 1006).
                let d = event.json();
                let id = d["requestContext"]["connectionId"].as_str().expect("id");
                assert!(
                    id != id1 && id != id2,
                    "second $disconnect for a reaped connection"
                );
            }
            other => panic!("unexpected backend request {other}"),
        }
    };
    assert_eq!(
        callback(&client, Method::POST, &a.http_url(""), &new_id, "hi").await,
        200
    );
    assert_eq!(next_text(&mut fresh).await, "hi");
    for id in [&id1, &id2] {
        assert_eq!(callback(&client, Method::GET, &b.base(), id, "").await, 410);
        assert_eq!(
            callback(&client, Method::GET, &a.http_url(""), id, "").await,
            410
        );
    }
}

#[tokio::test]
async fn sigterm_drains_one_node_and_leaves_the_others_alone() {
    let backend = Backend::ok().await;
    let prefix = unique_prefix();
    let _cleanup = cleanup(&prefix);
    let store = redis_store(&shared_redis_url(), &prefix);
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let mut b = NodeProcess::start(&yaml, "node-b-drained").await;
    let (mut a_ws, a_id) = connect_and_id(&backend, &a.ws_url("/prod")).await;
    let (mut ws1, id1) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let (mut ws2, id2) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let client = http();

    b.terminate();
    assert_eq!(expect_close(&mut ws1).await.0, 1001);
    assert_eq!(expect_close(&mut ws2).await.0, 1001);
    let drained = disconnects(&backend, 2, DEADLINE).await;
    let ids: BTreeSet<String> = drained.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, BTreeSet::from([id1.clone(), id2.clone()]));
    assert!(
        drained.iter().all(|(_, status)| *status == 1001),
        "{drained:?}"
    );
    assert!(
        b.wait_exit(DEADLINE).await.success(),
        "exit 0 after draining"
    );

    for id in [&id1, &id2] {
        assert_eq!(
            callback(&client, Method::GET, &a.http_url(""), id, "").await,
            410
        );
    }
    assert_eq!(
        callback(&client, Method::POST, &a.http_url(""), &a_id, "fine").await,
        200
    );
    assert_eq!(next_text(&mut a_ws).await, "fine");
    // B gave its lease back: nothing is left for A's reaper, so no late $disconnect.
    let mut raw = redis::Client::open(shared_redis_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let nodes: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("{{{prefix}}}:nodes"))
        .query_async(&mut raw)
        .await
        .expect("HKEYS");
    assert!(!nodes.contains(&"node-b-drained".to_string()), "{nodes:?}");
    let leftovers: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:node:node-b-drained"))
        .query_async(&mut raw)
        .await
        .expect("SMEMBERS");
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(backend.try_next().await.is_none());
}

#[tokio::test]
async fn a_node_restarted_under_its_id_reaps_what_its_previous_process_left() {
    let backend = Backend::ok().await;
    let (store, _cleanup) = shared_store();
    let yaml = node_config(&backend.url(), &store, "");
    let mut b = NodeProcess::start(&yaml, "node-b-restarted").await;
    let (_ws1, id1) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let (_ws2, id2) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    b.kill9();
    // No other node runs: only the new process of the same id can clean up.
    let b = NodeProcess::start(&yaml, "node-b-restarted").await;
    let reaped = disconnects(&backend, 2, REAP_DEADLINE).await;
    let ids: BTreeSet<String> = reaped.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, BTreeSet::from([id1.clone(), id2.clone()]));
    let client = http();
    for id in [&id1, &id2] {
        assert_eq!(callback(&client, Method::GET, &b.base(), id, "").await, 410);
    }
    let (mut ws, id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    assert_eq!(
        callback(&client, Method::POST, &b.base(), &id, "new").await,
        200
    );
    assert_eq!(next_text(&mut ws).await, "new");
}
