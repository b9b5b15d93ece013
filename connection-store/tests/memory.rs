//! Runs the conformance suite against `MemoryStore`, plus its exact paging contract.

use std::sync::Arc;

use wsgate_connection_store::conformance::{self, sample_record};
use wsgate_connection_store::{ConnectionStore, MemoryStore, Page};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_conformance() {
    conformance::run_all(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn memory_pages_are_sorted_exact_and_resume_after_the_cursor() {
    let store = MemoryStore::new();
    for id in ["c", "a", "e", "b", "d"] {
        store
            .register(&sample_record(id, "n"))
            .await
            .expect("register");
    }
    let page = |ids: &[&str], next: Option<&str>| Page {
        ids: ids.iter().map(|s| s.to_string()).collect(),
        next_cursor: next.map(str::to_owned),
    };
    let first = store.list_node("n", None, 2).await.expect("list");
    assert_eq!(first, page(&["a", "b"], Some("b")));
    // "b" disappears and "bb" arrives between pages: resumes strictly after the cursor.
    store.remove("b").await.expect("remove");
    store
        .register(&sample_record("bb", "n"))
        .await
        .expect("register");
    let second = store
        .list_node("n", first.next_cursor, 2)
        .await
        .expect("list");
    assert_eq!(second, page(&["bb", "c"], Some("c")));
    let third = store
        .list_node("n", second.next_cursor, 2)
        .await
        .expect("list");
    assert_eq!(third, page(&["d", "e"], None));
    assert_eq!(
        store.list_node("n", None, 0).await.expect("list").ids,
        ["a"]
    );
}
