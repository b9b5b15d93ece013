//! The shipped deployments (`deploy/compose`, `deploy/k8s`) hold together: their gateway
//! configurations load with the environment they set, the grace periods cover the preStop pause
//! and the drain, and the metric the autoscaler reads is one a gateway exports. (The manifests'
//! schemas, the Dockerfile and the HAProxy file are checked by scripts/test.sh with
//! kubernetes-validate, hadolint and `haproxy -c`; the topology itself runs in `topology`.)

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const COMPOSE: &str = include_str!("../../../deploy/compose/compose.yaml");
const COMPOSE_CONFIG: &str = "../deploy/compose/wsgate.yaml";
const CONFIGMAP: &str = include_str!("../../../deploy/k8s/configmap.yaml");
const DEPLOYMENT: &str = include_str!("../../../deploy/k8s/deployment.yaml");
const HPA: &str = include_str!("../../../deploy/k8s/hpa.yaml");

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("valid YAML")
}

/// The gateway configuration the ConfigMap carries.
fn configmap_config() -> String {
    yaml(CONFIGMAP)["data"]["wsgate.yaml"]
        .as_str()
        .expect("data.wsgate.yaml")
        .to_string()
}

/// `wsgate check --config FILE` with the callback token the deployments pass in the environment.
fn check(config: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .env(
            "WSGATE_CALLBACK__AUTH",
            "{kind: bearer, tokens: [a-token-of-at-least-sixteen-characters]}",
        )
        .env("WSGATE_NODE_ID", "wsgate1")
        .output()
        .expect("run wsgate check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_compose_and_kubernetes_configurations_load_with_their_environment() {
    let (ok, out) = check(Path::new(COMPOSE_CONFIG));
    assert!(ok, "deploy/compose/wsgate.yaml: {out}");

    let dir = std::env::temp_dir().join(format!(
        "wsgate-deploy-{}",
        wsgate_connection_store::conformance::unique_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("wsgate.yaml");
    std::fs::write(&file, configmap_config()).expect("write");
    let (ok, out) = check(&file);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "deploy/k8s/configmap.yaml data.wsgate.yaml: {out}");

    // Both pass the token in exactly that variable.
    let compose = yaml(COMPOSE);
    let env = &compose["x-wsgate"]["environment"]["WSGATE_CALLBACK__AUTH"];
    assert!(
        env.as_str().is_some_and(|v| v.contains("kind: bearer")),
        "compose sets WSGATE_CALLBACK__AUTH: {env}"
    );
    assert!(DEPLOYMENT.contains("name: WSGATE_CALLBACK__AUTH"));
}

/// Seconds in a wsgate duration such as `20s` or `1m`.
fn seconds(text: &str) -> u64 {
    wsgate::config::duration::parse(text)
        .unwrap_or_else(|| panic!("{text}: not a duration"))
        .as_secs()
}

#[test]
fn grace_periods_cover_the_pre_stop_pause_and_the_drain() {
    let drain = |config: &str| {
        seconds(
            yaml(config)["shutdown"]["drain_timeout"]
                .as_str()
                .expect("shutdown.drain_timeout"),
        )
    };

    let deployment = yaml(DEPLOYMENT);
    let pod = &deployment["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    let pre_stop: u64 = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("preStop sleep seconds");
    let k8s_drain = drain(&configmap_config());
    assert!(
        pre_stop + k8s_drain + 5 <= grace,
        "preStop {pre_stop}s + drain {k8s_drain}s + 5s margin fit in {grace}s"
    );

    let compose = yaml(COMPOSE);
    let stop = seconds(
        compose["x-wsgate"]["stop_grace_period"]
            .as_str()
            .expect("stop_grace_period"),
    );
    let compose_drain = drain(&std::fs::read_to_string(COMPOSE_CONFIG).expect("read"));
    assert!(
        compose_drain + 5 <= stop,
        "drain {compose_drain}s + 5s margin fit in compose's stop_grace_period {stop}s"
    );
}

#[tokio::test]
async fn the_autoscaler_reads_a_metric_the_gateway_exports() {
    let hpa = yaml(HPA);
    let metrics = hpa["spec"]["metrics"].as_array().expect("metrics");
    let names: Vec<&str> = metrics
        .iter()
        .filter_map(|m| m["pods"]["metric"]["name"].as_str())
        .collect();
    assert!(!names.is_empty(), "a per-pod metric");

    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let _ws = connect(&gw.ws_url("/prod")).await;
    let client = http();
    for name in names {
        let prefix = format!("{name} ");
        let mut value = None;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while value.is_none() && tokio::time::Instant::now() < deadline {
            let text = get_text(&client, gw.http_url("/metrics")).await;
            value = text
                .lines()
                .find_map(|l| l.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
                .filter(|v| *v >= 1.0);
            if value.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert!(value.is_some(), "{name} counts the open connection");
    }
}
