//! Usage plans on real sockets: a key's own rate, and a quota kept in Redis across a restart.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::secured::{handshake, secured_config};
use crate::support::*;

const KEY: &str = "pl4nKeyValue0123456789ab";

fn plan_config(backend: &Backend, plan: &str, store: &str) -> String {
    let digest = hex::encode(Sha256::digest(KEY.as_bytes()));
    let extra = format!(
        "api_keys:\n  - {{ id: key-1, value_sha256: \"{digest}\", usage_plan: gold }}\nthrottling:\n  usage_plans:\n    gold: {plan}\n{store}"
    );
    secured_config(&backend.url(), "api_key_required: true", "", &extra)
}

async fn open(gw: &TestGateway) -> Ws {
    let (ws, _) = handshake(&gw.ws_url("/prod"), &[("x-api-key", KEY)])
        .await
        .open();
    ws
}

async fn expect_throttled_frame(ws: &mut Ws) {
    let frame: Value = serde_json::from_str(&next_text(ws).await).expect("JSON frame");
    assert_eq!(frame["message"], "Too Many Requests");
}

#[tokio::test]
async fn a_key_past_its_plan_rate_gets_throttled_frames() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&plan_config(
        &backend,
        "{ rate_limit: 0.01, burst_limit: 3 }",
        "",
    ))
    .await;
    // The connect takes one token, two messages the rest.
    let mut ws = open(&gw).await;
    backend.next_to("/connect").await;
    for _ in 0..3 {
        send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    }
    expect_throttled_frame(&mut ws).await;
    backend.next_to("/sendmessage").await;
    backend.next_to("/sendmessage").await;
    assert!(backend.try_next().await.is_none());
    // A new connection with the same key is refused too: the bucket is the key's.
    let refused = handshake(&gw.ws_url("/prod"), &[("x-api-key", KEY)]).await;
    assert_eq!(refused.status(), 429);
}

#[tokio::test]
async fn a_quota_in_redis_survives_a_restart() {
    let backend = Backend::ok().await;
    let prefix = format!("wsgate-quota-test-{}", uuid::Uuid::new_v4().simple());
    let yaml = plan_config(
        &backend,
        "{ quota: { limit: 3, period: day } }",
        &format!("store: {{ kind: redis, url: \"redis://127.0.0.1:6379\", prefix: {prefix} }}"),
    );
    let mut first = TestGateway::start(&yaml).await;
    let mut ws = open(&first).await;
    backend.next_to("/connect").await;
    for _ in 0..3 {
        send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    }
    // connect + 2 messages = 3: the third message is over the quota.
    expect_throttled_frame(&mut ws).await;
    drop(ws);
    first.shutdown().await;

    let second = TestGateway::start(&yaml).await;
    let refused = handshake(&second.ws_url("/prod"), &[("x-api-key", KEY)]).await;
    assert_eq!(refused.status(), 429);
}
