//! Node leases on the shared test Redis: renew, expiry, a reaper's claim, the tombstone that
//! tells a frozen node it was reaped, re-acquisition after data loss, and graceful release.

mod support;

use std::time::Duration;

use support::{POLL_INTERVAL, TestStore};
use wsgate_connection_store::{LeaseClaim, LeaseRenewal, RedisStoreOptions};

const TTL: Duration = Duration::from_secs(30);
const TOMBSTONE: Duration = Duration::from_secs(60);

async fn del(test: &TestStore, key: &str) {
    let _: () = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut test.raw().await)
        .await
        .expect("DEL");
}

#[tokio::test]
async fn a_held_lease_renews_and_cannot_be_claimed() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    let s = &test.store;
    s.acquire_lease("a", "t1", TTL).await.expect("acquire");
    assert_eq!(
        s.renew_lease("a", "t1", TTL).await.expect("renew"),
        LeaseRenewal::Held
    );
    assert_eq!(
        s.claim_dead("a", TOMBSTONE).await.expect("claim"),
        LeaseClaim::Alive
    );
    assert!(
        !s.forget_dead("a").await.expect("forget"),
        "alive nodes stay registered"
    );
    assert_eq!(s.lease_nodes().await.expect("nodes"), ["a"]);
    // Another process under the same node id took the lease: ours is lost.
    assert_eq!(
        s.renew_lease("a", "other", TTL).await.expect("renew"),
        LeaseRenewal::Lost
    );
}

#[tokio::test]
async fn an_expired_lease_is_claimed_and_its_owner_learns_it_was_reaped() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    let s = &test.store;
    s.acquire_lease("b", "t1", Duration::from_millis(50))
        .await
        .expect("acquire");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while s.lease_alive("b").await.expect("alive") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lease did not expire"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    assert_eq!(
        s.claim_dead("b", TOMBSTONE).await.expect("claim"),
        LeaseClaim::Claimed
    );
    assert!(s.forget_dead("b").await.expect("forget"));
    assert!(s.lease_nodes().await.expect("nodes").is_empty());
    // The frozen owner comes back: it must not silently re-acquire.
    assert_eq!(
        s.renew_lease("b", "t1", TTL).await.expect("renew"),
        LeaseRenewal::Lost
    );
    assert!(!s.lease_alive("b").await.expect("alive"));
    // A fresh lease clears the tombstone.
    s.acquire_lease("b", "t2", TTL).await.expect("acquire");
    assert_eq!(
        s.renew_lease("b", "t2", TTL).await.expect("renew"),
        LeaseRenewal::Held
    );
    assert_eq!(s.lease_nodes().await.expect("nodes"), ["b"]);
}

#[tokio::test]
async fn a_lease_lost_with_the_data_is_reacquired_not_reaped() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    let s = &test.store;
    s.acquire_lease("c", "t1", TTL).await.expect("acquire");
    // What FLUSHALL looks like to this prefix.
    for key in test.keys().await {
        del(&test, &key).await;
    }
    assert_eq!(
        s.renew_lease("c", "t1", TTL).await.expect("renew"),
        LeaseRenewal::Reacquired
    );
    assert!(s.lease_alive("c").await.expect("alive"));
    assert_eq!(s.lease_nodes().await.expect("nodes"), ["c"]);
    assert_eq!(
        s.renew_lease("c", "t1", TTL).await.expect("renew"),
        LeaseRenewal::Held
    );
}

#[tokio::test]
async fn release_drops_only_our_own_lease() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    let s = &test.store;
    s.acquire_lease("d", "t1", TTL).await.expect("acquire");
    s.release_lease("d", "stale").await.expect("release");
    assert!(
        s.lease_alive("d").await.expect("alive"),
        "a stale token releases nothing"
    );
    s.release_lease("d", "t1").await.expect("release");
    assert!(!s.lease_alive("d").await.expect("alive"));
    assert!(s.lease_nodes().await.expect("nodes").is_empty());
    assert_eq!(test.keys().await, Vec::<String>::new());
}
