//! The fanout scenario against the raw server (in-process, port 0): every member joins the group
//! and gets every message; one and two worker processes' shares add up.

mod common;

use common::{config, raw_server, target};
use wsgate_load::run::execute;
use wsgate_load::scenario::Plan;
use wsgate_load::scenario::fanout::FanoutPlan;

fn plan(conns: u64, messages: u64) -> Plan {
    Plan::Fanout(FanoutPlan {
        conns,
        inflight: 8,
        group: "bench".into(),
        messages,
        interval_ms: 5.0,
        size: 64,
        join_concurrency: 4,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_gets_every_message() {
    let server = raw_server().await;
    let out = execute(config(plan(30, 6), vec![target("raw", &server)]))
        .await
        .expect("fanout runs");
    let t = &out.report.targets[0];
    assert_eq!(t.counters["members"], 30);
    assert_eq!(t.counters["delivered"], 180);
    assert_eq!(t.counters["lost"], 0);
    assert_eq!(t.counters["posts_ok"], 6);
    assert_eq!(t.counters["posts_failed"], 0);
    assert_eq!(t.latency["delivery"].count, 180);
    assert_eq!(t.latency["http"].count, 6);
    assert!(t.summary["deliveries_per_sec"] > 0.0);
    assert!(t.summary.contains_key("fanout_max_ms"));
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(server.stats().pushed, 180);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_share_the_members() {
    let server = raw_server().await;
    let mut cfg = config(plan(20, 3), vec![target("raw", &server)]);
    cfg.workers = 2;
    cfg.exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_wsgate-load"));
    let out = execute(cfg).await.expect("fanout runs");
    let t = &out.report.targets[0];
    assert_eq!(t.counters["members"], 20);
    assert_eq!(t.counters["delivered"], 60);
    assert_eq!(t.counters["posts_ok"], 3, "one poster only");
    server.shutdown().await;
}
