//! The shipped Grafana dashboard and Prometheus alert rules (`deploy/`) use only metrics a
//! running gateway exports: two `wsgate` processes on a private Redis go through connects,
//! messages, an integration failure, throttling, a refused upgrade, a cross-node push and a
//! Redis outage, and every metric name the assets name must appear on their `/metrics`.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsgate_connection_store::conformance::servers::RedisServer;

use crate::support::cluster::{NodeProcess, node_config, redis_store, unique_prefix};
use crate::support::*;

const ALERTS: &str = include_str!("../../../deploy/prometheus/wsgate-alerts.yml");
const DASHBOARD: &str = include_str!("../../../deploy/grafana/wsgate-dashboard.json");

/// Every `wsgate_*` name in `text`, histogram series reduced to their metric name.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("wsgate_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if boundary {
            let name = &text[start..end];
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(base.to_string());
        }
        i = end;
    }
    names
}

/// The metric names of a Prometheus exposition (samples, not comments).
async fn exported(node: &NodeProcess) -> BTreeSet<String> {
    let text = get_text(&http(), node.http_url("/metrics")).await;
    let samples: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    metric_names(&samples)
}

#[test]
fn the_assets_parse_and_name_metrics() {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() > 10));
    let alerts: serde_json::Value = serde_saphyr::from_str(ALERTS).expect("alert rules YAML");
    let rules = alerts["groups"][0]["rules"].as_array().expect("rules");
    assert!(
        rules
            .iter()
            .all(|r| r["alert"].is_string() && r["expr"].is_string())
    );
    assert!(metric_names(ALERTS).len() > 10);
    assert!(metric_names(DASHBOARD).contains("wsgate_integration_latency_seconds"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_dashboard_and_alerts_is_exported() {
    let backend = Backend::start(|r: &Received| {
        if r.path == "/sendmessage"
            && r.json()["body"]
                .as_str()
                .is_some_and(|b| b.contains("fail"))
        {
            Reply::lambda(500, Some("broken"))
        } else {
            Reply::lambda(200, None)
        }
    })
    .await;
    let mut redis = RedisServer::start().await;
    let prefix = unique_prefix();
    let extra = "security:\n  allowed_origins: [\"https://app.example.test\"]\nthrottling:\n  stages:\n    prod:\n      route_settings:\n        echo: { throttling_rate_limit: 0.01, throttling_burst_limit: 1 }\n";
    let yaml = node_config(&backend.url(), &redis_store(&redis.url(), &prefix), extra);
    let a = NodeProcess::start(&yaml, "assets-a").await;
    let b = NodeProcess::start(&yaml, "assets-b").await;

    // Connects and messages on node A: one answered, one failing, one throttled.
    let (mut ws, id) = connect_and_id(&backend, &a.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"sendmessage","data":"ok"}"#).await;
    send_text(&mut ws, r#"{"action":"sendmessage","data":"fail"}"#).await;
    send_text(&mut ws, r#"{"action":"echo"}"#).await;
    send_text(&mut ws, r#"{"action":"echo"}"#).await;
    // A push through node B to the connection on node A.
    let status =
        crate::support::cluster::callback(&http(), reqwest::Method::POST, &b.base(), &id, "hi")
            .await;
    assert_eq!(status, 200);
    // An upgrade from a foreign origin.
    let mut request = a.ws_url("/prod").into_client_request().expect("request");
    request.headers_mut().insert(
        "origin",
        "https://evil.example.test".parse().expect("header"),
    );
    assert!(tokio_tungstenite::connect_async(request).await.is_err());

    // Redis goes away: store and bus errors.
    redis.kill();
    let _refused = tokio_tungstenite::connect_async(a.ws_url("/prod")).await;
    let wanted: BTreeSet<String> = metric_names(ALERTS)
        .union(&metric_names(DASHBOARD))
        .cloned()
        .collect();
    let mut names = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !wanted.is_subset(&names) && tokio::time::Instant::now() < deadline {
        names.extend(exported(&a).await);
        names.extend(exported(&b).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing: Vec<&String> = wanted.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "not exported by a running gateway: {missing:?}"
    );
    drop(ws);
}
