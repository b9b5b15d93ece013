//! Runs the group conformance checks against `MemoryStore` and against `RedisStore` on the Redis
//! at `WSGATE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), and checks the Redis key layout.

mod support;

use std::sync::Arc;

use support::TestStore;
use wsgate_connection_store::conformance::groups;
use wsgate_connection_store::{GroupStore, MemoryStore, RedisStoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_group_conformance() {
    groups::run_all(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_passes_group_conformance_and_leaves_no_keys() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    groups::run_all(Arc::new(test.store.clone())).await;
    assert_eq!(test.keys().await, Vec::<String>::new(), "keys left behind");
}

#[tokio::test]
async fn redis_group_keys_are_tagged_per_group() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    test.store.add_connection("prod", "c1").await.expect("add");
    test.store.join("prod", "room:1", "c1").await.expect("join");
    let mut keys = test.keys().await;
    keys.sort();
    let p = &test.prefix;
    assert_eq!(
        keys,
        [
            format!("{p}:group:{{prod:room:1}}"),
            format!("{p}:joined:c1"),
            format!("{p}:stage:prod"),
        ]
    );
    test.store.forget("prod", "c1").await.expect("forget");
    assert_eq!(test.keys().await, Vec::<String>::new());
}

#[tokio::test]
async fn redis_rejects_a_foreign_cursor() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    let error = test
        .store
        .group_members("prod", "g", Some("not-a-number".into()), 10)
        .await
        .expect_err("invalid cursor");
    assert!(error.to_string().contains("cursor"), "{error}");
}
