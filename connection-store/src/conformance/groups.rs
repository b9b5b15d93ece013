//! Conformance checks for [`GroupStore`]: joins and leaves with sizes, `forget`, listings that
//! page completely, and concurrent joins. Every check uses a fresh stage name.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::unique_suffix;
use crate::{GroupStore, Membership, Page};

/// Upper bound on pages per listing, so a cursor that never ends fails instead of hanging.
const MAX_PAGES: usize = 10_000;

/// Runs every group check.
pub async fn run_all(store: Arc<dyn GroupStore>) {
    join_and_leave_report_sizes(&*store).await;
    forget_leaves_every_group(&*store).await;
    members_page_completely(&*store).await;
    stage_connections_page_completely(&*store).await;
    concurrent_joins_count_once(Arc::clone(&store)).await;
}

fn stage(check: &str) -> String {
    format!("st-{check}-{}", unique_suffix())
}

/// Every id of a listing, paging with `limit` until `next_cursor` is `None`.
pub async fn collect<F, Fut>(limit: usize, mut next: F) -> BTreeSet<String>
where
    F: FnMut(Option<String>, usize) -> Fut,
    Fut: Future<Output = Page>,
{
    let mut ids = BTreeSet::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = next(cursor, limit).await;
        ids.extend(page.ids);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return ids,
        }
    }
    panic!("listing did not finish within {MAX_PAGES} pages");
}

async fn members(store: &dyn GroupStore, stage: &str, group: &str) -> BTreeSet<String> {
    collect(3, |cursor, limit| async move {
        store
            .group_members(stage, group, cursor, limit)
            .await
            .expect("group_members failed")
    })
    .await
}

/// Join answers whether it changed anything and the size after; leave likewise; groups of
/// different stages with the same name are distinct.
pub async fn join_and_leave_report_sizes(store: &dyn GroupStore) {
    let s = stage("join");
    let other = format!("{s}-other");
    let join = |id: &'static str| store.join(&s, "room", id);
    assert_eq!(
        join("a").await.expect("join"),
        Membership {
            changed: true,
            size: 1
        }
    );
    assert_eq!(
        join("b").await.expect("join"),
        Membership {
            changed: true,
            size: 2
        }
    );
    assert_eq!(
        join("a").await.expect("join"),
        Membership {
            changed: false,
            size: 2
        },
        "a second join changes nothing"
    );
    store.join(&other, "room", "c").await.expect("join");
    assert_eq!(store.group_size(&s, "room").await.expect("size"), 2);
    assert_eq!(store.group_size(&other, "room").await.expect("size"), 1);
    assert_eq!(store.group_size(&s, "empty").await.expect("size"), 0);
    assert_eq!(
        members(store, &s, "room").await,
        BTreeSet::from(["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(
        store.connection_groups(&s, "a").await.expect("groups"),
        ["room"]
    );
    assert_eq!(
        store.leave(&s, "room", "a").await.expect("leave"),
        Membership {
            changed: true,
            size: 1
        }
    );
    assert_eq!(
        store.leave(&s, "room", "a").await.expect("leave"),
        Membership {
            changed: false,
            size: 1
        },
        "a second leave changes nothing"
    );
    assert!(
        store
            .connection_groups(&s, "a")
            .await
            .expect("groups")
            .is_empty()
    );
    store.forget(&s, "b").await.expect("cleanup");
    store.forget(&other, "c").await.expect("cleanup");
    assert_eq!(store.group_size(&s, "room").await.expect("size"), 0);
}

/// `forget` leaves every group (answering each with its size after) and the stage listing.
pub async fn forget_leaves_every_group(store: &dyn GroupStore) {
    let s = stage("forget");
    store.add_connection(&s, "x").await.expect("add");
    store.add_connection(&s, "y").await.expect("add");
    for group in ["g1", "g2", "g3"] {
        store.join(&s, group, "x").await.expect("join");
    }
    store.join(&s, "g2", "y").await.expect("join");
    let left = store.forget(&s, "x").await.expect("forget");
    assert_eq!(
        left,
        [
            ("g1".to_owned(), 0),
            ("g2".to_owned(), 1),
            ("g3".to_owned(), 0)
        ]
    );
    assert_eq!(store.stage_size(&s).await.expect("size"), 1);
    assert!(
        store
            .connection_groups(&s, "x")
            .await
            .expect("groups")
            .is_empty()
    );
    assert!(
        store.forget(&s, "x").await.expect("forget").is_empty(),
        "a second forget finds nothing"
    );
    assert_eq!(
        store.forget(&s, "y").await.expect("forget"),
        [("g2".to_owned(), 0)]
    );
    assert_eq!(store.stage_size(&s).await.expect("size"), 0);
}

/// 250 members listed 7 at a time: every one, nothing else.
pub async fn members_page_completely(store: &dyn GroupStore) {
    let s = stage("page");
    let expected: BTreeSet<String> = (0..250).map(|i| format!("m{i:03}")).collect();
    for id in &expected {
        store.join(&s, "big", id).await.expect("join");
    }
    store.join(&s, "small", "other").await.expect("join");
    let got = collect(7, |cursor, limit| {
        let s = &s;
        async move {
            store
                .group_members(s, "big", cursor, limit)
                .await
                .expect("group_members failed")
        }
    })
    .await;
    assert_eq!(got, expected);
    assert_eq!(store.group_size(&s, "big").await.expect("size"), 250);
    for id in expected.iter().chain(std::iter::once(&"other".to_owned())) {
        store.forget(&s, id).await.expect("cleanup");
    }
}

/// The stage listing holds exactly the stage's connections.
pub async fn stage_connections_page_completely(store: &dyn GroupStore) {
    let s = stage("conns");
    let other = format!("{s}-other");
    let expected: BTreeSet<String> = (0..40).map(|i| format!("c{i}")).collect();
    for id in &expected {
        store.add_connection(&s, id).await.expect("add");
    }
    store
        .add_connection(&other, "elsewhere")
        .await
        .expect("add");
    let got = collect(6, |cursor, limit| {
        let s = &s;
        async move {
            store
                .stage_connections(s, cursor, limit)
                .await
                .expect("stage_connections failed")
        }
    })
    .await;
    assert_eq!(got, expected);
    assert_eq!(store.stage_size(&s).await.expect("size"), 40);
    for id in &expected {
        store.forget(&s, id).await.expect("cleanup");
    }
    store.forget(&other, "elsewhere").await.expect("cleanup");
    assert_eq!(store.stage_size(&s).await.expect("size"), 0);
}

/// 16 tasks join the same 8 connections at once: each counted once, sizes never skip.
pub async fn concurrent_joins_count_once(store: Arc<dyn GroupStore>) {
    let s = Arc::new(stage("race"));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16 {
        let (store, s) = (Arc::clone(&store), Arc::clone(&s));
        tasks.spawn(async move {
            let id = format!("r{}", t % 8);
            store.join(&s, "hot", &id).await.expect("join").changed
        });
    }
    let mut changed = 0;
    while let Some(joined) = tasks.join_next().await {
        changed += usize::from(joined.expect("join task panicked"));
    }
    assert_eq!(changed, 8, "each id added exactly once");
    assert_eq!(store.group_size(&s, "hot").await.expect("size"), 8);
    for i in 0..8 {
        store.forget(&s, &format!("r{i}")).await.expect("cleanup");
    }
}
