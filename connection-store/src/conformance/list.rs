//! Conformance checks for `list_node` paging.

use std::collections::BTreeSet;

use super::{fresh, register, sample_record};
use crate::ConnectionStore;

/// Upper bound on pages per iteration, so a store whose cursor never ends fails instead of
/// hanging.
const MAX_PAGES: usize = 10_000;

/// Every id `list_node` yields for `node_id`, paging with `limit` until `next_cursor` is `None`.
pub async fn collect_node_ids(
    store: &dyn ConnectionStore,
    node_id: &str,
    limit: usize,
) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = store
            .list_node(node_id, cursor, limit)
            .await
            .expect("list_node failed");
        ids.extend(page.ids);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
    panic!("list_node({node_id}) did not finish within {MAX_PAGES} pages");
}

/// Paging with small limits yields exactly the node's ids: none missing, none of another
/// node's, none removed.
pub async fn list_node_pages_exactly_the_nodes_ids(store: &dyn ConnectionStore) {
    let (prefix, node_a) = fresh("list");
    let node_b = format!("{node_a}-b");
    let mut expected = BTreeSet::new();
    for i in 0..7 {
        let id = format!("{prefix}-a{i}");
        register(store, &sample_record(&id, &node_a)).await;
        expected.insert(id);
    }
    let others: Vec<String> = (0..3).map(|i| format!("{prefix}-b{i}")).collect();
    for id in &others {
        register(store, &sample_record(id, &node_b)).await;
    }

    for limit in [1, 2, 3, 100] {
        assert_eq!(
            collect_node_ids(store, &node_a, limit).await,
            expected,
            "limit {limit}"
        );
    }
    let gone: Vec<String> = expected.iter().take(2).cloned().collect();
    for id in &gone {
        assert!(store.remove(id).await.expect("remove").is_some());
        expected.remove(id);
    }
    assert_eq!(
        collect_node_ids(store, &node_a, 2).await,
        expected,
        "after remove"
    );
    assert_eq!(
        collect_node_ids(store, &node_b, 2).await,
        others.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert!(
        collect_node_ids(store, &format!("{node_a}-empty"), 2)
            .await
            .is_empty()
    );

    for id in expected.iter().chain(&others) {
        store.remove(id).await.expect("cleanup");
    }
}

/// A node with a few hundred records pages completely with a small limit (large enough that
/// Redis stores the set as a hash table, where `SSCAN` really pages).
pub async fn list_node_large_node(store: &dyn ConnectionStore) {
    let (prefix, node) = fresh("large");
    let expected: BTreeSet<String> = (0..300).map(|i| format!("{prefix}-{i}")).collect();
    for id in &expected {
        register(store, &sample_record(id, &node)).await;
    }
    assert_eq!(collect_node_ids(store, &node, 16).await, expected);
    for id in &expected {
        store.remove(id).await.expect("cleanup");
    }
    assert!(
        collect_node_ids(store, &node, 16).await.is_empty(),
        "after removing all"
    );
}

/// Records added and removed between pages do not hide the records present throughout, and
/// nothing foreign shows up.
pub async fn list_node_survives_churn(store: &dyn ConnectionStore) {
    let (prefix, node) = fresh("churn");
    let stable: BTreeSet<String> = (0..6).map(|i| format!("{prefix}-s{i}")).collect();
    let doomed: Vec<String> = (0..6).map(|i| format!("{prefix}-d{i}")).collect();
    for id in stable.iter().chain(&doomed) {
        register(store, &sample_record(id, &node)).await;
    }

    let mut seen = BTreeSet::new();
    let mut added = Vec::new();
    let mut cursor = None;
    for page_no in 0..MAX_PAGES {
        let page = store
            .list_node(&node, cursor, 2)
            .await
            .expect("list_node failed");
        seen.extend(page.ids);
        // Churn between pages: drop one doomed record, add a new one.
        if let Some(id) = doomed.get(page_no) {
            store.remove(id).await.expect("remove");
        }
        let new_id = format!("{prefix}-n{page_no}");
        register(store, &sample_record(&new_id, &node)).await;
        added.push(new_id);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(
        seen.is_superset(&stable),
        "missing stable ids: {:?}",
        stable.difference(&seen)
    );
    let possible: BTreeSet<&String> = stable.iter().chain(&doomed).chain(&added).collect();
    assert!(
        seen.iter().all(|id| possible.contains(id)),
        "foreign id listed"
    );

    for id in stable.iter().chain(&doomed).chain(&added) {
        store.remove(id).await.expect("cleanup");
    }
}
