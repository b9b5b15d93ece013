//! What a store failure leaves behind is cleaned up: a connection that closes while Redis hangs
//! leaves no entry in its stage's set, its groups' sets or its own list of groups once Redis
//! answers again, and an id left in a node's index without a record (a removal whose second
//! step failed) is pruned by that node's periodic sweep.

use std::time::Duration;

use serde_json::json;
use wsgate_connection_store::conformance::servers::RedisServer;

use crate::support::cluster::*;
use crate::support::*;

/// Cleanup once Redis answers: the store timeout (500 ms), retries with backoff, slack.
const CLEANED: Duration = Duration::from_secs(10);

/// A backend whose `$connect` answer joins `room:a`.
async fn joining_backend() -> Backend {
    Backend::start(|r| {
        if r.path == "/connect" {
            let answer = json!({"statusCode": 200, "headers": {"X-Wsgate-Groups": "room:a"}});
            return Reply::http(200, &answer.to_string());
        }
        Reply::lambda(200, None)
    })
    .await
}

async fn is_member(raw: &mut redis::aio::MultiplexedConnection, key: &str, id: &str) -> bool {
    redis::cmd("SISMEMBER")
        .arg(key)
        .arg(id)
        .query_async(raw)
        .await
        .expect("SISMEMBER")
}

async fn exists(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async(raw)
        .await
        .expect("EXISTS")
}

/// `wsgate_store_remove_retries_total` in `metrics` (0 when absent).
fn remove_retries(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("wsgate_store_remove_retries_total "))
        .map_or(0, |v| v.trim().parse::<f64>().expect("a number") as u64)
}

#[tokio::test]
async fn a_close_while_redis_hangs_leaves_no_membership_behind() {
    let redis = RedisServer::start().await;
    let prefix = unique_prefix();
    let backend = joining_backend().await;
    let yaml = node_config(&backend.url(), &redis_store(&redis.url(), &prefix), "");
    // Its own process, so its /metrics count only its own store errors.
    let gw = NodeProcess::start(&yaml, "cleanup-a").await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let mut raw = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let stage_key = format!("{prefix}:stage:prod");
    let group_key = format!("{prefix}:group:{{prod:room:a}}");
    let joined_key = format!("{prefix}:joined:{id}");
    assert!(is_member(&mut raw, &stage_key, &id).await);
    assert!(is_member(&mut raw, &group_key, &id).await);
    assert!(exists(&mut raw, &joined_key).await);

    // The client leaves while Redis hangs: the first attempt to drop its memberships fails.
    let client = http();
    let metrics_url = gw.http_url("/metrics");
    let before = remove_retries(&get_text(&client, metrics_url.clone()).await);
    redis.freeze(true);
    ws.close(None).await.expect("close");
    // A cleanup call failed and is to be tried again.
    eventually("a failed cleanup call", CLEANED, || async {
        remove_retries(&get_text(&client, metrics_url.clone()).await) > before
    })
    .await;
    redis.freeze(false);

    let disconnect = backend.next_to("/disconnect").await.json();
    assert_eq!(disconnect["requestContext"]["connectionId"], id.as_str());
    eventually("memberships dropped once Redis answers", CLEANED, || {
        let mut raw = raw.clone();
        let (stage_key, group_key, joined_key, id) = (&stage_key, &group_key, &joined_key, &id);
        async move {
            !is_member(&mut raw, stage_key, id).await
                && !is_member(&mut raw, group_key, id).await
                && !exists(&mut raw, joined_key).await
        }
    })
    .await;
}

#[tokio::test]
async fn a_node_prunes_index_entries_whose_record_is_gone() {
    let redis = RedisServer::start().await;
    let prefix = unique_prefix();
    let backend = Backend::ok().await;
    let yaml = node_config(&backend.url(), &redis_store(&redis.url(), &prefix), "")
        .replace("cluster:\n", "cluster:\n  index_sweep_interval: 1s\n");
    let gw = NodeProcess::start(&yaml, "cleanup-b").await;
    let (_ws, live) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let mut raw = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let index = format!("{prefix}:node:cleanup-b");
    // What a removal leaves when its `SREM` fails after the record is gone.
    let _: () = redis::cmd("SADD")
        .arg(&index)
        .arg("gone-id")
        .query_async(&mut raw)
        .await
        .expect("SADD");
    eventually("the stale entry pruned", CLEANED, || {
        let mut raw = raw.clone();
        let index = &index;
        async move { !is_member(&mut raw, index, "gone-id").await }
    })
    .await;
    assert!(
        is_member(&mut raw, &index, &live).await,
        "the live connection stays indexed"
    );
}
