//! Two in-process gateways on one real Redis: callbacks through either node reach a connection
//! held by the other, in order, with the answers a local callback would give.

use reqwest::Method;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::support::cluster::*;
use crate::support::*;

/// Two nodes on the shared Redis under a fresh prefix (deleted when the guard drops).
async fn two_nodes(backend: &Backend, extra: &str) -> (TestGateway, TestGateway, Cleanup) {
    let (store, cleanup) = shared_store();
    let a = TestGateway::start(&node_config(&backend.url(), &store, extra)).await;
    let b = TestGateway::start(&node_config(&backend.url(), &store, extra)).await;
    (a, b, cleanup)
}

fn base(gw: &TestGateway) -> String {
    gw.http_url("")
}

#[tokio::test]
async fn post_get_delete_work_from_the_other_node() {
    let backend = Backend::ok().await;
    let (a, b, _cleanup) = two_nodes(&backend, "").await;
    let (mut ws, id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let client = http();

    assert_eq!(
        callback(&client, Method::POST, &base(&a), &id, "from a").await,
        200
    );
    assert_eq!(next_text(&mut ws).await, "from a");
    let r = client
        .post(format!("{}/prod/@connections/{id}", base(&a)))
        .body(vec![0xffu8, 0])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(
        next_frame(&mut ws).await,
        Message::Binary(vec![0xffu8, 0].into())
    );

    let r = client
        .get(format!("{}/prod/@connections/{id}", base(&a)))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.expect("json");
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");

    // Unknown ids and other stages are 410 from any node.
    assert_eq!(
        callback(&client, Method::POST, &base(&a), "nosuchid", "x").await,
        410
    );
    assert_eq!(
        callback(&client, Method::GET, &base(&a), "nosuchid", "").await,
        410
    );
    assert_eq!(
        callback(&client, Method::DELETE, &base(&a), "nosuchid", "").await,
        410
    );

    let r = client
        .delete(format!(
            "{}/prod/@connections/{id}?code=4001&reason=bye",
            base(&a)
        ))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert_eq!(expect_close(&mut ws).await, (4001, "bye".to_string()));
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["connectionId"], id.as_str());
    assert_eq!(d["requestContext"]["disconnectStatusCode"], 4001);
    eventually("gone from both nodes", DEADLINE, || async {
        callback(&client, Method::POST, &base(&a), &id, "late").await == 410
            && callback(&client, Method::GET, &base(&b), &id, "").await == 410
    })
    .await;
    assert!(
        backend.try_next().await.is_none(),
        "exactly one $disconnect"
    );
}

#[tokio::test]
async fn sequential_posts_through_both_nodes_arrive_in_order() {
    let backend = Backend::ok().await;
    let (a, b, _cleanup) = two_nodes(&backend, "").await;
    let (mut ws, id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let client = http();
    let nodes = [base(&a), base(&b)];
    for i in 0..300usize {
        // Mixed pattern: runs on the remote node, runs on the owner, and alternation.
        let via = &nodes[usize::from(i % 7 < 4)];
        assert_eq!(
            callback(&client, Method::POST, via, &id, &i.to_string()).await,
            200
        );
    }
    for i in 0..300 {
        assert_eq!(next_text(&mut ws).await, i.to_string());
    }
    let metrics = get_text(&client, a.http_url("/metrics")).await;
    for name in [
        "wsgate_bus_published_total",
        "wsgate_bus_received_total",
        "wsgate_cluster_forward_total",
        "wsgate_cluster_forward_seconds",
        "wsgate_store_operation_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn a_full_queue_on_the_owner_answers_429_across_nodes() {
    let backend = Backend::ok().await;
    let extra = "limits:\n  outbound_queue_messages: 4\n  send_timeout: 1s\n  ping_interval: 0\n";
    let (a, b, _cleanup) = two_nodes(&backend, extra).await;
    let (_ws, id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let client = http();
    let payload = vec![b'z'; 120_000];
    let mut saw_429 = false;
    for _ in 0..2000 {
        let r = client
            .post(format!("{}/prod/@connections/{id}", base(&a)))
            .body(payload.clone())
            .send()
            .await
            .expect("post");
        match r.status().as_u16() {
            200 => continue,
            429 => {
                assert_eq!(r.headers()["x-amzn-errortype"], "LimitExceededException");
                saw_429 = true;
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        saw_429,
        "the owner's full queue is reported to the remote caller"
    );
}
