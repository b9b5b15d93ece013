//! Redis test support: the shared test Redis, key cleanup, and a private `redis-server` process
//! that tests can kill and restart (from the conformance feature's `servers`).

#![allow(dead_code, unused_imports)]

use std::time::Duration;

use wsgate_connection_store::conformance::unique_suffix;
use wsgate_connection_store::{RedisStore, RedisStoreOptions};

/// Pause between readiness or recovery probes.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// `WSGATE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub(crate) fn shared_url() -> String {
    std::env::var("WSGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A random key prefix for one test.
pub(crate) fn unique_prefix() -> String {
    format!("wsgate-test-{}", unique_suffix())
}

/// A store on the shared test Redis under a fresh prefix, deleting its keys when dropped.
pub(crate) struct TestStore {
    pub(crate) store: RedisStore,
    pub(crate) prefix: String,
    pub(crate) url: String,
}

impl TestStore {
    pub(crate) async fn new(options: RedisStoreOptions) -> Self {
        let url = shared_url();
        let prefix = unique_prefix();
        let store = RedisStore::connect_with(&url, &prefix, options)
            .await
            .unwrap_or_else(|e| panic!("cannot reach WSGATE_TEST_REDIS_URL={url}: {e:?}"));
        Self { store, prefix, url }
    }

    /// A plain connection to the same Redis, for inspecting keys.
    pub(crate) async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .expect("valid url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    }

    pub(crate) fn record_key(&self, id: &str) -> String {
        format!("{}:conn:{id}", self.prefix)
    }

    pub(crate) fn node_key(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// Keys currently under this test's prefix (records and the `{prefix}` membership keys).
    pub(crate) async fn keys(&self) -> Vec<String> {
        let mut raw = self.raw().await;
        let mut keys = Vec::new();
        for pattern in patterns(&self.prefix) {
            let found: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut raw)
                .await
                .expect("KEYS");
            keys.extend(found);
        }
        keys
    }
}

/// `KEYS` patterns of everything a store under `prefix` writes.
fn patterns(prefix: &str) -> [String; 2] {
    [format!("{prefix}:*"), format!("{{{prefix}}}:*")]
}

impl Drop for TestStore {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop cannot await, and this must also run after a panic.
        let Ok(mut conn) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = patterns(&self.prefix)
            .into_iter()
            .flat_map(|pattern| {
                redis::cmd("KEYS")
                    .arg(pattern)
                    .query::<Vec<String>>(&mut conn)
                    .unwrap_or_default()
            })
            .collect();
        if !keys.is_empty() {
            let _ = redis::cmd("DEL").arg(keys).exec(&mut conn);
        }
    }
}

pub(crate) use wsgate_connection_store::conformance::servers::{RedisServer, free_port};
