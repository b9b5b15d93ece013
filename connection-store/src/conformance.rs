//! Conformance suite: the behaviour every [`ConnectionStore`] must show, callable from any
//! store's tests (feature `conformance`).
//!
//! Every check uses fresh ids and node ids (random suffix), removes what it created, and only
//! ever lists its own node ids, so several runs can share one Redis at the same time. Checks
//! panic with a message naming the broken promise.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::{ConnectionRecord, ConnectionStore};

pub mod acks;
pub mod deployments;
pub mod groups;
pub mod history;
mod list;
mod owed;
pub mod servers;

pub use list::{
    collect_node_ids, list_node_large_node, list_node_pages_exactly_the_nodes_ids,
    list_node_survives_churn,
};
pub use owed::{
    concurrent_claimers_never_share_an_entry, owed_entry_is_claimed_after_its_claim_expires,
    remove_owing_returns_record_once,
};

/// Runs every check in order. Takes an `Arc` because the concurrent remove and claim checks
/// race real tasks against the store.
pub async fn run_all(store: Arc<dyn ConnectionStore>) {
    health_ok(&*store).await;
    register_get_round_trip(&*store).await;
    register_is_an_upsert(&*store).await;
    remove_returns_record_once(&*store).await;
    concurrent_remove_exactly_once(Arc::clone(&store)).await;
    touch_is_monotonic(&*store).await;
    touch_ignores_unknown_and_removed(&*store).await;
    list_node_pages_exactly_the_nodes_ids(&*store).await;
    list_node_large_node(&*store).await;
    list_node_survives_churn(&*store).await;
    remove_owing_returns_record_once(Arc::clone(&store)).await;
    owed_entry_is_claimed_after_its_claim_expires(&*store).await;
    concurrent_claimers_never_share_an_entry(Arc::clone(&store)).await;
}

/// A random hex string, different on every call (also across processes).
pub fn unique_suffix() -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", hasher.finish())
}

/// A fully populated record (every optional field set) for `id` on `node_id`.
pub fn sample_record(id: &str, node_id: &str) -> ConnectionRecord {
    let authorizer = json!({
        "principalId": "user-1",
        "scope": "chat:write",
        "groups": ["a", "b"],
        "nested": {"n": 1.5, "big": 9_007_199_254_740_993_i64, "none": null, "text": "é ✓ \"q\""}
    });
    ConnectionRecord {
        connection_id: id.to_owned(),
        node_id: node_id.to_owned(),
        stage: "prod".to_owned(),
        connected_at_ms: 1_700_000_000_000,
        last_active_at_ms: 1_700_000_000_000,
        source_ip: "203.0.113.7".to_owned(),
        user_agent: Some("conformance/1.0".to_owned()),
        authorizer: authorizer.as_object().cloned(),
        api_key_id: Some("key-1".to_owned()),
        domain_name: Some("ws.example.com".to_owned()),
    }
}

/// Fresh `(connection id, node id)` for one check.
fn fresh(check: &str) -> (String, String) {
    let suffix = unique_suffix();
    (
        format!("{check}-{suffix}"),
        format!("node-{check}-{suffix}"),
    )
}

async fn get(store: &dyn ConnectionStore, id: &str) -> Option<ConnectionRecord> {
    store.get(id).await.expect("get failed")
}

async fn register(store: &dyn ConnectionStore, record: &ConnectionRecord) {
    store.register(record).await.expect("register failed");
}

/// `health` answers Ok.
pub async fn health_ok(store: &dyn ConnectionStore) {
    store.health().await.expect("health must be Ok");
}

/// What `register` stores, `get` returns unchanged; unknown ids are `None`.
pub async fn register_get_round_trip(store: &dyn ConnectionStore) {
    let (id, node) = fresh("roundtrip");
    let record = sample_record(&id, &node);
    register(store, &record).await;
    assert_eq!(
        get(store, &id).await,
        Some(record),
        "get must return the registered record"
    );

    let bare = ConnectionRecord {
        user_agent: None,
        authorizer: None,
        api_key_id: None,
        domain_name: None,
        ..sample_record(&format!("{id}-bare"), &node)
    };
    register(store, &bare).await;
    assert_eq!(get(store, &bare.connection_id).await, Some(bare.clone()));
    assert_eq!(
        get(store, &format!("{id}-unknown")).await,
        None,
        "unknown id"
    );

    store.remove(&id).await.expect("cleanup");
    store.remove(&bare.connection_id).await.expect("cleanup");
}

/// `register` replaces the whole record, repeats are harmless, and a changed `node_id` moves
/// the id to the new node's listing.
pub async fn register_is_an_upsert(store: &dyn ConnectionStore) {
    let (id, node_a) = fresh("upsert");
    let node_b = format!("{node_a}-b");
    let first = sample_record(&id, &node_a);
    register(store, &first).await;
    let second = ConnectionRecord {
        stage: "dev".to_owned(),
        last_active_at_ms: first.last_active_at_ms - 5,
        user_agent: None,
        ..first.clone()
    };
    register(store, &second).await;
    register(store, &second).await;
    assert_eq!(
        get(store, &id).await,
        Some(second.clone()),
        "upsert replaces"
    );

    let moved = ConnectionRecord {
        node_id: node_b.clone(),
        ..second
    };
    register(store, &moved).await;
    assert_eq!(get(store, &id).await, Some(moved.clone()));
    assert!(
        collect_node_ids(store, &node_a, 10).await.is_empty(),
        "moved away from node a"
    );
    assert_eq!(
        collect_node_ids(store, &node_b, 10).await,
        BTreeSet::from([id.clone()])
    );

    assert_eq!(store.remove(&id).await.expect("remove"), Some(moved));
}

/// `remove` hands the record out once; afterwards it is gone everywhere.
pub async fn remove_returns_record_once(store: &dyn ConnectionStore) {
    let (id, node) = fresh("remove");
    let record = sample_record(&id, &node);
    register(store, &record).await;
    assert_eq!(
        store.remove(&id).await.expect("remove"),
        Some(record),
        "first remove"
    );
    assert_eq!(
        store.remove(&id).await.expect("remove"),
        None,
        "second remove"
    );
    assert_eq!(get(store, &id).await, None, "get after remove");
    assert!(
        collect_node_ids(store, &node, 10).await.is_empty(),
        "listed after remove"
    );
    let unknown = format!("{id}-never-registered");
    assert_eq!(store.remove(&unknown).await.expect("remove unknown"), None);
}

/// Eight tasks remove the same id at once: exactly one gets the record (five rounds).
pub async fn concurrent_remove_exactly_once(store: Arc<dyn ConnectionStore>) {
    const TASKS: usize = 8;
    for round in 0..5 {
        let (id, node) = fresh("race");
        register(&*store, &sample_record(&id, &node)).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..TASKS {
            let (store, barrier, id) = (Arc::clone(&store), Arc::clone(&barrier), id.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                store.remove(&id).await
            });
        }
        let mut winners = 0;
        while let Some(joined) = tasks.join_next().await {
            let removed = joined
                .expect("remove task panicked")
                .expect("remove failed");
            if let Some(record) = removed {
                assert_eq!(record.connection_id, id);
                winners += 1;
            }
        }
        assert_eq!(
            winners, 1,
            "round {round}: exactly one remover must get the record"
        );
    }
}

type TouchStep = (&'static str, Vec<(String, i64)>, i64);

/// `touch` moves `lastActiveAt` forward only and leaves every other field alone.
pub async fn touch_is_monotonic(store: &dyn ConnectionStore) {
    let (id, node) = fresh("touch");
    let other = format!("{id}-other");
    let record = sample_record(&id, &node);
    register(store, &record).await;
    register(store, &sample_record(&other, &node)).await;
    let base = record.last_active_at_ms;
    // (step, batch, expected lastActiveAt of `id` afterwards)
    let steps: [TouchStep; 4] = [
        ("forward", vec![(id.clone(), base + 1000)], base + 1000),
        ("backward", vec![(id.clone(), base + 500)], base + 1000),
        ("equal", vec![(id.clone(), base + 1000)], base + 1000),
        (
            "batch keeps the largest",
            vec![
                (id.clone(), base + 3000),
                (id.clone(), base + 2500),
                (other.clone(), base + 7),
            ],
            base + 3000,
        ),
    ];
    for (step, batch, expected) in steps {
        store.touch(&batch).await.expect("touch failed");
        let expected = ConnectionRecord {
            last_active_at_ms: expected,
            ..record.clone()
        };
        assert_eq!(get(store, &id).await, Some(expected), "touch step: {step}");
    }
    let touched_other = get(store, &other).await.expect("other record");
    assert_eq!(
        touched_other.last_active_at_ms,
        base + 7,
        "second id of the batch"
    );
    store.touch(&[]).await.expect("empty batch");
    store.remove(&id).await.expect("cleanup");
    store.remove(&other).await.expect("cleanup");
}

/// `touch` of unknown or removed ids changes nothing and never recreates a record.
pub async fn touch_ignores_unknown_and_removed(store: &dyn ConnectionStore) {
    let (id, node) = fresh("touchgone");
    let unknown = format!("{id}-unknown");
    store
        .touch(&[(unknown.clone(), 5)])
        .await
        .expect("touch unknown");
    assert_eq!(
        get(store, &unknown).await,
        None,
        "touch created an unknown id"
    );

    register(store, &sample_record(&id, &node)).await;
    assert!(store.remove(&id).await.expect("remove").is_some());
    store
        .touch(&[(id.clone(), i64::MAX)])
        .await
        .expect("touch removed");
    assert_eq!(
        get(store, &id).await,
        None,
        "touch resurrected a removed record"
    );
    assert_eq!(store.remove(&id).await.expect("remove"), None);
    assert!(collect_node_ids(store, &node, 10).await.is_empty());
}
