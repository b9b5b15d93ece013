//! Deployments cluster-wide (`docs/deployments.md`): an apply through one node's admin API
//! switches every node on the same Redis (the time is measured), a rollback switches them
//! back, a node started after a deploy serves it, a canary gets its percentage of new
//! connections within binomial bounds and flags their events, an invalid apply changes
//! nothing, open connections sending steadily lose nothing across a deploy, and the `wsgate
//! apply|deployments|rollback|canary` commands drive the real binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::cluster::{NodeProcess, eventually, shared_store};
use crate::support::*;

/// A two-way mock route a deploy adds.
const NEW_ROUTE: &str = "    newroute:\n      integration: { type: mock, response: '{\"new\":true}' }\n      route_response: true\n";

/// Every node must switch within this long of an apply (check interval 1 s, plus slack).
const SWITCH_DEADLINE: Duration = Duration::from_secs(3);

/// A node on the shared store with `deployments.scope: cluster` (and `deployments` settings
/// `extra`, in flow style without braces).
fn node_config(backend: &str, store: &str, extra: &str) -> String {
    let deployments = if extra.is_empty() {
        "deployments: { scope: cluster }\n".to_string()
    } else {
        format!("deployments: {{ scope: cluster, {extra} }}\n")
    };
    crate::support::cluster::node_config(backend, store, &deployments)
}

fn with_new_route(yaml: &str) -> String {
    yaml.replacen("  routes:\n", &format!("  routes:\n{NEW_ROUTE}"), 1)
}

/// A backend whose `/default` answers the message itself.
async fn echo_backend() -> Backend {
    Backend::start(|r| {
        if r.path == "/default" {
            Reply::http(200, &String::from_utf8_lossy(&r.body))
        } else {
            Reply::lambda(200, None)
        }
    })
    .await
}

/// An admin API request: its status and JSON answer.
async fn admin(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = http().request(method, url).header("x-wsgate-admin", "1");
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("admin API answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn apply(base: &str, body: Value) -> (u16, Value) {
    admin(
        reqwest::Method::POST,
        format!("{base}/@admin/api/deployments"),
        Some(body),
    )
    .await
}

/// The deployment stage `prod` of the node at `base` serves (and its canary).
async fn serving(base: &str) -> (String, Option<String>) {
    serving_with(&http(), base).await
}

async fn serving_with(client: &reqwest::Client, base: &str) -> (String, Option<String>) {
    let health: Value =
        serde_json::from_str(&get_text(client, format!("{base}/healthz")).await).expect("JSON");
    let prod = &health["serving"]["stages"]["prod"];
    (
        prod["deployment"].as_str().unwrap_or_default().to_string(),
        prod["canary"]["deployment"].as_str().map(str::to_string),
    )
}

/// Waits until every node in `bases` serves `id` on `prod` (polling each every 5 ms, one
/// client, so the polling adds little); answers how long that took.
async fn converge(bases: &[String], id: &str) -> Duration {
    let client = http();
    let started = Instant::now();
    for base in bases {
        while serving_with(&client, base).await.0 != id {
            assert!(
                started.elapsed() < SWITCH_DEADLINE,
                "{base} did not switch to {id} within {SWITCH_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    started.elapsed()
}

/// Sends `text` and answers the reply.
async fn ask(ws: &mut Ws, text: &str) -> String {
    send_text(ws, text).await;
    next_text(ws).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_redis_converge_after_an_apply_and_after_a_rollback() {
    let backend = echo_backend().await;
    let (store, _cleanup) = shared_store();
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;
    let c = TestGateway::start(&yaml).await;
    let bases: Vec<String> = [&a, &b, &c].iter().map(|g| g.http_url("")).collect();
    let first = serving(&bases[0]).await.0;
    for base in &bases {
        assert_eq!(serving(base).await.0, first, "one seed for every node");
    }

    let started = Instant::now();
    let (status, answer) = apply(
        &bases[0],
        json!({ "definition": with_new_route(&yaml), "description": "adds newroute" }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["deployment"]["id"].as_str().expect("id").to_string();
    assert_ne!(id, first);
    assert_eq!(answer["stages"]["prod"]["history"][0], first.as_str());
    let waited = converge(&bases, &id).await;
    println!(
        "apply: all 3 nodes serve {id} {:?} after the request was sent ({waited:?} of polling after the answer)",
        started.elapsed()
    );
    // The node that did not take the request routes by the new definition.
    let mut ws = connect(&c.ws_url("/prod")).await;
    assert_eq!(
        ask(&mut ws, r#"{"action":"newroute"}"#).await,
        r#"{"new":true}"#
    );

    // The cluster view: every node's heartbeat names what it serves.
    let (status, listing) = admin(
        reqwest::Method::GET,
        format!("{}/@admin/api/deployments", bases[1]),
        None,
    )
    .await;
    assert_eq!(status, 200);
    eventually("three heartbeats", SWITCH_DEADLINE * 3, || async {
        let (_, listing) = admin(
            reqwest::Method::GET,
            format!("{}/@admin/api/deployments", bases[1]),
            None,
        )
        .await;
        let nodes = listing["nodes"].as_array().cloned().unwrap_or_default();
        nodes.len() == 3
            && nodes
                .iter()
                .all(|n| n["stages"]["prod"]["deployment"] == id.as_str())
    })
    .await;
    assert_eq!(listing["deployments"][0]["id"], id.as_str());
    assert_eq!(listing["deployments"][0]["description"], "adds newroute");

    // A rollback through another node: every node back on the first deployment.
    let started = Instant::now();
    let (status, answer) = admin(
        reqwest::Method::POST,
        format!("{}/@admin/api/stages/prod/rollback", bases[2]),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stages"]["prod"]["deployment"], first.as_str());
    converge(&bases, &first).await;
    println!(
        "rollback: all 3 nodes back on {first} in {:?}",
        started.elapsed()
    );
    // The open socket now routes by the first definition: `newroute` goes to `$default`.
    let echo = r#"{"action":"newroute"}"#;
    assert_eq!(ask(&mut ws, echo).await, echo);
    // Nothing left to roll back to.
    let (status, answer) = admin(
        reqwest::Method::POST,
        format!("{}/@admin/api/stages/prod/rollback", bases[0]),
        None,
    )
    .await;
    assert_eq!(status, 409, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_after_a_deploy_serves_it_not_its_file() {
    let backend = echo_backend().await;
    let (store, _cleanup) = shared_store();
    let yaml = node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&yaml).await;
    let (status, answer) = apply(
        &a.http_url(""),
        json!({ "definition": with_new_route(&yaml) }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["deployment"]["id"].as_str().expect("id").to_string();
    // Its file has no `newroute`: the store's deployment wins.
    let late = TestGateway::start(&yaml).await;
    assert_eq!(serving(&late.http_url("")).await.0, id);
    assert_eq!(late.gateway().deployment().id, id);
    let mut ws = connect(&late.ws_url("/prod")).await;
    assert_eq!(
        ask(&mut ws, r#"{"action":"newroute"}"#).await,
        r#"{"new":true}"#
    );
}

/// The default scope: nodes on one Redis keep their own deployments. A node started with a
/// different file serves its file, not what another node applied or seeded (the case that made
/// shared deployments opt-in: nodes of one store with their own `api` or `throttling`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_one_redis_keep_their_own_deployments_unless_the_scope_is_cluster() {
    let backend = echo_backend().await;
    let (store, _cleanup) = shared_store();
    let own = crate::support::cluster::node_config(&backend.url(), &store, "");
    let a = TestGateway::start(&own).await;
    let (status, answer) = apply(
        &a.http_url(""),
        json!({ "definition": with_new_route(&own) }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let applied = answer["deployment"]["id"].as_str().expect("id").to_string();
    assert_eq!(serving(&a.http_url("")).await.0, applied);
    let mut on_a = connect(&a.ws_url("/prod")).await;
    assert_eq!(
        ask(&mut on_a, r#"{"action":"newroute"}"#).await,
        r#"{"new":true}"#
    );
    // B shares the store and its cluster, not A's deployments: it serves its own file.
    let b = TestGateway::start(&own).await;
    assert_ne!(serving(&b.http_url("")).await.0, applied);
    let mut on_b = connect(&b.ws_url("/prod")).await;
    assert_eq!(
        ask(&mut on_b, r#"{"action":"newroute","n":1}"#).await,
        r#"{"action":"newroute","n":1}"#,
        "B has no newroute: the message goes to $default"
    );
    // The scope is checked at start: a memory store has no cluster to share with.
    let memory = config(&backend.url(), "deployments: { scope: cluster }\n");
    let err = wsgate::Config::from_yaml(&memory).expect_err("refused");
    assert!(err.to_string().contains("deployments.scope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_gets_its_share_of_new_connections_and_flags_their_events() {
    const CONNECTIONS: usize = 400;
    const PERCENT: f64 = 25.0;
    let backend = echo_backend().await;
    let yaml = config(&backend.url(), "");
    let gw = TestGateway::start(&yaml).await;
    let base = gw.http_url("");
    let primary = serving(&base).await.0;
    let (status, answer) = apply(
        &base,
        json!({ "definition": with_new_route(&yaml), "canary": PERCENT }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let canary = answer["deployment"]["id"].as_str().expect("id").to_string();
    assert_eq!(
        serving(&base).await,
        (primary.clone(), Some(canary.clone()))
    );

    let mut picked = 0usize;
    for _ in 0..CONNECTIONS {
        let mut ws = connect(&gw.ws_url("/prod")).await;
        let event = backend.next_to("/connect").await.json();
        let context = &event["requestContext"];
        assert_eq!(context["stage"], "prod", "the stage is unchanged");
        let on_canary = context["canary"] == true;
        if on_canary {
            picked += 1;
        } else {
            assert!(context.get("canary").is_none(), "no flag off the canary");
        }
        // The side holds for the connection: its messages go to the same deployment.
        let answer = ask(&mut ws, r#"{"action":"newroute"}"#).await;
        assert_eq!(answer == r#"{"new":true}"#, on_canary, "{answer}");
        ws.close(None).await.expect("close");
    }
    // Binomial(400, 0.25): mean 100, standard deviation 8.66; 5 deviations either side.
    let (mean, sd) = (100.0, (400.0f64 * 0.25 * 0.75).sqrt());
    println!(
        "canary: {picked} of {CONNECTIONS} connections at {PERCENT}% (expected {mean} ± {sd:.2})"
    );
    #[allow(clippy::cast_precision_loss)]
    let off = (picked as f64 - mean).abs();
    assert!(
        off <= 5.0 * sd,
        "{picked} canary connections of {CONNECTIONS}"
    );
    let metrics = get_text(&http(), gw.http_url("/metrics")).await;
    assert!(
        metrics.contains("wsgate_canary_connections_total{stage=\"prod\"}"),
        "the canary counter"
    );
    // The gauge's value is per process, which the tests share: only the series is checked.
    assert!(metrics.contains("wsgate_canary_percent{stage=\"prod\"} "));

    // Promote: the canary is the stage's deployment, no canary any more.
    let (status, answer) = admin(
        reqwest::Method::POST,
        gw.http_url("/@admin/api/stages/prod/canary/promote"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(serving(&base).await, (canary.clone(), None));
    let mut ws = connect(&gw.ws_url("/prod")).await;
    let event = backend.next_to("/connect").await.json();
    assert!(event["requestContext"].get("canary").is_none());
    assert_eq!(
        ask(&mut ws, r#"{"action":"newroute"}"#).await,
        r#"{"new":true}"#
    );
    // A second canary (the first definition again), dropped: the stage keeps its deployment.
    let (status, _) = apply(&base, json!({ "definition": yaml, "canary": 50 })).await;
    assert_eq!(status, 200);
    let (status, answer) = admin(
        reqwest::Method::DELETE,
        gw.http_url("/@admin/api/stages/prod/canary"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(serving(&base).await, (canary, None));
    let (status, answer) = admin(
        reqwest::Method::DELETE,
        gw.http_url("/@admin/api/stages/prod/canary"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{answer}");
}

#[tokio::test]
async fn an_invalid_apply_changes_nothing_and_says_why() {
    let backend = Backend::ok().await;
    let yaml = config(&backend.url(), "");
    let gw = TestGateway::start(&yaml).await;
    let base = gw.http_url("");
    let before = serving(&base).await;
    let bad_route = yaml.replacen(
        "  routes:\n",
        "  routes:\n    $bogus: { integration: { type: mock } }\n",
        1,
    );
    let cases = [
        (json!({ "definition": bad_route }), 422, "api.routes.$bogus"),
        (
            json!({ "definition": format!("{yaml}limits:\n  max_connections: 7\n") }),
            409,
            "`limits.max_connections`",
        ),
        (json!({ "definition": yaml, "canary": 150 }), 400, "canary"),
        (
            json!({ "definition": yaml, "stages": ["dev"] }),
            400,
            "`dev`",
        ),
        (json!({ "definition": "{" }), 422, ""),
        (json!({ "nothing": 1 }), 400, "body"),
    ];
    for (body, status, says) in cases {
        let (got, answer) = apply(&base, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message:?} should name {says}");
    }
    let (status, answer) = admin(
        reqwest::Method::POST,
        gw.http_url("/@admin/api/stages/dev/rollback"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = admin(
        reqwest::Method::POST,
        gw.http_url("/@admin/api/stages/prod/rollback"),
        Some(json!({ "to": "000000000000-1" })),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    // Without the marker header: refused before anything is read.
    let refused = http()
        .post(gw.http_url("/@admin/api/deployments"))
        .json(&json!({ "definition": yaml }))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 403);
    assert_eq!(serving(&base).await, before, "nothing changed");
    // The same content again is no new deployment.
    let (status, answer) = apply(&base, json!({ "definition": yaml })).await;
    assert_eq!(status, 200);
    assert_eq!(answer["unchanged"], true, "{answer}");
    assert_eq!(serving(&base).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_on_three_nodes_lose_nothing_across_a_deploy() {
    const PER_NODE: usize = 3;
    let backend = echo_backend().await;
    let (store, _cleanup) = shared_store();
    let yaml = node_config(&backend.url(), &store, "");
    let nodes = [
        TestGateway::start(&yaml).await,
        TestGateway::start(&yaml).await,
        TestGateway::start(&yaml).await,
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    let mut answered = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for c in 0..PER_NODE {
            let mut ws = connect(&node.ws_url("/prod")).await;
            let stop = Arc::clone(&stop);
            let count = Arc::new(AtomicU64::new(0));
            answered.push(Arc::clone(&count));
            clients.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let text = format!("{{\"action\":\"none\",\"node\":{n},\"c\":{c},\"i\":{i}}}");
                    assert_eq!(
                        ask(&mut ws, &text).await,
                        text,
                        "node {n} connection {c} message {i}"
                    );
                    i += 1;
                    count.store(i, Ordering::Release);
                }
                (ws, i)
            }));
        }
    }
    let all_past = |mark: Vec<u64>| {
        let answered = answered.clone();
        move || {
            let done = (answered.iter().zip(&mark))
                .all(|(count, mark)| count.load(Ordering::Acquire) >= mark + 5);
            async move { done }
        }
    };
    eventually(
        "every client under way",
        DEADLINE,
        all_past(vec![0; 3 * PER_NODE]),
    )
    .await;
    let (status, answer) = apply(
        &nodes[1].http_url(""),
        json!({ "definition": with_new_route(&yaml) }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["deployment"]["id"].as_str().expect("id").to_string();
    let bases: Vec<String> = nodes.iter().map(|g| g.http_url("")).collect();
    converge(&bases, &id).await;
    let mark: Vec<u64> = answered.iter().map(|c| c.load(Ordering::Acquire)).collect();
    eventually("every client past the deploy", DEADLINE, all_past(mark)).await;
    stop.store(true, Ordering::Release);
    let mut total = 0;
    for client in clients {
        let (mut ws, sent) = client.await.expect("every message answered, in order");
        total += sent;
        // Opened before the deploy, routed by the new definition now.
        assert_eq!(
            ask(&mut ws, r#"{"action":"newroute"}"#).await,
            r#"{"new":true}"#
        );
        ws.close(None).await.expect("close");
    }
    println!(
        "deploy under load: {total} messages on {} connections, none lost",
        3 * PER_NODE
    );
    for node in &nodes {
        eventually("every client closed", DEADLINE, || async {
            node.gateway().connection_count() == 0
        })
        .await;
    }
}

/// `wsgate` with `args`: exit code, stdout, stderr.
fn wsgate(args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(args)
        .env_remove("WSGATE_CONFIG")
        .output()
        .expect("run wsgate");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_apply_list_roll_back_and_refuse() {
    let backend = echo_backend().await;
    let yaml = config(&backend.url(), "");
    let node = NodeProcess::start(&yaml, "deploy-cli").await;
    let base = node.http_url("");
    let file = node.config_path().with_file_name("next.yaml");
    let running = std::fs::read_to_string(node.config_path()).expect("node config");
    std::fs::write(&file, with_new_route(&running)).expect("write");
    let file = file.to_str().expect("path").to_string();

    let (code, out, err) = wsgate(&["apply", &file, "--description", "cli", "--url", &base]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("applied: deployment "), "{out}");
    let (code, out, err) = wsgate(&["deployments", "--url", &base]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  cli") && out.contains("deploy-cli"), "{out}");
    let (code, out, err) = wsgate(&[
        "apply", &file, "--stage", "prod", "--canary", "10", "--url", &base,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("canary: deployment "), "{out}");
    let (code, _, err) = wsgate(&["canary", "drop", "--stage", "prod", "--url", &base]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = wsgate(&["canary", "promote", "--stage", "prod", "--url", &base]);
    assert_eq!(code, 1, "no canary left: {err}");
    assert!(err.contains("runs no canary"), "{err}");
    let (code, out, err) = wsgate(&["rollback", "--stage", "prod", "--url", &base]);
    assert_eq!(code, 0, "{out}{err}");
    // A fixed key in the file: refused with the one line, exit 1.
    std::fs::write(&file, format!("{running}limits:\n  max_connections: 7\n")).expect("write");
    let (code, _, err) = wsgate(&["apply", &file, "--url", &base]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot change without a restart"), "{err}");
    let (code, _, err) = wsgate(&["deployments", "--url", "http://127.0.0.1:1"]);
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_without_notification_is_seen_by_the_periodic_check() {
    use wsgate_connection_store::{DeploymentStore, RedisStore};
    let backend = echo_backend().await;
    let (store, _cleanup) = shared_store();
    let prefix = (store.lines())
        .find_map(|l| l.trim().strip_prefix("prefix: "))
        .expect("prefix")
        .to_string();
    let yaml = node_config(&backend.url(), &store, "check_interval: 300ms");
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;
    let first = serving(&a.http_url("")).await.0;
    let (status, answer) = apply(
        &a.http_url(""),
        json!({ "definition": with_new_route(&yaml) }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let bases = [a.http_url(""), b.http_url("")];
    converge(&bases, answer["deployment"]["id"].as_str().expect("id")).await;
    // Straight into the store, as a node that died before publishing would leave it.
    let direct = RedisStore::connect(&crate::support::cluster::shared_redis_url(), &prefix)
        .await
        .expect("store");
    let pointers = direct.pointers().await.expect("pointers");
    let mut stages = pointers.stages.clone();
    let prod = stages.get_mut("prod").expect("prod");
    prod.deployment = prod.history.remove(0);
    assert_eq!(prod.deployment, first);
    let written = direct
        .set_pointers(pointers.version, &stages)
        .await
        .expect("set");
    assert!(written.is_some());
    let took = converge(&bases, &first).await;
    println!("unannounced change: both nodes switched in {took:?} (check interval 300ms)");
    assert!(took < Duration::from_millis(300 * 3), "{took:?}");

    // The store loses every deployment key (a flush): the nodes store again what they serve.
    let mut raw = redis::Client::open(crate::support::cluster::shared_redis_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{prefix}}}:deploy:*"))
        .query_async(&mut raw)
        .await
        .expect("KEYS");
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut raw)
        .await
        .expect("DEL");
    eventually("the pointers stored again", DEADLINE, || async {
        let pointers = direct.pointers().await.expect("pointers");
        pointers.version > 0 && pointers.stages["prod"].deployment == first
    })
    .await;
    assert!(direct.deployment(&first).await.expect("get").is_some());
    for base in &bases {
        assert_eq!(serving(base).await.0, first);
    }
}

/// `wsgate export definition` writes what a stage serves as a definition document; edited and
/// given to `wsgate apply` it deploys with the node's own settings kept; an older deployment
/// can be exported by id; bad queries and unknown names are answered with JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_definition_applies_back_after_an_edit() {
    let backend = echo_backend().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let base = gw.http_url("");
    let dir = std::env::temp_dir().join(format!(
        "wsgate-it-export-{}-{}",
        std::process::id(),
        wsgate::connection_id().replace(['=', '/', '+'], "_")
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exported = dir.join("live.yaml");
    let exported = exported.to_str().expect("path");
    let (code, out, err) = wsgate(&[
        "export",
        "definition",
        "--stage",
        "prod",
        "--url",
        &base,
        "-o",
        exported,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let first = serving(&base).await.0;
    let text = std::fs::read_to_string(exported).expect("exported");
    assert!(
        text.starts_with(&format!("# wsgate definition: deployment {first} ")),
        "{text}"
    );
    let mut tree: Value = serde_saphyr::from_str(&text).expect("YAML");
    let keys: Vec<&String> = tree.as_object().expect("mapping").keys().collect();
    assert!(
        keys.iter().all(|k| *k == "api" || *k == "throttling"),
        "only the live part: {keys:?}"
    );
    assert!(tree["api"]["routes"].get("newroute").is_none());

    // Edited (a route added) and applied back: only `api` and `throttling` in the file.
    tree["api"]["routes"]["newroute"] = json!({
        "integration": { "type": "mock", "response": "{\"new\":true}" },
        "route_response": true,
    });
    let edited = dir.join("edited.yaml");
    std::fs::write(&edited, serde_saphyr::to_string(&tree).expect("YAML")).expect("write");
    let edited = edited.to_str().expect("path");
    let (code, out, err) = wsgate(&["apply", edited, "--url", &base]);
    assert_eq!(code, 0, "{out}{err}");
    assert_ne!(serving(&base).await.0, first);
    let mut ws = connect(&gw.ws_url("/prod")).await;
    assert_eq!(
        ask(&mut ws, r#"{"action":"newroute"}"#).await,
        r#"{"new":true}"#
    );
    // The same document again changes nothing.
    let (code, out, _) = wsgate(&["apply", edited, "--url", &base]);
    assert_eq!(code, 0);
    assert!(out.starts_with("unchanged"), "{out}");

    // The first deployment by id: the definition before the edit.
    let (code, out, err) = wsgate(&[
        "export",
        "definition",
        "--deployment",
        &first,
        "--url",
        &base,
    ]);
    assert_eq!(code, 0, "{err}");
    let before: Value = serde_saphyr::from_str(&out).expect("YAML");
    assert!(before["api"]["routes"].get("newroute").is_none(), "{out}");
    assert_eq!(before["api"]["routes"], text_tree(&text)["api"]["routes"]);

    // A definition document with a mistake: the start's one line, nothing deployed.
    tree["api"]["routes"]["newroute"]["integration"] = json!({ "type": "nope" });
    std::fs::write(edited, serde_saphyr::to_string(&tree).expect("YAML")).expect("write");
    let serving_before = serving(&base).await.0;
    let (code, _, err) = wsgate(&["apply", edited, "--url", &base]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("api.routes.newroute.integration"), "{err}");
    assert_eq!(serving(&base).await.0, serving_before);

    // Unknown names and bad queries: JSON answers.
    let get = |query: &'static str| {
        admin(
            reqwest::Method::GET,
            format!("{base}/@admin/api/definition{query}"),
            None,
        )
    };
    let (status, answer) = get("?stage=nope").await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nope")
    );
    let (status, answer) = get("?deployment=feedfeedfeed-1").await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = get("?bogus=1").await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].is_string(), "{answer}");
    let (code, _, err) = wsgate(&["export", "definition", "--stage", "nope", "--url", &base]);
    assert_eq!(code, 1, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn text_tree(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("YAML")
}
