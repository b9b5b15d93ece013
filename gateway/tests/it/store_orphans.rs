//! Memberships whose cleanup was cut short are removed all the same: a node drained while the
//! store refuses to drop a connection's memberships exits with them still in Redis (its drain
//! timeout drops the retry, and the record is already gone, so no reaper finds the connection);
//! the membership sweep of a node still running removes them once the store answers.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use wsgate_connection_store::conformance::servers::RedisServer;

use crate::support::cluster::*;
use crate::support::*;

/// Two sweep periods of 1 s (an id is forgotten on its second pass without a record), slack.
const SWEPT: Duration = Duration::from_secs(15);

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

/// Grants (`+smembers`) or refuses (`-smembers`) the command a membership removal starts with,
/// to every client of this Redis (all of them use the default user); nothing else is touched.
async fn smembers(raw: &mut redis::aio::MultiplexedConnection, rule: &str) {
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg(rule)
        .query_async(raw)
        .await
        .expect("ACL SETUSER");
}

/// `wsgate_cluster_orphan_memberships_swept_total` in `metrics` (0 when absent).
fn swept(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("wsgate_cluster_orphan_memberships_swept_total "))
        .map_or(0, |v| v.trim().parse::<f64>().expect("a number") as u64)
}

#[tokio::test]
async fn memberships_left_by_a_drain_cut_short_are_swept() {
    let redis = RedisServer::start().await;
    let prefix = unique_prefix();
    let backend = joining_backend().await;
    let yaml = node_config(
        &backend.url(),
        &redis_store(&redis.url(), &prefix),
        "shutdown:\n  drain_timeout: 3s\n",
    )
    .replace("cluster:\n", "cluster:\n  index_sweep_interval: 1s\n");
    let mut holder = NodeProcess::start(&yaml, "orphans-a").await;
    let survivor = NodeProcess::start(&yaml, "orphans-b").await;
    let (mut ws, id) = connect_and_id(&backend, &holder.ws_url("/prod")).await;
    let mut raw = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let record_key = format!("{prefix}:conn:{id}");
    let stage_key = format!("{prefix}:stage:prod");
    let group_key = format!("{prefix}:group:{{prod:room:a}}");
    let joined_key = format!("{prefix}:joined:{id}");
    assert!(exists(&mut raw, &record_key).await);
    assert!(is_member(&mut raw, &group_key, &id).await);

    // The store refuses the membership removal, and only that; the holder drains and exits.
    smembers(&mut raw, "-smembers").await;
    // The client answers the node's close (1001) at once, so its session ends within the drain.
    tokio::spawn(async move { while ws.next().await.is_some() {} });
    holder.terminate();
    let disconnect = backend.next_to("/disconnect").await.json();
    assert_eq!(disconnect["requestContext"]["connectionId"], id.as_str());
    holder.wait_exit(Duration::from_secs(20)).await;
    // What the exit left: no record, every membership.
    assert!(
        !exists(&mut raw, &record_key).await,
        "the record is removed"
    );
    assert!(is_member(&mut raw, &stage_key, &id).await);
    assert!(is_member(&mut raw, &group_key, &id).await);
    assert!(exists(&mut raw, &joined_key).await);

    smembers(&mut raw, "+smembers").await;
    eventually("memberships swept once the store answers", SWEPT, || {
        let mut raw = raw.clone();
        let (stage_key, group_key, joined_key, id) = (&stage_key, &group_key, &joined_key, &id);
        async move {
            !is_member(&mut raw, stage_key, id).await
                && !is_member(&mut raw, group_key, id).await
                && !exists(&mut raw, joined_key).await
        }
    })
    .await;
    let metrics = get_text(&http(), survivor.http_url("/metrics")).await;
    assert_eq!(swept(&metrics), 1, "{metrics}");
}

#[tokio::test]
async fn the_sweep_leaves_live_connections_alone() {
    let redis = RedisServer::start().await;
    let prefix = unique_prefix();
    let backend = joining_backend().await;
    let yaml = node_config(&backend.url(), &redis_store(&redis.url(), &prefix), "")
        .replace("cluster:\n", "cluster:\n  index_sweep_interval: 1s\n");
    let first = NodeProcess::start(&yaml, "live-a").await;
    let second = NodeProcess::start(&yaml, "live-b").await;
    let (_a, on_first) = connect_and_id(&backend, &first.ws_url("/prod")).await;
    let (_b, on_second) = connect_and_id(&backend, &second.ws_url("/prod")).await;
    let mut raw = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let group_key = format!("{prefix}:group:{{prod:room:a}}");
    // A planted leftover (no record, no socket) shows when the sweep has run twice.
    let _: () = redis::cmd("SADD")
        .arg(format!("{prefix}:stage:prod"))
        .arg("planted")
        .query_async(&mut raw)
        .await
        .expect("SADD");
    let _: () = redis::cmd("SADD")
        .arg(&group_key)
        .arg("planted")
        .query_async(&mut raw)
        .await
        .expect("SADD");
    let _: () = redis::cmd("SADD")
        .arg(format!("{prefix}:joined:planted"))
        .arg("room:a")
        .query_async(&mut raw)
        .await
        .expect("SADD");
    eventually("the planted leftover swept", SWEPT, || {
        let mut raw = raw.clone();
        let group_key = &group_key;
        async move { !is_member(&mut raw, group_key, "planted").await }
    })
    .await;
    for id in [&on_first, &on_second] {
        assert!(is_member(&mut raw, &group_key, id).await, "{id} stays");
    }
}
