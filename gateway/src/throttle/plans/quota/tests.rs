//! Quota tests on injected wall-clock time: exhaustion, reset at each period's boundary, leases
//! shared by two nodes, unspent units given back, and an unavailable store.

use super::*;

fn at(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("time")
        .timestamp_millis()
}

fn lease(store: &Arc<MemoryQuota>, limit: u64, period: Period, max_lease: u64) -> QuotaLease {
    QuotaLease::new(
        Arc::clone(store) as Arc<dyn QuotaStore>,
        "plan:gold:key-1".into(),
        limit,
        period,
        max_lease,
        OnRedisError::Local,
    )
}

async fn spent(quota: &QuotaLease, now_ms: i64, tries: usize) -> usize {
    let mut allowed = 0;
    for _ in 0..tries {
        if quota.spend(now_ms).await == Spend::Allow {
            allowed += 1;
        }
    }
    allowed
}

#[tokio::test]
async fn a_spent_quota_refuses_until_the_next_period() {
    let cases = [
        (Period::Day, "2026-02-18T23:59:00Z", "2026-02-19T00:00:00Z"),
        (Period::Week, "2026-02-22T12:00:00Z", "2026-02-23T00:00:00Z"),
        (
            Period::Month,
            "2026-01-31T18:00:00Z",
            "2026-02-01T00:00:00Z",
        ),
    ];
    for (period, during, next) in cases {
        let store = Arc::new(MemoryQuota::default());
        let quota = lease(&store, 3, period, 1);
        let now = at(during);
        assert_eq!(spent(&quota, now, 10).await, 3, "{period:?}");
        assert!(matches!(quota.spend(now).await, Spend::Spent(_)));
        // Still spent a second before the boundary, available again right at it.
        assert_eq!(spent(&quota, at(next) - 1000, 5).await, 0, "{period:?}");
        assert_eq!(spent(&quota, at(next), 10).await, 3, "{period:?}");
    }
}

#[tokio::test]
async fn a_refusal_is_not_asked_again_within_a_second() {
    let store = Arc::new(MemoryQuota::default());
    let quota = lease(&store, 1, Period::Day, 1);
    let now = at("2026-02-18T12:00:00Z");
    assert_eq!(quota.spend(now).await, Spend::Allow);
    assert_eq!(quota.spend(now).await, Spend::Spent(1000));
    assert_eq!(quota.spend(now + 400).await, Spend::Spent(600));
}

#[tokio::test]
async fn two_nodes_with_leases_never_exceed_the_quota() {
    let store = Arc::new(MemoryQuota::default());
    let nodes = [
        lease(&store, 100, Period::Day, 10),
        lease(&store, 100, Period::Day, 10),
    ];
    let mut now = at("2026-02-18T12:00:00Z");
    let mut allowed = 0;
    for i in 0..300 {
        if nodes[i % 2].spend(now).await == Spend::Allow {
            allowed += 1;
        }
        now += 5_000;
    }
    assert_eq!(allowed, 100);
}

#[tokio::test]
async fn unspent_units_go_back_to_the_store() {
    let store = Arc::new(MemoryQuota::default());
    let now = at("2026-02-18T12:00:00Z");
    let a = lease(&store, 10, Period::Day, 8);
    let b = lease(&store, 10, Period::Day, 8);
    // A's leases grow 1, 2, 4 (seven units, all spent), then 8 is asked and the 3 left granted.
    assert_eq!(spent(&a, now, 8).await, 8);
    let (window, units) = a.unspent().expect("a holds units");
    assert_eq!(units, 2);
    assert_eq!(spent(&b, now, 5).await, 0);
    store
        .release(a.key(), window, units)
        .await
        .expect("release");
    assert_eq!(spent(&b, now + 1_000, 5).await, 2);
}

#[derive(Debug)]
struct Down;

#[async_trait]
impl QuotaStore for Down {
    async fn reserve(&self, _: &str, _: Window, _: u64, _: u64) -> Result<u64, SharedBucketError> {
        Err(SharedBucketError::Malformed)
    }
    async fn release(&self, _: &str, _: Window, _: u64) -> Result<(), SharedBucketError> {
        Err(SharedBucketError::Malformed)
    }
}

#[tokio::test]
async fn an_unavailable_store_follows_the_policy() {
    let now = at("2026-02-18T12:00:00Z");
    for (policy, expected) in [
        (OnRedisError::Local, 5),
        (OnRedisError::Open, 5),
        (OnRedisError::Closed, 0),
    ] {
        let quota = QuotaLease::new(Arc::new(Down), "k".into(), 1, Period::Day, 1, policy);
        assert_eq!(spent(&quota, now, 5).await, expected, "{policy:?}");
    }
}
