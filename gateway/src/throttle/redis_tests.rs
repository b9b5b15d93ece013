//! The Redis scripts of shared throttling against the server at 127.0.0.1:6379 (each test under
//! a key prefix of its own): the token bucket and the usage-plan quota.

use std::time::Duration;

use super::gcra::{Limit, Take};
use super::plans::period::Period;
use super::plans::quota::QuotaStore;
use super::redis_gcra::RedisBuckets;
use super::shared::SharedBuckets;

/// Buckets on the server at 127.0.0.1:6379 under a fresh prefix, and that prefix.
async fn buckets() -> (RedisBuckets, String) {
    let prefix = format!("wsgate-throttle-test-{}", uuid::Uuid::new_v4().simple());
    let redis = RedisBuckets::connect(
        &["redis://127.0.0.1:6379".to_string()],
        false,
        &prefix,
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .await
    .expect("redis at 127.0.0.1:6379");
    (redis, prefix)
}

#[tokio::test]
async fn the_redis_script_grants_what_the_bucket_holds() {
    let (redis, prefix) = buckets().await;
    // 0.1/s: no token comes back during the test.
    let limit = Limit::new(0.1, 20);
    assert_eq!(
        redis.take("b", limit, 15).await.expect("take"),
        Take::Granted(15)
    );
    assert_eq!(
        redis.take("b", limit, 15).await.expect("take"),
        Take::Granted(5)
    );
    let Take::Denied { retry_after_ns } = redis.take("b", limit, 1).await.expect("take") else {
        panic!("the bucket is empty");
    };
    assert!(
        retry_after_ns > 9_000_000_000 && retry_after_ns <= 10_000_000_000,
        "{retry_after_ns}"
    );
    // Another bucket is independent, and a blocking limit admits nothing.
    assert_eq!(
        redis.take("c", limit, 1).await.expect("take"),
        Take::Granted(1)
    );
    assert!(matches!(
        redis.take("d", Limit::new(0.0, 5), 1).await.expect("take"),
        Take::Denied { .. }
    ));
    assert_eq!(redis.key("b"), format!("{prefix}:throttle:{{b}}"));
}

#[tokio::test]
async fn the_redis_quota_scripts_hand_out_and_take_back_units() {
    let (redis, prefix) = buckets().await;
    let window = Period::Day.window(chrono::Utc::now().timestamp());
    let key = "plan:gold:key-1";
    assert_eq!(
        redis.reserve(key, window, 20, 15).await.expect("reserve"),
        15
    );
    assert_eq!(
        redis.reserve(key, window, 20, 15).await.expect("reserve"),
        5
    );
    assert_eq!(redis.reserve(key, window, 20, 1).await.expect("reserve"), 0);
    redis.release(key, window, 3).await.expect("release");
    assert_eq!(redis.reserve(key, window, 20, 5).await.expect("reserve"), 3);
    assert_eq!(
        redis.quota_key(key, window.start),
        format!("{prefix}:quota:{{{key}}}:{}", window.start)
    );
}
