//! RFC 6455 conformance: the Autobahn test-suite cases (groups 1-10, driven by `kosoku`) against
//! the gateway, with `$default` routed to an echo backend through `http_proxy`.

use std::process::Command;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::IntoResponse;

use crate::support::*;

async fn echo(headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/plain; charset=utf-8")
        .to_string();
    ([("content-type", content_type)], body)
}

fn kosoku() -> String {
    std::env::var("WSGATE_KOSOKU").unwrap_or_else(|_| "kosoku".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autobahn_cases_pass() {
    let probe = Command::new(kosoku()).arg("--help").output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the Autobahn runner `kosoku` is required: `pip install kosoku` and put it on PATH or set WSGATE_KOSOKU (scripts/test.sh does this)"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let backend = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let app = Router::new()
            .fallback(echo)
            .layer(axum::extract::DefaultBodyLimit::disable());
        let _ = axum::serve(listener, app).await;
    });
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
api:
  name: autobahn
  route_selection_expression: '\$default'
  stages: {{ prod: {{ variables: {{ echo: "{backend}" }} }} }}
  routes:
    $default:
      integration: {{ type: http_proxy, uri: "${{stageVariables.echo}}/echo" }}
      route_response: true
limits:
  max_message_bytes: 16777216
  max_frame_bytes: 16777216
  outbound_queue_messages: 1024
  inbound_queue_messages: 1024
  ping_interval: 0
"#
    );
    let gw = TestGateway::start(&yaml).await;
    let out_dir = std::env::temp_dir().join(format!("wsgate-autobahn-{}", wsgate::connection_id()));
    let url = gw.ws_url("/prod");
    let program = kosoku();
    let dir = out_dir.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .args(["-p", "2", "-x", "12.*", "-x", "13.*", "-o"])
            .arg(&dir)
            .arg(url)
            .output()
    })
    .await
    .expect("join")
    .expect("run kosoku");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let index = std::fs::read_to_string(out_dir.join("index.json")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(
        output.status.success(),
        "kosoku reported failures:\n{stdout}\n{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(&index).expect("index.json");
    let mut failed = Vec::new();
    let mut total = 0;
    for cases in report
        .as_object()
        .into_iter()
        .flat_map(|agents| agents.values())
    {
        for (case, result) in cases.as_object().into_iter().flatten() {
            total += 1;
            let behavior = result["behavior"].as_str().unwrap_or("");
            let close = result["behaviorClose"].as_str().unwrap_or("");
            if behavior == "FAILED" || close == "FAILED" {
                failed.push(format!("{case}: {behavior}/{close}"));
            }
        }
    }
    assert!(
        total >= 300,
        "expected the Autobahn groups 1-10, got {total} cases\n{stdout}"
    );
    assert!(failed.is_empty(), "failed cases: {failed:?}");
}
