//! Runs the history conformance checks against `MemoryStore` and against `RedisStore` on the
//! Redis at `WSGATE_TEST_REDIS_URL`, and checks the Redis side: hash-tagged keys, the announce
//! published in the same step, and a new epoch after the data is lost.

mod support;

use std::sync::Arc;

use futures_util::StreamExt;
use support::TestStore;
use wsgate_connection_store::conformance::history;
use wsgate_connection_store::{
    Announce, HistoryStore, MemoryStore, RedisStoreOptions, Retention, announcement,
};

fn keep(max_messages: u64) -> Retention {
    Retention {
        max_messages,
        max_bytes: 1 << 20,
        max_age: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_history_conformance() {
    history::run_all(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_history_conformance() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    history::run_all(Arc::new(test.store.clone())).await;
}

#[tokio::test]
async fn memory_history_is_bounded_in_bytes() {
    let store = MemoryStore::new();
    let retention = Retention {
        max_bytes: 10,
        ..keep(100)
    };
    for _ in 0..5 {
        store
            .append("prod", "g", b"four", &retention, None)
            .await
            .expect("append");
    }
    let page = store
        .read("prod", "g", 0, 100, &retention)
        .await
        .expect("read");
    let offsets: Vec<u64> = page.entries.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [4, 5], "8 bytes kept of 20");
}

#[tokio::test]
async fn redis_appends_publish_the_position_and_a_lost_counter_is_a_new_epoch() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    let p = &test.prefix;
    let channel = format!("{p}:grp:{{prod:room:1}}");
    let client = redis::Client::open(test.url.as_str()).expect("url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe(&channel).await.expect("subscribe");
    let announce = Announce {
        channel: &channel,
        head: b"HEAD",
    };
    let retention = keep(10);
    let first = test
        .store
        .append("prod", "room:1", b"hello", &retention, Some(announce))
        .await
        .expect("append");
    assert_eq!(first.receivers, Some(1));
    assert_eq!(first.position.offset, 1);
    let message = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        pubsub.on_message().next(),
    )
    .await
    .expect("published")
    .expect("a message");
    let payload: Vec<u8> = message.get_payload().expect("bytes");
    assert_eq!(payload, announcement(b"HEAD", &first.position, b"hello"));

    let mut raw = test.raw().await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{p}:*"))
        .query_async(&mut raw)
        .await
        .expect("keys");
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("{p}:hist:{{prod:room:1}}"),
            format!("{p}:hpos:{{prod:room:1}}")
        ],
        "both keys carry the group's hash tag"
    );

    // The counter is lost (as after a FLUSHALL): a new epoch, offsets from 1, no old entries.
    let _: () = redis::cmd("DEL")
        .arg(format!("{p}:hpos:{{prod:room:1}}"))
        .query_async(&mut raw)
        .await
        .expect("del");
    let second = test
        .store
        .append("prod", "room:1", b"again", &retention, None)
        .await
        .expect("append");
    assert_ne!(second.position.epoch, first.position.epoch);
    assert_eq!(second.position.offset, 1);
    let page = test
        .store
        .read("prod", "room:1", 0, 10, &retention)
        .await
        .expect("read");
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].payload, b"again");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut raw)
        .await
        .expect("del");
}
