//! A node's lease is renewed on a Redis connection of its own: with every other store call of
//! the node stuck (its store connection held by a relay), it keeps its lease for many
//! `lease_ttl`s, its peer does not reap it, and its client stays connected.

use std::time::Duration;

use crate::cluster_owed::raw;
use crate::support::cluster::*;
use crate::support::relay::Relay;
use crate::support::*;

const LEASE_TTL: Duration = Duration::from_millis(600);

fn has(chunk: &[u8], needle: &[u8]) -> bool {
    chunk.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn stuck_store_calls_do_not_cost_a_node_its_lease() {
    let backend = Backend::start(|_| Reply::lambda(200, None)).await;
    let prefix = unique_prefix();
    let _cleanup = cleanup(&prefix);
    let upstream = shared_redis_url();
    let upstream = upstream
        .trim_start_matches("redis://")
        .trim_end_matches('/');
    let group_key = format!("{prefix}:group:");
    // From the first group join on, every write through the relay waits, except lease
    // commands: whatever connection carries them keeps them moving only if nothing else is
    // queued in front of them on it.
    let relay = Relay::start_except(
        upstream,
        move |chunk| has(chunk, b"SADD") && has(chunk, group_key.as_bytes()),
        |chunk| has(chunk, b":lease:"),
    )
    .await;
    let cluster = "cluster:\n  lease_ttl: 600ms\n  reaper_interval: 100ms\n";
    let store_timeout = "  timeout: 250ms\n";
    let through_relay =
        redis_store(&relay.redis_url(), &prefix).replace("  timeout: 500ms\n", store_timeout);
    let direct =
        redis_store(&shared_redis_url(), &prefix).replace("  timeout: 500ms\n", store_timeout);
    let a = TestGateway::start(&config(
        &backend.url(),
        &format!("{through_relay}{cluster}"),
    ))
    .await;
    let _b = TestGateway::start(&config(&backend.url(), &format!("{direct}{cluster}"))).await;
    let (mut ws, id) = connect_and_id(&backend, &a.ws_url("/prod")).await;

    // The join's `SADD` is held: from now on node A's store calls time out.
    let join = http()
        .put(a.http_url(&format!("/prod/@connections/{id}/groups/room")))
        .send();
    tokio::select! {
        () = relay.held() => {}
        answer = join => panic!("the join was answered with the store held: {answer:?}"),
    }
    let lease_key = format!("{{{prefix}}}:lease:{}", a.gateway().node_id());
    let mut conn = raw(&shared_redis_url()).await;
    let stuck = tokio::time::Instant::now();
    // Five lease lifetimes, the peer's reaper looking ten times a lifetime.
    while stuck.elapsed() < 5 * LEASE_TTL {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&lease_key)
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        assert_eq!(
            exists,
            1,
            "node A lost its lease {:?} after its store calls got stuck",
            stuck.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    relay.release();
    // Nobody reaped A: its client is still connected and served.
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
}
