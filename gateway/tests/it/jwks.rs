//! JWT keys from a JWKS URL served by a test HTTP server: fetched once, refetched when a token
//! names an unknown `kid` (key rotation) but no more than the configured rate, fail closed.

use std::sync::{Arc, Mutex};

use jsonwebtoken::Algorithm;

use crate::support::keys::{TestKey, claims, jwks};
use crate::support::secured::{Outcome, handshake, secured_config};
use crate::support::*;

fn authorizer(url: &str, min_refresh: &str) -> String {
    format!(
        r#"authorizers:
  idp:
    type: jwt
    algorithms: [RS256, ES256]
    jwks: {{ url: "{url}", min_refresh_interval: {min_refresh}, timeout: 1s }}"#
    )
}

/// A backend that serves `doc` at `/jwks` and accepts everything else.
async fn idp(doc: &Arc<Mutex<String>>) -> Backend {
    let doc = Arc::clone(doc);
    Backend::start(move |r| {
        if r.path == "/jwks" {
            Reply::http(200, &doc.lock().expect("doc").clone())
        } else {
            Reply::lambda(200, None)
        }
    })
    .await
}

/// The handshake's status; open sockets are kept in `open` so no `$disconnect` interleaves
/// with the requests the tests count.
async fn status(gw: &TestGateway, token: &str, open: &mut Vec<Outcome>) -> u16 {
    let outcome = handshake(
        &gw.ws_url("/prod"),
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await;
    let status = outcome.status();
    open.push(outcome);
    status
}

#[tokio::test]
async fn rotation_is_picked_up_on_an_unknown_kid() {
    let old = TestKey::rsa(Algorithm::RS256);
    let new = TestKey::ec(Algorithm::ES256);
    let doc = Arc::new(Mutex::new(jwks(&[old.jwk("old")])));
    let backend = idp(&doc).await;
    let url = format!("{}/jwks", backend.url());
    let yaml = secured_config(
        &backend.url(),
        "authorizer: idp",
        &authorizer(&url, "0s"),
        "",
    );
    let gw = TestGateway::start(&yaml).await;
    let mut open = Vec::new();

    assert_eq!(
        status(&gw, &old.sign(Some("old"), &claims("a")), &mut open).await,
        101
    );
    assert_eq!(backend.next().await.path, "/jwks");
    assert_eq!(backend.next().await.path, "/connect");
    // Cached: the second token causes no fetch.
    assert_eq!(
        status(&gw, &old.sign(Some("old"), &claims("a")), &mut open).await,
        101
    );
    assert_eq!(backend.next().await.path, "/connect");

    *doc.lock().expect("doc") = jwks(&[new.jwk("new")]);
    assert_eq!(
        status(&gw, &new.sign(Some("new"), &claims("b")), &mut open).await,
        101
    );
    assert_eq!(backend.next().await.path, "/jwks");
    let e = backend.next().await;
    assert_eq!(e.path, "/connect");
    assert_eq!(e.json()["requestContext"]["authorizer"]["principalId"], "b");
    // The retired key is gone after the refresh its own unknown kid causes.
    assert_eq!(
        status(&gw, &old.sign(Some("old"), &claims("a")), &mut open).await,
        401
    );
    assert_eq!(backend.next().await.path, "/jwks");
    assert!(backend.try_next().await.is_none());
}

#[tokio::test]
async fn unknown_kids_cannot_make_the_gateway_refetch() {
    let key = TestKey::ec(Algorithm::ES256);
    let attacker = TestKey::ec(Algorithm::ES256);
    let doc = Arc::new(Mutex::new(jwks(&[key.jwk("k1")])));
    let backend = idp(&doc).await;
    let yaml = secured_config(
        &backend.url(),
        "authorizer: idp",
        &authorizer(&format!("{}/jwks", backend.url()), "1h"),
        "",
    );
    let gw = TestGateway::start(&yaml).await;
    let mut open = Vec::new();
    assert_eq!(
        status(&gw, &key.sign(Some("k1"), &claims("a")), &mut open).await,
        101
    );
    assert_eq!(backend.next().await.path, "/jwks");
    assert_eq!(backend.next().await.path, "/connect");
    for i in 0..25 {
        let token = attacker.sign(Some(&format!("random-{i}")), &claims("x"));
        assert_eq!(status(&gw, &token, &mut open).await, 401);
    }
    assert!(
        backend.try_next().await.is_none(),
        "no JWKS fetch and no $connect for unknown kids"
    );
}

#[tokio::test]
async fn unreachable_or_malformed_jwks_fails_closed_with_500() {
    let key = TestKey::ec(Algorithm::ES256);
    // A document with the right key, padded past the 256 KiB cap on JWKS documents.
    let mut big: serde_json::Value =
        serde_json::from_str(&jwks(&[key.jwk("k1")])).expect("JWKS JSON");
    big["pad"] = serde_json::Value::String("x".repeat(300 * 1024));
    let big = big.to_string();
    let backend = Backend::start(move |r| match r.path.as_str() {
        "/jwks" => Reply::http(200, r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#),
        "/big" => Reply::http(200, &big),
        _ => Reply::lambda(200, None),
    })
    .await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    for url in [
        format!("http://{closed}/jwks"),
        format!("{}/jwks", backend.url()),
        format!("{}/missing", backend.url()),
        format!("{}/big", backend.url()),
    ] {
        let yaml = secured_config(
            &backend.url(),
            "authorizer: idp",
            &authorizer(&url, "0s"),
            "",
        );
        let gw = TestGateway::start(&yaml).await;
        let mut open = Vec::new();
        let token = key.sign(Some("k1"), &claims("a"));
        assert_eq!(status(&gw, &token, &mut open).await, 500, "{url}");
    }
    // Only JWKS fetches reached the backend: no $connect for any of them.
    while let Some(r) = backend.try_next().await {
        assert_ne!(r.path, "/connect");
    }
}
