//! SigV4 on a custom domain: botocore signs the URL the client uses (`/chat`, `/chat/@connections/…`
//! on `api.example.com`), and the gateway verifies that path, not the `/{stage}` path it maps to.
//! AWS: ../shared/reference/aws-apigw-websocket.md §3.2 (requests signed for `execute-api`) and
//! §6.2 (API mappings).

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::iam::{Key, Signing, sign};
use crate::support::{Backend, DEADLINE, TestGateway, config};

const ALICE: Key<'static> = Key {
    access_key_id: "AKIDALICE",
    secret: "alice-secret-key",
    token: None,
};

const EXTRA: &str = r#"
iam:
  region: us-east-1
  account_id: "123456789012"
  principals:
    - access_key_id: AKIDALICE
      secret_access_key: alice-secret-key
callback:
  auth:
    kind: sigv4
    region: us-east-1
    credentials:
      - access_key_id: AKIDALICE
        secret_access_key: alice-secret-key
domains:
  - name: api.example.com
    mappings: [{path: chat, stage: prod}]
"#;

#[tokio::test]
async fn signed_upgrade_and_callback_verify_on_the_custom_domain_path() {
    let backend = Backend::ok().await;
    let yaml = config(&backend.url(), EXTRA).replacen(
        "    $connect:\n",
        "    $connect:\n      authorization_type: AWS_IAM\n",
        1,
    );
    let gw = TestGateway::start(&yaml).await;
    let base = format!("http://api.example.com:{}", gw.addr.port());

    let signed = sign(&format!("{base}/chat"), ALICE, Signing::PRESIGN).await;
    let request = signed.url.as_str().into_client_request().expect("request");
    let tcp = TcpStream::connect(gw.addr).await.expect("tcp");
    let (ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(request, tcp))
        .await
        .expect("answer within the deadline")
        .expect("the signed upgrade is accepted");
    let event = backend.next_to("/connect").await.json();
    assert_eq!(event["requestContext"]["domainName"], "api.example.com");
    assert_eq!(
        event["requestContext"]["identity"]["accessKey"],
        "AKIDALICE"
    );
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();

    let url = format!("{base}/chat/@connections/{id}");
    let signed = sign(&url, ALICE, Signing::HEADER).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .resolve("api.example.com", gw.addr)
        .build()
        .expect("client");
    let mut request = client.get(&url);
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    let r = request.send().await.expect("get");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    // The same signature does not verify for the stage path it maps to.
    let mut request = client.get(gw.http_url(&format!("/prod/@connections/{id}")));
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.expect("get").status(), 403);
    drop(ws);
}
