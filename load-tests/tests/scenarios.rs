//! Scenario wiring against the raw server, started in-process on port 0. Every run is
//! bounded by a count far below its time limit, so nothing here depends on timing.

mod common;

use common::{config, raw_server, target};
use wsgate_load::run::execute;
use wsgate_load::scenario::ready::ReadyPlan;
use wsgate_load::scenario::{CloseMode, IdlePlan, Plan, PushPlan, StormPlan, UpstreamPlan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_opens_and_holds_twenty_connections() {
    let server = raw_server().await;
    let plan = Plan::Idle(IdlePlan {
        conns: 20,
        rate: 0.0,
        inflight: 8,
        hold_s: 0.0,
        whoami: true,
        groups: 0,
        close_rate: 0.0,
    });
    let out = execute(config(plan, vec![target("raw", &server)]))
        .await
        .expect("idle runs");
    let t = &out.report.targets[0];
    assert_eq!(t.counters["opened"], 20);
    assert_eq!(t.counters["dropped_while_held"], 0);
    assert_eq!(t.summary["conns_open"], 20.0);
    assert_eq!(t.summary["connect_errors"], 0.0);
    assert_eq!(t.latency["handshake"].count, 20);
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(server.stats().accepted, 20);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_paced_reports_schedule_lag() {
    let server = raw_server().await;
    let plan = Plan::Idle(IdlePlan {
        conns: 10,
        rate: 1000.0,
        inflight: 4,
        hold_s: 0.0,
        whoami: false,
        groups: 0,
        close_rate: 0.0,
    });
    let out = execute(config(plan, vec![target("raw", &server)]))
        .await
        .expect("idle runs");
    let t = &out.report.targets[0];
    assert_eq!(t.counters["opened"], 10);
    assert_eq!(t.loop_mode, "open");
    assert!(t.summary.contains_key("max_start_lag_ms"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_delivers_every_post() {
    let server = raw_server().await;
    let plan = Plan::Push(PushPlan {
        conns: 5,
        inflight: 5,
        posters: 2,
        rate: 0.0,
        size: 64,
        count: 12,
        warmup_s: 0.0,
        duration_s: 60.0,
    });
    let out = execute(config(plan, vec![target("raw", &server)]))
        .await
        .expect("push runs");
    let t = &out.report.targets[0];
    assert_eq!(t.counters["posts_ok"], 12);
    assert_eq!(t.counters["delivered"], 12);
    assert_eq!(t.counters["lost"], 0);
    assert_eq!(t.counters["posts_failed"], 0);
    assert_eq!(t.counters["posts_gone"], 0);
    assert_eq!(t.latency["http"].count, 12);
    assert!(t.latency.get("delivery").map_or(0, |l| l.count) <= 12);
    assert_eq!(server.stats().pushed, 12);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_paced_uses_the_open_loop() {
    let server = raw_server().await;
    let plan = Plan::Push(PushPlan {
        conns: 3,
        inflight: 3,
        posters: 2,
        rate: 2000.0,
        size: 80,
        count: 8,
        warmup_s: 0.0,
        duration_s: 60.0,
    });
    let out = execute(config(plan, vec![target("raw", &server)]))
        .await
        .expect("push runs");
    let t = &out.report.targets[0];
    assert_eq!(t.loop_mode, "open");
    assert_eq!(t.counters["delivered"], 8);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_echo_round_trips() {
    let server = raw_server().await;
    for rate in [0.0, 4000.0] {
        let plan = Plan::Upstream(UpstreamPlan {
            conns: 4,
            inflight: 4,
            rate,
            size: 100,
            action: "echo".into(),
            one_way: false,
            count: 40,
            warmup_s: 0.0,
            duration_s: 60.0,
        });
        let out = execute(config(plan, vec![target("raw", &server)]))
            .await
            .expect("upstream runs");
        let t = &out.report.targets[0];
        assert_eq!(t.counters["sent"], 40, "rate {rate}");
        assert_eq!(t.counters["completed"], 40, "rate {rate}");
        assert!(t.errors.is_empty(), "{:?}", t.errors);
    }
    assert_eq!(server.stats().echoed, 80);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_one_way_counts_sends() {
    let server = raw_server().await;
    let plan = Plan::Upstream(UpstreamPlan {
        conns: 2,
        inflight: 2,
        rate: 0.0,
        size: 64,
        action: "sink".into(),
        one_way: true,
        count: 30,
        warmup_s: 0.0,
        duration_s: 60.0,
    });
    let out = execute(config(plan, vec![target("raw", &server)]))
        .await
        .expect("upstream runs");
    let t = &out.report.targets[0];
    assert_eq!(t.counters["sent"], 30);
    assert!(t.summary["msgs_per_sec"] > 0.0, "sends fall in the window");
    assert!(!t.latency.contains_key("rtt"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_storm_small() {
    let server = raw_server().await;
    for close in [CloseMode::Graceful, CloseMode::Drop] {
        let plan = Plan::ConnectStorm(StormPlan {
            concurrency: 4,
            rate: 0.0,
            count: 30,
            close,
            warmup_s: 0.0,
            duration_s: 60.0,
        });
        let out = execute(config(plan, vec![target("raw", &server)]))
            .await
            .expect("storm runs");
        let t = &out.report.targets[0];
        assert_eq!(t.counters["attempts"], 30);
        assert_eq!(t.counters["connected"], 30);
        assert!(t.errors.is_empty(), "{:?}", t.errors);
    }
    assert_eq!(server.stats().accepted, 60);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_targets_give_a_ratio() {
    let a = raw_server().await;
    let b = raw_server().await;
    let plan = Plan::Idle(IdlePlan {
        conns: 10,
        rate: 0.0,
        inflight: 4,
        hold_s: 0.0,
        whoami: false,
        groups: 0,
        close_rate: 0.0,
    });
    let out = execute(config(plan, vec![target("raw", &a), target("other", &b)]))
        .await
        .expect("runs");
    let r = &out.report;
    assert_eq!(r.targets.len(), 2);
    assert_eq!(r.ratios.len(), 1);
    assert_eq!(r.ratios[0].baseline, "raw");
    assert_eq!(r.ratios[0].target, "other");
    assert_eq!(r.ratios[0].metrics["conns_open"], 1.0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_share_the_connections() {
    let server = raw_server().await;
    let plan = Plan::Idle(IdlePlan {
        conns: 20,
        rate: 0.0,
        inflight: 8,
        hold_s: 0.0,
        whoami: true,
        groups: 0,
        close_rate: 0.0,
    });
    let mut c = config(plan, vec![target("raw", &server)]);
    c.workers = 2;
    c.threads = 1;
    c.exe = env!("CARGO_BIN_EXE_wsgate-load").into();
    let out = execute(c).await.expect("multi-process idle runs");
    let t = &out.report.targets[0];
    assert_eq!(t.workers, 2);
    assert_eq!(t.counters["opened"], 20);
    assert_eq!(t.summary["conns_open"], 20.0);
    assert_eq!(server.stats().accepted, 20);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_remote_targets() {
    let plan = Plan::Idle(IdlePlan {
        conns: 1,
        rate: 0.0,
        inflight: 1,
        hold_s: 0.0,
        whoami: false,
        groups: 0,
        close_rate: 0.0,
    });
    let t = wsgate_load::targets::TargetSpec::Running {
        name: "remote".into(),
        nodes: vec![wsgate_load::scenario::Node::same_port(
            "ws://192.0.2.1:80/prod",
        )],
        pids: vec![],
    };
    assert!(execute(config(plan, vec![t])).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_fails_on_errors_when_replies_are_missing() {
    let server = raw_server().await;
    // The raw server answers no `sink` message: every reply times out, so no id is learned
    // and nothing is pushed.
    let plan = Plan::Ready(ReadyPlan {
        conns: 4,
        inflight: 4,
        action: "sink".into(),
        size: 64,
        posters: 2,
        reply_timeout_s: 0.2,
    });
    let mut c = config(plan, vec![target("raw", &server)]);
    let out = execute(c.clone()).await.expect("counted, not failed");
    let t = &out.report.targets[0];
    assert_eq!(t.counters["opened"], 4);
    assert_eq!(t.counters["replies"], 0);
    assert_eq!(t.counters["missing_replies"], 4);
    assert_eq!(t.counters["missing_pushes"], 4);
    assert_eq!(t.errors["reply_timeout"], 4);
    c.fail_on_errors = true;
    let err = execute(c)
        .await
        .err()
        .expect("--fail-on-errors fails the run");
    assert!(format!("{err:#}").contains("missing_pushes=4"), "{err:#}");
    server.shutdown().await;
}
