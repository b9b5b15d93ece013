//! Smoke of every scenario against wsgate itself, started in-process through the library on
//! port 0 with the bundled configs and the tool's built-in backend (also on port 0). A handful
//! of connections and messages each: the test checks that deliveries and round trips happened
//! and that the report files were written, never how fast. `cross-node` runs two gateways on
//! the Redis at 127.0.0.1:6379 (as the gateway's own tests do), under a key prefix of its own.

mod common;

use std::path::{Path, PathBuf};

use common::{bundled, config, raw_server, start, target, temp_dir};
use wsgate::Gateway;
use wsgate::config::StoreConfig;
use wsgate_load::backend;
use wsgate_load::run::{RunOutput, execute};
use wsgate_load::scenario::ready::ReadyPlan;
use wsgate_load::scenario::{CloseMode, IdlePlan, Node, Plan, PushPlan, StormPlan, UpstreamPlan};
use wsgate_load::targets::TargetSpec;

fn ws_url(gateway: &Gateway) -> String {
    format!("ws://{}/prod", gateway.local_addr())
}

fn wsgate_target(nodes: Vec<Node>) -> TargetSpec {
    TargetSpec::Running {
        name: "wsgate".into(),
        nodes,
        pids: vec![std::process::id()],
    }
}

/// Runs `plan` against `target`, writing the report to `dir/<name>.{json,html}`.
async fn run(plan: Plan, target: TargetSpec, dir: &Path, name: &str) -> RunOutput {
    let mut c = config(plan, vec![target]);
    c.out_dir = Some(dir.to_path_buf());
    c.name = Some(name.into());
    let out = execute(c).await.expect("scenario runs");
    let (json, html) = out.files.clone().expect("report files");
    assert_written(&json, &dir.join(format!("{name}.json")));
    assert_written(&html, &dir.join(format!("{name}.html")));
    out
}

fn assert_written(path: &PathBuf, expected: &Path) {
    assert_eq!(path, expected);
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    assert!(len > 0, "{} is empty or missing", path.display());
}

fn push_plan() -> Plan {
    Plan::Push(PushPlan {
        conns: 5,
        inflight: 5,
        posters: 2,
        rate: 0.0,
        size: 64,
        count: 20,
        warmup_s: 0.0,
        duration_s: 60.0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_wsgate() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("backend starts");
    let gateway = start(bundled("wsgate-bench.yaml", &backend)).await;
    let target = wsgate_target(vec![Node::same_port(&ws_url(&gateway))]);
    let dir = temp_dir("smoke-wsgate");

    let idle = Plan::Idle(IdlePlan {
        conns: 10,
        rate: 0.0,
        inflight: 4,
        hold_s: 0.0,
        whoami: true,
        groups: 0,
        close_rate: 0.0,
    });
    let out = run(idle, target.clone(), &dir, "idle").await;
    let t = &out.report.targets[0];
    assert_eq!(t.counters["opened"], 10, "{:?}", t.errors);
    assert!(backend.stats()["whoami_events"] >= 10);

    let storm = Plan::ConnectStorm(StormPlan {
        concurrency: 4,
        rate: 0.0,
        count: 20,
        close: CloseMode::Graceful,
        warmup_s: 0.0,
        duration_s: 60.0,
    });
    let out = run(storm, target.clone(), &dir, "connect-storm").await;
    assert_eq!(out.report.targets[0].counters["connected"], 20);
    assert!(backend.stats()["connect_events"] >= 30, "$connect ran");

    for (action, one_way) in [("echo", false), ("echo_http", false), ("sink", true)] {
        let upstream = Plan::Upstream(UpstreamPlan {
            conns: 3,
            inflight: 3,
            rate: 0.0,
            size: 64,
            action: action.into(),
            one_way,
            count: 30,
            warmup_s: 0.0,
            duration_s: 60.0,
        });
        let out = run(
            upstream,
            target.clone(),
            &dir,
            &format!("upstream-{action}"),
        )
        .await;
        let t = &out.report.targets[0];
        assert_eq!(t.counters["sent"], 30, "{action}: {:?}", t.errors);
        if !one_way {
            assert_eq!(t.counters["completed"], 30, "{action}: {:?}", t.errors);
        }
    }

    let out = run(push_plan(), target, &dir, "push").await;
    let t = &out.report.targets[0];
    assert_eq!(t.counters["posts_ok"], 20, "{:?}", t.errors);
    assert_eq!(t.counters["delivered"], 20);

    gateway.shutdown().await;
    backend.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_uses_every_connection_on_raw_and_wsgate() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("backend starts");
    let gateway = start(bundled("wsgate-bench.yaml", &backend)).await;
    let raw = raw_server().await;
    let dir = temp_dir("smoke-ready");
    for action in ["echo", "echo_http"] {
        let before = backend.stats();
        let plan = Plan::Ready(ReadyPlan {
            conns: 12,
            inflight: 4,
            action: action.into(),
            size: 64,
            posters: 3,
            reply_timeout_s: 30.0,
        });
        let targets = vec![
            target("raw", &raw),
            wsgate_target(vec![Node::same_port(&ws_url(&gateway))]),
        ];
        let mut c = config(plan, targets);
        c.fail_on_errors = true;
        c.out_dir = Some(dir.clone());
        c.name = Some(format!("ready-{action}"));
        let out = execute(c).await.expect("ready runs without errors");
        let r = &out.report;
        assert_eq!(r.scenario, "ready");
        for t in &r.targets {
            let what = format!("{action} {}: {:?}", t.name, t.errors);
            assert!(t.errors.is_empty(), "{what}");
            for k in ["opened", "replies", "ids", "posts_ok", "pushes_received"] {
                assert_eq!(t.counters[k], 12, "{k} {what}");
            }
            for k in ["missing_replies", "missing_pushes", "lost", "posts_failed"] {
                assert_eq!(t.counters[k], 0, "{k} {what}");
            }
            assert_eq!(t.summary["replies"], 12.0, "{what}");
            assert_eq!(t.summary["pushes_received"], 12.0, "{what}");
            assert_eq!(t.summary["errors"], 0.0, "{what}");
            assert_eq!(t.latency["rtt"].count, 12, "{what}");
        }
        assert_eq!(r.ratios.len(), 1);
        assert_eq!(
            (r.ratios[0].target.as_str(), r.ratios[0].baseline.as_str()),
            ("wsgate", "raw")
        );
        // The message went through the route's integration, and the id through whoami.
        let after = backend.stats();
        let events = |k: &str| after[k] - before[k];
        let routed = if action == "echo" {
            events("echo_events")
        } else {
            events("echo_http_requests")
        };
        assert_eq!(routed, 12, "{action}");
        assert_eq!(events("whoami_events"), 12, "{action}");
    }
    let json = std::fs::read(dir.join("ready-echo.json")).expect("report written");
    let v: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
    assert_eq!(v["targets"][1]["summary"]["pushes_received"], 12.0);
    assert!(v["ratios"][0]["metrics"].is_object());
    assert_eq!(raw.stats().pushed, 24);
    raw.shutdown().await;
    gateway.shutdown().await;
    backend.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_posts_reach_connections_on_the_other_node() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("backend starts");
    let prefix = format!("wsgate-load-smoke-{}-{}", std::process::id(), rand_suffix());
    let node = |file: &str| {
        let mut config = bundled(file, &backend);
        if let StoreConfig::Redis(redis) = &mut config.store {
            redis.prefix.clone_from(&prefix);
        }
        config
    };
    let a = start(node("wsgate-node-a.yaml")).await;
    let b = start(node("wsgate-node-b.yaml")).await;
    let target = wsgate_target(vec![Node {
        ws_url: ws_url(&a),
        callback_url: Node::same_port(&ws_url(&b)).callback_url,
    }]);
    let dir = temp_dir("smoke-cross");
    let mut c = config(push_plan(), vec![target]);
    "cross-node".clone_into(&mut c.scenario_name);
    c.out_dir = Some(dir.clone());
    c.name = Some("cross-node".into());
    let out = execute(c).await.expect("cross-node runs");
    let (json, html) = out.files.clone().expect("report files");
    assert_written(&json, &dir.join("cross-node.json"));
    assert_written(&html, &dir.join("cross-node.html"));
    let t = &out.report.targets[0];
    assert_eq!(out.report.scenario, "cross-node");
    assert_eq!(t.counters["posts_gone"], 0, "{:?}", t.errors);
    assert_eq!(t.counters["posts_ok"], 20, "{:?}", t.errors);
    assert_eq!(t.counters["delivered"], 20);

    // A graceful shutdown removes the records and leaves the cluster.
    a.shutdown().await;
    b.shutdown().await;
    backend.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
