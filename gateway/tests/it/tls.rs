//! `wss://` and `https://`: the listeners serve TLS with the configured certificate.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use tokio_tungstenite::Connector;

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

#[tokio::test]
async fn wss_and_https_callbacks_work_with_the_configured_certificate() {
    let cert = TestCert::new();
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), &cert.yaml())).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("root");
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let url = format!("wss://localhost:{}/prod", gw.addr.port());
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        false,
        Some(Connector::Rustls(Arc::new(client_config))),
    )
    .await
    .expect("wss handshake");
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
