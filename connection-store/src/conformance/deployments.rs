//! Conformance checks for [`DeploymentStore`]: deployments are immutable and bounded, pointers
//! change only by compare-and-set, heartbeats are listed and pruned. The store must be fresh
//! (no deployment, pointers at version 0): a memory store, or Redis under a new prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::{Canary, DeploymentStore, NodeServing, ServedStage, StagePointer, StoredDeployment};

fn deployment(id: &str, at: i64) -> StoredDeployment {
    StoredDeployment {
        info: crate::DeploymentInfo {
            id: id.into(),
            created_at_ms: at,
            description: format!("d {id}"),
            hash: "0123456789ab".into(),
        },
        definition: format!("{{\"api\":\"{id}\"}}"),
    }
}

/// Runs every check in order on a fresh store.
pub async fn run_all(store: Arc<dyn DeploymentStore>) {
    deployments_are_immutable_and_bounded(&*store).await;
    pointers_change_by_compare_and_set(Arc::clone(&store)).await;
    heartbeats_are_listed_and_pruned(&*store).await;
}

/// A stored deployment reads back whole, a second write of its id changes nothing, listings
/// are newest first, and only the newest `keep` (plus the protected) are kept.
pub async fn deployments_are_immutable_and_bounded(store: &dyn DeploymentStore) {
    let none = BTreeSet::new();
    let first = deployment("a-1", 1);
    store.put_deployment(&first, 3, &none).await.expect("put");
    assert_eq!(
        store.deployment("a-1").await.expect("get"),
        Some(first.clone())
    );
    let mut changed = first.clone();
    changed.definition = "{}".into();
    store
        .put_deployment(&changed, 3, &none)
        .await
        .expect("put again");
    assert_eq!(
        store.deployment("a-1").await.expect("get"),
        Some(first),
        "a deployment was overwritten"
    );
    let protect: BTreeSet<String> = ["a-1".to_string()].into();
    for (i, id) in ["b-2", "c-3", "d-4", "e-5"].iter().enumerate() {
        let at = i64::try_from(i).unwrap_or(0) + 2;
        store
            .put_deployment(&deployment(id, at), 3, &protect)
            .await
            .expect("put");
    }
    let ids: Vec<String> = (store.deployments().await.expect("list"))
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        ids,
        ["e-5", "d-4", "c-3", "a-1"],
        "newest 3 and the protected one"
    );
    assert_eq!(store.deployment("b-2").await.expect("get"), None);
}

/// Pointers start empty at version 0; a set with the right version lands and increments it,
/// a set with a stale one changes nothing; of racing setters on one version exactly one wins.
pub async fn pointers_change_by_compare_and_set(store: Arc<dyn DeploymentStore>) {
    let start = store.pointers().await.expect("pointers");
    assert_eq!(start.version, 0);
    assert!(start.stages.is_empty());
    let mut stages = BTreeMap::new();
    stages.insert(
        "prod".to_string(),
        StagePointer {
            deployment: "a-1".into(),
            canary: Some(Canary {
                deployment: "e-5".into(),
                percent: 12.5,
            }),
            history: vec!["c-3".into()],
        },
    );
    assert_eq!(store.set_pointers(0, &stages).await.expect("set"), Some(1));
    assert_eq!(
        store
            .set_pointers(0, &BTreeMap::new())
            .await
            .expect("stale"),
        None
    );
    let now = store.pointers().await.expect("pointers");
    assert_eq!(now.version, 1);
    assert_eq!(now.stages, stages);
    assert_eq!(store.pointers_version().await.expect("version"), 1);
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut mine = BTreeMap::new();
                mine.insert(
                    format!("s{i}"),
                    StagePointer {
                        deployment: "d-4".into(),
                        canary: None,
                        history: Vec::new(),
                    },
                );
                store.set_pointers(1, &mine).await.expect("set")
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        if racer.await.expect("task").is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one racer wins a version");
    let after = store.pointers().await.expect("pointers");
    assert_eq!(after.version, 2);
    assert_eq!(after.stages.len(), 1);
}

/// A heartbeat replaces the node's previous one; `nodes` lists the recent ones and drops
/// those older than the horizon.
pub async fn heartbeats_are_listed_and_pruned(store: &dyn DeploymentStore) {
    let beat = |node: &str, at: i64, version: u64| NodeServing {
        node_id: node.into(),
        at_ms: at,
        version,
        stages: [(
            "prod".to_string(),
            ServedStage {
                deployment: "a-1".into(),
                canary: None,
            },
        )]
        .into(),
        error: None,
    };
    store.heartbeat(&beat("n1", 100, 1)).await.expect("beat");
    store.heartbeat(&beat("n1", 200, 2)).await.expect("beat");
    store.heartbeat(&beat("n2", 50, 1)).await.expect("beat");
    let nodes = store.nodes(100).await.expect("nodes");
    assert_eq!(nodes, vec![beat("n1", 200, 2)]);
    let again = store.nodes(0).await.expect("nodes");
    assert_eq!(again.len(), 1, "the stale heartbeat was deleted: {again:?}");
}
