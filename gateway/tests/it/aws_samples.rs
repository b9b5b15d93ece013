//! Handlers written for AWS run unchanged behind wsgate: fixtures in the shape of the AWS
//! serverless chat app (`onconnect`, `ondisconnect`, `sendmessage` on DynamoDB and the
//! API Gateway management API, AWS SDK for JavaScript v3) and of the API Gateway Developer
//! Guide's WebSocket REQUEST authorizer sample (reference file §4.1: `HeaderAuth1`,
//! `QueryString1`, `StageVar1`; `callback("Unauthorized")` → 401, a Deny policy → 403), run by
//! a Lambda Invoke harness in Node.js, with DynamoDB served by moto, over `wss://` with SigV4 on
//! the callback API, driven by `ws` WebSocket clients (the library under wscat).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::lambda::{ACCESS_KEY_ID, Moto, REGION, SECRET_ACCESS_KEY, TempFile};
use crate::support::node::{Client, Harness};
use crate::support::*;

/// The chat app's default table name.
const TABLE: &str = "simplechat_connections";

/// The sample's expected values.
const RIGHT: [(&str, &str); 1] = [("HeaderAuth1", "headerValue1")];
const QUERY: &str = "?QueryString1=queryValue1";

/// A self-signed certificate for 127.0.0.1 in PEM files, removed on drop.
pub(crate) struct Cert {
    pub(crate) cert: TempFile,
    pub(crate) key: TempFile,
}

impl Cert {
    pub(crate) fn new() -> Self {
        let generated =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
        Self {
            cert: TempFile::with_contents("samples-cert.pem", &generated.cert.pem()),
            key: TempFile::with_contents("samples-key.pem", &generated.signing_key.serialize_pem()),
        }
    }
}

/// One DynamoDB call to moto (JSON protocol). moto does not check signatures; it takes the region
/// from the credential scope.
async fn dynamodb(moto: &Moto, operation: &str, body: Value) -> Value {
    let answer = http()
        .post(&moto.url)
        .header("X-Amz-Target", format!("DynamoDB_20120810.{operation}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20260101/{REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .body(body.to_string())
        .send()
        .await
        .expect("moto answers");
    let status = answer.status();
    let text = answer.text().await.expect("body");
    assert!(status.is_success(), "{operation}: {status} {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// The connection ids in the table.
pub(crate) async fn stored_ids(moto: &Moto) -> BTreeSet<String> {
    let scan = dynamodb(moto, "Scan", json!({ "TableName": TABLE })).await;
    scan["Items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["connectionId"]["S"].as_str().expect("id").to_string())
        .collect()
}

/// What the harness reports for a `sendmessage` that posted to everyone.
fn sent() -> (String, String) {
    (
        "sendmessage".to_string(),
        r#"ok {"statusCode":200,"body":"Data sent."}"#.to_string(),
    )
}

fn gateway_yaml(cert: &Cert, harness: &Harness) -> String {
    let lambda = &harness.url;
    format!(
        r#"
listen: 127.0.0.1:0
tls:
  cert_file: {cert}
  key_file: {key}
callback:
  auth:
    kind: sigv4
    region: {REGION}
    credentials: [{{ access_key_id: {ACCESS_KEY_ID}, secret_access_key: "{SECRET_ACCESS_KEY}" }}]
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod:
      variables: {{ lambda: "{lambda}", authorizer: authorizer, StageVar1: stageValue1 }}
    dev:
      variables: {{ lambda: "{lambda}", authorizer: authorizer, StageVar1: devValue1 }}
    closed:
      variables: {{ lambda: "{lambda}", authorizer: deny, StageVar1: stageValue1 }}
    bare:
      variables: {{ lambda: "{lambda}", authorizer: authorizer }}
  authorizers:
    dg_sample:
      type: request
      uri: "${{stageVariables.lambda}}/2015-03-31/functions/${{stageVariables.authorizer}}/invocations"
      identity_sources:
        - route.request.header.HeaderAuth1
        - route.request.querystring.QueryString1
        - stageVariables.StageVar1
  routes:
    $connect:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.lambda}}/2015-03-31/functions/onconnect/invocations", timeout: 10s }}
      authorizer: dg_sample
    $disconnect:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.lambda}}/2015-03-31/functions/ondisconnect/invocations", timeout: 10s }}
    sendmessage:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.lambda}}/2015-03-31/functions/sendmessage/invocations", timeout: 10s }}
"#,
        cert = cert.cert.0.display(),
        key = cert.key.0.display(),
    )
}

/// What the chat sample's functions run on: its DynamoDB table on moto, a certificate for the
/// gateway's `wss://`, and the Lambda harness with the functions' environment (the SDK's own
/// variables, the service-specific endpoint variable for DynamoDB, and the gateway's CA for
/// `https://`), and that environment (the clients use it too). Keep the [`Moto`] alive for the
/// test's length.
pub(crate) async fn chat_sample_setup() -> (Moto, Cert, Vec<(String, String)>, Harness) {
    let moto = Moto::start().await;
    dynamodb(
        &moto,
        "CreateTable",
        json!({
            "TableName": TABLE,
            "AttributeDefinitions": [{"AttributeName": "connectionId", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        }),
    )
    .await;
    let cert = Cert::new();
    let env: Vec<(String, String)> = [
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.url.as_str()),
        ("TABLE_NAME", TABLE),
        ("NODE_EXTRA_CA_CERTS", &cert.cert.0.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let harness = Harness::start(&env).await;
    (moto, cert, env, harness)
}

#[tokio::test]
async fn chat_app_and_dg_authorizer_run_unchanged() {
    let (moto, cert, env, mut harness) = chat_sample_setup().await;
    let gw = TestGateway::start(&gateway_yaml(&cert, &harness)).await;
    let url =
        |stage: &str, query: &str| format!("wss://127.0.0.1:{}/{stage}{query}", gw.addr.port());

    // The authorizer: wrong values fail in the function with "Unauthorized" (401), a missing
    // identity source is 401 before any call, an explicit Deny policy is 403.
    let refusals = [
        (url("prod", QUERY), vec![("HeaderAuth1", "wrong")], 401),
        (url("prod", "?QueryString1=wrong"), RIGHT.to_vec(), 401),
        (url("dev", QUERY), RIGHT.to_vec(), 401),
        (url("prod", QUERY), vec![], 401),
        (url("prod", ""), RIGHT.to_vec(), 401),
        (url("bare", QUERY), RIGHT.to_vec(), 401),
        (url("closed", QUERY), RIGHT.to_vec(), 403),
    ];
    for (target, headers, status) in refusals {
        let opened = Client::connect(&target, &headers, &env).await;
        assert_eq!(opened.status(), status, "{target} {headers:?}");
    }
    // The function ran for the three wrong values and the Deny, not for missing sources.
    for _ in 0..3 {
        assert_eq!(
            harness.next_done().await,
            (
                "authorizer".to_string(),
                r#"error "Unauthorized""#.to_string()
            )
        );
    }
    let (name, outcome) = harness.next_done().await;
    assert_eq!(name, "deny");
    assert!(outcome.contains(r#""Effect":"Deny""#), "{outcome}");
    assert!(stored_ids(&moto).await.is_empty(), "no refused connect ran");

    // Three clients connect; `onconnect` stores each id.
    let mut clients = Vec::new();
    for _ in 0..3 {
        let opened = Client::connect(&url("prod", QUERY), &RIGHT, &env).await;
        clients.push(opened.client());
    }
    for _ in 0..3 {
        let (name, outcome) = harness.next_done().await;
        assert_eq!(name, "authorizer");
        assert!(
            outcome.starts_with(r#"ok {"principalId":"me""#),
            "{outcome}"
        );
        assert_eq!(
            harness.next_done().await,
            (
                "onconnect".to_string(),
                r#"ok {"statusCode":200,"body":"Connected."}"#.to_string()
            )
        );
    }
    let connected = stored_ids(&moto).await;
    assert_eq!(connected.len(), 3, "{connected:?}");

    // A stale id (a connection that is gone) is in the table too.
    let stale = "Z2hvc3RDb25uZWN0aW9uSWQ=";
    dynamodb(
        &moto,
        "PutItem",
        json!({"TableName": TABLE, "Item": {"connectionId": {"S": stale}}}),
    )
    .await;

    // One sends; `sendmessage` posts to every id through the management API client (SigV4 over
    // https://{domainName}/{stage}); all three receive the data; the stale id gets 410 and is
    // deleted.
    clients[0]
        .send(r#"{"action":"sendmessage","data":"hello"}"#)
        .await;
    for client in &mut clients {
        assert_eq!(client.next_message().await, "hello");
    }
    // The handler's own log line of its 410 branch.
    harness
        .wait_for(&format!("Found stale connection, deleting {stale}"))
        .await;
    assert_eq!(harness.next_done().await, sent());
    assert_eq!(
        stored_ids(&moto).await,
        connected,
        "the stale id is deleted"
    );

    // A client that leaves is removed by `ondisconnect`; the others still chat.
    let leaving = clients.pop().expect("client");
    assert_eq!(leaving.close().await, 1000);
    assert_eq!(
        harness.next_done().await,
        (
            "ondisconnect".to_string(),
            r#"ok {"statusCode":200,"body":"Disconnected."}"#.to_string()
        )
    );
    let remaining = stored_ids(&moto).await;
    assert_eq!(remaining.len(), 2, "{remaining:?}");
    assert!(remaining.is_subset(&connected));
    clients[1]
        .send(r#"{"action":"sendmessage","data":"bye"}"#)
        .await;
    for client in &mut clients {
        assert_eq!(client.next_message().await, "bye");
    }
    assert_eq!(harness.next_done().await, sent());
}
