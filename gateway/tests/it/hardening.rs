//! Handshake hardening: the Origin allow-list, per-address connection and handshake-rate
//! limits (checked before any authorizer or `$connect` call), and credentials kept out of logs.

use jsonwebtoken::Algorithm;

use crate::support::keys::{TestKey, claims};
use crate::support::logs::Captured;
use crate::support::secured::{Outcome, handshake, handshake_from, secured_config};
use crate::support::*;

/// A request authorizer on the backend that allows everything (so its calls can be counted).
const ALLOW_ALL: &str = r#"authorizers:
  gate:
    type: request
    uri: "${stageVariables.backend}/auth"
    identity_sources: [route.request.header.Authorization]"#;

fn allow_all_backend() -> impl Fn(&Received) -> Reply + Send + Sync + 'static {
    |r| match r.path.as_str() {
        "/auth" => Reply::http(200, r#"{"isAuthorized":true}"#),
        _ => Reply::lambda(200, None),
    }
}

#[tokio::test]
async fn origin_allow_list_refuses_cross_site_handshakes_first() {
    let backend = Backend::start(allow_all_backend()).await;
    let yaml = secured_config(
        &backend.url(),
        "authorizer: gate",
        ALLOW_ALL,
        "security:\n  allowed_origins: [\"https://app.example.test\", \"https://*.tenants.example.test\"]\n  allow_missing_origin: false",
    );
    let gw = TestGateway::start(&yaml).await;
    let url = gw.ws_url("/prod");
    for origin in [
        "https://app.example.test.evil.test",
        "https://evilapp.example.test",
        "http://app.example.test",
        "https://app.example.test:444",
        "null",
        "https://app.example.test.",
        "https://tenants.example.test",
    ] {
        let outcome = handshake(&url, &[("Origin", origin), ("Authorization", "t")]).await;
        assert_eq!(outcome.status(), 403, "{origin}");
        if let Outcome::Refused(_, _, body) = outcome {
            assert_eq!(body, r#"{"message":"Origin not allowed"}"#);
        }
    }
    let no_origin = handshake(&url, &[("Authorization", "t")]).await;
    assert_eq!(
        no_origin.status(),
        403,
        "missing Origin is refused when configured so"
    );
    assert!(
        backend.try_next().await.is_none(),
        "no authorizer or $connect call for refused origins"
    );
    for origin in ["https://app.example.test", "https://a.tenants.example.test"] {
        let (_ws, _) = handshake(&url, &[("Origin", origin), ("Authorization", "t")])
            .await
            .open();
    }
}

#[tokio::test]
async fn missing_origin_is_allowed_by_default_for_non_browser_clients() {
    let backend = Backend::ok().await;
    let yaml = secured_config(
        &backend.url(),
        "",
        "",
        "security:\n  allowed_origins: [\"https://app.example.test\"]",
    );
    let gw = TestGateway::start(&yaml).await;
    let (_ws, _) = handshake(&gw.ws_url("/prod"), &[]).await.open();
    let evil = handshake(&gw.ws_url("/prod"), &[("Origin", "https://evil.test")]).await;
    assert_eq!(evil.status(), 403);
}

#[tokio::test]
async fn connections_per_address_are_capped_before_authorizers_run() {
    let backend = Backend::start(allow_all_backend()).await;
    let yaml = secured_config(
        &backend.url(),
        "authorizer: gate",
        &ALLOW_ALL.replace("identity_sources: [route.request.header.Authorization]", ""),
        "security:\n  max_connections_per_ip: 2",
    );
    let gw = TestGateway::start(&yaml).await;
    let url = gw.ws_url("/prod");
    let (_a, _) = handshake_from("127.0.0.2", gw.addr, &url).await.open();
    let (_b, _) = handshake_from("127.0.0.2", gw.addr, &url).await.open();
    let mut counts = 0;
    while backend.try_next().await.is_some() {
        counts += 1;
    }
    assert_eq!(counts, 4, "two authorizer calls and two $connect calls");
    let third = handshake_from("127.0.0.2", gw.addr, &url).await;
    assert_eq!(third.status(), 429);
    if let Outcome::Refused(_, _, body) = third {
        assert!(
            body.contains("Too many connections from this address"),
            "{body}"
        );
    }
    assert!(
        backend.try_next().await.is_none(),
        "the refused one called nothing"
    );
    // Another address is unaffected.
    let (_c, _) = handshake_from("127.0.0.3", gw.addr, &url).await.open();
}

#[tokio::test]
async fn handshake_rate_per_address_answers_429_with_retry_after() {
    let backend = Backend::ok().await;
    let yaml = secured_config(
        &backend.url(),
        "",
        "",
        "security:\n  handshake_rate_per_ip: { rate: 0.1, burst: 2 }",
    );
    let gw = TestGateway::start(&yaml).await;
    let url = gw.ws_url("/prod");
    for _ in 0..2 {
        let (mut ws, _) = handshake_from("127.0.0.4", gw.addr, &url).await.open();
        ws.close(None).await.expect("close");
    }
    match handshake_from("127.0.0.4", gw.addr, &url).await {
        Outcome::Refused(status, headers, body) => {
            assert_eq!(status, 429);
            assert_eq!(body, r#"{"message":"Too many requests"}"#);
            let retry: u64 = headers["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!((1..=10).contains(&retry), "{retry}");
        }
        Outcome::Open(..) => panic!("the third handshake in a burst of two must be refused"),
    }
    let (_other, _) = handshake_from("127.0.0.5", gw.addr, &url).await.open();
}

#[tokio::test]
async fn credentials_in_query_strings_and_headers_never_reach_the_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let key = TestKey::hmac("an-hmac-secret-of-at-least-32-bytes!", Algorithm::HS256);
    let backend = Backend::ok().await;
    let api = r#"authorizers:
  users:
    type: jwt
    identity_sources: [route.request.querystring.access, route.request.header.Authorization]
    algorithms: [HS256]
    keys: [{ secret: "an-hmac-secret-of-at-least-32-bytes!" }]
api_key_selection_expression: $request.querystring.apikey"#;
    let top = format!(
        "api_keys:\n  - {{ id: k, value_sha256: \"{}\", usage_plan: p }}\nsecurity:\n  redact_query_params: [ticket]",
        "0".repeat(64)
    );
    let yaml = secured_config(
        &backend.url(),
        "authorizer: users\napi_key_required: true",
        api,
        &top,
    );
    let gw = TestGateway::start(&yaml).await;
    let refused = handshake(
        &gw.ws_url("/prod?room=lobby&access=SECRET1-abc&ticket=SECRET2-def&token=SECRET3"),
        &[("Authorization", "Bearer SECRET4-ghi")],
    )
    .await;
    assert_eq!(refused.status(), 401);
    let token = key.sign(None, &claims("u"));
    let refused = handshake(
        &gw.ws_url(&format!("/prod?access={token}&apikey=SECRET5-jkl")),
        &[],
    )
    .await;
    assert_eq!(refused.status(), 403);

    let text = logs.text();
    assert!(text.contains("connection refused"), "{text}");
    assert!(text.contains("room=lobby"), "{text}");
    assert!(text.contains("access=REDACTED"), "{text}");
    assert!(text.contains("apikey=REDACTED"), "{text}");
    for secret in ["SECRET", &token] {
        assert!(
            !text.contains(secret),
            "`{secret}` leaked into the logs:\n{text}"
        );
    }
}
