//! Runs the conformance suite against `RedisStore` on the Redis at `WSGATE_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`), plus Redis-only behaviour: TTLs, index pruning, corrupt
//! values, script-cache loss, and a real outage on a private `redis-server`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{POLL_INTERVAL, RedisServer, TestStore};
use wsgate_connection_store::conformance::{self, sample_record};
use wsgate_connection_store::{ConnectionStore, RedisStore, RedisStoreOptions, StoreError};

/// Generous bound used only to turn a hang into a test failure.
const NO_HANG: Duration = Duration::from_secs(30);

async fn pttl(test: &TestStore, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut test.raw().await)
        .await
        .expect("PTTL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_passes_conformance_and_leaves_no_keys() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    conformance::run_all(Arc::new(test.store.clone())).await;
    assert_eq!(test.keys().await, Vec::<String>::new(), "keys left behind");
}

#[tokio::test]
async fn record_ttl_is_set_on_register_and_refreshed_by_touch() {
    let ttl = Duration::from_secs(60);
    let options = RedisStoreOptions {
        record_ttl: Some(ttl),
        ..Default::default()
    };
    let test = TestStore::new(options).await;
    let record = sample_record("ttl", "node");
    test.store.register(&record).await.expect("register");
    let key = test.record_key("ttl");
    let after_register = pttl(&test, &key).await;
    assert!(
        after_register > 0 && after_register <= 60_000,
        "PTTL {after_register}"
    );
    assert_eq!(
        pttl(&test, &test.node_key("node")).await,
        -1,
        "index sets carry no TTL"
    );

    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(5_000)
        .query_async(&mut test.raw().await)
        .await
        .expect("PEXPIRE");
    // A touch that does not move the timestamp still refreshes the TTL.
    test.store
        .touch(&[("ttl".to_owned(), record.last_active_at_ms)])
        .await
        .expect("touch");
    assert!(
        pttl(&test, &key).await > 5_000,
        "touch must refresh the TTL"
    );
}

#[tokio::test]
async fn without_record_ttl_records_do_not_expire() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    test.store
        .register(&sample_record("forever", "node"))
        .await
        .expect("register");
    assert_eq!(pttl(&test, &test.record_key("forever")).await, -1);
}

#[tokio::test]
async fn list_node_prunes_ids_whose_record_is_gone() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    for id in ["kept", "expired"] {
        test.store
            .register(&sample_record(id, "node"))
            .await
            .expect("register");
    }
    // What an expired TTL looks like: the record is gone, its index entry is not.
    let mut raw = test.raw().await;
    let _: () = redis::cmd("DEL")
        .arg(test.record_key("expired"))
        .query_async(&mut raw)
        .await
        .expect("DEL");
    let page = test.store.list_node("node", None, 10).await.expect("list");
    assert_eq!(page.ids, ["kept"]);
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(test.node_key("node"))
        .query_async(&mut raw)
        .await
        .expect("SMEMBERS");
    assert_eq!(members, ["kept"], "stale id must be pruned from the index");
}

#[tokio::test]
async fn remove_owing_without_a_record_leaves_no_hint_but_keeps_anothers() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    let claim = Duration::from_secs(60);
    // Nothing to remove: no entry, and no hint waiting a whole claim period to be dropped.
    let none = test.store.remove_owing("never", "node", claim).await;
    assert!(none.expect("remove_owing").is_none());
    assert_eq!(test.keys().await, Vec::<String>::new(), "hint left behind");

    // A reaper removed the record (its entry is owed); the owner comes late (it was frozen).
    test.store
        .register(&sample_record("c", "node"))
        .await
        .expect("register");
    let reaped = test.store.remove_owing("c", "reaper", claim).await;
    assert!(reaped.expect("remove_owing").is_some());
    let late = test.store.remove_owing("c", "node", claim).await;
    assert!(late.expect("remove_owing").is_none());
    let hinted: Option<f64> = redis::cmd("ZSCORE")
        .arg(format!("{{{}}}:owed", test.prefix))
        .arg("c")
        .query_async(&mut test.raw().await)
        .await
        .expect("ZSCORE");
    assert!(hinted.is_some(), "the reaper's entry keeps its hint");
    test.store.settle("c").await.expect("settle");
    assert_eq!(test.keys().await, Vec::<String>::new(), "keys left behind");
}

#[tokio::test]
async fn corrupt_values_are_reported_not_panicked_on() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    let _: () = redis::cmd("SET")
        .arg(test.record_key("bad"))
        .arg("not a record")
        .query_async(&mut test.raw().await)
        .await
        .expect("SET");
    let is_corrupt = |r: Result<Option<_>, StoreError>| matches!(r, Err(StoreError::Corrupt { ref id, .. }) if id == "bad");
    assert!(is_corrupt(test.store.get("bad").await), "get");
    test.store
        .touch(&[("bad".to_owned(), 1)])
        .await
        .expect("touch skips a corrupt record");
    assert!(is_corrupt(test.store.remove("bad").await), "remove");
    assert_eq!(
        test.store.get("bad").await.expect("get"),
        None,
        "removed anyway"
    );
}

#[tokio::test]
async fn touch_reloads_its_script_after_the_cache_is_flushed() {
    // A private server: flushing the script cache of the shared one would disturb other users.
    let server = RedisServer::start().await;
    let store = RedisStore::connect(&server.url(), "flush")
        .await
        .expect("connect");
    let record = sample_record("c1", "node");
    store.register(&record).await.expect("register");
    let mut raw = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    for step in 1..=2 {
        let later = record.last_active_at_ms + step;
        store
            .touch(&[("c1".to_owned(), later)])
            .await
            .expect("touch");
        let stored = store.get("c1").await.expect("get").expect("record");
        assert_eq!(stored.last_active_at_ms, later, "step {step}");
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut raw)
            .await
            .expect("SCRIPT FLUSH");
    }
}

#[tokio::test]
async fn foreign_cursor_is_rejected() {
    let test = TestStore::new(RedisStoreOptions::default()).await;
    let result = test.store.list_node("node", Some("x".into()), 10).await;
    assert!(matches!(result, Err(StoreError::InvalidCursor { cursor }) if cursor == "x"));
}

#[tokio::test]
async fn connect_to_a_dead_address_fails() {
    let url = format!("redis://127.0.0.1:{}", support::free_port());
    let options = RedisStoreOptions {
        timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let result = tokio::time::timeout(NO_HANG, RedisStore::connect_with(&url, "p", options))
        .await
        .expect("connect hung");
    let error = result.expect_err("connect to a dead address must fail");
    assert!(error.is_transient(), "{error:?}");
}

#[tokio::test]
async fn outage_fails_fast_and_store_recovers_after_restart() {
    let mut server = RedisServer::start().await;
    let options = RedisStoreOptions {
        timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let store = RedisStore::connect_with(&server.url(), "outage", options)
        .await
        .expect("connect");
    let record = sample_record("c1", "node");
    store.register(&record).await.expect("register while up");

    server.kill();
    let get = tokio::time::timeout(NO_HANG, store.get("c1")).await;
    let get = get.expect("get hung during the outage");
    assert!(matches!(&get, Err(e) if e.is_transient()), "get: {get:?}");
    let register = tokio::time::timeout(NO_HANG, store.register(&record)).await;
    let register = register.expect("register hung during the outage");
    assert!(
        matches!(&register, Err(e) if e.is_transient()),
        "register: {register:?}"
    );
    let health = tokio::time::timeout(NO_HANG, store.health()).await;
    assert!(
        health.expect("health hung").is_err(),
        "health during the outage"
    );

    server.restart().await;
    let deadline = tokio::time::Instant::now() + NO_HANG;
    while store.health().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "store did not recover"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    // The restarted server lost its data (no persistence); the store works again.
    assert_eq!(store.get("c1").await.expect("get after recovery"), None);
    store
        .register(&record)
        .await
        .expect("register after recovery");
    assert_eq!(store.get("c1").await.expect("get"), Some(record));
}
