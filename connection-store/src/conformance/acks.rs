//! Conformance checks for [`AckStore`]: the claim, acknowledge and release cycle, releases by
//! someone else's owner token, expiry of acknowledged ids, and concurrent claims of one id.
//! Every check uses a fresh key.

use std::sync::Arc;
use std::time::Duration;

use super::unique_suffix;
use crate::{AckClaim, AckStore};

const HOLD: Duration = Duration::from_secs(30);
const WINDOW: Duration = Duration::from_secs(30);

/// Runs every ack check.
pub async fn run_all(store: Arc<dyn AckStore>) {
    claim_acknowledge_release_cycle(&*store).await;
    release_by_another_owner_keeps_the_claim(&*store).await;
    acknowledged_ids_expire_after_their_window(&*store).await;
    concurrent_claims_claim_once(Arc::clone(&store)).await;
}

fn key(check: &str) -> String {
    format!("ack-{check}-{}", unique_suffix())
}

/// A claimed id answers in flight with its owner; acknowledged, it answers acknowledged; a
/// released id can be claimed again.
pub async fn claim_acknowledge_release_cycle(store: &dyn AckStore) {
    let k = key("cycle");
    let first = store.ack_claim(&k, "one", HOLD).await.expect("claim");
    assert_eq!(first, AckClaim::Claimed, "a fresh id is claimed");
    let second = store.ack_claim(&k, "two", HOLD).await.expect("claim");
    assert_eq!(
        second,
        AckClaim::InFlight {
            owner: "one".into()
        },
        "a held id answers its holder"
    );
    store.ack_release(&k, "one").await.expect("release");
    let again = store.ack_claim(&k, "two", HOLD).await.expect("claim");
    assert_eq!(again, AckClaim::Claimed, "a released id is claimed afresh");
    store.ack_done(&k, "two", WINDOW).await.expect("done");
    let dup = store.ack_claim(&k, "three", HOLD).await.expect("claim");
    assert_eq!(
        dup,
        AckClaim::Acknowledged,
        "an acknowledged id is not claimed"
    );
    store.ack_release(&k, "three").await.expect("release");
    let still = store.ack_claim(&k, "three", HOLD).await.expect("claim");
    assert_eq!(
        still,
        AckClaim::Acknowledged,
        "release leaves acknowledged ids alone"
    );
    store
        .ack_done(&k, "two", Duration::from_millis(1))
        .await
        .expect("done");
}

/// `ack_release` with an owner that does not hold the id changes nothing.
pub async fn release_by_another_owner_keeps_the_claim(store: &dyn AckStore) {
    let k = key("foreign-release");
    store.ack_claim(&k, "one", HOLD).await.expect("claim");
    store.ack_release(&k, "two").await.expect("release");
    let found = store.ack_claim(&k, "two", HOLD).await.expect("claim");
    assert_eq!(
        found,
        AckClaim::InFlight {
            owner: "one".into()
        },
        "another owner's release must not drop the claim"
    );
    store.ack_release(&k, "one").await.expect("release");
    store
        .ack_release(&k, "nobody")
        .await
        .expect("releasing nothing is Ok");
}

/// An id acknowledged with a short window is claimed afresh once the window has passed.
pub async fn acknowledged_ids_expire_after_their_window(store: &dyn AckStore) {
    let k = key("expiry");
    store.ack_claim(&k, "one", HOLD).await.expect("claim");
    store
        .ack_done(&k, "one", Duration::from_millis(200))
        .await
        .expect("done");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match store.ack_claim(&k, "two", HOLD).await.expect("claim") {
            AckClaim::Claimed => break,
            AckClaim::Acknowledged => {}
            other => panic!("unexpected {other:?} while the window runs"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "an acknowledged id outlived its window"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.ack_release(&k, "two").await.expect("release");
}

/// Of many tasks claiming one id at once, exactly one gets it.
pub async fn concurrent_claims_claim_once(store: Arc<dyn AckStore>) {
    let k = key("race");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            let k = k.clone();
            tokio::spawn(async move { store.ack_claim(&k, &format!("o{i}"), HOLD).await })
        })
        .collect();
    let mut claimed = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        if task.await.expect("task").expect("claim") == AckClaim::Claimed {
            claimed.push(format!("o{i}"));
        }
    }
    assert_eq!(claimed.len(), 1, "exactly one racer claims: {claimed:?}");
    store.ack_release(&k, &claimed[0]).await.expect("release");
}
