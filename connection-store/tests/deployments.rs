//! Runs the deployment conformance checks against `MemoryDeployments` and against `RedisStore`
//! on the Redis at `WSGATE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), and checks that
//! the Redis keys share one hash tag.

mod support;

use std::sync::Arc;

use support::TestStore;
use wsgate_connection_store::conformance::deployments;
use wsgate_connection_store::{MemoryDeployments, RedisStoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_deployments_pass_conformance() {
    deployments::run_all(Arc::new(MemoryDeployments::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_deployments_pass_conformance_under_one_hash_tag() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    deployments::run_all(Arc::new(test.store.clone())).await;
    let keys = test.keys().await;
    assert!(!keys.is_empty());
    let tag = format!("{{{}}}:deploy:", test.prefix);
    assert!(keys.iter().all(|k| k.starts_with(&tag)), "{keys:?}");
}
