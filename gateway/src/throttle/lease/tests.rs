//! Lease tests on a manual clock shared by the "nodes" and the in-memory shared buckets.

use std::sync::atomic::Ordering;

use super::*;
use crate::throttle::shared::MemoryBuckets;

const MS: u64 = 1_000_000;

fn setup() -> (Clock, Arc<MemoryBuckets>) {
    let clock = Clock::manual();
    let shared = Arc::new(MemoryBuckets::new(clock.clone()));
    (clock, shared)
}

fn node(shared: &Arc<MemoryBuckets>, limit: Limit, on_error: OnRedisError) -> ClusterBucket {
    ClusterBucket::new(
        "route:prod:sendmessage".into(),
        limit,
        Duration::from_millis(20),
        Arc::clone(shared) as Arc<dyn SharedBuckets>,
        on_error,
    )
}

#[tokio::test]
async fn two_nodes_share_one_bucket_within_ten_percent() {
    // 50/s burst 10, offered 200/s (100/s on each node) for 4 s: 10 + 50 × 4 = 210.
    let limit = Limit::new(50.0, 10);
    let (clock, shared) = setup();
    let nodes = [
        node(&shared, limit, OnRedisError::Local),
        node(&shared, limit, OnRedisError::Local),
    ];
    let mut admitted = 0;
    for i in 0..800 {
        if nodes[i % 2].acquire(&clock, clock.now()).await == Decision::Allow {
            admitted += 1;
        }
        clock.advance(Duration::from_millis(5));
    }
    assert!((189..=231).contains(&admitted), "admitted {admitted}");
    // Never above what the shared bucket could grant (plus one lease of slack).
    assert!(admitted <= 10 + 200 + 1, "admitted {admitted}");
}

#[tokio::test]
async fn most_acquisitions_skip_the_shared_bucket() {
    let limit = Limit::new(10_000.0, 5_000);
    let (clock, shared) = setup();
    let bucket = node(&shared, limit, OnRedisError::Local);
    // 5 000/s for one second: well under the limit.
    for _ in 0..5_000 {
        assert_eq!(bucket.acquire(&clock, clock.now()).await, Decision::Allow);
        clock.advance(Duration::from_micros(200));
    }
    let calls = shared.calls.load(Ordering::SeqCst);
    assert!(calls <= 100, "{calls} shared calls for 5000 messages");
}

#[tokio::test]
async fn a_refusal_is_remembered_until_the_token_returns() {
    let limit = Limit::new(10.0, 2);
    let (clock, shared) = setup();
    let bucket = node(&shared, limit, OnRedisError::Local);
    assert_eq!(bucket.acquire(&clock, clock.now()).await, Decision::Allow);
    assert_eq!(bucket.acquire(&clock, clock.now()).await, Decision::Allow);
    assert!(matches!(
        bucket.acquire(&clock, clock.now()).await,
        Decision::Deny(_)
    ));
    let calls = shared.calls.load(Ordering::SeqCst);
    for _ in 0..50 {
        assert!(matches!(
            bucket.acquire(&clock, clock.now()).await,
            Decision::Deny(_)
        ));
    }
    assert_eq!(shared.calls.load(Ordering::SeqCst), calls);
    clock.advance(Duration::from_millis(100));
    assert_eq!(bucket.acquire(&clock, clock.now()).await, Decision::Allow);
}

#[tokio::test]
async fn unavailable_shared_bucket_follows_the_policy() {
    let limit = Limit::new(10.0, 3);
    for (policy, expected) in [
        (OnRedisError::Local, 3),
        (OnRedisError::Open, 20),
        (OnRedisError::Closed, 0),
    ] {
        let (clock, shared) = setup();
        shared.failing.store(true, Ordering::SeqCst);
        let bucket = node(&shared, limit, policy);
        let mut admitted = 0;
        for _ in 0..20 {
            if bucket.acquire(&clock, clock.now()).await == Decision::Allow {
                admitted += 1;
            }
        }
        assert_eq!(admitted, expected, "{policy:?}");
        // Only the first call tried the shared bucket; the rest waited for the recheck.
        assert_eq!(shared.calls.load(Ordering::SeqCst), 1, "{policy:?}");
        shared.failing.store(false, Ordering::SeqCst);
        clock.advance(RECHECK + Duration::from_millis(1));
        assert_eq!(
            bucket.acquire(&clock, clock.now()).await,
            Decision::Allow,
            "{policy:?}"
        );
        assert_eq!(shared.calls.load(Ordering::SeqCst), 2, "{policy:?}");
    }
}

#[tokio::test]
async fn unspent_lease_expires_and_refunds_return_tokens() {
    let limit = Limit::new(1_000.0, 100);
    let (clock, shared) = setup();
    let bucket = node(&shared, limit, OnRedisError::Local);
    // Grow the lease.
    for _ in 0..10 {
        assert_eq!(bucket.acquire(&clock, clock.now()).await, Decision::Allow);
    }
    let held = bucket.state().credit;
    bucket.refund(clock.now());
    assert_eq!(bucket.state().credit, held + 1);
    clock.advance(Duration::from_millis(20) + Duration::from_nanos(MS));
    assert_eq!(bucket.acquire(&clock, clock.now()).await, Decision::Allow);
    // A new lease replaced the expired one; the lease never exceeds rate × lease (20 tokens).
    assert!(bucket.state().granted <= 20);
}
