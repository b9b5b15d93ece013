//! Helpers for the group endpoints of the callback API.

use serde_json::Value;

use super::{DEADLINE, config};

/// `PUT` (`join`) or `DELETE` `/{stage}/@connections/{id}/groups/{group}` on `base`; the status.
pub async fn member(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    group: &str,
    join: bool,
) -> u16 {
    let url = format!("{base}/prod/@connections/{id}/groups/{group}");
    let request = if join {
        client.put(url)
    } else {
        client.delete(url)
    };
    request
        .send()
        .await
        .expect("membership call")
        .status()
        .as_u16()
}

/// `POST /prod/@groups/{group}` (with `?exclude=` when given); status and JSON answer.
pub async fn post_group(
    client: &reqwest::Client,
    base: &str,
    group: &str,
    body: &str,
    exclude: &str,
) -> (u16, Value) {
    let query = if exclude.is_empty() {
        String::new()
    } else {
        format!("?exclude={exclude}")
    };
    let r = client
        .post(format!("{base}/prod/@groups/{group}{query}"))
        .body(body.to_string())
        .send()
        .await
        .expect("group post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `GET /prod/@groups/{group}{query}` as JSON.
pub async fn group_info(client: &reqwest::Client, base: &str, group: &str, query: &str) -> Value {
    let r = client
        .get(format!("{base}/prod/@groups/{group}{query}"))
        .send()
        .await
        .expect("group info");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// `GET /prod/@connections/{id}/groups` as JSON.
pub async fn connection_groups(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let r = client
        .get(format!("{base}/prod/@connections/{id}/groups"))
        .send()
        .await
        .expect("connection groups");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// `POST /prod/@connections/{id}`, expecting 200.
pub async fn post_to(client: &reqwest::Client, base: &str, id: &str, body: &str) {
    post_to_stage(client, base, "prod", id, body).await;
}

/// `POST /{stage}/@connections/{id}`, expecting 200.
pub async fn post_to_stage(
    client: &reqwest::Client,
    base: &str,
    stage: &str,
    id: &str,
    body: &str,
) {
    let r = client
        .post(format!("{base}/{stage}/@connections/{id}"))
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
}

/// A JSON array's items, sorted by their text.
pub fn sorted(list: &Value) -> Vec<String> {
    let mut items: Vec<String> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    items.sort();
    items
}

/// Polls `GET @groups/{group}` until its `memberCount` is `count`.
pub async fn eventually_count(client: &reqwest::Client, base: &str, group: &str, count: u64) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let info = group_info(client, base, group, "").await;
        if info["memberCount"] == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{group}: memberCount {} never became {count}",
            info["memberCount"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// The standard test config with `routes` (YAML at route level) added.
pub fn config_with_routes(backend: &str, routes: &str, extra: &str) -> String {
    config(backend, extra).replacen("  routes:\n", &format!("  routes:\n{routes}"), 1)
}

/// The standard test config with a second stage, `dev`.
pub fn two_stage_config(backend: &str, extra: &str) -> String {
    config(backend, extra).replacen(
        "  stages:\n",
        &format!("  stages:\n    dev:\n      variables:\n        backend: {backend}\n"),
        1,
    )
}
