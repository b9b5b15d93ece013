//! Group history and recovery on reconnect: positions in the post answer and the opt-in
//! envelope, replay of exactly the missed messages through the same node and another one, posts
//! racing the replay seen once each in order, "not recovered" for trimmed history, for a Redis
//! that lost its data, for a gap past `replay_max_messages` and for an unknown offset, a post
//! the store cannot answer in time, and the history endpoint.

use serde_json::{Value, json};
use wsgate_connection_store::conformance::servers::RedisServer;

use crate::support::cluster::*;
use crate::support::groups::*;
use crate::support::*;

/// `room:*` keeps `max` messages.
fn history(max: u64) -> String {
    format!(
        "groups:\n  history:\n    groups:\n      - {{pattern: 'room:*', max_messages: {max}}}\n"
    )
}

/// A backend whose `$connect` answer joins the groups named by the `groups` query parameter.
async fn joining_backend() -> Backend {
    Backend::start(|r| {
        if r.path == "/connect" {
            let event = r.json();
            let groups = event["queryStringParameters"]["groups"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let answer = json!({"statusCode": 200, "headers": {"X-Wsgate-Groups": groups}});
            return Reply::http(200, &answer.to_string());
        }
        Reply::lambda(200, None)
    })
    .await
}

async fn next_json(ws: &mut Ws) -> Value {
    serde_json::from_str(&next_text(ws).await).expect("a JSON frame")
}

/// Posts `body` to `group` through `base`; the answer (200 expected).
async fn post(client: &reqwest::Client, base: &str, group: &str, body: &str) -> Value {
    let (status, answer) = post_group(client, base, group, body, "").await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// Connects with the query `query` (the backend's `$connect` joins `groups=`) and waits for
/// the backend to see it.
async fn join(backend: &Backend, gw_ws: &str, query: &str) -> Ws {
    connect_and_id(backend, &format!("{gw_ws}?{query}")).await.0
}

/// Closes `ws` and waits for its `$disconnect`.
async fn leave(backend: &Backend, mut ws: Ws) {
    ws.close(None).await.expect("close");
    backend.next_to("/disconnect").await;
}

/// Reads `n` envelopes of `group`, asserting their offsets are `first, first+1, ...` and their
/// data `m{offset}`.
async fn expect_replay(ws: &mut Ws, group: &str, epoch: &str, first: u64, n: u64) {
    for offset in first..first + n {
        let frame = next_json(ws).await;
        assert_eq!(
            frame,
            json!({"type": "message", "group": group, "epoch": epoch, "offset": offset, "data": format!("m{offset}")}),
        );
    }
}

#[tokio::test]
async fn memory_store_replays_exactly_the_missed_messages_then_goes_live() {
    let backend = joining_backend().await;
    let gw = TestGateway::start(&config(&backend.url(), &history(1000))).await;
    let base = gw.http_url("");
    let client = http();
    let url = gw.ws_url("/prod");

    let mut ws = join(&backend, &url, "groups=room:1&envelope=1").await;
    // A client that did not opt in still gets raw payloads.
    let mut plain = join(&backend, &url, "groups=room:1").await;
    let answer = post(&client, &base, "room:1", "m1").await;
    assert_eq!(answer["offset"], 1);
    assert_eq!(answer["deliveredLocal"], 2);
    let epoch = answer["epoch"].as_str().expect("epoch").to_string();
    expect_replay(&mut ws, "room:1", &epoch, 1, 1).await;
    assert_eq!(next_text(&mut plain).await, "m1");
    leave(&backend, ws).await;

    for n in 2..=101 {
        let answer = post(&client, &base, "room:1", &format!("m{n}")).await;
        assert_eq!(answer["offset"], n);
        assert_eq!(answer["epoch"], epoch.as_str());
    }
    let mut ws = join(
        &backend,
        &url,
        &format!("groups=room:1&recover=room:1:{epoch}:1"),
    )
    .await;
    expect_replay(&mut ws, "room:1", &epoch, 2, 100).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "recovered", "group": "room:1", "epoch": epoch, "offset": 101, "replayed": 100})
    );
    post(&client, &base, "room:1", "m102").await;
    expect_replay(&mut ws, "room:1", &epoch, 102, 1).await;
    // Groups without history are unchanged, even for a client that opted in.
    let answer = post(&client, &base, "other", "raw").await;
    assert!(answer.get("offset").is_none(), "{answer}");
}

#[tokio::test]
async fn redis_recovery_works_through_the_same_node_and_through_another() {
    let backend = joining_backend().await;
    let (store, _cleanup) = shared_store();
    let a = TestGateway::start(&node_config(&backend.url(), &store, &history(1000))).await;
    let b = TestGateway::start(&node_config(&backend.url(), &store, &history(1000))).await;
    let bases = [a.http_url(""), b.http_url("")];
    let client = http();

    let mut ws = join(&backend, &a.ws_url("/prod"), "groups=room:x&envelope=1").await;
    let answer = post(&client, &bases[1], "room:x", "m1").await;
    let epoch = answer["epoch"].as_str().expect("epoch").to_string();
    expect_replay(&mut ws, "room:x", &epoch, 1, 1).await;
    leave(&backend, ws).await;

    // 100 posts through both nodes while the client is away; back through the same node.
    for n in 2..=101u64 {
        let answer = post(
            &client,
            &bases[(n % 2) as usize],
            "room:x",
            &format!("m{n}"),
        )
        .await;
        assert_eq!(answer["offset"], n, "offsets are cluster-wide");
    }
    let query = format!("groups=room:x&recover=room:x:{epoch}:1");
    let mut ws = join(&backend, &a.ws_url("/prod"), &query).await;
    expect_replay(&mut ws, "room:x", &epoch, 2, 100).await;
    assert_eq!(next_json(&mut ws).await["type"], "recovered");
    leave(&backend, ws).await;

    // 100 more; back through the other node, from the last offset it saw.
    for n in 102..=201u64 {
        post(
            &client,
            &bases[(n % 2) as usize],
            "room:x",
            &format!("m{n}"),
        )
        .await;
    }
    let query = format!("groups=room:x&recover=room:x:{epoch}:101");
    let mut ws = join(&backend, &b.ws_url("/prod"), &query).await;
    expect_replay(&mut ws, "room:x", &epoch, 102, 100).await;
    let signal = next_json(&mut ws).await;
    assert_eq!(signal["type"], "recovered");
    assert_eq!(signal["replayed"], 100);
    // Live from here, through either node.
    post(&client, &bases[0], "room:x", "m202").await;
    post(&client, &bases[1], "room:x", "m203").await;
    expect_replay(&mut ws, "room:x", &epoch, 202, 2).await;
}

/// `m{n}` padded to 1 KiB: 300 of them are far more than the socket buffers hold.
fn padded(n: u64) -> String {
    format!("m{n}-{}", "x".repeat(1024))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn posts_racing_the_replay_arrive_once_each_in_order() {
    let backend = joining_backend().await;
    let (store, _cleanup) = shared_store();
    // A small outbox and small socket buffers on both sides, so the replay is paced by the
    // client's reading (the kernel cannot absorb 300 padded messages) and posts land in the
    // middle of it.
    let extra = format!(
        "{}limits:\n  outbound_queue_messages: 16\n  socket_send_buffer_bytes: 4096\n",
        history(10_000)
    );
    let a = TestGateway::start(&node_config(&backend.url(), &store, &extra)).await;
    let b = TestGateway::start(&node_config(&backend.url(), &store, &extra)).await;
    let client = http();
    let base_b = b.http_url("");

    let mut ws = join(&backend, &a.ws_url("/prod"), "groups=room:r&envelope=1").await;
    let answer = post(&client, &base_b, "room:r", "m1").await;
    let epoch = answer["epoch"].as_str().expect("epoch").to_string();
    expect_replay(&mut ws, "room:r", &epoch, 1, 1).await;
    leave(&backend, ws).await;
    for n in 2..=301u64 {
        post(&client, &base_b, "room:r", &padded(n)).await;
    }

    let query = format!("groups=room:r&recover=room:r:{epoch}:1");
    let mut ws = slow_client(&format!("{}?{query}", a.ws_url("/prod")), a.addr).await;
    let mut offsets = Vec::new();
    let mut signals = Vec::new();
    let read = async |ws: &mut Ws, offsets: &mut Vec<u64>, signals: &mut Vec<(usize, Value)>| {
        let frame = next_json(ws).await;
        match frame["type"].as_str() {
            Some("message") => {
                let offset = frame["offset"].as_u64().expect("offset");
                assert_eq!(frame["data"], padded(offset));
                offsets.push(offset);
            }
            _ => signals.push((offsets.len(), frame)),
        }
    };
    // The replay has begun and waits for this client (its outbox is half full): 50 posts now
    // land in the middle of it, reaching the connection live and the history both.
    for _ in 0..10 {
        read(&mut ws, &mut offsets, &mut signals).await;
    }
    let (fifty, posted_fifty) = tokio::sync::oneshot::channel();
    let poster = {
        let client = client.clone();
        let bases = [a.http_url(""), base_b.clone()];
        tokio::spawn(async move {
            let mut fifty = Some(fifty);
            for n in 302..=601u64 {
                post(&client, &bases[(n % 2) as usize], "room:r", &padded(n)).await;
                if n == 351 {
                    let _ = fifty.take().map(|tx| tx.send(()));
                }
            }
        })
    };
    posted_fifty.await.expect("50 posts");
    // The signal comes right after the replay: after 601 when the replay read every post.
    while offsets.last() != Some(&601) || signals.is_empty() {
        read(&mut ws, &mut offsets, &mut signals).await;
    }
    poster.await.expect("poster");
    let expected: Vec<u64> = (2..=601).collect();
    assert_eq!(offsets, expected, "every message once, in order, no gap");
    assert_eq!(signals.len(), 1, "{signals:?}");
    let (at, signal) = &signals[0];
    assert_eq!(signal["type"], "recovered");
    let replayed = signal["replayed"].as_u64().expect("replayed");
    assert!(
        replayed >= 350,
        "the replay read the racing posts too: {signal}"
    );
    assert_eq!(
        *at as u64, replayed,
        "the signal comes right after the replay"
    );
}

#[tokio::test]
async fn trimmed_history_is_not_recovered_on_the_memory_store() {
    let backend = joining_backend().await;
    let gw = TestGateway::start(&config(&backend.url(), &history(10))).await;
    let base = gw.http_url("");
    let client = http();
    let url = gw.ws_url("/prod");
    let mut ws = join(&backend, &url, "groups=room:t&envelope=1").await;
    let epoch = post(&client, &base, "room:t", "m1").await["epoch"]
        .as_str()
        .expect("epoch")
        .to_string();
    expect_replay(&mut ws, "room:t", &epoch, 1, 1).await;
    leave(&backend, ws).await;
    for n in 2..=50 {
        post(&client, &base, "room:t", &format!("m{n}")).await;
    }
    let mut ws = join(
        &backend,
        &url,
        &format!("groups=room:t&recover=room:t:{epoch}:1"),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "notRecovered", "group": "room:t", "reason": "trimmed", "epoch": epoch, "offset": 50})
    );
    post(&client, &base, "room:t", "m51").await;
    expect_replay(&mut ws, "room:t", &epoch, 51, 1).await;

    // An epoch this store never had (the memory store restarted) is not recovered either.
    let mut ws = join(&backend, &url, "groups=room:t&recover=room:t:0123abcd:51").await;
    let signal = next_json(&mut ws).await;
    assert_eq!(signal["reason"], "epoch_changed");
    assert_eq!(signal["epoch"], epoch.as_str());
}

#[tokio::test]
async fn a_redis_that_lost_its_data_gives_not_recovered() {
    let redis = RedisServer::start().await;
    let backend = joining_backend().await;
    let prefix = unique_prefix();
    let store = redis_store(&redis.url(), &prefix);
    let gw = TestGateway::start(&node_config(&backend.url(), &store, &history(1000))).await;
    let base = gw.http_url("");
    let client = http();
    let url = gw.ws_url("/prod");
    let mut ws = join(&backend, &url, "groups=room:f&envelope=1").await;
    let epoch = post(&client, &base, "room:f", "m1").await["epoch"]
        .as_str()
        .expect("epoch")
        .to_string();
    expect_replay(&mut ws, "room:f", &epoch, 1, 1).await;
    leave(&backend, ws).await;
    post(&client, &base, "room:f", "m2").await;

    let mut raw = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut raw)
        .await
        .expect("FLUSHALL");
    // The node takes its lease again after the loss; connect once it accepts.
    let query = format!("groups=room:f&recover=room:f:{epoch}:1");
    let mut attempts = 0;
    let mut ws = loop {
        match tokio_tungstenite::connect_async(format!("{url}?{query}")).await {
            Ok((ws, _)) => break ws,
            Err(error) => {
                attempts += 1;
                assert!(attempts < 200, "never accepted after the loss: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    let signal = next_json(&mut ws).await;
    assert_eq!(signal["type"], "notRecovered");
    assert_eq!(signal["reason"], "epoch_changed");
    let current = signal["epoch"]
        .as_str()
        .expect("the current epoch")
        .to_string();
    assert_ne!(current, epoch);
    assert_eq!(signal["offset"], 0);
    // Live messages of the new epoch follow, from offset 1.
    let answer = post(&client, &base, "room:f", "m1").await;
    assert_eq!(answer["epoch"], current.as_str());
    expect_replay(&mut ws, "room:f", &current, 1, 1).await;

    // A post the store does not answer in time is refused with 503 (JSON). Redis may still run
    // it once it wakes up: then it has a position and reaches the client like any other, so
    // the client still sees a gapless sequence.
    redis.freeze(true);
    let (status, answer) = post_group(&client, &base, "room:f", "late", "").await;
    redis.freeze(false);
    assert_eq!(status, 503, "{answer}");
    assert!(answer["message"].is_string(), "{answer}");
    let answer = post(&client, &base, "room:f", "after").await;
    let last = answer["offset"].as_u64().expect("offset");
    assert!((2..=3).contains(&last), "{answer}");
    for offset in 2..=last {
        let frame = next_json(&mut ws).await;
        assert_eq!(frame["offset"], offset, "{frame}");
        assert_eq!(frame["epoch"], current.as_str());
    }
}

#[tokio::test]
async fn the_history_endpoint_pages_and_answers_bad_requests() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), &history(1000))).await;
    let base = gw.http_url("");
    let client = http();
    for n in 1..=25 {
        post(&client, &base, "room:h", &format!("m{n}")).await;
    }
    let get = |query: &str| {
        let client = client.clone();
        let url = format!("{base}/prod/@groups/room:h/history{query}");
        async move {
            let r = client.get(url).send().await.expect("history");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("a JSON body"))
        }
    };
    let mut since = 0;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, page) = get(&format!("?since={since}&limit=10")).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["earliestOffset"], 1);
        assert_eq!(page["latestOffset"], 25);
        assert_eq!(page["complete"], true);
        pages += 1;
        for message in page["messages"].as_array().expect("messages") {
            let offset = message["offset"].as_u64().expect("offset");
            assert_eq!(message["data"], format!("m{offset}"));
            assert!(message["timestamp"].as_i64() > Some(0));
            seen.push(offset);
        }
        match page["nextSince"].as_u64() {
            Some(next) => since = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (1..=25).collect::<Vec<u64>>());

    for (query, status) in [
        ("?since=-1", 400),
        ("?since=x", 400),
        ("?limit=0", 400),
        ("?limit=100000", 400),
    ] {
        let (got, body) = get(query).await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(body["message"].is_string(), "{query}: {body}");
    }
    let r = client
        .get(format!("{base}/prod/@groups/other/history"))
        .send()
        .await
        .expect("history");
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no history")
    );
    let r = client
        .get(format!("{base}/prod/@groups/bad%20name/history"))
        .send()
        .await
        .expect("history");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_malformed_recover_parameter_is_refused_with_400() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), &history(10))).await;
    for query in ["recover=room:1", "recover=room:1:e:x", "envelope=maybe"] {
        let (status, body) = connect_refused(&gw.ws_url(&format!("/prod?{query}"))).await;
        assert_eq!(status, 400, "{query}");
        let body: Value = serde_json::from_str(&body).expect("a JSON body");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Bad recovery parameter"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn gaps_past_the_bounds_or_unknown_offsets_are_not_recovered() {
    let backend = joining_backend().await;
    let extra = format!("{}    replay_max_messages: 5\n", history(1000));
    let gw = TestGateway::start(&config(&backend.url(), &extra)).await;
    let base = gw.http_url("");
    let client = http();
    let url = gw.ws_url("/prod");
    let mut epoch = String::new();
    for n in 1..=10 {
        let answer = post(&client, &base, "room:b", &format!("m{n}")).await;
        epoch = answer["epoch"].as_str().expect("epoch").to_string();
    }
    for (query, reason) in [
        (format!("recover=room:b:{epoch}:4"), "too_far"),
        (format!("recover=room:b:{epoch}:11"), "unknown_offset"),
        (format!("recover=plain:{epoch}:0"), "no_history"),
    ] {
        let group = if reason == "no_history" {
            "plain"
        } else {
            "room:b"
        };
        let mut ws = join(&backend, &url, &format!("groups={group}&{query}")).await;
        let signal = next_json(&mut ws).await;
        assert_eq!(signal["type"], "notRecovered", "{query}: {signal}");
        assert_eq!(signal["reason"], reason, "{query}: {signal}");
    }
    // Within the bound: the last 5 are replayed.
    let mut ws = join(
        &backend,
        &url,
        &format!("groups=room:b&recover=room:b:{epoch}:5"),
    )
    .await;
    expect_replay(&mut ws, "room:b", &epoch, 6, 5).await;
    assert_eq!(next_json(&mut ws).await["replayed"], 5);
}
