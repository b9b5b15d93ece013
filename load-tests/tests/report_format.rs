//! The JSON report's shape and the HTML chart page, from a real (tiny) run.

mod common;

use common::{config, raw_server, target, temp_dir};
use serde_json::Value;
use wsgate_load::run::execute;
use wsgate_load::scenario::{Plan, PushPlan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_files_have_the_documented_shape() {
    let a = raw_server().await;
    let b = raw_server().await;
    let dir = temp_dir("report");
    let plan = Plan::Push(PushPlan {
        conns: 4,
        inflight: 4,
        posters: 2,
        rate: 0.0,
        size: 64,
        count: 20,
        warmup_s: 0.0,
        duration_s: 60.0,
    });
    let mut c = config(plan, vec![target("raw", &a), target("second", &b)]);
    c.out_dir = Some(dir.clone());
    c.name = Some("push-test".into());
    let out = execute(c).await.expect("push runs");
    let (json_path, html_path) = out.files.expect("files written");
    assert_eq!(json_path, dir.join("push-test.json"));
    assert_eq!(html_path, dir.join("push-test.html"));

    let v: Value =
        serde_json::from_slice(&std::fs::read(&json_path).expect("json")).expect("valid JSON");
    assert_eq!(v["tool"], "wsgate-load");
    assert_eq!(v["format"], 1);
    assert_eq!(v["scenario"], "push");
    assert_eq!(v["plan"]["scenario"], "push");
    assert_eq!(v["plan"]["posters"], 2);
    for k in ["version", "started_unix_ms", "settings", "machine"] {
        assert!(!v[k].is_null(), "missing {k}");
    }
    assert!(v["machine"]["nofile_limit"].as_u64().unwrap_or(0) > 0);
    let targets = v["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 2);
    for t in targets {
        for k in [
            "name",
            "nodes",
            "pids",
            "workers",
            "loop_mode",
            "window_s",
            "summary",
            "latency",
            "curves",
            "counters",
            "errors",
            "backend",
            "server",
            "timeline",
            "notes",
        ] {
            assert!(!t[k].is_null(), "target lacks {k}");
        }
        assert_eq!(t["loop_mode"], "closed");
        assert!(t["summary"]["deliveries_per_sec"].is_number());
        assert!(t["summary"]["http_p99_ms"].is_number());
        let http = &t["latency"]["http"];
        for k in [
            "count", "min_us", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us",
        ] {
            assert!(http[k].is_number(), "latency lacks {k}");
        }
        let curve = t["curves"]["http"].as_array().expect("curve");
        assert!(
            curve
                .iter()
                .all(|p| p.as_array().is_some_and(|p| p.len() == 2))
        );
        let tl = t["timeline"].as_array().expect("timeline");
        assert!(!tl.is_empty());
        for k in [
            "t_s",
            "phase",
            "open",
            "ops_per_s",
            "conns_per_s",
            "lat",
            "conn_lat",
            "rss_kib",
        ] {
            assert!(!tl[0][k].is_null(), "timeline point lacks {k}");
        }
        assert!(t["server"]["rss_before_kib"].as_u64().unwrap_or(0) > 0);
    }
    let ratios = v["ratios"].as_array().expect("ratios");
    assert_eq!(ratios.len(), 1);
    assert_eq!(ratios[0]["baseline"], "raw");
    assert!(ratios[0]["metrics"]["deliveries_per_sec"].is_number());

    let html = std::fs::read_to_string(&html_path).expect("html");
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("<svg").count(), 4);
    assert_eq!(html.matches("</svg>").count(), 4);
    assert!(html.contains("<polyline"));
    assert!(!html.contains("<script"), "no scripts");
    assert!(!html.contains("src=\"http"), "no external resources");
    assert!(html.contains("second / raw"));
    a.shutdown().await;
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
