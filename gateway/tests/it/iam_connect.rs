//! `AWS_IAM` authorization of `$connect`: upgrades signed by botocore (presigned URL as browsers
//! and Amplify send it, or `Authorization` headers) against `iam.principals`, the refusals, and
//! the IAM `identity` fields on every event of the connection.
//!
//! AWS sources: route `AuthorizationType` `AWS_IAM` and `execute-api:Invoke` on
//! `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{route}` ("Control access to WebSocket
//! APIs with IAM authorization", reference §4.1, and "ARN format", §3.2); the signed `wss` URL
//! (AWS support's answer, as quoted at
//! https://mcmap.net/q/986369/-authorise-request-to-aws-websocket-api-gateway-using-aws_iam,
//! and Amplify's `Signer.signUrl`); the SigV4 query parameters and their expiry ("Create a signed AWS API
//! request", https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html);
//! `identity.accessKey|accountId|caller|user|userArn` (the `$context.identity.*` variables of
//! WebSocket APIs, reference §6.3).

use serde_json::{Value, json};

use crate::support::iam::{Key, Refusal, Signed, Signing, open, sign};
use crate::support::{Backend, TestGateway, config, expect_close, send_text};

const ALICE: Key<'static> = Key {
    access_key_id: "AKIDALICE",
    secret: "alice-secret-key",
    token: None,
};
const BOB: Key<'static> = Key {
    access_key_id: "ASIABOB",
    secret: "bob-secret-key",
    token: Some("bob-session-token/with+chars="),
};
const DENIED: Key<'static> = Key {
    access_key_id: "AKIDDENIED",
    secret: "denied-secret-key",
    token: None,
};

const PRINCIPALS: &str = r#"
iam:
  region: us-east-1
  account_id: "123456789012"
  principals:
    - access_key_id: AKIDALICE
      secret_access_key: alice-secret-key
      principal_id: AIDAALICE
      user_arn: arn:aws:iam::111122223333:user/alice
    - access_key_id: ASIABOB
      secret_access_key: bob-secret-key
      session_token: bob-session-token/with+chars=
      principal_id: "AROABOB:bob-session"
      user_arn: arn:aws:sts::111122223333:assumed-role/Chat/bob-session
    - access_key_id: AKIDDENIED
      secret_access_key: denied-secret-key
      policy:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: execute-api:Invoke
            Resource: arn:aws:execute-api:us-east-1:123456789012:chat/*
          - Effect: Deny
            Action: execute-api:Invoke
            Resource: arn:aws:execute-api:us-east-1:123456789012:chat/prod/$connect
"#;

async fn iam_gateway(backend: &Backend) -> TestGateway {
    let yaml = config(&backend.url(), PRINCIPALS).replacen(
        "    $connect:\n",
        "    $connect:\n      authorization_type: AWS_IAM\n",
        1,
    );
    TestGateway::start(&yaml).await
}

/// The `identity` AWS gives an IAM caller, as configured for Alice.
fn alice_identity() -> Value {
    json!({
        "accessKey": "AKIDALICE",
        "accountId": "111122223333",
        "caller": "AIDAALICE",
        "user": "AIDAALICE",
        "userArn": "arn:aws:iam::111122223333:user/alice",
    })
}

fn assert_identity(event: &Value, expected: &Value) {
    let identity = &event["requestContext"]["identity"];
    for (field, value) in expected.as_object().expect("object") {
        assert_eq!(&identity[field], value, "identity.{field} in {identity}");
    }
    assert_eq!(identity["sourceIp"], "127.0.0.1", "{identity}");
}

async fn refused(signed: &Signed) -> Refusal {
    match open(signed).await {
        Ok(_) => panic!("the upgrade was accepted: {signed:?}"),
        Err(refusal) => refusal,
    }
}

fn assert_refused(refusal: &Refusal, error_type: &str, message: &str) {
    assert_eq!(refusal.status, 403, "{refusal:?}");
    assert_eq!(
        refusal.error_type.as_deref(),
        Some(error_type),
        "{refusal:?}"
    );
    assert_eq!(refusal.body, json!({ "message": message }), "{refusal:?}");
}

const INVALID_SIGNATURE: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
const INVALID_TOKEN: &str = "The security token included in the request is invalid.";

/// A botocore-presigned URL (`SigV4QueryAuth`, service `execute-api`, STS session token in
/// `X-Amz-Security-Token`) connects, and CONNECT, MESSAGE and DISCONNECT all carry the caller's
/// IAM identity (AWS: `$context.identity.*` hold for the whole connection, like `authorizer`).
#[tokio::test]
async fn botocore_presigned_url_connects_with_the_iam_identity() {
    let backend = Backend::ok().await;
    let mut gw = iam_gateway(&backend).await;
    let signed = sign(&gw.http_url("/prod"), BOB, Signing::PRESIGN).await;
    assert!(
        signed.url.contains("X-Amz-Security-Token="),
        "{}",
        signed.url
    );
    let mut ws = open(&signed)
        .await
        .expect("the presigned upgrade is accepted");
    let bob = json!({
        "accessKey": "ASIABOB",
        "accountId": "111122223333",
        "caller": "AROABOB:bob-session",
        "user": "AROABOB:bob-session",
        "userArn": "arn:aws:sts::111122223333:assumed-role/Chat/bob-session",
    });
    let connect = backend.next_to("/connect").await.json();
    assert_identity(&connect, &bob);
    send_text(&mut ws, r#"{"action":"sendmessage","text":"hi"}"#).await;
    assert_identity(&backend.next_to("/sendmessage").await.json(), &bob);
    ws.close(None).await.expect("close");
    let _ = expect_close(&mut ws).await;
    assert_identity(&backend.next_to("/disconnect").await.json(), &bob);
    gw.shutdown().await;
}

/// A header-signed upgrade (botocore `SigV4Auth`: `Authorization`, `X-Amz-Date`) connects as
/// AWS accepts it for `AWS_IAM` routes; the identity reaches the backend.
#[tokio::test]
async fn header_signed_upgrade_connects() {
    let backend = Backend::ok().await;
    let mut gw = iam_gateway(&backend).await;
    let signed = sign(&gw.http_url("/prod"), ALICE, Signing::HEADER).await;
    assert!(signed.headers.iter().any(|(k, _)| k == "Authorization"));
    let _ws = open(&signed)
        .await
        .expect("the header-signed upgrade is accepted");
    assert_identity(&backend.next_to("/connect").await.json(), &alice_identity());
    gw.shutdown().await;
}

/// Refusals, each a 403 with the AWS error name and message the same IAM front door answers on
/// the management API (reference §3.2; names as in tests/it/aws_wire.rs): wrong secret and
/// wrong region or service → `InvalidSignatureException`; an expired presigned URL → the same
/// (SigV4 guide: "X-Amz-Expires"); no signature → `MissingAuthenticationTokenException`
/// "Missing Authentication Token"; an unknown key → `UnrecognizedClientException`. The
/// `$connect` integration is never called.
#[tokio::test]
async fn bad_signatures_are_refused_before_connect() {
    let backend = Backend::ok().await;
    let mut gw = iam_gateway(&backend).await;
    let url = gw.http_url("/prod");
    let wrong_secret = Key {
        secret: "not-the-secret",
        ..ALICE
    };
    for how in [Signing::PRESIGN, Signing::HEADER] {
        let refusal = refused(&sign(&url, wrong_secret, how).await).await;
        assert_refused(&refusal, "InvalidSignatureException", INVALID_SIGNATURE);
    }
    let expired = Signing {
        date_offset_secs: -400,
        ..Signing::PRESIGN
    };
    let refusal = refused(&sign(&url, ALICE, expired).await).await;
    assert_refused(&refusal, "InvalidSignatureException", INVALID_SIGNATURE);
    for how in [
        Signing {
            region: "eu-west-1",
            ..Signing::PRESIGN
        },
        Signing {
            service: "apigateway",
            ..Signing::HEADER
        },
    ] {
        let refusal = refused(&sign(&url, ALICE, how).await).await;
        assert_refused(&refusal, "InvalidSignatureException", INVALID_SIGNATURE);
    }
    let unsigned = Signed {
        url: gw.ws_url("/prod"),
        headers: Vec::new(),
    };
    let refusal = refused(&unsigned).await;
    assert_refused(
        &refusal,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    );
    let unknown = Key {
        access_key_id: "AKIDUNKNOWN",
        ..ALICE
    };
    let refusal = refused(&sign(&url, unknown, Signing::PRESIGN).await).await;
    assert_refused(&refusal, "UnrecognizedClientException", INVALID_TOKEN);
    assert!(backend.try_next().await.is_none(), "no $connect call");
    gw.shutdown().await;
}

/// A presigned URL works while `X-Amz-Date` + `X-Amz-Expires` is ahead, and the same URL
/// replayed after that is refused (SigV4 guide: a presigned request is valid for
/// `X-Amz-Expires` seconds from `X-Amz-Date`). Signed 297 s in the past with a 300 s lifetime,
/// it is replayed (polled every 100 ms, with a deadline) until the gateway's clock passes its
/// end.
#[tokio::test]
async fn presigned_url_replayed_after_expiry_is_refused() {
    let backend = Backend::ok().await;
    let mut gw = iam_gateway(&backend).await;
    let nearly_expired = Signing {
        date_offset_secs: -297,
        ..Signing::PRESIGN
    };
    let signed = sign(&gw.http_url("/prod"), ALICE, nearly_expired).await;
    let first = open(&signed).await.expect("accepted within its lifetime");
    drop(first);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(100));
    let refusal = loop {
        poll.tick().await;
        match open(&signed).await {
            Err(refusal) => break refusal,
            Ok(ws) => drop(ws),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replayed URL was still accepted after its expiry"
        );
    };
    assert_refused(&refusal, "InvalidSignatureException", INVALID_SIGNATURE);
    gw.shutdown().await;
}

/// STS session credentials: the session token must come with its key and match; a token on a
/// long-term key is refused too. AWS answers `UnrecognizedClientException` "The security token
/// included in the request is invalid." (the SDKs' name for it; reference §3.2 and
/// tests/it/aws_wire.rs).
#[tokio::test]
async fn session_tokens_are_checked_on_connect() {
    let backend = Backend::ok().await;
    let mut gw = iam_gateway(&backend).await;
    let url = gw.http_url("/prod");
    for (key, how) in [
        (Key { token: None, ..BOB }, Signing::PRESIGN),
        (
            Key {
                token: Some("bob-session-token/wrong"),
                ..BOB
            },
            Signing::HEADER,
        ),
        (
            Key {
                token: Some("unexpected"),
                ..ALICE
            },
            Signing::PRESIGN,
        ),
    ] {
        let refusal = refused(&sign(&url, key, how).await).await;
        assert_refused(&refusal, "UnrecognizedClientException", INVALID_TOKEN);
    }
    let _ws = open(&sign(&url, BOB, Signing::HEADER).await)
        .await
        .expect("the right token in X-Amz-Security-Token is accepted");
    gw.shutdown().await;
}

/// A principal whose policy explicitly denies `execute-api:Invoke` on `…/prod/$connect` is
/// refused with 403 `AccessDeniedException` and IAM's message ("User: … is not authorized to
/// perform: execute-api:Invoke on resource: … with an explicit deny", AWS knowledge center
/// https://aws.amazon.com/premiumsupport/knowledge-center/api-gateway-403-error-lambda-authorizer/
/// and https://repost.aws/knowledge-center/api-gateway-access-denied).
#[tokio::test]
async fn policy_deny_on_connect_is_access_denied() {
    let backend = Backend::ok().await;
    let mut gw = iam_gateway(&backend).await;
    let refusal = refused(&sign(&gw.http_url("/prod"), DENIED, Signing::PRESIGN).await).await;
    assert_eq!(refusal.status, 403, "{refusal:?}");
    assert_eq!(refusal.error_type.as_deref(), Some("AccessDeniedException"));
    assert_eq!(
        refusal.body,
        json!({ "Message": "User: arn:aws:iam::123456789012:user/AKIDDENIED is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:chat/prod/$connect with an explicit deny" })
    );
    assert!(backend.try_next().await.is_none(), "no $connect call");
    gw.shutdown().await;
}
