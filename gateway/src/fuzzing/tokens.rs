//! Fuzz entry points for credentials: SigV4 requests (canonicalisation, header and query
//! parsing) and JWTs with JWKS documents.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::auth::jwt::JwtAuthorizer;
use crate::config::JwtAuthorizerConfig;
use crate::iam::sigv4::{Credential, SigV4Verifier, SignedRequest};

/// The access key the SigV4 target's verifier knows (the seed corpus is signed with it).
pub const SIGV4_ACCESS_KEY_ID: &str = "AKIDFUZZEXAMPLE";
/// Its secret.
pub const SIGV4_SECRET: &str = "fuzz/secret+key/0123456789abcdefghijklm";
/// The verifier's clock: `X-Amz-Date` of the seeds.
pub const SIGV4_NOW: &str = "2026-01-02T03:04:05Z";

/// Most headers read from one request head, as many as the callback listener reads.
const MAX_HEADERS: usize = 100;

/// A SigV4-signed request: `input` is an HTTP/1.1 request head and its body. Checks: a request
/// refused by the head checks is refused by the full verification too (the callback API reads
/// no body of such a request), and an accepted one names the configured key.
pub fn sigv4(input: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head_len) = request.parse(input).ok()? else {
        return None;
    };
    let method = Method::from_bytes(request.method?.as_bytes()).ok()?;
    let target = request.path?;
    let (raw_path, raw_query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let mut map = HeaderMap::new();
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(header.value).ok()?;
        map.append(name, value);
    }
    let body = input.get(head_len..).unwrap_or_default();
    let now = DateTime::parse_from_rfc3339(SIGV4_NOW)
        .map(|t| t.with_timezone(&Utc))
        .ok()?;
    let verifier = SigV4Verifier::new(
        "us-east-1",
        vec![Credential {
            access_key_id: SIGV4_ACCESS_KEY_ID.into(),
            secret_access_key: SIGV4_SECRET.into(),
            session_token: None,
        }],
    );
    let head = verifier.check_head(raw_query, &map, now);
    let signed = SignedRequest {
        method: &method,
        raw_path,
        raw_query,
        headers: &map,
        body,
    };
    let verified = verifier.verify(&signed, now);
    if head.is_err() {
        assert!(
            verified.is_err(),
            "the head was refused but the request verified"
        );
    }
    let key = verified.ok()?;
    assert_eq!(key, SIGV4_ACCESS_KEY_ID);
    Some(key)
}

/// The HMAC secret of the JWT target's `hs` key.
pub const JWT_HS_SECRET: &str = "fuzz-hmac-secret-0123456789abcdef";
/// The public key of the JWT target's `ec` key (ES256).
pub const JWT_EC_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAELWp42XekfXiqKVx9GYPs4Bw07rXH
zz0Cz1jOWH0R/FzaF6HkWCM9PrOuHHilJtKumW52UMxqlbcE+AyhrG+6cw==
-----END PUBLIC KEY-----
";

fn jwt_config() -> &'static JwtAuthorizerConfig {
    static CONFIG: OnceLock<JwtAuthorizerConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let yaml = serde_json::json!({
            "type": "jwt",
            "algorithms": ["HS256", "ES256", "RS256"],
            "keys": [
                {"kid": "hs", "secret": JWT_HS_SECRET},
                {"kid": "ec", "pem": JWT_EC_PUBLIC_PEM},
            ],
            "claims": ["email", "groups"],
            "max_token_bytes": 4096,
        });
        match serde_json::from_value::<crate::config::AuthorizerConfig>(yaml) {
            Ok(crate::config::AuthorizerConfig::Jwt(config)) => config,
            other => panic!("the JWT target's configuration: {other:?}"),
        }
    })
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

/// A JWT checked by a `jwt` authorizer with an HMAC and an EC key, plus the keys of `jwks` when
/// it is a usable JWKS document. Answers the principal of an accepted token. Checks: an
/// accepted token's `alg` is on the allow-list and it carries a principal.
pub fn jwt(token: &str, jwks: &[u8]) -> Option<String> {
    let no_env = |_: &str| None;
    let mut authorizer =
        JwtAuthorizer::new("fuzz", jwt_config(), client(), &no_env).expect("the JWT target's keys");
    if !jwks.is_empty() {
        authorizer = authorizer.with_jwks_document(jwks).ok()?;
    }
    let verified = authorizer
        .verify(token)
        .now_or_never()
        .expect("no JWKS URL: verification never waits");
    let authorized = verified.ok()?;
    let header = jsonwebtoken::decode_header(token).expect("an accepted token has a header");
    assert!(
        jwt_config().algorithms.contains(&header.alg),
        "accepted alg {:?}",
        header.alg
    );
    let principal = authorized.context.get("principalId")?.as_str()?;
    assert!(!principal.is_empty(), "an accepted token names a principal");
    Some(principal.to_owned())
}
