//! Conformance checks for [`HistoryStore`]: offsets that start at 1 and grow by one, one epoch
//! while the history lives, paging after an offset, and trimming by count and age. Every check
//! uses a fresh stage name.

use std::sync::Arc;
use std::time::Duration;

use super::unique_suffix;
use crate::{HistoryStore, Retention};

fn stage(check: &str) -> String {
    format!("st-{check}-{}", unique_suffix())
}

fn keep(max_messages: u64) -> Retention {
    Retention {
        max_messages,
        max_bytes: 1 << 20,
        max_age: None,
    }
}

/// Runs every history check.
pub async fn run_all(store: Arc<dyn HistoryStore>) {
    offsets_grow_in_one_epoch(&*store).await;
    pages_follow_the_offset(&*store).await;
    count_trims_the_oldest(&*store).await;
    age_trims_the_old(&*store).await;
}

async fn offsets_grow_in_one_epoch(store: &dyn HistoryStore) {
    let stage = stage("offsets");
    let retention = keep(10);
    let empty = store
        .read(&stage, "g", 0, 10, &retention)
        .await
        .expect("read");
    assert_eq!((empty.latest, empty.earliest), (0, 1), "an empty history");
    assert!(empty.entries.is_empty());
    let mut epoch = empty.epoch.clone();
    assert!(!epoch.is_empty(), "an epoch from the start");
    for n in 1..=3u64 {
        let appended = store
            .append(&stage, "g", format!("m{n}").as_bytes(), &retention, None)
            .await
            .expect("append");
        assert_eq!(
            appended.position.offset, n,
            "offsets start at 1 and grow by one"
        );
        assert_eq!(
            appended.position.epoch, epoch,
            "one epoch while history lives"
        );
        epoch = appended.position.epoch;
    }
    // Another group of the same stage has its own offsets.
    let other = store
        .append(&stage, "h", b"x", &retention, None)
        .await
        .expect("append");
    assert_eq!(other.position.offset, 1);
}

async fn pages_follow_the_offset(store: &dyn HistoryStore) {
    let stage = stage("pages");
    let retention = keep(100);
    for n in 1..=7u64 {
        store
            .append(&stage, "g", &n.to_be_bytes(), &retention, None)
            .await
            .expect("append");
    }
    let page = store
        .read(&stage, "g", 2, 3, &retention)
        .await
        .expect("read");
    let offsets: Vec<u64> = page.entries.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [3, 4, 5], "after 2, at most 3");
    assert_eq!(page.entries[0].payload, 3u64.to_be_bytes().to_vec());
    assert!(page.entries[0].at_ms > 0, "a timestamp");
    assert_eq!((page.earliest, page.latest), (1, 7));
    let rest = store
        .read(&stage, "g", 5, 10, &retention)
        .await
        .expect("read");
    assert_eq!(rest.entries.len(), 2);
    let none = store
        .read(&stage, "g", 7, 10, &retention)
        .await
        .expect("read");
    assert!(none.entries.is_empty());
}

async fn count_trims_the_oldest(store: &dyn HistoryStore) {
    let stage = stage("count");
    let retention = keep(3);
    for n in 1..=10u64 {
        store
            .append(
                &stage,
                "g",
                &[u8::try_from(n).unwrap_or(0)],
                &retention,
                None,
            )
            .await
            .expect("append");
    }
    let page = store
        .read(&stage, "g", 0, 100, &retention)
        .await
        .expect("read");
    let offsets: Vec<u64> = page.entries.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [8, 9, 10], "the newest 3 are kept");
    assert_eq!((page.earliest, page.latest), (8, 10));
}

async fn age_trims_the_old(store: &dyn HistoryStore) {
    let stage = stage("age");
    let retention = Retention {
        max_age: Some(Duration::from_millis(300)),
        ..keep(100)
    };
    store
        .append(&stage, "g", b"old", &retention, None)
        .await
        .expect("append");
    // Real time: both stores read the clock (Redis its own).
    tokio::time::sleep(Duration::from_millis(600)).await;
    store
        .append(&stage, "g", b"new", &retention, None)
        .await
        .expect("append");
    let page = store
        .read(&stage, "g", 0, 100, &retention)
        .await
        .expect("read");
    let offsets: Vec<u64> = page.entries.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [2], "the message older than max_age is gone");
    assert_eq!((page.earliest, page.latest), (2, 2));
}
