//! The owner a node remembers for another node's connection (no record lookup on the push
//! path) never changes an answer: a closed connection is 410 at once and after, a killed owner
//! is 503 while its lease lives and 410 after, never 200; and with `Ack`s batched per read,
//! every post answered 200 reaches its client, in order.

use std::collections::BTreeSet;

use futures_util::StreamExt;
use reqwest::Method;
use tokio_tungstenite::tungstenite::Message;

use crate::support::cluster::*;
use crate::support::*;

/// The value of the sample `series` (name and labels, as exposed) on a node's `/metrics`, 0 if
/// absent. The node runs in a process of its own: in-process gateways share one recorder.
async fn metric(client: &reqwest::Client, node: &NodeProcess, series: &str) -> f64 {
    let text = get_text(client, node.http_url("/metrics")).await;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

const FROM_CACHE: &str = r#"wsgate_cluster_forward_owner_total{source="cache"}"#;
const FROM_RECORD: &str = r#"wsgate_cluster_forward_owner_total{source="record"}"#;

#[tokio::test]
async fn a_remembered_owner_whose_connection_closed_answers_410_and_later_posts_too() {
    let backend = Backend::ok().await;
    let (store, _cleanup) = shared_store();
    let yaml = node_config(&backend.url(), &store, "");
    let a = NodeProcess::start(&yaml, "node-a-poster").await;
    let b = TestGateway::start(&yaml).await;
    let (mut ws, id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let client = http();
    let via_a = a.base();

    for text in ["first", "second"] {
        assert_eq!(
            callback(&client, Method::POST, &via_a, &id, text).await,
            200
        );
        assert_eq!(next_text(&mut ws).await, text);
    }
    assert_eq!(
        metric(&client, &a, FROM_RECORD).await,
        1.0,
        "looked up once"
    );
    assert_eq!(
        metric(&client, &a, FROM_CACHE).await,
        1.0,
        "then remembered"
    );

    ws.close(None).await.expect("close");
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["connectionId"], id.as_str());

    // The remembered owner answers that it no longer holds the connection: 410, and forgotten.
    assert_eq!(
        callback(&client, Method::POST, &via_a, &id, "late").await,
        410
    );
    assert_eq!(metric(&client, &a, FROM_CACHE).await, 2.0);
    for _ in 0..3 {
        assert_eq!(
            callback(&client, Method::POST, &via_a, &id, "later").await,
            410
        );
        assert_eq!(
            callback(&client, Method::DELETE, &via_a, &id, "").await,
            410
        );
    }
    assert_eq!(
        metric(&client, &a, FROM_CACHE).await,
        2.0,
        "a gone connection is not remembered again"
    );
}

#[tokio::test]
async fn a_killed_owner_answers_503_while_its_lease_lives_then_410_never_200() {
    let backend = Backend::ok().await;
    let url = shared_redis_url();
    let prefix = unique_prefix();
    let _cleanup = cleanup(&prefix);
    let yaml = node_config(&backend.url(), &redis_store(&url, &prefix), "");
    let a = TestGateway::start(&yaml).await;
    let mut b = NodeProcess::start(&yaml, "node-b-owner").await;
    let client = http();
    let via_a = a.http_url("");
    let mut ids = Vec::new();
    let mut clients = Vec::new();
    for i in 0..2 {
        let (mut ws, id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
        // A learns (and remembers) the owner.
        let text = format!("before {i}");
        assert_eq!(
            callback(&client, Method::POST, &via_a, &id, &text).await,
            200
        );
        assert_eq!(next_text(&mut ws).await, text);
        ids.push(id);
        clients.push(ws);
    }
    let mut redis = redis::Client::open(url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let lease_key = format!("{{{prefix}}}:lease:{}", b.node_id);
    let mut lease_alive = async || -> bool {
        redis::cmd("EXISTS")
            .arg(&lease_key)
            .query_async::<bool>(&mut redis)
            .await
            .expect("EXISTS")
    };
    assert!(lease_alive().await, "B holds its lease");

    b.kill9();
    let mut answered_while_alive = 0;
    let mut gone = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + REAP_DEADLINE;
    while gone.len() < ids.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "410 for every id of the dead node within {REAP_DEADLINE:?}"
        );
        for id in &ids {
            let alive_before = lease_alive().await;
            let status = callback(&client, Method::POST, &via_a, id, "lost?").await;
            let alive_after = lease_alive().await;
            assert_ne!(
                status, 200,
                "a post to a dead node's connection answered 200"
            );
            if alive_after {
                // The lease lived through the whole request: the node may only be cut off.
                assert_eq!(status, 503, "answer while the owner's lease is alive");
                answered_while_alive += 1;
            }
            if !alive_before {
                assert_eq!(status, 410, "answer once the owner's lease is gone");
            }
            if gone.contains(id) {
                assert_eq!(status, 410, "410 stays 410");
            }
            if status == 410 {
                gone.insert(id.clone());
            }
        }
    }
    assert!(
        answered_while_alive > 0,
        "some posts were answered while the dead node's lease was still alive"
    );
}

#[tokio::test]
async fn a_frozen_owner_that_was_reaped_delivers_nothing_after_the_disconnect() {
    let backend = Backend::ok().await;
    let (store, _cleanup) = shared_store();
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let b = NodeProcess::start(&yaml, "node-b-frozen-owner").await;
    let (mut ws, id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let client = http();
    let via_a = a.http_url("");
    assert_eq!(
        callback(&client, Method::POST, &via_a, &id, "before").await,
        200
    );
    assert_eq!(next_text(&mut ws).await, "before");

    b.freeze(true);
    // The remembered owner is subscribed but answers nothing: 503, and forgotten. (On a machine
    // slow enough for B's lease to run out first, the reaper has already taken the connection:
    // 410. Never 200.)
    let frozen = callback(&client, Method::POST, &via_a, &id, "frozen").await;
    assert!(
        frozen == 503 || frozen == 410,
        "a frozen owner answered {frozen}"
    );
    let d = tokio::time::timeout(REAP_DEADLINE, backend.next_to("/disconnect"))
        .await
        .expect("reaped")
        .json();
    assert_eq!(d["requestContext"]["connectionId"], id.as_str());
    assert_eq!(
        callback(&client, Method::POST, &via_a, &id, "reaped").await,
        410
    );

    b.freeze(false);
    // The frame published while B was frozen reaches it on resuming; B no longer vouches for
    // its connections (its lease ran out), so the client, whose $disconnect already ran,
    // gets nothing before its close.
    loop {
        match next_frame(&mut ws).await {
            Message::Close(frame) => {
                let code = frame.map(|f| u16::from(f.code));
                assert_eq!(code, Some(1012));
                break;
            }
            Message::Text(t) => panic!("delivered after its $disconnect: {t}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn every_post_answered_200_across_nodes_is_delivered_in_order() {
    const CONNECTIONS: usize = 16;
    const POSTS: usize = 150;
    let backend = Backend::ok().await;
    let (store, _cleanup) = shared_store();
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;
    let client = http();
    let via_a = a.http_url("");
    let mut posters = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (ws, id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
        let (write, mut read) = ws.split();
        readers.push(tokio::spawn(async move {
            // Everything received up to the end marker, in arrival order.
            let mut got = Vec::new();
            loop {
                let frame = tokio::time::timeout(DEADLINE, read.next())
                    .await
                    .expect("frame within the deadline")
                    .expect("open")
                    .expect("frame");
                match frame {
                    Message::Text(t) if t.as_str() == "end" => return (write, got),
                    Message::Text(t) => got.push(t.parse::<usize>().expect("number")),
                    _ => {}
                }
            }
        }));
        let (client, via_a) = (client.clone(), via_a.clone());
        posters.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            for i in 0..POSTS {
                let status = callback(&client, Method::POST, &via_a, &id, &i.to_string()).await;
                match status {
                    200 => ok.push(i),
                    503 => {}
                    other => panic!("unexpected status {other}"),
                }
            }
            eventually("the end marker is taken", DEADLINE, || async {
                callback(&client, Method::POST, &via_a, &id, "end").await == 200
            })
            .await;
            ok
        }));
    }
    let mut delivered = 0;
    for (poster, reader) in posters.into_iter().zip(readers) {
        let ok = poster.await.expect("poster");
        let (_write, got) = reader.await.expect("reader");
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "in order, each once: {got:?}"
        );
        let got: BTreeSet<usize> = got.into_iter().collect();
        let missing: Vec<_> = ok.iter().filter(|i| !got.contains(i)).collect();
        assert!(
            missing.is_empty(),
            "answered 200 but not delivered: {missing:?}"
        );
        delivered += ok.len();
    }
    assert!(delivered > 0, "some posts were answered 200");
}
