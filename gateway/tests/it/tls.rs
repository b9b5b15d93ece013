//! `wss://` and `https://`: the listeners serve TLS with the configured certificate, and the
//! callback API is reached at `https://{domainName}/{stage}` from a CONNECT event, as AWS's
//! samples build it.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use serde_json::Value;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

struct TestCert {
    dir: std::path::PathBuf,
    der: CertificateDer<'static>,
}

impl TestCert {
    fn new() -> Self {
        let cert =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let dir = std::env::temp_dir().join(format!("wsgate-tls-{}", wsgate::connection_id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).expect("write cert");
        std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).expect("write key");
        Self {
            dir,
            der: cert.cert.der().clone(),
        }
    }

    fn yaml(&self) -> String {
        format!(
            "tls:\n  cert_file: {}\n  key_file: {}\n",
            self.dir.join("cert.pem").display(),
            self.dir.join("key.pem").display()
        )
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `wss://localhost:{port}/prod` client trusting `cert`, sending `host` as `Host` when given.
async fn wss(cert: &TestCert, port: u16, host: Option<&str>) -> Ws {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("root");
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut request = format!("wss://localhost:{port}/prod")
        .into_client_request()
        .expect("request");
    if let Some(host) = host {
        request
            .headers_mut()
            .insert("host", host.parse().expect("host"));
    }
    let (ws, _) = tokio::time::timeout(
        DEADLINE,
        tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            false,
            Some(Connector::Rustls(Arc::new(client_config))),
        ),
    )
    .await
    .expect("handshake within the deadline")
    .expect("wss handshake");
    ws
}

#[tokio::test]
async fn wss_and_https_callbacks_work_with_the_configured_certificate() {
    let cert = TestCert::new();
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), &cert.yaml())).await;
    let mut ws = wss(&cert, gw.addr.port(), None).await;
    let event = backend.next_to("/connect").await.json();
    assert_eq!(event["headers"]["X-Forwarded-Proto"], "https");
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);

    // A plain-HTTP request to a TLS listener gets no answer but a closed connection.
    let plain = http().get(gw.http_url("/healthz")).send().await;
    assert!(plain.is_err());

    // The callback API over https.
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_der(&cert.der).expect("certificate")])
        .build()
        .expect("client");
    let r = client
        .post(format!(
            "https://localhost:{}/prod/@connections/{id}",
            gw.addr.port()
        ))
        .body("over https")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(next_text(&mut ws).await, "over https");
}

const ACCESS_KEY_ID: &str = "AKIDTLSTEST";
const SECRET_ACCESS_KEY: &str = "tls/test/secret/0123456789abcdefghijkl";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/post_from_event.py");

/// Runs `tests/sdk/post_from_event.py`: boto3 builds its client from the CONNECT event's
/// `requestContext` (`https://{domainName}/{stage}`) and posts `data`; its results line.
async fn boto3_post_from_event(context: &Value, ca_file: &std::path::Path, data: &str) -> Value {
    let ca_file = ca_file.to_str().expect("a UTF-8 path");
    let args = [
        "--ca-file",
        ca_file,
        "--access-key-id",
        ACCESS_KEY_ID,
        "--secret-access-key",
        SECRET_ACCESS_KEY,
        "--data",
        data,
    ];
    let event = context.to_string();
    crate::support::boto::run_script(SCRIPT, args, Some(event.as_bytes()), DEADLINE * 3).await
}

/// The callback URL built as AWS's samples build it, `https://{domainName}/{stage}` from the
/// event's `requestContext` (https://github.com/aws-samples/simple-websockets-chat-app,
/// `sendmessage/app.js`, the endpoint of its `ApiGatewayManagementApiClient`; reference file
/// §2.2, `domainName` "used to build the callback URL", and §6.1, callback URL
/// `https://…/{stageName}`),
/// reaches this gateway's callback API on the TLS listener: boto3's `apigatewaymanagementapi`
/// client, SigV4-signed and trusting the test's certificate, posts to the connection, which
/// receives the message. With TLS the default port 443 is left out of `domainName`; any other
/// port is kept (`:80` too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_reaches_the_callback_api_from_a_connect_event_over_tls() {
    let cert = TestCert::new();
    let backend = Backend::ok().await;
    let auth = format!(
        "callback:\n  auth:\n    kind: sigv4\n    region: us-east-1\n    credentials:\n      \
         - access_key_id: {ACCESS_KEY_ID}\n        secret_access_key: {SECRET_ACCESS_KEY}\n"
    );
    let gw = TestGateway::start(&config(&backend.url(), &format!("{}{auth}", cert.yaml()))).await;
    let port = gw.addr.port();

    let mut ws = wss(&cert, port, None).await;
    let event = backend.next_to("/connect").await.json();
    let context = &event["requestContext"];
    assert_eq!(context["domainName"], format!("localhost:{port}"));
    let results =
        boto3_post_from_event(context, &cert.dir.join("cert.pem"), "from boto3 over TLS").await;
    assert_eq!(
        results["endpoint"],
        format!("https://localhost:{port}/prod"),
        "{results}"
    );
    assert_eq!(results["post"], 200, "{results}");
    assert_eq!(results["get"], 200, "{results}");
    assert_eq!(next_text(&mut ws).await, "from boto3 over TLS");

    for (host, domain) in [
        ("localhost:443", "localhost"),
        ("localhost:80", "localhost:80"),
    ] {
        let _ws = wss(&cert, port, Some(host)).await;
        let event = backend.next_to("/connect").await.json();
        assert_eq!(event["requestContext"]["domainName"], domain, "{host}");
    }
}

#[test]
fn bad_tls_files_fail_at_startup_naming_the_key() {
    let cert = TestCert::new();
    let yaml = config(
        "http://127.0.0.1:9",
        &cert.yaml().replace("cert.pem", "missing.pem"),
    );
    let e = wsgate::Config::from_yaml(&yaml)
        .expect_err("fails")
        .to_string();
    assert!(e.starts_with("config key `tls.cert_file`"), "{e}");
    let yaml = config(
        "http://127.0.0.1:9",
        &cert.yaml().replace("key.pem", "cert.pem"),
    );
    let e = wsgate::Config::from_yaml(&yaml)
        .expect_err("fails")
        .to_string();
    assert!(e.starts_with("config key `tls.key_file`"), "{e}");
}
