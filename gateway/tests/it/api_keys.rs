//! API keys on `$connect`: accepted keys reach every event as `identity.apiKey`/`apiKeyId`,
//! missing or unknown keys get 403 before `$connect` runs.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::secured::{handshake, secured_config};
use crate::support::*;

const KEY: &str = "k3yV4lue0123456789abcdEF";

fn keys() -> String {
    let digest = hex::encode(Sha256::digest(KEY.as_bytes()));
    let other = hex::encode(Sha256::digest(b"another-key-value-0000000"));
    format!(
        "api_keys:\n  - {{ id: other, value_sha256: \"{other}\", usage_plan: free }}\n  - {{ id: key-1, value_sha256: \"{digest}\", usage_plan: gold }}"
    )
}

#[tokio::test]
async fn header_key_is_checked_and_reported_in_events() {
    let backend = Backend::ok().await;
    let yaml = secured_config(&backend.url(), "api_key_required: true", "", &keys());
    let gw = TestGateway::start(&yaml).await;
    let mut wrong_last = KEY.to_string();
    wrong_last.pop();
    wrong_last.push('G');
    for (name, headers) in [
        ("missing", vec![]),
        ("empty", vec![("x-api-key", "")]),
        ("unknown", vec![("x-api-key", "nope-nope-nope-nope-nope")]),
        ("wrong last byte", vec![("x-api-key", wrong_last.as_str())]),
        ("other header", vec![("api-key", KEY)]),
    ] {
        let outcome = handshake(&gw.ws_url("/prod"), &headers).await;
        assert_eq!(outcome.status(), 403, "{name}");
    }
    assert!(
        backend.try_next().await.is_none(),
        "no $connect for refused keys"
    );

    let (mut ws, _) = handshake(&gw.ws_url("/prod"), &[("X-Api-Key", KEY)])
        .await
        .open();
    let connect = backend.next_to("/connect").await.json();
    let expected = json!({"apiKey": KEY, "apiKeyId": "key-1", "sourceIp": "127.0.0.1"});
    for field in ["apiKey", "apiKeyId", "sourceIp"] {
        assert_eq!(
            connect["requestContext"]["identity"][field],
            expected[field]
        );
    }
    send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    let message = backend.next_to("/sendmessage").await.json();
    assert_eq!(message["requestContext"]["identity"]["apiKeyId"], "key-1");
}

#[tokio::test]
async fn key_can_come_from_the_query_string() {
    let backend = Backend::ok().await;
    let yaml = secured_config(
        &backend.url(),
        "api_key_required: true",
        "api_key_selection_expression: $request.querystring.apikey",
        &keys(),
    );
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(
        handshake(&gw.ws_url("/prod"), &[("x-api-key", KEY)])
            .await
            .status(),
        403
    );
    let (_ws, _) = handshake(&gw.ws_url(&format!("/prod?apikey={KEY}")), &[])
        .await
        .open();
    let connect = backend.next_to("/connect").await.json();
    assert_eq!(connect["requestContext"]["identity"]["apiKeyId"], "key-1");
}

#[tokio::test]
async fn keys_are_optional_unless_required() {
    let backend = Backend::ok().await;
    let yaml = secured_config(&backend.url(), "", "", &keys());
    let gw = TestGateway::start(&yaml).await;
    let (_ws, _) = handshake(&gw.ws_url("/prod"), &[]).await.open();
    let connect = backend.next_to("/connect").await.json();
    assert!(
        connect["requestContext"]["identity"]
            .get("apiKey")
            .is_none()
    );
}
