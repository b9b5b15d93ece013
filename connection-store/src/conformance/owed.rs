//! Conformance checks for owed `$disconnect` entries: `remove_owing`, `settle`, `claim_owed`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{collect_node_ids, fresh, get, register, sample_record};
use crate::ConnectionStore;

/// A claim that outlives every check.
const LONG: Duration = Duration::from_secs(60);
/// A claim that has expired by the time anyone looks (the stores round up to 1 ms).
const SHORT: Duration = Duration::from_millis(1);
/// How long a check polls for an expired claim before failing.
const DEADLINE: Duration = Duration::from_secs(10);
/// Pause between polls.
const POLL: Duration = Duration::from_millis(5);

/// `remove_owing` hands the record out once (also when racing plain `remove`), takes it out of
/// `get` and the node listing, and the fresh entry is not claimable while its claim runs.
pub async fn remove_owing_returns_record_once(store: Arc<dyn ConnectionStore>) {
    let (id, node) = fresh("owing");
    let record = sample_record(&id, &node);
    register(&*store, &record).await;
    assert_eq!(
        store
            .remove_owing(&id, "reaper-a", LONG)
            .await
            .expect("remove_owing"),
        Some(record.clone()),
        "first remove_owing"
    );
    assert_eq!(
        store
            .remove_owing(&id, "reaper-b", LONG)
            .await
            .expect("remove_owing"),
        None,
        "second remove_owing"
    );
    assert_eq!(
        store.remove(&id).await.expect("remove"),
        None,
        "remove after remove_owing"
    );
    assert_eq!(get(&*store, &id).await, None, "get after remove_owing");
    assert!(
        collect_node_ids(&*store, &node, 10).await.is_empty(),
        "listed after remove_owing"
    );
    let claimed = store
        .claim_owed("thief", LONG, 1000)
        .await
        .expect("claim_owed");
    assert!(
        claimed.iter().all(|r| r.connection_id != id),
        "an entry was claimed while its first claim was still running"
    );
    store.settle(&id).await.expect("settle");
    store.settle(&id).await.expect("settle twice");
    store
        .settle(&format!("{id}-unknown"))
        .await
        .expect("settle unknown");
    let unknown = format!("{id}-never-registered");
    assert_eq!(
        store
            .remove_owing(&unknown, "reaper-a", SHORT)
            .await
            .expect("remove_owing unknown"),
        None
    );

    // Racing removers, half of them plain `remove`: exactly one gets the record.
    for round in 0..5 {
        let race_id = format!("{id}-race{round}");
        register(&*store, &sample_record(&race_id, &node)).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..8 {
            let (store, barrier, race_id) =
                (Arc::clone(&store), Arc::clone(&barrier), race_id.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                if task % 2 == 0 {
                    store
                        .remove_owing(&race_id, &format!("r{task}"), LONG)
                        .await
                } else {
                    store.remove(&race_id).await
                }
            });
        }
        let mut winners = 0;
        while let Some(joined) = tasks.join_next().await {
            if joined
                .expect("task panicked")
                .expect("remove failed")
                .is_some()
            {
                winners += 1;
            }
        }
        assert_eq!(
            winners, 1,
            "round {round}: exactly one remover must get the record"
        );
        store.settle(&race_id).await.expect("settle");
    }
    // Nothing of this check is left to claim.
    wait_for_expiry().await;
    let claimed = store
        .claim_owed("sweeper", LONG, 1000)
        .await
        .expect("claim_owed");
    assert!(
        claimed.iter().all(|r| !r.connection_id.starts_with(&id)),
        "a settled or never-filed entry was claimed"
    );
}

/// An entry whose claimer never settles is claimed once its claim expires, with the record as
/// removed; then it belongs to the new claimer for its claim period; a settled entry is gone.
pub async fn owed_entry_is_claimed_after_its_claim_expires(store: &dyn ConnectionStore) {
    let (id, node) = fresh("owedexp");
    let running = format!("{id}-running");
    let record = sample_record(&id, &node);
    register(store, &record).await;
    register(store, &sample_record(&running, &node)).await;
    assert!(
        store
            .remove_owing(&id, "dies", SHORT)
            .await
            .expect("remove_owing")
            .is_some()
    );
    assert!(
        store
            .remove_owing(&running, "lives", LONG)
            .await
            .expect("remove_owing")
            .is_some()
    );

    let started = Instant::now();
    let claimed = loop {
        let claimed = store
            .claim_owed("live", LONG, 100)
            .await
            .expect("claim_owed");
        assert!(
            claimed.iter().all(|r| r.connection_id != running),
            "an entry was claimed while its claim was still running"
        );
        if let Some(found) = claimed.into_iter().find(|r| r.connection_id == id) {
            break found;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "an expired claim was never claimed again"
        );
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(claimed, record, "claim_owed must return the removed record");
    let again = store
        .claim_owed("other", LONG, 100)
        .await
        .expect("claim_owed");
    assert!(
        again.iter().all(|r| r.connection_id != id),
        "claimed twice within one claim period"
    );
    store.settle(&id).await.expect("settle");
    store.settle(&running).await.expect("settle");

    // A settled entry is never claimed again, however short its last claim was.
    let (gone, _) = fresh("owedgone");
    register(store, &sample_record(&gone, &node)).await;
    assert!(
        store
            .remove_owing(&gone, "fast", SHORT)
            .await
            .expect("remove_owing")
            .is_some()
    );
    store.settle(&gone).await.expect("settle");
    wait_for_expiry().await;
    let after = store
        .claim_owed("late", LONG, 1000)
        .await
        .expect("claim_owed");
    assert!(
        after.iter().all(|r| r.connection_id != gone),
        "a settled entry was claimed"
    );
}

/// Eight claimers race for forty expired entries, five at a time: every entry goes to exactly
/// one of them, and no call returns more than its limit.
pub async fn concurrent_claimers_never_share_an_entry(store: Arc<dyn ConnectionStore>) {
    const ENTRIES: usize = 40;
    const TASKS: usize = 8;
    const LIMIT: usize = 5;
    let (prefix, node) = fresh("owedrace");
    let ids: BTreeSet<String> = (0..ENTRIES).map(|i| format!("{prefix}-{i}")).collect();
    for id in &ids {
        register(&*store, &sample_record(id, &node)).await;
        assert!(
            store
                .remove_owing(id, "dead", SHORT)
                .await
                .expect("remove_owing")
                .is_some()
        );
    }
    let claims: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let ids = Arc::new(ids);
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (store, barrier, claims, ids) = (
            Arc::clone(&store),
            Arc::clone(&barrier),
            Arc::clone(&claims),
            Arc::clone(&ids),
        );
        tasks.spawn(async move {
            barrier.wait().await;
            let started = Instant::now();
            loop {
                let claimed = store
                    .claim_owed(&format!("claimer-{task}"), LONG, LIMIT)
                    .await
                    .expect("claim_owed");
                assert!(
                    claimed.len() <= LIMIT,
                    "claim_owed returned more than its limit"
                );
                let done = {
                    let mut claims = claims.lock().expect("claims lock");
                    claims.extend(
                        claimed
                            .into_iter()
                            .filter(|r| ids.contains(&r.connection_id))
                            .map(|r| (task, r.connection_id)),
                    );
                    claims.len() >= ENTRIES
                };
                if done || started.elapsed() > DEADLINE {
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("claimer panicked");
    }
    let claims = claims.lock().expect("claims lock").clone();
    let mut by_id: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (task, id) in &claims {
        by_id.entry(id).or_default().push(*task);
    }
    for (id, tasks) in &by_id {
        assert_eq!(
            tasks.len(),
            1,
            "entry {id} was claimed by several claimers: {tasks:?}"
        );
    }
    assert_eq!(by_id.len(), ENTRIES, "every expired entry must be claimed");
    for id in ids.iter() {
        store.settle(id).await.expect("settle");
    }
}

/// Lets a `SHORT` claim run out, so a claim that would wrongly succeed has its chance.
async fn wait_for_expiry() {
    tokio::time::sleep(SHORT * 20).await;
}
