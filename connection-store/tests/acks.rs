//! Runs the ack conformance checks against `MemoryStore` and against `RedisStore` on the Redis
//! at `WSGATE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), and checks the Redis key
//! layout and expiries.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::TestStore;
use wsgate_connection_store::conformance::acks;
use wsgate_connection_store::{AckClaim, AckStore, MemoryStore, RedisStoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_ack_conformance() {
    let store = Arc::new(MemoryStore::new());
    acks::run_all(Arc::clone(&store) as _).await;
    // Only the cycle check's acknowledged id (1 ms window) may be left, and not for long.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.ack_usage(), (0, 0), "entries left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_passes_ack_conformance() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    acks::run_all(Arc::new(test.store.clone())).await;
}

#[tokio::test]
async fn redis_ack_keys_are_tagged_and_expire() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    let claim = test
        .store
        .ack_claim("k1", "node-a/req", Duration::from_secs(20))
        .await
        .expect("claim");
    assert_eq!(claim, AckClaim::Claimed);
    let keys = test.keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with(":ack:{k1}"), "{keys:?}");
    let mut raw = test.raw().await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut raw)
        .await
        .expect("PTTL");
    assert!(ttl > 0 && ttl <= 20_000, "in-flight PTTL {ttl}");
    test.store
        .ack_done("k1", "node-a/req", Duration::from_secs(300))
        .await
        .expect("done");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut raw)
        .await
        .expect("PTTL");
    assert!(ttl > 20_000 && ttl <= 300_000, "acknowledged PTTL {ttl}");
    let _: () = redis::cmd("DEL")
        .arg(&keys[0])
        .query_async(&mut raw)
        .await
        .expect("DEL");
}
