//! Test harness: a real gateway on port 0, a scripted HTTP backend that records every request,
//! and WebSocket client helpers. Waits are for events with a deadline, never fixed sleeps.

#![allow(dead_code, unreachable_pub)]

pub mod boto;
pub mod brokers;
pub mod cluster;
pub mod groups;
pub mod haproxy;
pub mod iam;
pub mod otlp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsgate::{Config, Gateway, Listeners};

pub mod keys;
pub mod lambda;
pub mod logs;
pub mod node;
pub mod raw;
pub mod raw_ws;
pub mod relay;
pub mod secured;

/// How long any single awaited event may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// One request the backend received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub query: Option<String>,
    pub method: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// HTTP/1.1, or HTTP/2 when the gateway spoke h2c (the backend serves both).
    pub version: http::Version,
}

impl Received {
    /// The body as JSON (for `aws_proxy` events).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("backend received JSON")
    }
}

/// What the backend answers: status, body, and an optional gate to hold the answer until the
/// test releases it.
pub type Script = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// A scripted reply.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub hold: Option<Arc<tokio::sync::Notify>>,
}

impl Reply {
    /// A Lambda proxy response `{"statusCode": code}` with an optional body.
    pub fn lambda(code: u16, body: Option<&str>) -> Self {
        let mut v = serde_json::json!({ "statusCode": code });
        if let Some(b) = body {
            v["body"] = Value::String(b.to_string());
        }
        Self {
            status: 200,
            body: v.to_string(),
            headers: vec![],
            hold: None,
        }
    }

    /// A raw HTTP answer.
    pub fn http(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_string(),
            headers: vec![],
            hold: None,
        }
    }
}

/// A recording HTTP backend.
pub struct Backend {
    pub addr: SocketAddr,
    rx: Mutex<mpsc::UnboundedReceiver<Received>>,
    accepted: Arc<AtomicUsize>,
}

/// A listener that counts accepted TCP connections (to prove keep-alive pooling).
struct CountingListener {
    inner: TcpListener,
    accepted: Arc<AtomicUsize>,
}

impl axum::serve::Listener for CountingListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let accepted = self.inner.accept().await;
        self.accepted.fetch_add(1, Ordering::SeqCst);
        accepted.expect("accept")
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[derive(Clone)]
struct BackendState {
    tx: mpsc::UnboundedSender<Received>,
    script: Script,
}

async fn record(State(state): State<BackendState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let received = Received {
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        method: parts.method.to_string(),
        headers: parts.headers,
        body,
        version: parts.version,
    };
    let reply = (state.script)(&received);
    // Recorded without waiting: a test that never reads what its backend received must not
    // have the backend stop answering once some buffer is full (it did at 1,024 requests).
    let _ = state.tx.send(received);
    if let Some(hold) = reply.hold {
        hold.notified().await;
    }
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
        reply.body,
    )
        .into_response();
    for (k, v) in reply.headers {
        response.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(&v).expect("header value"),
        );
    }
    response
}

impl Backend {
    /// Starts a backend that answers every request with `script`.
    pub async fn start(script: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = BackendState {
            tx,
            script: Arc::new(script),
        };
        let app = Router::new().fallback(record).with_state(state);
        let inner = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = inner.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let listener = CountingListener {
            inner,
            accepted: Arc::clone(&accepted),
        };
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            rx: Mutex::new(rx),
            accepted,
        }
    }

    /// A backend answering `{"statusCode":200}` to everything.
    pub async fn ok() -> Self {
        Self::start(|_| Reply::lambda(200, None)).await
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request received.
    pub async fn next(&self) -> Received {
        tokio::time::timeout(DEADLINE, async { self.rx.lock().await.recv().await })
            .await
            .expect("backend request within the deadline")
            .expect("backend channel open")
    }

    /// The next request to `path`, skipping others.
    pub async fn next_to(&self, path: &str) -> Received {
        loop {
            let r = self.next().await;
            if r.path == path {
                return r;
            }
        }
    }

    /// Asserts nothing else arrives before `after` resolves.
    pub async fn try_next(&self) -> Option<Received> {
        self.rx.lock().await.try_recv().ok()
    }
}

/// A gateway started from YAML, with `BACKEND` replaced by the backend's URL.
pub struct TestGateway {
    pub gateway: Option<Gateway>,
    pub addr: SocketAddr,
}

impl TestGateway {
    /// Starts a gateway from YAML text. `listen` is overridden to 127.0.0.1:0.
    pub async fn start(yaml: &str) -> Self {
        let config = Config::from_yaml(yaml).expect("test config is valid");
        Self::start_config(config).await
    }

    /// Starts a gateway from a config.
    pub async fn start_config(config: Config) -> Self {
        let main = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let callback = match config.callback.listen {
            Some(_) => Some(
                TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind callback"),
            ),
            None => None,
        };
        let gateway = Gateway::start(config, Listeners { main, callback })
            .await
            .expect("gateway starts");
        let addr = gateway.local_addr();
        Self {
            gateway: Some(gateway),
            addr,
        }
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn gateway(&self) -> &Gateway {
        self.gateway.as_ref().expect("running")
    }

    /// Drains the gateway.
    pub async fn shutdown(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.shutdown().await;
        }
    }
}

/// The standard test config: `$connect`, `$disconnect`, `sendmessage` to the backend (`aws_proxy`),
/// `$default` two-way `http_proxy`, `ping` two-way mock; `extra` is appended under `limits:` etc.
pub fn config(backend: &str, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod:
      variables:
        backend: {backend}
  routes:
    $connect:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/connect", timeout: 2s }}
    $disconnect:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/disconnect" }}
    sendmessage:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/sendmessage", timeout: 2s }}
    echo:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/echo", timeout: 2s }}
      route_response: true
    $default:
      integration: {{ type: http_proxy, uri: "${{stageVariables.backend}}/default", timeout: 2s }}
      route_response: true
    ping:
      integration: {{ type: mock, response: '{{"action":"pong"}}' }}
      route_response: true
{extra}
"#
    )
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects a WebSocket client.
pub async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect within the deadline")
        .expect("handshake succeeds");
    ws
}

/// Connects with a small receive buffer (4 KiB, which turns the kernel's autotuning off), so
/// the kernel holds little on the client's behalf and a client that stops reading soon holds
/// back the gateway's writes.
pub async fn slow_client(url: &str, addr: SocketAddr) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = socket.connect(addr).await.expect("connect");
    let (ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
            .await
            .expect("handshake");
    ws
}

/// Connects and expects the handshake to be refused with an HTTP status; returns it and the body.
pub async fn connect_refused(url: &str) -> (u16, String) {
    match tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url))
        .await
        .expect("answer within the deadline")
    {
        Ok(_) => panic!("handshake unexpectedly succeeded"),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            (status, body)
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

/// The next data or close frame (pings and pongs skipped).
pub async fn next_frame(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("frame within the deadline")
            .expect("stream open")
            .expect("frame ok");
        match msg {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

/// The next text frame.
pub async fn next_text(ws: &mut Ws) -> String {
    match next_frame(ws).await {
        Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Waits for the close frame; returns its code and reason.
pub async fn expect_close(ws: &mut Ws) -> (u16, String) {
    loop {
        match next_frame(ws).await {
            Message::Close(Some(CloseFrame { code, reason })) => {
                return (u16::from(code), reason.to_string());
            }
            Message::Close(None) => return (1005, String::new()),
            _ => continue,
        }
    }
}

/// Sends a text message.
pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_string()))
        .await
        .expect("send");
}

/// The connection id of the next `$connect` event the backend gets.
pub async fn connect_and_id(backend: &Backend, url: &str) -> (Ws, String) {
    let ws = connect(url).await;
    let event = backend.next_to("/connect").await.json();
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();
    (ws, id)
}

/// A plain HTTP client for the callback API.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// The text a node serves at `url` (its `/metrics`, for instance).
pub async fn get_text(client: &reqwest::Client, url: String) -> String {
    client
        .get(url)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text")
}
