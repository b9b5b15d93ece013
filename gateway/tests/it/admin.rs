//! The admin page's JSON API (`/@admin/api/…`): its figures match what happened, it is guarded
//! as the callback API is, the configuration it shows has no secrets, and its actions reach
//! connections and groups through the callback API's own paths.

use serde_json::{Value, json};

use crate::support::*;

/// GET on the admin API, marked as the page marks it.
async fn admin_get(client: &reqwest::Client, url: String) -> reqwest::Response {
    client
        .get(url)
        .header("x-wsgate-admin", "1")
        .send()
        .await
        .expect("request")
}

async fn overview(gw: &TestGateway) -> Value {
    let r = admin_get(&http(), gw.http_url("/@admin/api/overview")).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// Polls the overview until `done` holds (or fails after the deadline, showing the last one).
async fn overview_until(gw: &TestGateway, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let o = overview(gw).await;
        if done(&o) {
            return o;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "overview never showed {what}: {o:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_overview_shows_connections_messages_and_errors() {
    let backend = Backend::start(|r| {
        if r.path == "/sendmessage" && String::from_utf8_lossy(&r.body).contains("fail") {
            Reply::lambda(500, None)
        } else {
            Reply::lambda(200, None)
        }
    })
    .await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut a, a_id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let (_b, b_id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    send_text(&mut a, r#"{"action":"sendmessage","text":"hi"}"#).await;
    backend.next_to("/sendmessage").await;
    send_text(&mut a, r#"{"action":"sendmessage","text":"fail"}"#).await;
    backend.next_to("/sendmessage").await;

    let o = overview_until(&gw, "the failed call", |o| {
        o["recentErrors"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "integration"))
    })
    .await;
    assert_eq!(o["connections"]["node"], 2);
    let prod = &o["connections"]["stages"][0];
    assert_eq!(prod["stage"], "prod");
    assert_eq!(prod["node"], 2);
    assert_eq!(prod["cluster"], 2);
    let listed: Vec<&str> = (o["connections"]["newest"].as_array().expect("list").iter())
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(listed.contains(&a_id.as_str()) && listed.contains(&b_id.as_str()));
    assert_eq!(o["totals"]["messagesIn"], 2);
    assert_eq!(o["totals"]["integrationErrors"], 1);
    let route = (o["routes"].as_array().expect("routes").iter())
        .find(|r| r["route"] == "sendmessage")
        .expect("sendmessage listed");
    assert_eq!(route["calls"], 2);
    assert_eq!(route["integrationErrors"], 1);
    let error = &o["recentErrors"][0];
    assert_eq!(error["route"], "sendmessage");
    assert_eq!(error["connection_id"], a_id.as_str());
    assert!(error["detail"].as_str().expect("detail").contains("500"));
    // Two integration calls per $connect and two messages: the latency window saw them.
    assert!(o["latency"]["count"].as_u64().expect("count") >= 4, "{o:#}");
    assert!(o["latency"]["p50"].is_number());
    assert_eq!(o["node"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(o["cluster"].is_null(), "memory store: no cluster");
    // The sampler fills the chart series once a second.
    overview_until(&gw, "chart points", |o| {
        o["series"].as_array().is_some_and(|s| !s.is_empty())
    })
    .await;
}

#[tokio::test]
async fn the_cluster_lists_its_nodes_their_leases_and_this_nodes_deployment() {
    let backend = Backend::ok().await;
    let (store, _cleanup) = cluster::shared_store();
    let a = TestGateway::start(&cluster::node_config(&backend.url(), &store, "")).await;
    let mut b = TestGateway::start(&cluster::node_config(&backend.url(), &store, "")).await;
    let b_id = overview(&b).await["node"]["id"]
        .as_str()
        .expect("node id")
        .to_string();
    let o = overview_until(&a, "both nodes", |o| {
        o["cluster"]["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == 2)
    })
    .await;
    let a_id = o["node"]["id"].as_str().expect("node id");
    assert_eq!(o["node"]["store"], "redis");
    let deployment = a.gateway().deployment();
    assert_eq!(o["node"]["deployment"]["id"], deployment.id.as_str());
    assert_eq!(o["node"]["deployment"]["hash"], deployment.hash.as_str());
    let cluster = &o["cluster"];
    assert_eq!(cluster["leaseHeld"], true, "{o:#}");
    assert_eq!(
        cluster["leaseTtlSeconds"], 3.0,
        "the test profile's lease_ttl"
    );
    assert_eq!(cluster["truncated"], false);
    let mut nodes: Vec<(String, bool, bool)> = (cluster["nodes"].as_array().expect("nodes"))
        .iter()
        .map(|n| {
            let id = n["id"].as_str().expect("id").to_string();
            (id, n["alive"] == true, n["self"] == true)
        })
        .collect();
    nodes.sort();
    let mut expected = vec![(a_id.to_string(), true, true), (b_id.clone(), true, false)];
    expected.sort();
    assert_eq!(nodes, expected);
    // What each node serves: its own deployment (deployments are per node by default), read
    // from the heartbeats the nodes leave in the shared store.
    assert_eq!(o["node"]["deployments"], json!([deployment.id]));
    let b_deployment = b.gateway().deployment().id;
    let o = overview_until(&a, "B's heartbeat", |o| {
        (o["cluster"]["nodes"].as_array().into_iter().flatten())
            .any(|n| n["id"] == b_id.as_str() && n["deployments"] == json!([b_deployment]))
    })
    .await;
    let mine = (o["cluster"]["nodes"].as_array().into_iter().flatten())
        .find(|n| n["self"] == true)
        .expect("this node");
    assert_eq!(mine["deployments"], json!([deployment.id]));

    // A node that stops gives its lease back and leaves the list.
    b.shutdown().await;
    overview_until(&a, "only this node", |o| {
        o["cluster"]["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == 1)
    })
    .await;
}

#[tokio::test]
async fn it_is_guarded_as_the_callback_api_is() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let client = http();
    let page = client
        .get(gw.http_url("/@admin"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("<title>wsgate admin</title>")
    );
    // Relayed (not a loopback caller), or without the admin header: refused.
    for path in ["/@admin", "/@admin/api/overview"] {
        let r = client
            .get(gw.http_url(path))
            .header("x-wsgate-admin", "1")
            .header("x-forwarded-for", "203.0.113.9")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 403, "{path}");
        assert_eq!(r.headers()["x-amzn-errortype"], "ForbiddenException");
    }
    let r = client
        .get(gw.http_url("/@admin/api/overview"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403, "no x-wsgate-admin header");

    // Bearer callers: off unless enabled; then the token is needed for the API.
    let bearer = "callback:\n  auth:\n    kind: bearer\n    tokens: [admin-token-0123456789]";
    let off = TestGateway::start(&config(&backend.url(), bearer)).await;
    let r = admin_get(&client, off.http_url("/@admin/api/overview")).await;
    assert_eq!(r.status(), 404);
    let on = TestGateway::start(&config(
        &backend.url(),
        &format!("{bearer}\nadmin:\n  enabled: true"),
    ))
    .await;
    let r = admin_get(&client, on.http_url("/@admin/api/overview")).await;
    assert_eq!(r.status(), 403);
    let r = client
        .get(on.http_url("/@admin/api/overview"))
        .header("x-wsgate-admin", "1")
        .bearer_auth("admin-token-0123456789")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    // The page itself (no data) loads for a browser, which cannot send the header.
    let page = client
        .get(on.http_url("/@admin"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);

    // Off the main listener with the callback API.
    let private = "callback:\n  listen: 127.0.0.1:0\n  on_main_listener: false";
    let gw = TestGateway::start(&config(&backend.url(), private)).await;
    let callback = gw.gateway().callback_addr().expect("callback listener");
    let r = admin_get(&client, format!("http://{callback}/@admin/api/overview")).await;
    assert_eq!(r.status(), 200);
    let r = admin_get(&client, gw.http_url("/@admin/api/overview")).await;
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn the_configuration_shown_has_no_secrets() {
    let backend = Backend::ok().await;
    let extra = "callback:\n  auth:\n    kind: bearer\n    tokens: [tok-secret-0123456789]\nadmin:\n  enabled: true";
    let yaml = config(&backend.url(), extra).replace(
        "        backend: ",
        "        upstreamPassword: pw-secret-3\n        feed: amqp://guest:pw-secret-4@127.0.0.1:5672/%2f?token=pw-secret-2\n        backend: ",
    );
    let gw = TestGateway::start(&yaml).await;
    let r = http()
        .get(gw.http_url("/@admin/api/config"))
        .header("x-wsgate-admin", "1")
        .bearer_auth("tok-secret-0123456789")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    for secret in [
        "tok-secret-0123456789",
        "pw-secret-2",
        "pw-secret-3",
        "pw-secret-4",
    ] {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
    for kept in [
        "sendmessage",
        "amqp://guest:***@127.0.0.1:5672/%2f?token=REDACTED",
        "upstreamPassword",
    ] {
        assert!(text.contains(kept), "{kept} missing:\n{text}");
    }
}

#[tokio::test]
async fn the_actions_post_and_disconnect() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let client = http();
    let r = client
        .post(gw.http_url(&format!("/@admin/api/connections/prod/{id}")))
        .header("x-wsgate-admin", "1")
        .body("from the admin page")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(next_text(&mut ws).await, "from the admin page");

    let r = client
        .put(gw.http_url(&format!("/prod/@connections/{id}/groups/ops")))
        .send()
        .await
        .expect("join");
    assert_eq!(r.status(), 204);
    let r = client
        .post(gw.http_url("/@admin/api/groups/prod/ops"))
        .header("x-wsgate-admin", "1")
        .body("to the group")
        .send()
        .await
        .expect("group post");
    assert_eq!(r.status(), 200);
    let outcome: Value = r.json().await.expect("json");
    assert_eq!(outcome["deliveredLocal"], 1);
    assert_eq!(next_text(&mut ws).await, "to the group");
    let o = overview(&gw).await;
    assert_eq!(o["groups"]["largest"][0]["group"], "ops");
    assert_eq!(o["groups"]["largest"][0]["node"], 1);

    // Unmarked actions are refused and do nothing.
    let r = client
        .delete(gw.http_url(&format!("/@admin/api/connections/prod/{id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 403);
    let r = client
        .delete(gw.http_url(&format!("/@admin/api/connections/prod/{id}")))
        .header("x-wsgate-admin", "1")
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert_eq!(expect_close(&mut ws).await.0, 1000);
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["connectionId"], id.as_str());
    let r = client
        .delete(gw.http_url(&format!("/@admin/api/connections/prod/{id}")))
        .header("x-wsgate-admin", "1")
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 410, "gone once closed");
    overview_until(&gw, "no connections", |o| o["connections"]["node"] == 0).await;
    assert!(backend.try_next().await.is_none(), "$disconnect ran once");
}
