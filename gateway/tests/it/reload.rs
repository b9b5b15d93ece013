//! Reloading a running gateway: the API definition changes for open connections without
//! closing any, an invalid or restart-only change is refused and the running definition stays,
//! certificates rotate, and the real binary reloads on SIGHUP, `wsgate reload` and a file watch.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use rustls_pki_types::CertificateDer;
use serde_json::Value;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsgate::ReloadError;

use crate::support::cluster::{NodeProcess, eventually};
use crate::support::*;

/// A directory of its own for a test's files, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("wsgate-reload-{}", wsgate::connection_id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts a gateway on `yaml`, written to a file it reloads from.
async fn gateway_with_file(dir: &Dir, yaml: &str) -> (TestGateway, PathBuf) {
    let path = dir.file("wsgate.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let mut gw = TestGateway::start(yaml).await;
    gw.gateway
        .as_mut()
        .expect("running")
        .set_config_file(path.clone());
    (gw, path)
}

/// A backend whose `/default` answers the message itself (`$default` is a two-way
/// `http_proxy` route in the standard test config).
async fn echo_backend() -> Backend {
    Backend::start(|r| {
        if r.path == "/default" {
            Reply::http(200, &String::from_utf8_lossy(&r.body))
        } else {
            Reply::lambda(200, None)
        }
    })
    .await
}

/// A route added by a reload: a two-way mock.
const NEW_ROUTE: &str = "    newroute:\n      integration: { type: mock, response: '{\"new\":true}' }\n      route_response: true\n";

/// `yaml` with [`NEW_ROUTE`] added to its routes.
fn with_new_route(yaml: &str) -> String {
    yaml.replacen("  routes:\n", &format!("  routes:\n{NEW_ROUTE}"), 1)
}

async fn health(client: &reqwest::Client, url: String) -> Value {
    serde_json::from_str(&get_text(client, url).await).expect("health JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_steady_messages_drops_no_socket_and_loses_no_message() {
    const CONNECTIONS: usize = 8;
    let dir = Dir::new();
    let backend = echo_backend().await;
    let yaml = config(&backend.url(), "");
    let (gw, path) = gateway_with_file(&dir, &yaml).await;
    let before = gw.gateway().deployment();

    // Each client sends one message at a time and waits for its echo, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    let mut answered = Vec::new();
    for c in 0..CONNECTIONS {
        let mut ws = connect(&gw.ws_url("/prod")).await;
        let stop = Arc::clone(&stop);
        let count = Arc::new(AtomicU64::new(0));
        answered.push(Arc::clone(&count));
        clients.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                let text = format!("{{\"action\":\"none\",\"c\":{c},\"n\":{n}}}");
                send_text(&mut ws, &text).await;
                assert_eq!(
                    next_text(&mut ws).await,
                    text,
                    "connection {c}, message {n}"
                );
                n += 1;
                count.store(n, Ordering::Release);
            }
            (ws, n)
        }));
    }
    let all_past = |mark: Vec<u64>| {
        let answered = answered.clone();
        move || {
            let done = answered
                .iter()
                .zip(&mark)
                .all(|(count, mark)| count.load(Ordering::Acquire) >= mark + 5);
            async move { done }
        }
    };
    eventually(
        "every client under way",
        DEADLINE,
        all_past(vec![0; CONNECTIONS]),
    )
    .await;

    std::fs::write(&path, with_new_route(&yaml)).expect("rewrite config");
    let after = gw.gateway().reload().await.expect("reload applies");
    assert_eq!(gw.gateway().deployment(), after);
    assert_ne!(after.hash, before.hash);
    assert_eq!(gw.gateway().connection_count(), CONNECTIONS);

    // Every client goes on, on the new definition, for five more messages at least.
    let at_reload: Vec<u64> = answered.iter().map(|c| c.load(Ordering::Acquire)).collect();
    eventually(
        "every client past the reload",
        DEADLINE,
        all_past(at_reload),
    )
    .await;
    stop.store(true, Ordering::Release);
    assert_eq!(
        gw.gateway().connection_count(),
        CONNECTIONS,
        "no socket dropped"
    );
    let mut total = 0;
    for client in clients {
        let (mut ws, n) = client
            .await
            .expect("client task: every message answered in order");
        total += n;
        // The socket opened before the reload routes by the new definition.
        send_text(&mut ws, r#"{"action":"newroute"}"#).await;
        assert_eq!(next_text(&mut ws).await, r#"{"new":true}"#);
        ws.close(None).await.expect("close");
    }
    assert!(total >= (CONNECTIONS * 10) as u64, "{total} messages");
    eventually("every client closed", DEADLINE, || async {
        gw.gateway().connection_count() == 0
    })
    .await;
    let client = http();
    let healthz = health(&client, gw.http_url("/healthz")).await;
    assert_eq!(healthz["deployment"]["id"], after.id.as_str());
    assert_eq!(healthz["deployment"]["hash"], after.hash.as_str());
    // The value is per process (the tests share one): the binary's test checks it.
    let metrics = get_text(&client, gw.http_url("/metrics")).await;
    for series in [
        "wsgate_deployment_hash ",
        "wsgate_deployment_loaded_timestamp_seconds ",
        "wsgate_reloads_total{outcome=\"applied\"} ",
    ] {
        assert!(metrics.contains(series), "{series}");
    }
}

#[tokio::test]
async fn an_invalid_reload_keeps_the_running_definition_and_says_why() {
    let dir = Dir::new();
    let backend = Backend::ok().await;
    let yaml = config(&backend.url(), "");
    let (gw, path) = gateway_with_file(&dir, &yaml).await;
    let before = gw.gateway().deployment();
    let mut ws = connect(&gw.ws_url("/prod")).await;

    // Not valid: the same one line `wsgate check` (and a start) gives.
    let invalid = with_new_route(&yaml).replace("type: mock, response", "type: nope, response");
    std::fs::write(&path, &invalid).expect("rewrite config");
    let expected = wsgate::Config::load(&path)
        .expect_err("invalid")
        .to_string();
    let refused = gw.gateway().reload().await.expect_err("refused");
    assert_eq!(refused, ReloadError::Invalid(expected.clone()));
    assert!(expected.contains("api.routes.newroute"), "{expected}");

    // A key fixed at start: refused as a whole, naming it, though the routes changed too.
    let fixed = with_new_route(&yaml).replace(
        "listen: 127.0.0.1:0",
        "listen: 127.0.0.1:0\nlimits: { max_connections: 3 }",
    );
    std::fs::write(&path, &fixed).expect("rewrite config");
    let refused = gw.gateway().reload().await.expect_err("refused");
    assert!(
        refused
            .to_string()
            .starts_with("cannot change without a restart: `limits.max_connections`"),
        "{refused}"
    );
    // Through the admin API (what `wsgate reload` asks): the same line, 409.
    let client = http();
    let answer = client
        .post(gw.http_url("/@admin/api/reload"))
        .header("x-wsgate-admin", "1")
        .send()
        .await
        .expect("admin answers");
    assert_eq!(answer.status(), 409);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["message"], refused.to_string());

    // Nothing changed: the old definition serves, the socket is open.
    assert_eq!(gw.gateway().deployment(), before);
    send_text(&mut ws, r#"{"action":"newroute"}"#).await;
    let event = backend.next_to("/default").await;
    assert_eq!(&event.body[..], br#"{"action":"newroute"}"#);
    next_text(&mut ws).await; // `$default`'s answer
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);

    // A valid file through the admin API: applied, the new deployment answered.
    std::fs::write(&path, with_new_route(&yaml)).expect("rewrite config");
    let answer = client
        .post(gw.http_url("/@admin/api/reload"))
        .header("x-wsgate-admin", "1")
        .send()
        .await
        .expect("admin answers");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(
        body["deployment"]["id"],
        gw.gateway().deployment().id.as_str()
    );
    send_text(&mut ws, r#"{"action":"newroute"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"new":true}"#);
}

#[tokio::test]
async fn a_removed_route_falls_back_to_default_and_disconnect_uses_the_new_definition() {
    let dir = Dir::new();
    let backend = Backend::ok().await;
    let yaml = config(&backend.url(), "");
    let (gw, path) = gateway_with_file(&dir, &yaml).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    backend.next_to("/connect").await;
    send_text(&mut ws, r#"{"action":"sendmessage","n":1}"#).await;
    backend.next_to("/sendmessage").await;

    // `sendmessage` removed, `$disconnect` moved.
    let changed = yaml
        .replace(
            "    sendmessage:\n      integration: { type: aws_proxy, uri: \"${stageVariables.backend}/sendmessage\", timeout: 2s }\n",
            "",
        )
        .replace("/disconnect\"", "/disconnect-v2\"");
    assert!(!changed.contains("sendmessage"), "{changed}");
    std::fs::write(&path, &changed).expect("rewrite config");
    gw.gateway().reload().await.expect("reload applies");

    send_text(&mut ws, r#"{"action":"sendmessage","n":2}"#).await;
    let fallback = backend.next().await;
    assert_eq!(fallback.path, "/default");
    assert_eq!(&fallback.body[..], br#"{"action":"sendmessage","n":2}"#);
    next_text(&mut ws).await; // `$default`'s answer
    ws.close(None).await.expect("close");
    let disconnect = backend.next().await;
    assert_eq!(disconnect.path, "/disconnect-v2");
    assert_eq!(
        disconnect.json()["requestContext"]["eventType"],
        "DISCONNECT"
    );
}

#[tokio::test]
async fn a_watched_file_is_reloaded_when_its_content_changes() {
    let dir = Dir::new();
    let backend = Backend::ok().await;
    let yaml = config(&backend.url(), "reload: { watch: true, debounce: 50ms }\n");
    let (gw, path) = gateway_with_file(&dir, &yaml).await;
    let before = gw.gateway().deployment();
    let mut ws = connect(&gw.ws_url("/prod")).await;
    // Replaced as editors do: a new file renamed over the old one.
    let next = dir.file("wsgate.yaml.tmp");
    std::fs::write(&next, with_new_route(&yaml)).expect("write config");
    std::fs::rename(&next, &path).expect("rename");
    eventually("the watch reloads", Duration::from_secs(10), || async {
        gw.gateway().deployment().hash != before.hash
    })
    .await;
    send_text(&mut ws, r#"{"action":"newroute"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"new":true}"#);
}

/// A self-signed certificate for `localhost` written to `cert.pem` / `key.pem` in `dir`.
fn write_certificate(dir: &Dir) -> CertificateDer<'static> {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    // Written beside, then renamed: a reload never reads half a file.
    for (name, text) in [
        ("cert.pem", cert.cert.pem()),
        ("key.pem", cert.signing_key.serialize_pem()),
    ] {
        let tmp = dir.file(&format!("{name}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, dir.file(name)).expect("rename");
    }
    cert.cert.der().clone()
}

/// A `wss://localhost:{port}/prod` client trusting `root` only.
async fn wss(root: &CertificateDer<'static>, port: u16) -> Result<Ws, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("root");
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let request = format!("wss://localhost:{port}/prod")
        .into_client_request()
        .expect("request");
    tokio::time::timeout(
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
    .map(|(ws, _)| ws)
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn certificate_rotation_keeps_open_tls_connections_and_serves_the_new_one() {
    let dir = Dir::new();
    let backend = Backend::ok().await;
    let old = write_certificate(&dir);
    let tls = format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n",
        dir.file("cert.pem").display(),
        dir.file("key.pem").display()
    );
    let yaml = config(&backend.url(), &tls);
    let (gw, _path) = gateway_with_file(&dir, &yaml).await;
    let port = gw.addr.port();
    let mut open = wss(&old, port).await.expect("old certificate served");

    let new = write_certificate(&dir);
    let refused = wss(&new, port)
        .await
        .expect_err("not served before the reload");
    assert!(refused.contains("certificate"), "{refused}");
    gw.gateway().reload().await.expect("reload applies");

    // New handshakes get the new certificate; the connection made before keeps working.
    let mut fresh = wss(&new, port).await.expect("new certificate served");
    wss(&old, port)
        .await
        .expect_err("old certificate no longer served");
    for ws in [&mut open, &mut fresh] {
        send_text(ws, r#"{"action":"ping"}"#).await;
        assert_eq!(next_text(ws).await, r#"{"action":"pong"}"#);
    }
}

/// Runs `wsgate reload --config FILE`: (exit code, stdout, stderr).
fn wsgate_reload(config: &std::path::Path) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .arg("reload")
        .arg("--config")
        .arg(config)
        .output()
        .expect("run wsgate reload");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_binary_reloads_on_sighup_and_on_wsgate_reload_without_closing_sockets() {
    let backend = Backend::ok().await;
    let node = NodeProcess::start(&config(&backend.url(), ""), "reload-node").await;
    let path = node.config_path();
    let started = std::fs::read_to_string(&path).expect("config");
    let client = http();
    let hash = |health: Value| health["deployment"]["hash"].as_str().map(str::to_string);
    let first = hash(health(&client, node.http_url("/healthz")).await).expect("a deployment");
    let mut ws = connect(&node.ws_url("/prod")).await;
    backend.next_to("/connect").await;

    // SIGHUP.
    std::fs::write(&path, with_new_route(&started)).expect("rewrite config");
    node.hangup();
    eventually("SIGHUP reloads", Duration::from_secs(10), || async {
        hash(health(&client, node.http_url("/healthz")).await).as_ref() != Some(&first)
    })
    .await;
    send_text(&mut ws, r#"{"action":"newroute"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"new":true}"#);
    let second = hash(health(&client, node.http_url("/healthz")).await);

    // `wsgate reload` with an invalid file: exit 1 with the reason; nothing changes.
    let invalid = started.replace("type: mock, response", "type: nope, response");
    std::fs::write(&path, &invalid).expect("rewrite config");
    let (code, _, stderr) = wsgate_reload(&path);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "error: config key `api.routes.ping.integration.type`: unknown variant `nope`"
        ),
        "{stderr}"
    );
    assert_eq!(
        hash(health(&client, node.http_url("/healthz")).await),
        second
    );

    // And with a valid one: exit 0, the route is gone again.
    std::fs::write(&path, &started).expect("rewrite config");
    let (code, stdout, stderr) = wsgate_reload(&path);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("reloaded: deployment "), "{stdout}");
    assert_eq!(
        hash(health(&client, node.http_url("/healthz")).await),
        Some(first.clone())
    );
    let metrics = get_text(&client, node.http_url("/metrics")).await;
    let number = u64::from_str_radix(&first, 16).expect("hex");
    assert!(
        metrics.contains(&format!("\nwsgate_deployment_hash {number}\n")),
        "{metrics}"
    );
    assert!(
        metrics.contains("wsgate_reloads_total{outcome=\"refused\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("wsgate_reloads_total{outcome=\"applied\"} 2\n"));
    send_text(&mut ws, r#"{"action":"newroute"}"#).await;
    assert_eq!(
        backend.next_to("/default").await.body.as_ref(),
        br#"{"action":"newroute"}"#
    );
    next_text(&mut ws).await; // `$default`'s answer

    // The socket was never closed.
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    let frame = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .expect("frame");
    match frame {
        Some(Ok(Message::Text(text))) if text.as_str() == r#"{"action":"pong"}"# => {}
        other => panic!(
            "expected the pong of an open socket, got {other:?}; log:\n{}",
            node.log()
        ),
    }
}

/// A reload that changes `listen` moves the listener: the new address is bound first (a bind
/// that fails refuses the reload, naming the key, and the old one keeps serving), then accepts,
/// and the old one stops accepting while the WebSockets it accepted stay open and reachable
/// through the callback API on the new address. Adding a separate callback listener stays fixed.
#[tokio::test]
async fn a_reload_moves_the_listener_without_closing_its_sockets() {
    let dir = Dir::new();
    let backend = Backend::ok().await;
    let yaml = config(&backend.url(), "");
    let (gw, path) = gateway_with_file(&dir, &yaml).await;
    let old = gw.gateway().local_addr();
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;

    // An address something else holds: refused as a start would refuse it; nothing moved.
    let taken = std::net::TcpListener::bind("127.0.0.3:0").expect("bind");
    let taken = taken.local_addr().expect("addr");
    let busy = yaml.replace("listen: 127.0.0.1:0", &format!("listen: {taken}"));
    std::fs::write(&path, &busy).expect("rewrite config");
    let refused = gw.gateway().reload().await.expect_err("refused");
    assert!(
        refused
            .to_string()
            .starts_with(&format!("listen: cannot bind {taken}: ")),
        "{refused}"
    );
    assert_eq!(gw.gateway().local_addr(), old);
    connect(&format!("ws://{old}/prod")).await;

    // Another address: the new listener serves, the old one accepts nothing more.
    let moved = yaml.replace("listen: 127.0.0.1:0", "listen: 127.0.0.2:0");
    std::fs::write(&path, &moved).expect("rewrite config");
    gw.gateway().reload().await.expect("applied");
    let new = gw.gateway().local_addr();
    assert_eq!(new.ip().to_string(), "127.0.0.2");
    let mut fresh = connect(&format!("ws://{new}/prod")).await;
    send_text(&mut fresh, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut fresh).await, r#"{"action":"pong"}"#);
    eventually("the old address refuses", DEADLINE, || async {
        tokio::net::TcpStream::connect(old).await.is_err()
    })
    .await;
    // The socket accepted on the old address is open, and reached through the new one.
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
    let posted = http()
        .post(format!("http://{new}/prod/@connections/{id}"))
        .body("through the new address")
        .send()
        .await
        .expect("callback answers");
    assert_eq!(posted.status(), 200);
    assert_eq!(next_text(&mut ws).await, "through the new address");

    // The same file again moves nothing (port 0 is compared as written, not as bound).
    gw.gateway().reload().await.expect("applied");
    assert_eq!(gw.gateway().local_addr(), new);

    // A separate callback listener cannot be added by a reload.
    let separate = format!("{moved}\ncallback: {{ listen: 127.0.0.1:0 }}\n");
    std::fs::write(&path, &separate).expect("rewrite config");
    let refused = gw.gateway().reload().await.expect_err("refused");
    assert!(
        refused.to_string().contains("`callback.listen`"),
        "{refused}"
    );
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
}

/// A reload is applied whole even when its caller goes away at the worst moment: here the
/// caller's future is dropped once the new deployment serves, while the reload is held telling
/// the deployment store (Redis, behind a relay that holds this node's first heartbeat naming
/// another deployment) about it; the custom domains of the same file must still be swapped in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_dropped_by_its_caller_is_still_applied_whole() {
    use crate::support::cluster::{cleanup, redis_store, shared_redis_url, unique_prefix};
    use crate::support::relay::Relay;
    let dir = Dir::new();
    let backend = Backend::ok().await;
    let prefix = unique_prefix();
    let _cleanup = cleanup(&prefix);
    let before_id = Arc::new(std::sync::OnceLock::<String>::new());
    let nodes_key = format!("{{{prefix}}}:deploy:nodes");
    let relay = {
        let before_id = Arc::clone(&before_id);
        let upstream = shared_redis_url();
        let upstream = upstream
            .trim_start_matches("redis://")
            .trim_end_matches('/');
        Relay::start(upstream, move |chunk| {
            let has = |needle: &[u8]| chunk.windows(needle.len()).any(|w| w == needle);
            before_id.get().is_some_and(|before| {
                has(b"HSET") && has(nodes_key.as_bytes()) && !has(before.as_bytes())
            })
        })
        .await
    };
    let store = format!(
        "{}deployments: {{ scope: cluster }}\n",
        redis_store(&relay.redis_url(), &prefix)
    );
    let yaml = config(&backend.url(), &store);
    let (gw, path) = gateway_with_file(&dir, &yaml).await;
    let before = gw.gateway().deployment();
    before_id.set(before.id.clone()).expect("set once");
    let changed = with_new_route(&yaml)
        + "domains:\n  - name: new.example.com\n    mappings: [{path: \"\", stage: prod}]\n";
    std::fs::write(&path, &changed).expect("rewrite config");

    tokio::select! {
        () = relay.held() => {}
        result = gw.gateway().reload() => panic!("the reload finished with its heartbeat held: {result:?}"),
    }
    assert_ne!(
        gw.gateway().deployment(),
        before,
        "the new deployment serves"
    );
    relay.release();
    // The caller is gone; the rest of the reload still happens.
    eventually("the domains of the reloaded file", DEADLINE, || async {
        let listed: Value = http()
            .get(gw.http_url("/v2/domainnames"))
            .send()
            .await
            .expect("management API answers")
            .json()
            .await
            .expect("JSON");
        listed["items"][0]["domainName"] == "new.example.com"
    })
    .await;
}
