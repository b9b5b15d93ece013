//! The `recovery` scenario against in-process gateways on the Redis at 127.0.0.1:6379 (each
//! run under a store prefix and group names of its own): 50 clients drop together while posts
//! continue, reconnect with `recover=`, and every ledger must be exact, through one node and
//! through two (reconnecting to the other node). Nothing asserts a timing.

mod common;

use common::{bundled, start};
use wsgate::config::StoreConfig;
use wsgate::{Config, Gateway};
use wsgate_load::backend::{self, Backend};
use wsgate_load::scenario::recovery::{DropMode, RecoveryPlan, run};

fn unique() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{ns}", std::process::id())
}

/// A bundled recovery node config with the test's backend and store prefix.
fn node_config(file: &str, backend: &Backend, prefix: &str) -> Config {
    let mut config = bundled(file, backend);
    if let StoreConfig::Redis(redis) = &mut config.store {
        redis.prefix = prefix.to_owned();
    }
    config
}

fn plan(nodes: &[&Gateway], tag: &str) -> RecoveryPlan {
    RecoveryPlan {
        nodes: nodes
            .iter()
            .map(|g| format!("ws://{}/prod", g.local_addr()))
            .collect(),
        pids: Vec::new(),
        redis: "127.0.0.1:6379".parse().ok(),
        conns: 50,
        groups: 3,
        group_prefix: format!("rt{tag}-"),
        post_rate: 100.0,
        posters: 2,
        size: 64,
        inflight: 16,
        live_s: 1.0,
        drop: DropMode::Clients,
        away_ms: 500,
        reconnect_ms: 300,
        recover_timeout_s: 20.0,
        tail_s: 0.5,
        drain_s: 10.0,
        max_offsets: 100_000,
        connect_timeout_s: 10.0,
        src_ips: 4,
    }
}

/// Runs the plan and checks the verdict and the ledger.
async fn check(plan: RecoveryPlan) {
    let r = run(plan, false).await.expect("runs");
    let report = serde_json::to_string_pretty(&r).expect("report serializes");
    assert!(r.verdict.passed, "{report}");
    assert_eq!(r.clients["connected"], 50, "{report}");
    assert_eq!(r.clients["recovered"], 50, "{report}");
    assert_eq!(r.clients["caught_up"], 50, "{report}");
    assert_eq!(r.clients["exact"], 50, "{report}");
    assert!(r.ledger.exact(), "{report}");
    assert!(r.not_recovered.is_empty(), "{report}");
    // Posts continued while the clients were away: something was replayed.
    assert!(r.recovery.replayed > 0, "{report}");
    assert_eq!(r.recovery.recovered.count, 50);
    assert!(r.summary["posts_ok"] > 0.0);
    let redis = r.redis.expect("Redis cost figures");
    assert!(redis.recovery.delta.commands > 0, "{report}");
    // A client received every offset of its group from its first to the last acknowledged.
    let received: u64 = r.ledger.received;
    assert!(received >= r.recovery.replayed, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_recover_exactly_through_one_node() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("backend starts");
    let tag = unique();
    let prefix = format!("wsgate-load-recovery-{tag}");
    let a = start(node_config("wsgate-recovery-a.yaml", &backend, &prefix)).await;
    check(plan(&[&a], &tag)).await;
    a.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_recover_exactly_through_the_other_node() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("backend starts");
    let tag = unique();
    let prefix = format!("wsgate-load-recovery-{tag}");
    let a = start(node_config("wsgate-recovery-a.yaml", &backend, &prefix)).await;
    let b = start(node_config("wsgate-recovery-b.yaml", &backend, &prefix)).await;
    check(plan(&[&a, &b], &tag)).await;
    a.shutdown().await;
    b.shutdown().await;
    backend.shutdown().await;
}

#[test]
fn node_drop_needs_two_nodes_and_a_pid() {
    let mut p = RecoveryPlan {
        nodes: vec!["ws://127.0.0.1:1/prod".into()],
        drop: DropMode::Node,
        ..plan(&[], "x")
    };
    assert!(p.validate().is_err());
    p.nodes.push("ws://127.0.0.1:2/prod".into());
    assert!(p.validate().is_err());
    p.pids.push(1);
    assert!(p.validate().is_ok());
    p.group_prefix = "bad prefix".into();
    assert!(p.validate().is_err());
}
