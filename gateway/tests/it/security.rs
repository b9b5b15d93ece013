//! Adversarial tests: each attack from the threat model (docs/security.md, "Threat model") that
//! the other suites do not already cover, asserting the refusal and that nothing leaked or
//! reached a backend.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use jsonwebtoken::Algorithm;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::keys::{TestKey, claims};
use crate::support::secured::{Outcome, handshake, secured_config};
use crate::support::*;

const UPGRADE: &str = "GET /prod HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// A gateway whose `$connect`, `$disconnect` and `ping` are mocks (no backend), for the attacks
/// that only need sockets.
fn mock_config(extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod: {{}}
  routes:
    $connect: {{ integration: {{ type: mock }} }}
    $disconnect: {{ integration: {{ type: mock }} }}
    ping:
      integration: {{ type: mock, response: '{{"action":"pong"}}' }}
      route_response: true
{extra}
"#
    )
}

/// Everything the peer sends until it closes (or `DEADLINE` passes, which fails the test).
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the gateway closes the connection");
    out
}

/// The head of the first response in `bytes` (through the blank line).
fn status_of(bytes: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(bytes);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

async fn metrics_text(gw: &TestGateway) -> String {
    get_text(&http(), gw.http_url("/metrics")).await
}

/// Cross-Site WebSocket Hijacking: a page on a foreign origin opens a WebSocket to the
/// gateway and the browser attaches the victim's session cookie. The Origin check must refuse
/// it before the cookie is looked at by the authorizer (no call) and before `$connect`.
#[tokio::test]
async fn cross_site_handshake_with_the_victims_cookie_is_refused_before_the_authorizer() {
    let backend = Backend::start(|r| match r.path.as_str() {
        "/auth" => Reply::http(200, r#"{"isAuthorized":true}"#),
        _ => Reply::lambda(200, None),
    })
    .await;
    let authorizer = "authorizers:\n  cookie:\n    type: request\n    uri: \"${stageVariables.backend}/auth\"\n    identity_sources: [route.request.cookie.session]";
    let yaml = secured_config(
        &backend.url(),
        "authorizer: cookie",
        authorizer,
        "security:\n  allowed_origins: [\"https://app.example.test\"]",
    );
    let gw = TestGateway::start(&yaml).await;
    let url = gw.ws_url("/prod");
    let cookie = ("Cookie", "session=victim-session-0123456789");
    for origin in [
        "https://evil.example",
        "null",
        "https://app.example.test.evil.example",
    ] {
        let outcome = handshake(&url, &[("Origin", origin), cookie]).await;
        assert_eq!(outcome.status(), 403, "{origin}");
        if let Outcome::Refused(_, _, body) = outcome {
            assert!(!body.contains("victim"), "the refusal echoes nothing");
        }
    }
    assert!(
        backend.try_next().await.is_none(),
        "no authorizer and no $connect call for a cross-site handshake"
    );
    let (_ws, _) = handshake(&url, &[("Origin", "https://app.example.test"), cookie])
        .await
        .open();
    assert_eq!(
        backend.next().await.path,
        "/auth",
        "same-site handshakes reach the authorizer"
    );
}

/// Tokens in metrics: credentials sent in the query string, `Authorization` and `x-api-key`,
/// by clients that are accepted and by clients that are refused, must not become label values
/// (a scrape is often readable by more people than the logs).
#[tokio::test]
async fn credentials_never_become_metric_labels() {
    const KEY: &str = "SECRETKEY0123456789abcdefghij";
    let backend = Backend::ok().await;
    let yaml = secured_config(
        &backend.url(),
        "api_key_required: true",
        "",
        &format!(
            "api_keys:\n  - {{ id: k1, value_sha256: \"{}\", usage_plan: p }}",
            sha256_hex(KEY)
        ),
    );
    let gw = TestGateway::start(&yaml).await;
    let url = gw.ws_url("/prod?token=SECRETQUERY-zq7x&x=1");
    let (mut ws, _) = handshake(
        &url,
        &[
            ("Authorization", "Bearer SECRETBEARER-wv9k"),
            ("x-api-key", KEY),
        ],
    )
    .await
    .open();
    ws.send(Message::text(
        r#"{"action":"sendmessage","token":"SECRETBODY-55"}"#,
    ))
    .await
    .expect("send");
    backend.next_to("/sendmessage").await;
    let refused = handshake(&url, &[("x-api-key", "SECRETWRONGKEY-000000000000")]).await;
    assert_eq!(refused.status(), 403);
    ws.close(None).await.expect("close");
    let text = metrics_text(&gw).await;
    // The tails are not hexadecimal: the scrape is process-wide in this test binary and holds
    // other tests' labels, some with random hex in them (`7f3a` once matched one of those).
    for secret in ["SECRET", "zq7x", "wv9k", "0123456789abcdefghij"] {
        assert!(!text.contains(secret), "`{secret}` in /metrics");
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Metric-label cardinality from client-chosen values: a client picks its close code (any of
/// 2000 application codes) and its route key (any string in the body). Neither may create a
/// series per value, or a few clients exhaust the metrics backend.
#[tokio::test]
async fn client_chosen_close_codes_and_route_keys_keep_metric_labels_bounded() {
    let gw = TestGateway::start(&mock_config("")).await;
    let url = gw.ws_url("/prod");
    // Codes no other test uses: the metrics recorder is shared by every test of the process.
    let chosen: Vec<u16> = (3917..3927).chain(4917..4928).collect();
    for &code in &chosen {
        let mut ws = connect(&url).await;
        for key in [format!("route-{code}"), format!("$connect{code}")] {
            send_text(&mut ws, &format!(r#"{{"action":"{key}"}}"#)).await;
        }
        ws.close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "bye".into(),
        }))
        .await
        .expect("close");
        let _ = tokio::time::timeout(DEADLINE, futures_util::StreamExt::next(&mut ws)).await;
    }
    let wanted = u32::try_from(chosen.len()).expect("few");
    let deadline = Instant::now() + DEADLINE;
    let text = loop {
        let text = metrics_text(&gw).await;
        let closed: f64 = text
            .lines()
            .filter(|l| l.starts_with("wsgate_disconnect_total{"))
            .filter(|l| l.contains(r#"code="3xxx""#) || l.contains(r#"code="4xxx""#))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if closed >= f64::from(wanted) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let codes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("wsgate_disconnect_total{"))
        .collect();
    assert!(
        codes.iter().any(|l| l.contains(r#"code="3xxx""#))
            && codes.iter().any(|l| l.contains(r#"code="4xxx""#)),
        "application codes are counted by class: {codes:?}"
    );
    for code in &chosen {
        let label = format!("code=\"{code}\"");
        assert!(
            !text.contains(&label),
            "{label}: one series per class, not per code"
        );
    }
    for leaked in ["route-3917", "$connect4917"] {
        assert!(!text.contains(leaked), "`{leaked}` became a label");
    }
}

/// SSRF through stage variables: a stage variable (or a mistake in one) points an
/// integration, an authorizer or a JWKS URL at the cloud metadata service, or anywhere outside
/// the allow-list. The gateway refuses to start, naming the key and the stage.
#[test]
fn integration_urls_to_metadata_or_unlisted_hosts_are_refused_at_start() {
    let with = |backend: &str, security: &str| {
        wsgate::Config::from_yaml(&format!("{}\n{security}", config(backend, "")))
    };
    for metadata in [
        "http://169.254.169.254/latest/meta-data/iam",
        "http://[fd00:ec2::254]",
        "http://[::ffff:a9fe:a9fe]",
        "http://metadata.google.internal/computeMetadata/v1",
    ] {
        let error = with(metadata, "").expect_err(metadata).to_string();
        assert!(
            error.contains("api.routes.")
                && error.contains("stage `prod`")
                && error.contains("metadata"),
            "{metadata}: {error}"
        );
    }
    let opted_in = with(
        "http://169.254.169.254",
        "security:\n  allow_metadata_hosts: true",
    );
    assert!(
        opted_in.is_ok(),
        "the metadata rule can be lifted on purpose"
    );
    let listed = "security:\n  integration_hosts: [\"*.svc.cluster.local\", \"10.0.0.0/8\"]";
    assert!(with("http://chat.prod.svc.cluster.local:8080", listed).is_ok());
    assert!(with("http://10.1.2.3:8080", listed).is_ok());
    let error = with("http://127.0.0.1:3000", listed)
        .expect_err("unlisted")
        .to_string();
    assert!(
        error.contains("not in security.integration_hosts"),
        "{error}"
    );
    let jwks = format!(
        "{}\n  authorizers:\n    users:\n      type: jwt\n      algorithms: [RS256]\n      jwks: {{ url: \"http://169.254.169.254/jwks\" }}",
        config("http://127.0.0.1:1", "").trim_end()
    );
    let error = wsgate::Config::from_yaml(&jwks)
        .expect_err("jwks")
        .to_string();
    assert!(error.contains("api.authorizers.users.jwks.url"), "{error}");
    let bad = with(
        "http://127.0.0.1:3000",
        "security:\n  integration_hosts: [\"http://x\"]",
    );
    assert!(
        bad.expect_err("bad entry")
            .to_string()
            .contains("security.integration_hosts[0]")
    );
}

/// SSRF through a backend's answer: an authorizer (or any HTTPS integration) answers with a
/// redirect to an internal address. The gateway must treat the redirect as the answer, never
/// follow it: the canary behind the redirect gets no request, and the connection fails closed.
#[tokio::test]
async fn backend_redirects_are_never_followed() {
    let canary = Backend::ok().await;
    let target = format!("{}/latest/meta-data/", canary.url());
    let backend = Backend::start(move |r| match r.path.as_str() {
        "/auth" => Reply {
            status: 302,
            body: String::new(),
            headers: vec![("location".into(), target.clone())],
            hold: None,
        },
        _ => Reply::lambda(200, None),
    })
    .await;
    let authorizer = "authorizers:\n  gate:\n    type: request\n    uri: \"${stageVariables.backend}/auth\"\n    identity_sources: [route.request.header.Authorization]";
    let yaml = secured_config(&backend.url(), "authorizer: gate", authorizer, "");
    let gw = TestGateway::start(&yaml).await;
    let outcome = handshake(&gw.ws_url("/prod"), &[("Authorization", "t")]).await;
    assert_eq!(
        outcome.status(),
        500,
        "a redirect is not an authorizer answer"
    );
    assert_eq!(backend.next().await.path, "/auth");
    assert!(
        canary.try_next().await.is_none(),
        "the redirect was not followed"
    );
    assert_eq!(canary.accepted(), 0);
}

/// Header injection: a value copied into an integration request header (here a JWT claim
/// that becomes `context.authorizer.principalId`) carries CR/LF and a header of its own. The
/// parameter must be left out, never written as two header lines.
#[tokio::test]
async fn control_characters_in_copied_values_never_become_header_lines() {
    const SECRET: &str = "an-hmac-secret-of-at-least-32-bytes!";
    let backend = Backend::ok().await;
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod: {{ variables: {{ backend: "{backend}" }} }}
  routes:
    $connect:
      authorizer: users
      integration:
        type: http_proxy
        uri: "${{stageVariables.backend}}/connect"
        request_parameters:
          integration.request.header.x-principal: context.authorizer.principalId
          integration.request.header.x-source: context.identity.sourceIp
  authorizers:
    users:
      type: jwt
      algorithms: [HS256]
      keys: [{{ secret: "{SECRET}" }}]
"#,
        backend = backend.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let key = TestKey::hmac(SECRET, Algorithm::HS256);
    let token = key.sign(
        None,
        &claims("alice\r\nx-evil: 1\r\n\r\nGET /admin HTTP/1.1"),
    );
    let (_ws, _) = handshake(
        &gw.ws_url("/prod"),
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await
    .open();
    let received = backend.next_to("/connect").await;
    assert!(
        received.headers.get("x-evil").is_none(),
        "no injected header"
    );
    assert!(
        received.headers.get("x-principal").is_none(),
        "the unsafe value is left out"
    );
    assert_eq!(
        received
            .headers
            .get("x-source")
            .and_then(|v| v.to_str().ok()),
        Some("127.0.0.1"),
        "safe parameters still pass"
    );
    assert!(
        backend.try_next().await.is_none(),
        "no smuggled second request"
    );
}

/// Oversized and many headers: a client sends a request head far beyond what any client
/// needs, or hundreds of headers, to exhaust memory or CPU. Both listeners answer 431 and
/// close, and keep serving others.
#[tokio::test]
async fn oversized_and_many_headers_are_refused_on_both_listeners() {
    let gw = TestGateway::start(&mock_config("callback:\n  listen: 127.0.0.1:0")).await;
    let callback = gw.gateway().callback_addr().expect("callback listener");
    let many: String = (0..300).map(|i| format!("x-h{i}: v\r\n")).collect();
    let huge = format!("x-big: {}\r\n", "a".repeat(1024 * 1024));
    for addr in [gw.addr, callback] {
        for extra in [&many, &huge] {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let head = format!("{UPGRADE}{extra}\r\n");
            // The gateway may answer and close before it has read everything.
            let _ = stream.write_all(head.as_bytes()).await;
            let answer = read_until_closed(&mut stream).await;
            assert_eq!(status_of(&answer), 431, "{addr}, {} bytes", head.len());
        }
    }
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
}

/// Slowloris on the callback listener: a client sends its headers one byte at a time, each
/// well within any per-read timeout, to hold a connection slot forever. The whole head has
/// one deadline (`limits.handshake_timeout`).
#[tokio::test]
async fn slowloris_headers_on_the_callback_listener_are_cut_at_the_handshake_timeout() {
    let gw = TestGateway::start(&mock_config(
        "limits:\n  handshake_timeout: 500ms\ncallback:\n  listen: 127.0.0.1:0",
    ))
    .await;
    let callback = gw.gateway().callback_addr().expect("callback listener");
    let mut stream = TcpStream::connect(callback).await.expect("connect");
    let started = Instant::now();
    let head = b"POST /prod/@connections/AAAAAAAAAAAAAAAA HTTP/1.1\r\nhost: x\r\nx-pad: ";
    let mut closed = false;
    for byte in head.iter().chain(std::iter::repeat(&b'a')) {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the dribbling client was never cut off"
        );
    }
    assert!(closed);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut at the deadline of the whole head, not per byte ({:?})",
        started.elapsed()
    );
}

/// HTTP request smuggling on the callback listener: a request with both `Content-Length` and
/// `Transfer-Encoding` whose "body" by one reading is a second request (a post to a live
/// connection) by the other. The second request must never be executed.
#[tokio::test]
async fn content_length_and_transfer_encoding_conflicts_never_smuggle_a_post() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "callback:\n  listen: 127.0.0.1:0")).await;
    let callback = gw.gateway().callback_addr().expect("callback listener");
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let smuggled = format!(
        "POST /prod/@connections/{id} HTTP/1.1\r\nhost: x\r\ncontent-length: 8\r\n\r\nSMUGGLED"
    );
    let variants = [
        format!(
            "POST /prod/@connections/nobody HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST /prod/@connections/nobody HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: {}\r\n\r\n0\r\n\r\n{smuggled}",
            5 + smuggled.len()
        ),
        format!(
            "POST /prod/@connections/nobody HTTP/1.1\r\nhost: x\r\ntransfer-encoding: xchunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST /prod/@connections/nobody HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n0\r\n\r\n{smuggled}"
        ),
    ];
    for request in &variants {
        let mut stream = TcpStream::connect(callback).await.expect("connect");
        let _ = stream.write_all(request.as_bytes()).await;
        let answer = read_until_closed(&mut stream).await;
        let text = String::from_utf8_lossy(&answer);
        let statuses: Vec<&str> = text
            .match_indices("HTTP/1.1 ")
            .map(|(at, _)| &text[at + 9..at + 12])
            .collect();
        assert!(
            statuses.iter().all(|s| *s != "200"),
            "no request of this stream was executed as a post: {statuses:?}"
        );
    }
    // The connection is alive and got nothing smuggled.
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
}

/// One malformed frame (or a truncated one) of the barrage, chosen by `i`.
fn malformed_frame(i: usize) -> (Vec<u8>, &'static [u16]) {
    const KEY: [u8; 4] = [1, 2, 3, 4];
    let masked = |b0: u8, payload: &[u8]| {
        let mut f = vec![b0, 0x80 | u8::try_from(payload.len()).expect("short")];
        f.extend_from_slice(&KEY);
        f.extend(payload.iter().zip(KEY.iter().cycle()).map(|(b, k)| b ^ k));
        f
    };
    const PROTOCOL: &[u16] = &[1002];
    match i % 10 {
        // RSV1 without a negotiated extension (a compressed frame).
        0 => (masked(0x80 | 0x40 | 0x1, b"{}"), PROTOCOL),
        // Unmasked client frame.
        1 => (vec![0x81, 0x02, b'{', b'}'], PROTOCOL),
        // Reserved opcode.
        2 => (masked(0x80 | 0x3, b"x"), PROTOCOL),
        // Fragmented ping.
        3 => (masked(0x9, b"p"), PROTOCOL),
        // Continuation without a first fragment.
        4 => (masked(0x80, b"x"), PROTOCOL),
        // Invalid UTF-8 in a text message.
        5 => (masked(0x81, &[0xc3, 0x28, 0xff]), &[1007]),
        // A frame announcing 1 MiB, over limits.max_frame_bytes.
        6 => {
            let mut f = vec![0x82, 0x80 | 127];
            f.extend_from_slice(&(1u64 << 20).to_be_bytes());
            f.extend_from_slice(&KEY);
            (f, &[1009])
        }
        // A 64-bit length with its most significant bit set.
        7 => {
            let mut f = vec![0x82, 0x80 | 127];
            f.extend_from_slice(&u64::MAX.to_be_bytes());
            f.extend_from_slice(&KEY);
            (f, &[1002, 1009])
        }
        // A close frame with a code that may not be sent (1005).
        8 => (masked(0x88, &1005u16.to_be_bytes()), PROTOCOL),
        // A control frame over 125 bytes (announced with a 16-bit length).
        _ => {
            let mut f = vec![0x89, 0x80 | 126];
            f.extend_from_slice(&200u16.to_be_bytes());
            f.extend_from_slice(&KEY);
            f.extend(std::iter::repeat_n(0u8, 200));
            (f, PROTOCOL)
        }
    }
}

/// The close code of the first close frame the server sent after its 101, if any.
fn server_close_code(answer: &[u8]) -> Option<u16> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let frames = &answer[end..];
    let mut at = 0;
    while at + 2 <= frames.len() {
        let (b0, b1) = (frames[at], frames[at + 1]);
        assert_eq!(b1 & 0x80, 0, "server frames are not masked");
        let len = usize::from(b1 & 0x7f);
        assert!(len < 126, "short server frames only here");
        let payload = frames.get(at + 2..at + 2 + len)?;
        if b0 & 0x0f == 0x8 {
            return Some(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]));
        }
        at += 2 + len;
    }
    None
}

/// The malformed-frame barrage: 10,000 connections each send one malformed frame (the kinds
/// above, in turn). Every one is closed with the documented code (1002, 1007 or 1009) without
/// a panic or a leak, and a well-behaved client is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_malformed_frames_close_with_protocol_codes() {
    const CONNECTIONS: usize = 10_000;
    let gw = TestGateway::start(&mock_config(
        "limits:\n  max_frame_bytes: 32768\n  max_message_bytes: 65536\nthrottling:\n  gateway: { rate_limit: 100000, burst_limit: 100000 }\n  new_connections: { rate_limit: 100000, burst_limit: 100000 }",
    ))
    .await;
    let addr = gw.addr;
    let mut probe = connect(&gw.ws_url("/prod")).await;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    let unexpected = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..CONNECTIONS {
        let permit = Arc::clone(&semaphore)
            .acquire_owned()
            .await
            .expect("permit");
        let unexpected = Arc::clone(&unexpected);
        tasks.spawn(async move {
            let _permit = permit;
            let (frame, codes) = malformed_frame(i);
            let code = attack(addr, &frame).await;
            if !code.is_some_and(|c| codes.contains(&c)) {
                unexpected.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "frame kind {}: close code {code:?}, expected {codes:?}",
                    i % 10
                );
            }
        });
        if i % 1000 == 999 {
            send_text(&mut probe, r#"{"action":"ping"}"#).await;
            assert_eq!(next_text(&mut probe).await, r#"{"action":"pong"}"#);
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("no attacker task panicked");
    }
    eprintln!("{CONNECTIONS} malformed frames in {:?}", started.elapsed());
    assert_eq!(
        unexpected.load(Ordering::Relaxed),
        0,
        "every attacker got its close code"
    );
    let deadline = Instant::now() + DEADLINE;
    while gw.gateway().connection_count() > 1 {
        assert!(
            Instant::now() < deadline,
            "attacker connections are all gone"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send_text(&mut probe, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut probe).await, r#"{"action":"pong"}"#);
}

/// Upgrades, sends `frame`, and answers the close code the gateway sent.
async fn attack(addr: SocketAddr, frame: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("{UPGRADE}\r\n").as_bytes())
        .await
        .expect("upgrade");
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut chunk))
            .await
            .expect("101 within the deadline")
            .expect("read");
        assert!(n > 0, "closed before the 101");
        head.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(status_of(&head), 101);
    let _ = stream.write_all(frame).await;
    let mut answer = head;
    answer.extend(read_until_closed(&mut stream).await);
    server_close_code(&answer)
}

/// Compression bombs: compression is not offered, so a client's `permessage-deflate` offer
/// gets no `Sec-WebSocket-Extensions` answer and a compressed (RSV1) frame, however small its
/// inflated size would be, closes the connection with 1002 before anything is inflated.
#[tokio::test]
async fn compression_offers_are_declined_and_compressed_frames_close_with_1002() {
    let gw = TestGateway::start(&mock_config("")).await;
    let mut stream = TcpStream::connect(gw.addr).await.expect("connect");
    let offer = format!(
        "{UPGRADE}Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; server_max_window_bits=8\r\n\r\n"
    );
    stream.write_all(offer.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0);
        head.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert_eq!(status_of(&head), 101);
    assert!(
        !text.contains("sec-websocket-extensions"),
        "no extension negotiated: {text}"
    );
    // A deflate stream of a few bytes that would inflate to 1 MiB of zeros, sent compressed.
    let (bomb, _) = malformed_frame(0);
    stream.write_all(&bomb).await.expect("write");
    let mut answer = head;
    answer.extend(read_until_closed(&mut stream).await);
    assert_eq!(server_close_code(&answer), Some(1002));
}
