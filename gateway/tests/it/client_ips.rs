//! Client addresses behind load balancers: `X-Forwarded-For` from trusted proxies, PROXY
//! protocol headers on listeners that take them, per-address limits on the resolved address,
//! and the default `domainName`.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::secured::{Outcome, handshake};
use crate::support::*;

/// The standard config with `security.trusted_proxies` and more `security` lines.
fn trusting(backend: &Backend, proxies: &str, security_extra: &str) -> String {
    config(
        &backend.url(),
        &format!("security:\n  trusted_proxies: {proxies}\n{security_extra}"),
    )
}

/// Connects with an `X-Forwarded-For` header; returns the socket and the `$connect` event.
async fn connect_forwarded(backend: &Backend, gw: &TestGateway, xff: &str) -> (Ws, Value) {
    let (ws, _) = handshake(&gw.ws_url("/prod"), &[("X-Forwarded-For", xff)])
        .await
        .open();
    (ws, backend.next_to("/connect").await.json())
}

fn source_ip(event: &Value) -> &str {
    event["requestContext"]["identity"]["sourceIp"]
        .as_str()
        .expect("sourceIp")
}

fn connection_id(event: &Value) -> String {
    event["requestContext"]["connectionId"]
        .as_str()
        .expect("connectionId")
        .to_string()
}

fn header<'a>(event: &'a Value, name: &str) -> &'a str {
    event["headers"][name].as_str().expect("header")
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_peer_is_the_source_ip() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&trusting(&backend, "[127.0.0.1]", "")).await;
    let (_ws, event) = connect_forwarded(&backend, &gw, "198.51.100.7").await;
    assert_eq!(source_ip(&event), "198.51.100.7");
    // The header keeps AWS's shape: the list as received, then the peer.
    assert_eq!(header(&event, "X-Forwarded-For"), "198.51.100.7, 127.0.0.1");
    let id = connection_id(&event);

    let url = gw.http_url(&format!("/prod/@connections/{id}"));
    let r = http().get(&url).send().await.expect("get");
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.expect("json");
    assert_eq!(info["identity"]["sourceIp"], "198.51.100.7");

    // Loopback trust of the callback API goes by the resolved address too.
    let r = http()
        .get(&url)
        .header("x-forwarded-for", "127.0.0.1")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200, "relayed for a loopback caller");
    let r = http()
        .get(&url)
        .header("x-forwarded-for", "127.0.0.1, 203.0.113.9")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 403, "relayed for a remote caller");
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&trusting(&backend, "[10.0.0.0/8]", "")).await;
    let (_ws, event) = connect_forwarded(&backend, &gw, "198.51.100.7").await;
    assert_eq!(source_ip(&event), "127.0.0.1");
    assert_eq!(header(&event, "X-Forwarded-For"), "198.51.100.7, 127.0.0.1");
    let id = connection_id(&event);
    let r = http()
        .get(gw.http_url(&format!("/prod/@connections/{id}")))
        .send()
        .await
        .expect("get");
    let info: Value = r.json().await.expect("json");
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
}

#[tokio::test]
async fn trusted_hops_are_skipped_from_the_right() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&trusting(&backend, "[127.0.0.1, 10.0.0.0/8]", "")).await;
    let (_ws, event) =
        connect_forwarded(&backend, &gw, "6.6.6.6, 198.51.100.7, 10.1.2.3, 10.4.5.6").await;
    assert_eq!(source_ip(&event), "198.51.100.7");
    // A malformed entry behind a trusted hop stops the walk at that hop.
    let (_ws, event) = connect_forwarded(&backend, &gw, "198.51.100.7, unknown, 10.1.2.3").await;
    assert_eq!(source_ip(&event), "10.1.2.3");
}

#[tokio::test]
async fn per_address_limits_count_the_resolved_address() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&trusting(
        &backend,
        "[127.0.0.1]",
        "  max_connections_per_ip: 1",
    ))
    .await;
    let url = gw.ws_url("/prod");
    let (_a, _) = handshake(&url, &[("X-Forwarded-For", "198.51.100.1")])
        .await
        .open();
    let (_b, _) = handshake(&url, &[("X-Forwarded-For", "198.51.100.2")])
        .await
        .open();
    let again = handshake(&url, &[("X-Forwarded-For", "198.51.100.1")]).await;
    assert_eq!(again.status(), 429);
    if let Outcome::Refused(_, _, body) = again {
        assert!(
            body.contains("Too many connections from this address"),
            "{body}"
        );
    }
    // The proxy's own address is one more client with its own count.
    let (_c, _) = handshake(&url, &[]).await.open();
}

/// A PROXY protocol v1 line for `source` to `gateway`'s port.
fn v1_header(source: SocketAddr, gateway: SocketAddr) -> Vec<u8> {
    let (family, destination) = if source.is_ipv4() {
        ("TCP4", "127.0.0.1")
    } else {
        ("TCP6", "::1")
    };
    format!(
        "PROXY {family} {} {destination} {} {}\r\n",
        source.ip(),
        source.port(),
        gateway.port()
    )
    .into_bytes()
}

/// A PROXY protocol v2 header: `PROXY` for a TCP/IPv6 `source`, or `LOCAL` when `None`.
fn v2_header(source: Option<SocketAddr>) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    match source {
        None => out.extend([0x20, 0x00, 0, 0]),
        Some(SocketAddr::V6(source)) => {
            out.extend([0x21, 0x21, 0, 36]);
            out.extend(source.ip().octets());
            out.extend(std::net::Ipv6Addr::LOCALHOST.octets());
            out.extend(source.port().to_be_bytes());
            out.extend(443u16.to_be_bytes());
        }
        Some(SocketAddr::V4(source)) => {
            out.extend([0x21, 0x11, 0, 12]);
            out.extend(source.ip().octets());
            out.extend([127, 0, 0, 1]);
            out.extend(source.port().to_be_bytes());
            out.extend(443u16.to_be_bytes());
        }
    }
    out
}

/// Opens a socket to `addr` and writes `prefix` on it.
async fn raw(addr: SocketAddr, prefix: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
    stream.write_all(prefix).await.expect("write prefix");
    stream
}

/// A WebSocket handshake on a socket that already carries `prefix`, with extra headers.
async fn handshake_after(gw: &TestGateway, prefix: &[u8], headers: &[(&str, &str)]) -> Ws {
    let stream = raw(gw.addr, prefix).await;
    let mut request = gw.ws_url("/prod").into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    let (ws, _) = tokio::time::timeout(
        DEADLINE,
        tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)),
    )
    .await
    .expect("handshake within the deadline")
    .expect("handshake succeeds");
    ws
}

/// Waits until the gateway closes `stream`, and returns what it sent before.
async fn closed_by_gateway(mut stream: TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the gateway closes the connection");
    seen
}

#[tokio::test]
async fn proxy_protocol_v1_source_is_the_client() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "listen_proxy_protocol: true")).await;
    let source: SocketAddr = "198.51.100.9:40000".parse().expect("addr");
    let _ws = handshake_after(&gw, &v1_header(source, gw.addr), &[]).await;
    let event = backend.next_to("/connect").await.json();
    assert_eq!(source_ip(&event), "198.51.100.9");
    assert_eq!(header(&event, "X-Forwarded-For"), "198.51.100.9");
    let source: SocketAddr = "[2001:db8::9]:40000".parse().expect("addr");
    let _ws = handshake_after(&gw, &v1_header(source, gw.addr), &[]).await;
    let event = backend.next_to("/connect").await.json();
    assert_eq!(source_ip(&event), "2001:db8::9");
}

#[tokio::test]
async fn proxy_protocol_v2_source_is_the_peer_for_trust_and_forwarding() {
    let backend = Backend::ok().await;
    let extra = "listen_proxy_protocol: true\nsecurity:\n  trusted_proxies: [10.0.0.0/8]";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let source: SocketAddr = "[2001:db8::9]:40000".parse().expect("addr");
    let _ws = handshake_after(&gw, &v2_header(Some(source)), &[]).await;
    let event = backend.next_to("/connect").await.json();
    assert_eq!(source_ip(&event), "2001:db8::9");
    // A trusted balancer behind the PROXY header: its X-Forwarded-For is read.
    let balancer: SocketAddr = "10.0.0.5:40000".parse().expect("addr");
    let forwarded = [("X-Forwarded-For", "198.51.100.20")];
    let _ws = handshake_after(&gw, &v2_header(Some(balancer)), &forwarded).await;
    let event = backend.next_to("/connect").await.json();
    assert_eq!(source_ip(&event), "198.51.100.20");
    assert_eq!(header(&event, "X-Forwarded-For"), "198.51.100.20, 10.0.0.5");
    // LOCAL: the TCP peer.
    let _ws = handshake_after(&gw, &v2_header(None), &[]).await;
    let event = backend.next_to("/connect").await.json();
    assert_eq!(source_ip(&event), "127.0.0.1");
}

#[tokio::test]
async fn proxy_protocol_listener_closes_connections_without_a_header() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "listen_proxy_protocol: true")).await;
    let upgrade = format!(
        "GET /prod HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        gw.addr
    );
    let garbage = format!("PROXY TCP4 not-an-address\r\n{upgrade}");
    // The v2 signature with version 3.
    let bad_version = b"\r\n\r\n\0\r\nQUIT\n\x31\x11\0\x0c".as_slice();
    for prefix in [upgrade.as_bytes(), garbage.as_bytes(), bad_version] {
        let stream = raw(gw.addr, prefix).await;
        let seen = closed_by_gateway(stream).await;
        assert!(seen.is_empty(), "nothing answered: {seen:?}");
    }
    // Nothing reached $connect: the next event is this one's.
    let source: SocketAddr = "198.51.100.9:40000".parse().expect("addr");
    let _ws = handshake_after(&gw, &v1_header(source, gw.addr), &[]).await;
    let event = backend.next().await;
    assert_eq!(event.path, "/connect");
    assert_eq!(source_ip(&event.json()), "198.51.100.9");
}

#[tokio::test]
async fn callback_listener_takes_proxy_protocol_and_trusts_loopback_sources_only() {
    let backend = Backend::ok().await;
    let extra = "callback:\n  listen: 127.0.0.1:0\n  listen_proxy_protocol: true";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let callback = gw.gateway().callback_addr().expect("callback listener");
    let (_ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let get = format!(
        "GET /prod/@connections/{id} HTTP/1.1\r\nHost: {callback}\r\nConnection: close\r\n\r\n"
    );
    let status = |source: SocketAddr| {
        let get = get.clone();
        async move {
            let mut prefix = v1_header(source, callback);
            prefix.extend(get.as_bytes());
            let answer = closed_by_gateway(raw(callback, &prefix).await).await;
            String::from_utf8_lossy(&answer)
                .split(' ')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_default()
        }
    };
    assert_eq!(
        status("127.0.0.1:40000".parse().expect("addr")).await,
        "200"
    );
    assert_eq!(
        status("198.51.100.9:40000".parse().expect("addr")).await,
        "403"
    );
    // Without a header: closed.
    let answer = closed_by_gateway(raw(callback, get.as_bytes()).await).await;
    assert!(answer.is_empty());
}

#[tokio::test]
async fn default_domain_name_drops_the_default_port() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    for (host, domain) in [
        ("gateway.example:80", "gateway.example"),
        ("gateway.example:8080", "gateway.example:8080"),
        ("gateway.example", "gateway.example"),
    ] {
        let _ws = handshake_after(&gw, b"", &[("Host", host)]).await;
        let event = backend.next_to("/connect").await.json();
        assert_eq!(event["requestContext"]["domainName"], domain, "{host}");
    }
}

#[tokio::test]
async fn configured_domain_name_is_used_as_is() {
    let backend = Backend::ok().await;
    let yaml = config(&backend.url(), "").replacen(
        "  name: chat\n",
        "  name: chat\n  domain_name: ws.example.com:443\n",
        1,
    );
    let gw = TestGateway::start(&yaml).await;
    for host in ["gateway.example:8080", "ws.example.com"] {
        let _ws = handshake_after(&gw, b"", &[("Host", host)]).await;
        let event = backend.next_to("/connect").await.json();
        assert_eq!(
            event["requestContext"]["domainName"], "ws.example.com:443",
            "{host}"
        );
    }
}
