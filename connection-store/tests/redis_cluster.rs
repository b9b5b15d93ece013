//! Runs the conformance suites (records, groups and history) and the lease checks against `RedisStore` on a private
//! three-master Redis Cluster started from `redis-server --cluster-enabled yes`.

use std::sync::Arc;
use std::time::Duration;

use wsgate_connection_store::conformance::servers::RedisCluster;
use wsgate_connection_store::conformance::{self, sample_record, unique_suffix};
use wsgate_connection_store::{
    ConnectionStore, LeaseClaim, LeaseRenewal, RedisStore, RedisStoreOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_on_a_cluster_passes_conformance_and_leases_work() {
    let cluster = RedisCluster::start().await;
    let prefix = format!("wsgate-test-{}", unique_suffix());
    let store = RedisStore::connect_cluster_with(
        &cluster.urls(),
        &prefix,
        RedisStoreOptions {
            record_ttl: Some(Duration::from_secs(600)),
            ..Default::default()
        },
    )
    .await
    .expect("connect to the cluster");
    conformance::run_all(Arc::new(store.clone())).await;
    // Group keys live in many slots; join, leave and forget pipelines span them.
    conformance::groups::run_all(Arc::new(store.clone())).await;
    // History keys and the append script stay on each group's slot.
    conformance::history::run_all(Arc::new(store.clone())).await;

    // Records of many ids land on every master; touch and list_node span slots.
    let ids: Vec<String> = (0..50).map(|i| format!("spread-{i}")).collect();
    for id in &ids {
        store
            .register(&sample_record(id, "n1"))
            .await
            .expect("register");
    }
    let updates: Vec<(String, i64)> = ids.iter().map(|id| (id.clone(), i64::MAX / 2)).collect();
    store.touch(&updates).await.expect("touch across slots");
    let listed = conformance::collect_node_ids(&store, "n1", 7).await;
    assert_eq!(listed.len(), ids.len());
    for id in &ids {
        let record = store.get(id).await.expect("get").expect("record");
        assert_eq!(record.last_active_at_ms, i64::MAX / 2);
        assert!(store.remove(id).await.expect("remove").is_some());
    }

    // The lease scripts touch several hash-tagged keys: they must run on one slot.
    let ttl = Duration::from_secs(5);
    store.acquire_lease("n1", "t1", ttl).await.expect("acquire");
    assert_eq!(
        store.renew_lease("n1", "t1", ttl).await.expect("renew"),
        LeaseRenewal::Held
    );
    assert_eq!(
        store.claim_dead("n1", ttl).await.expect("claim"),
        LeaseClaim::Alive
    );
    assert_eq!(store.lease_nodes().await.expect("nodes"), ["n1"]);
    store.release_lease("n1", "t1").await.expect("release");
    assert!(!store.lease_alive("n1").await.expect("alive"));
    assert!(store.lease_nodes().await.expect("nodes").is_empty());
}
