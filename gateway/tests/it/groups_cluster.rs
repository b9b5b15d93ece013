//! Groups across nodes on one real Redis: a post through any node reaches every member once,
//! only nodes with members subscribe, sequential posts keep their order through any mix of
//! nodes, memberships change from any node, and a dead node's members leave their groups.

use futures_util::StreamExt;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::support::cluster::*;
use crate::support::groups::*;
use crate::support::*;

/// `n` in-process nodes on the shared Redis under a fresh prefix.
async fn nodes(backend: &Backend, n: usize, extra: &str) -> (Vec<TestGateway>, String, Cleanup) {
    let prefix = unique_prefix();
    let store = redis_store(&shared_redis_url(), &prefix);
    let cleanup = cleanup(&prefix);
    let mut gateways = Vec::new();
    for _ in 0..n {
        gateways.push(TestGateway::start(&node_config(&backend.url(), &store, extra)).await);
    }
    (gateways, prefix, cleanup)
}

fn base(gw: &TestGateway) -> String {
    gw.http_url("")
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(shared_redis_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis")
}

/// Subscribers (nodes) of a group's channel.
async fn subscribers(prefix: &str, group: &str) -> i64 {
    let channel = format!("{prefix}:grp:{{prod:{group}}}");
    let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(&channel)
        .query_async(&mut redis().await)
        .await
        .expect("PUBSUB NUMSUB");
    counts.first().map_or(0, |(_, n)| *n)
}

#[tokio::test]
async fn a_post_through_any_node_reaches_every_member_once() {
    let backend = Backend::ok().await;
    let (gws, prefix, _cleanup) = nodes(&backend, 3, "").await;
    let client = http();
    let (mut a1, id_a1) = connect_and_id(&backend, &gws[0].ws_url("/prod")).await;
    let (mut a2, id_a2) = connect_and_id(&backend, &gws[0].ws_url("/prod")).await;
    let (mut b1, id_b1) = connect_and_id(&backend, &gws[1].ws_url("/prod")).await;
    // Memberships may be changed through any node, the owner's or not.
    assert_eq!(
        member(&client, &base(&gws[2]), &id_a1, "room", true).await,
        204
    );
    assert_eq!(
        member(&client, &base(&gws[0]), &id_a2, "room", true).await,
        204
    );
    assert_eq!(
        member(&client, &base(&gws[2]), &id_b1, "room", true).await,
        204
    );
    assert_eq!(
        subscribers(&prefix, "room").await,
        2,
        "nodes with members only"
    );

    // Through the node without members: published once, reaching both others.
    let (status, answer) = post_group(&client, &base(&gws[2]), "room", "via c", "").await;
    assert_eq!(status, 200);
    assert_eq!(answer["deliveredLocal"], 0);
    assert_eq!(answer["published"], true);
    assert_eq!(answer["remoteNodes"], 2);
    // Through a node with members: two here, one elsewhere.
    let (_, answer) = post_group(&client, &base(&gws[0]), "room", "via a", "").await;
    assert_eq!(answer["deliveredLocal"], 2);
    assert_eq!(answer["remoteNodes"], 1);
    // The sender left out, from another node.
    let (_, answer) = post_group(&client, &base(&gws[1]), "room", "not a1", &id_a1).await;
    assert_eq!(answer["deliveredLocal"], 1);
    for (ws, id, expected) in [
        (&mut a1, &id_a1, &["via c", "via a"][..]),
        (&mut a2, &id_a2, &["via c", "via a", "not a1"][..]),
        (&mut b1, &id_b1, &["via c", "via a", "not a1"][..]),
    ] {
        for text in expected {
            assert_eq!(next_text(ws).await, *text);
        }
        // Nothing twice: a direct post is next.
        post_to(&client, &base(&gws[2]), id, "marker").await;
        assert_eq!(next_text(ws).await, "marker");
    }

    let info = group_info(&client, &base(&gws[2]), "room", "?maxResults=1").await;
    assert_eq!(info["memberCount"], 3);
    assert_eq!(
        connection_groups(&client, &base(&gws[2]), &id_b1).await["groups"],
        serde_json::json!(["room"])
    );

    // Leaving through another node; the last member of a node leaving unsubscribes it.
    assert_eq!(
        member(&client, &base(&gws[2]), &id_b1, "room", false).await,
        204
    );
    eventually("node b unsubscribed", DEADLINE, || async {
        subscribers(&prefix, "room").await == 1
    })
    .await;
    let (_, answer) = post_group(&client, &base(&gws[1]), "room", "after", "").await;
    assert_eq!(answer["remoteNodes"], 1);
    assert_eq!(next_text(&mut a1).await, "after");
    assert_eq!(next_text(&mut a2).await, "after");
    post_to(&client, &base(&gws[1]), &id_b1, "marker").await;
    assert_eq!(next_text(&mut b1).await, "marker");

    // Broadcast: every connection of the stage on every node.
    let r = client
        .post(format!("{}/prod/@broadcast", base(&gws[2])))
        .body("everyone")
        .send()
        .await
        .expect("broadcast");
    let answer: Value = r.json().await.expect("json");
    assert_eq!(answer["deliveredLocal"], 0);
    assert_eq!(answer["remoteNodes"], 2);
    for ws in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(next_text(ws).await, "everyone");
    }
    let list: Value = client
        .get(format!("{}/prod/@connections", base(&gws[1])))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["connectionCount"], 3);
}

/// Every text frame a client receives, until `count` arrived.
fn collect(mut ws: Ws, count: usize) -> JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut texts = Vec::with_capacity(count);
        while texts.len() < count {
            match tokio::time::timeout(DEADLINE, ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => texts.push(text.to_string()),
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        texts
    })
}

#[tokio::test]
async fn sequential_posts_through_any_mix_of_nodes_keep_their_order() {
    let backend = Backend::ok().await;
    let (gws, _prefix, _cleanup) = nodes(&backend, 3, "").await;
    let client = http();
    let mut readers = Vec::new();
    for gw in &gws[..2] {
        for _ in 0..2 {
            let (ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
            assert_eq!(member(&client, &base(gw), &id, "ordered", true).await, 204);
            readers.push(collect(ws, 150));
        }
    }
    for i in 0..150 {
        let via = &gws[i % 3];
        let (status, _) = post_group(&client, &base(via), "ordered", &i.to_string(), "").await;
        assert_eq!(status, 200);
    }
    let expected: Vec<String> = (0..150).map(|i| i.to_string()).collect();
    for reader in readers {
        assert_eq!(reader.await.expect("reader"), expected);
    }
}

#[tokio::test]
async fn a_killed_nodes_members_leave_their_groups() {
    let backend = Backend::ok().await;
    let prefix = unique_prefix();
    let store = redis_store(&shared_redis_url(), &prefix);
    let _cleanup = cleanup(&prefix);
    let yaml = node_config(&backend.url(), &store, "");
    let survivor = NodeProcess::start(&yaml, "groups-survivor").await;
    let mut victim = NodeProcess::start(&yaml, "groups-victim").await;
    let client = http();
    let (_kept, id_kept) = connect_and_id(&backend, &survivor.ws_url("/prod")).await;
    let (_lost, id_lost) = connect_and_id(&backend, &victim.ws_url("/prod")).await;
    for id in [&id_kept, &id_lost] {
        assert_eq!(
            member(&client, &survivor.base(), id, "room", true).await,
            204
        );
    }
    assert_eq!(
        group_info(&client, &survivor.base(), "room", "").await["memberCount"],
        2
    );
    victim.kill9();
    eventually("the dead node's member left", REAP_DEADLINE, || async {
        group_info(&client, &survivor.base(), "room", "").await["memberCount"] == 1
    })
    .await;
    let info = group_info(&client, &survivor.base(), "room", "").await;
    assert_eq!(sorted(&info["members"]), std::slice::from_ref(&id_kept));
    let list: Value = client
        .get(format!("{}/prod/@connections", survivor.base()))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["connections"], serde_json::json!([id_kept]));
}

#[tokio::test]
async fn groups_work_on_a_redis_cluster_with_sharded_channels() {
    let cluster = wsgate_connection_store::conformance::servers::RedisCluster::start().await;
    let backend = Backend::ok().await;
    let store = cluster_store(&cluster.urls(), &unique_prefix());
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;
    let client = http();
    // Several groups, so their slots (and sharded channels) spread over the three masters.
    let mut members = Vec::new();
    for (i, gw) in [&a, &b, &a, &b].into_iter().enumerate() {
        let (ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
        for group in ["g1", "g2", "g3", "g4", "g5"] {
            let via = if i % 2 == 0 { &b } else { &a };
            assert_eq!(member(&client, &base(via), &id, group, true).await, 204);
        }
        members.push((ws, id));
    }
    for group in ["g1", "g2", "g3", "g4", "g5"] {
        for (i, via) in [&a, &b].into_iter().enumerate() {
            let (status, answer) =
                post_group(&client, &base(via), group, &format!("{group}-{i}"), "").await;
            assert_eq!(status, 200);
            assert_eq!(answer["published"], true);
            assert_eq!(answer["deliveredLocal"], 2);
            assert_eq!(answer["remoteNodes"], 1);
        }
        assert_eq!(
            group_info(&client, &base(&a), group, "").await["memberCount"],
            4
        );
    }
    for (ws, _) in &mut members {
        for group in ["g1", "g2", "g3", "g4", "g5"] {
            for i in 0..2 {
                assert_eq!(next_text(ws).await, format!("{group}-{i}"));
            }
        }
    }
    // Group metrics are exported.
    let metrics = get_text(&client, a.http_url("/metrics")).await;
    for name in [
        "wsgate_groups_current",
        "wsgate_group_members_current",
        "wsgate_group_fanouts_total",
        "wsgate_group_deliveries_total",
        "wsgate_group_publish_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}
