//! The `jwt` authorizer on real sockets: tokens minted here with keys generated here, each
//! accept and reject case asserted with its handshake status.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::support::keys::{TestKey, b64, claims, forged, now};
use crate::support::secured::{Outcome, handshake, indent, secured_config};
use crate::support::*;

const SECRET: &str = "an-hmac-secret-of-at-least-32-bytes!";
const ISSUER: &str = "https://issuer.example.test";

/// `api.authorizers.users` of type jwt with these algorithms and key entries (YAML lines).
fn authorizer(algorithms: &str, keys: &[String]) -> String {
    format!(
        r#"authorizers:
  users:
    type: jwt
    identity_sources:
      - route.request.header.Authorization
      - route.request.querystring.token
      - route.request.cookie.session
      - route.request.subprotocol.bearer.
    algorithms: [{algorithms}]
    issuer: {ISSUER}
    audience: [wsgate, other]
    leeway: 30s
    claims: [email, groups]
    keys:
{}"#,
        indent(&keys.join("\n"), 6)
    )
}

fn secret_key(kid: &str) -> String {
    format!("- {{ kid: {kid}, secret: \"{SECRET}\" }}")
}

fn pem_key(kid: &str, pem: &str) -> String {
    format!("- kid: {kid}\n  pem: |\n{}", indent(pem.trim_end(), 4))
}

/// Valid claims for this authorizer.
fn good(sub: &str) -> Value {
    let mut c = claims(sub);
    c["iss"] = json!(ISSUER);
    c["aud"] = json!("wsgate");
    c
}

async fn start(algorithms: &str, keys: &[String]) -> (Backend, TestGateway) {
    let backend = Backend::ok().await;
    let yaml = secured_config(
        &backend.url(),
        "authorizer: users",
        &authorizer(algorithms, keys),
        "",
    );
    let gw = TestGateway::start(&yaml).await;
    (backend, gw)
}

async fn bearer(gw: &TestGateway, token: &str) -> Outcome {
    handshake(
        &gw.ws_url("/prod"),
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await
}

#[tokio::test]
async fn valid_token_connects_and_its_context_follows_every_event() {
    let key = TestKey::hmac(SECRET, Algorithm::HS256);
    let (backend, gw) = start("HS256", &[secret_key("hs")]).await;
    let mut c = good("user-42");
    c["email"] = json!("u42@example.test");
    c["groups"] = json!(["admin", "dev"]);
    c["ignored"] = json!("not copied");
    let (mut ws, _) = bearer(&gw, &key.sign(Some("hs"), &c)).await.open();
    let expected = json!({
        "principalId": "user-42",
        "email": "u42@example.test",
        "groups": "[\"admin\",\"dev\"]"
    });
    let connect = backend.next_to("/connect").await.json();
    assert_eq!(connect["requestContext"]["authorizer"], expected);
    let id = connect["requestContext"]["connectionId"]
        .as_str()
        .expect("id");
    let info: Value = http()
        .get(gw.http_url(&format!("/prod/@connections/{id}")))
        .send()
        .await
        .expect("GET @connections")
        .json()
        .await
        .expect("JSON");
    assert_eq!(info["authorizer"], expected);
    send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    let message = backend.next_to("/sendmessage").await.json();
    assert_eq!(message["requestContext"]["authorizer"], expected);
    ws.close(None).await.expect("close");
    let disconnect = backend.next_to("/disconnect").await.json();
    assert_eq!(disconnect["requestContext"]["authorizer"], expected);
}

#[tokio::test]
async fn tokens_are_read_from_query_cookie_and_subprotocol() {
    let key = TestKey::hmac(SECRET, Algorithm::HS256);
    let (backend, gw) = start("HS256", &[secret_key("hs")]).await;
    let token = key.sign(None, &good("u1"));
    let (_a, _) = handshake(&gw.ws_url(&format!("/prod?token={token}")), &[])
        .await
        .open();
    let (_b, _) = handshake(
        &gw.ws_url("/prod"),
        &[("Cookie", &format!("theme=dark; session={token}"))],
    )
    .await
    .open();
    // Browsers: the token rides in a subprotocol; the gateway never echoes that one and picks
    // the other offered protocol when `$connect` chose none.
    let (_c, response) = handshake(
        &gw.ws_url("/prod"),
        &[(
            "Sec-WebSocket-Protocol",
            &format!("chat.v1, bearer.{token}"),
        )],
    )
    .await
    .open();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v1");
    for _ in 0..3 {
        let e = backend.next_to("/connect").await.json();
        assert_eq!(e["requestContext"]["authorizer"]["principalId"], "u1");
    }
}

#[tokio::test]
async fn every_bad_token_is_refused_with_401_before_connect_runs() {
    let hs = TestKey::hmac(SECRET, Algorithm::HS256);
    let rsa = TestKey::rsa(Algorithm::RS256);
    let attacker = TestKey::rsa(Algorithm::RS256);
    let (backend, gw) = start(
        "HS256, RS256",
        &[secret_key("hs"), pem_key("rsa", &rsa.public_pem)],
    )
    .await;
    let header = |alg: &str| json!({"alg": alg, "typ": "JWT"});
    let valid = hs.sign(Some("hs"), &good("u"));
    let parts: Vec<&str> = valid.split('.').collect();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good("u");
        f(&mut c);
        hs.sign(Some("hs"), &c)
    };
    // RS→HS confusion: HMAC over the token with the RSA public key as the secret.
    let confused = TestKey::hmac(&rsa.public_pem, Algorithm::HS256);
    let rs384 = TestKey {
        alg: Algorithm::RS384,
        encoding: rsa.encoding.clone(),
        public_pem: String::new(),
    };
    let big = with(&|c| c["pad"] = json!("x".repeat(9000)));
    let attacker_jwk = attacker.jwk("evil");
    let cases: Vec<(&str, String)> = vec![
        ("alg none", forged(&header("none"), &good("u"), "")),
        ("alg None", forged(&header("None"), &good("u"), "")),
        (
            "alg NONE with signature",
            forged(&header("NONE"), &good("u"), parts[2]),
        ),
        (
            "alg none, no trailing dot",
            format!("{}.{}", b64(&header("none")), b64(&good("u"))),
        ),
        ("stripped signature", format!("{}.{}.", parts[0], parts[1])),
        (
            "signature of another token",
            format!("{}.{}.{}", parts[0], b64(&good("admin")), parts[2]),
        ),
        (
            "wrong secret",
            TestKey::hmac("another-secret-that-is-32-bytes-long", Algorithm::HS256)
                .sign(Some("hs"), &good("u")),
        ),
        (
            "RS public key as HMAC secret, kid rsa",
            confused.sign(Some("rsa"), &good("u")),
        ),
        (
            "RS public key as HMAC secret, no kid",
            confused.sign(None, &good("u")),
        ),
        ("RS384 not allowed", rs384.sign(Some("rsa"), &good("u"))),
        (
            "signed by an unknown RSA key",
            attacker.sign(Some("rsa"), &good("u")),
        ),
        (
            "kid path traversal",
            attacker.sign(Some("../../dev/null"), &good("u")),
        ),
        (
            "embedded jwk header",
            attacker.sign_with_header(&json!({"alg": "RS256", "jwk": attacker_jwk}), &good("u")),
        ),
        (
            "jku header",
            attacker.sign_with_header(
                &json!({"alg": "RS256", "jku": "http://127.0.0.1:1/jwks"}),
                &good("u"),
            ),
        ),
        (
            "expired beyond leeway",
            with(&|c| c["exp"] = json!(now() - 35)),
        ),
        ("not yet valid", with(&|c| c["nbf"] = json!(now() + 35))),
        (
            "missing exp",
            with(&|c| {
                c.as_object_mut().map(|m| m.remove("exp"));
            }),
        ),
        ("exp as a string", with(&|c| c["exp"] = json!("tomorrow"))),
        ("exp 1e308", with(&|c| c["exp"] = json!(1e308))),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.test")),
        ),
        (
            "missing issuer",
            with(&|c| {
                c.as_object_mut().map(|m| m.remove("iss"));
            }),
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("someone-else")),
        ),
        (
            "audience list without ours",
            with(&|c| c["aud"] = json!(["a", "b"])),
        ),
        (
            "no principal",
            with(&|c| {
                c.as_object_mut().map(|m| m.remove("sub"));
            }),
        ),
        (
            "unknown crit header",
            hs.sign_with_header(
                &json!({"alg": "HS256", "crit": ["exp2"], "exp2": 1}),
                &good("u"),
            ),
        ),
        ("token over 8 KiB", big),
        ("not a token", "abc.def".to_string()),
        ("garbage", "%%%".to_string()),
    ];
    for (name, token) in &cases {
        let outcome = bearer(&gw, token).await;
        assert_eq!(outcome.status(), 401, "{name}");
        if let Outcome::Refused(_, _, body) = outcome {
            assert_eq!(body, r#"{"message":"Unauthorized"}"#, "{name}");
        }
    }
    let missing = handshake(&gw.ws_url("/prod"), &[]).await;
    assert_eq!(missing.status(), 401, "no token at all");
    assert!(
        backend.try_next().await.is_none(),
        "no refused handshake reached $connect"
    );
    // The same authorizer accepts the genuine articles, and a token 25 s past `exp` (leeway 30 s).
    let late = with(&|c| c["exp"] = json!(now() - 25));
    for token in [valid, rsa.sign(Some("rsa"), &good("u")), late] {
        let (mut ws, _) = bearer(&gw, &token).await.open();
        ws.close(None).await.expect("close");
    }
}

#[tokio::test]
async fn every_asymmetric_family_verifies_and_psychic_signatures_fail() {
    let keys = [
        ("rs", TestKey::rsa(Algorithm::RS256)),
        ("ps", TestKey::rsa(Algorithm::PS256)),
        ("es256", TestKey::ec(Algorithm::ES256)),
        ("es384", TestKey::ec(Algorithm::ES384)),
        ("ed", TestKey::ed25519()),
    ];
    // One key from a PEM file, the rest inline.
    let dir = std::env::temp_dir().join(format!("wsgate-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("rs.pem");
    std::fs::write(&file, &keys[0].1.public_pem).expect("write PEM");
    let mut entries = vec![format!("- {{ kid: rs, pem_file: \"{}\" }}", file.display())];
    entries.extend(keys[1..].iter().map(|(kid, k)| pem_key(kid, &k.public_pem)));
    let (backend, gw) = start("RS256, PS256, ES256, ES384, EdDSA", &entries).await;
    for (kid, key) in &keys {
        let (mut ws, _) = bearer(&gw, &key.sign(Some(kid), &good(kid))).await.open();
        let e = backend.next_to("/connect").await.json();
        assert_eq!(e["requestContext"]["authorizer"]["principalId"], *kid);
        ws.close(None).await.expect("close");
    }
    // ECDSA with r = s = 0 ("psychic signature") and a P-256 signature presented as ES384.
    let zero = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [0u8; 64]);
    let psychic = forged(&json!({"alg": "ES256", "kid": "es256"}), &good("u"), &zero);
    assert_eq!(bearer(&gw, &psychic).await.status(), 401);
    let swapped = keys[2].1.sign(Some("es384"), &good("u"));
    assert_eq!(bearer(&gw, &swapped).await.status(), 401);
    // An EdDSA token presented under the RSA key's kid.
    let ed_as_rs = keys[4].1.sign(Some("rs"), &good("u"));
    assert_eq!(bearer(&gw, &ed_as_rs).await.status(), 401);
    let _ = std::fs::remove_dir_all(&dir);
}
