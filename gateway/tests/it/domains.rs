//! Custom domain names and API mappings: the `Host` (and, with TLS, the SNI name) picks the
//! domain, its mapping path the stage; `domainName` in events is the custom domain, and the
//! callback API answers under `https://{domain}/{path}/@connections/{id}`.
//! AWS: ../shared/reference/aws-apigw-websocket.md §6.2 (custom domains, wildcard names, API
//! mappings) and §3.1 (base URL `https://{custom-domain}/{api-mapping-path}`).

use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream};

use crate::support::*;

const DOMAINS: &str = r#"
domains:
  - name: chat.example.com
    mappings: [{path: "", stage: prod}]
  - name: api.example.com
    mappings: [{path: chat, stage: prod}]
"#;

/// A WebSocket upgrade to the gateway at `path` with `Host: host`.
async fn upgrade_as(
    gw: &TestGateway,
    host: &str,
    path: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = gw.ws_url(path).into_client_request().expect("request");
    request
        .headers_mut()
        .insert(http::header::HOST, host.parse().expect("host"));
    let connected = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(request))
        .await
        .expect("answer within the deadline");
    connected.map(|(ws, _)| ws)
}

/// An HTTP client that reaches `names` at the gateway's address.
fn client_for(addr: SocketAddr, names: &[&str]) -> reqwest::Client {
    names
        .iter()
        .fold(reqwest::Client::builder().no_proxy(), |b, name| {
            b.resolve(name, addr)
        })
        .build()
        .expect("client")
}

fn refused_status(result: Result<Ws, tokio_tungstenite::tungstenite::Error>) -> (u16, String) {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => (
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).to_string(),
        ),
        Ok(_) => panic!("handshake unexpectedly succeeded"),
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

#[tokio::test]
async fn root_mapping_upgrades_to_the_stage_and_serves_the_callback_api_at_the_root() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), DOMAINS)).await;
    let mut ws = upgrade_as(&gw, "chat.example.com", "/")
        .await
        .expect("upgrade");
    let event = backend.next_to("/connect").await.json();
    assert_eq!(event["requestContext"]["domainName"], "chat.example.com");
    assert_eq!(event["requestContext"]["stage"], "prod");
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();
    send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    let message = backend.next_to("/sendmessage").await.json();
    assert_eq!(message["requestContext"]["domainName"], "chat.example.com");

    // The handler's `https://{domainName}/` (the root mapping) + `@connections/{id}`.
    let client = client_for(gw.addr, &["chat.example.com"]);
    let base = format!("http://chat.example.com:{}", gw.addr.port());
    let r = client
        .post(format!("{base}/@connections/{id}"))
        .body("via the custom domain")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(next_text(&mut ws).await, "via the custom domain");
    let r = client
        .get(format!("{base}/%40connections/{id}"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);

    // The stage name is not a path on a custom domain; the gateway's own paths are.
    let (status, _) = refused_status(upgrade_as(&gw, "chat.example.com", "/prod").await);
    assert_eq!(status, 403);
    let r = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn path_mapping_upgrades_and_unmapped_paths_are_forbidden() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), DOMAINS)).await;
    let mut ws = upgrade_as(&gw, "API.example.com:443", "/chat")
        .await
        .expect("upgrade");
    let event = backend.next_to("/connect").await.json();
    assert_eq!(event["requestContext"]["domainName"], "api.example.com");
    assert_eq!(event["requestContext"]["stage"], "prod");
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();
    let client = client_for(gw.addr, &["api.example.com"]);
    let base = format!("http://api.example.com:{}", gw.addr.port());
    let r = client
        .post(format!("{base}/chat/@connections/{id}"))
        .body("mapped")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(next_text(&mut ws).await, "mapped");

    // No mapping for the path: 403 {"message":"Forbidden"}, upgrade and callback alike (AWS
    // answers a path it does not serve so; §3.1, and the callback API's unknown stage).
    for path in ["/", "/other", "/prod"] {
        let (status, body) = refused_status(upgrade_as(&gw, "api.example.com", path).await);
        assert_eq!((status, body.as_str()), (403, r#"{"message":"Forbidden"}"#));
    }
    let r = client
        .post(format!("{base}/@connections/{id}"))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-amzn-ErrorType"], "ForbiddenException");
    assert_eq!(r.text().await.expect("body"), r#"{"message":"Forbidden"}"#);
}

#[tokio::test]
async fn other_hosts_keep_the_stage_paths() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), DOMAINS)).await;
    let mut ws = upgrade_as(&gw, "other.example.com", "/prod")
        .await
        .expect("upgrade");
    let event = backend.next_to("/connect").await.json();
    assert_eq!(event["requestContext"]["domainName"], "other.example.com");
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();
    let r = http()
        .post(gw.http_url(&format!("/prod/@connections/{id}")))
        .body("as before")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(next_text(&mut ws).await, "as before");
    let (status, _) = refused_status(upgrade_as(&gw, "other.example.com", "/").await);
    assert_eq!(status, 403);
}

/// Self-signed certificates written to a directory; each is trusted by the test clients.
struct Certs {
    dir: std::path::PathBuf,
    ders: Vec<CertificateDer<'static>>,
}

impl Certs {
    /// One certificate per entry, for the names it lists; files `{i}.crt`, `{i}.key`.
    fn new(names: &[&[&str]]) -> Self {
        let dir = std::env::temp_dir().join(format!("wsgate-sni-{}", wsgate::connection_id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut ders = Vec::new();
        for (i, names) in names.iter().enumerate() {
            let names = names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>();
            let cert = rcgen::generate_simple_self_signed(names).expect("certificate");
            std::fs::write(dir.join(format!("{i}.crt")), cert.cert.pem()).expect("cert");
            std::fs::write(
                dir.join(format!("{i}.key")),
                cert.signing_key.serialize_pem(),
            )
            .expect("key");
            ders.push(cert.cert.der().clone());
        }
        Self { dir, ders }
    }

    fn files(&self, i: usize) -> (String, String) {
        let path = |ext: &str| self.dir.join(format!("{i}.{ext}")).display().to_string();
        (path("crt"), path("key"))
    }

    fn client_config(&self, sni: bool) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for der in &self.ders {
            roots.add(der.clone()).expect("root");
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.enable_sni = sni;
        Arc::new(config)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `wss://{name}{path}` upgrade over a TCP connection to the gateway; answers the socket and
/// the certificate the gateway presented.
async fn wss_as(
    gw: &TestGateway,
    certs: &Certs,
    name: &str,
    path: &str,
    sni: bool,
) -> (Ws, CertificateDer<'static>) {
    let tcp = TcpStream::connect(gw.addr).await.expect("tcp");
    let url = format!("wss://{name}{path}");
    let connector = Connector::Rustls(certs.client_config(sni));
    let (ws, _) = tokio::time::timeout(
        DEADLINE,
        tokio_tungstenite::client_async_tls_with_config(url, tcp, None, Some(connector)),
    )
    .await
    .expect("handshake within the deadline")
    .expect("wss handshake");
    let presented = match ws.get_ref() {
        MaybeTlsStream::Rustls(tls) => {
            tls.get_ref().1.peer_certificates().expect("peer")[0].clone()
        }
        _ => panic!("not TLS"),
    };
    (ws, presented)
}

#[tokio::test]
async fn each_domain_is_served_its_certificate_by_sni() {
    // 0: the default (`tls:`), 1: chat.example.com, 2: *.tenants.example.com.
    let certs = Certs::new(&[
        &["localhost", "other.example.com"],
        &["chat.example.com"],
        &["*.tenants.example.com"],
    ]);
    let ((c0, k0), (c1, k1), (c2, k2)) = (certs.files(0), certs.files(1), certs.files(2));
    let extra = format!(
        "tls:\n  cert_file: {c0}\n  key_file: {k0}\ndomains:\n  - name: chat.example.com\n    cert_file: {c1}\n    key_file: {k1}\n    mappings: [{{path: \"\", stage: prod}}]\n  - name: \"*.tenants.example.com\"\n    cert_file: {c2}\n    key_file: {k2}\n    mappings: [{{path: ws, stage: prod}}]\n"
    );
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), &extra)).await;

    let (mut chat, presented) = wss_as(&gw, &certs, "chat.example.com", "/", true).await;
    assert_eq!(presented, certs.ders[1]);
    let event = backend.next_to("/connect").await.json();
    assert_eq!(event["requestContext"]["domainName"], "chat.example.com");
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();

    let (_tenant, presented) = wss_as(&gw, &certs, "a.tenants.example.com", "/ws", true).await;
    assert_eq!(presented, certs.ders[2]);
    let event = backend.next_to("/connect").await.json();
    assert_eq!(
        event["requestContext"]["domainName"],
        "a.tenants.example.com"
    );

    let (_other, presented) = wss_as(&gw, &certs, "other.example.com", "/prod", true).await;
    assert_eq!(presented, certs.ders[0]);
    let (_no_sni, presented) = wss_as(&gw, &certs, "localhost", "/prod", false).await;
    assert_eq!(presented, certs.ders[0]);

    // The callback API over https on the custom domain, verified against its certificate.
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_der(&certs.ders[1]).expect("certificate")])
        .resolve("chat.example.com", gw.addr)
        .build()
        .expect("client");
    let r = client
        .post(format!(
            "https://chat.example.com:{}/@connections/{id}",
            gw.addr.port()
        ))
        .body("over https")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(next_text(&mut chat).await, "over https");
}

#[test]
fn a_domain_certificate_that_cannot_be_read_fails_at_startup_naming_the_key() {
    let certs = Certs::new(&[&["localhost"], &["chat.example.com"]]);
    let ((c0, k0), (c1, _)) = (certs.files(0), certs.files(1));
    let extra = format!(
        "tls:\n  cert_file: {c0}\n  key_file: {k0}\ndomains:\n  - name: chat.example.com\n    cert_file: {c1}\n    key_file: {c1}\n    mappings: [{{stage: prod}}]\n"
    );
    let e = wsgate::Config::from_yaml(&config("http://127.0.0.1:9", &extra))
        .expect_err("fails")
        .to_string();
    assert!(e.starts_with("config key `domains[0].key_file`"), "{e}");
    // A key that is not the certificate's.
    let extra = extra.replace(&format!("key_file: {c1}"), &format!("key_file: {k0}"));
    let e = wsgate::Config::from_yaml(&config("http://127.0.0.1:9", &extra))
        .expect_err("fails")
        .to_string();
    assert!(e.starts_with("config key `domains[0]`"), "{e}");
}

/// A reload applies a changed `domains:`: a new domain's mapping upgrades and is listed by the
/// management API, a removed one is an ordinary host again, a connection upgraded through it
/// stays open with its `domainName`, and a mapping to an unknown stage is refused as at start.
#[tokio::test]
async fn a_reload_applies_changed_domains_and_keeps_upgraded_connections() {
    let backend = Backend::ok().await;
    let yaml = config(&backend.url(), DOMAINS);
    let path =
        std::env::temp_dir().join(format!("wsgate-domains-{}.yaml", wsgate::connection_id()));
    std::fs::write(&path, &yaml).expect("write config");
    let mut gw = TestGateway::start(&yaml).await;
    (gw.gateway.as_mut().expect("running")).set_config_file(path.clone());
    let mut ws = upgrade_as(&gw, "chat.example.com", "/")
        .await
        .expect("upgrade");
    let event = backend.next_to("/connect").await.json();
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();

    let changed = config(
        &backend.url(),
        "domains:\n  - name: new.example.com\n    mappings: [{path: v2, stage: prod}]\n",
    );
    std::fs::write(&path, &changed).expect("rewrite config");
    gw.gateway().reload().await.expect("applied");
    let _new = upgrade_as(&gw, "new.example.com", "/v2")
        .await
        .expect("upgrade through the new domain");
    let event = backend.next_to("/connect").await.json();
    assert_eq!(event["requestContext"]["domainName"], "new.example.com");
    let (status, _) = refused_status(upgrade_as(&gw, "chat.example.com", "/").await);
    assert_eq!(status, 403, "an ordinary host again: `/` names no stage");
    send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    let message = backend.next_to("/sendmessage").await.json();
    assert_eq!(message["requestContext"]["domainName"], "chat.example.com");
    let r = http()
        .post(gw.http_url(&format!("/prod/@connections/{id}")))
        .body("still here")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(next_text(&mut ws).await, "still here");
    let listed: serde_json::Value = http()
        .get(gw.http_url("/v2/domainnames"))
        .send()
        .await
        .expect("management API answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        listed["items"][0]["domainName"], "new.example.com",
        "{listed}"
    );
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );

    let invalid = config(
        &backend.url(),
        "domains:\n  - name: new.example.com\n    mappings: [{path: v2, stage: nope}]\n",
    );
    std::fs::write(&path, &invalid).expect("rewrite config");
    let refused = gw.gateway().reload().await.expect_err("refused");
    assert!(refused.to_string().contains("domains[0]"), "{refused}");
    let _still = upgrade_as(&gw, "new.example.com", "/v2")
        .await
        .expect("the domains in force stay");
    let _ = std::fs::remove_file(&path);
}
