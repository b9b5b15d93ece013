//! Size caps on integration answers: a backend streaming 50 MiB (chunked, with a Content-Length,
//! or inside a Lambda proxy envelope) gives the client the error frame, the connection stays
//! usable, the gateway stops reading early, and the refusal is counted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::*;

/// What the streaming backend answers.
const HUGE: usize = 50 << 20;
const CHUNK: usize = 64 << 10;
static FILLER: [u8; CHUNK] = [b'x'; CHUNK];

/// Signals when the body stream is dropped (the gateway stopped reading).
struct DropSignal(mpsc::UnboundedSender<usize>, Arc<AtomicUsize>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(self.1.load(Ordering::SeqCst));
    }
}

#[derive(Clone)]
struct BigState {
    produced: Arc<AtomicUsize>,
    dropped: mpsc::UnboundedSender<usize>,
}

/// `HUGE` bytes of `x` in `CHUNK` pieces, between `prefix` and `suffix`, never held at once.
fn streamed(state: &BigState, prefix: &'static str, suffix: &'static str) -> Body {
    state.produced.store(0, Ordering::SeqCst);
    let signal = DropSignal(state.dropped.clone(), Arc::clone(&state.produced));
    let pieces = HUGE / CHUNK;
    let chunks = stream::unfold((0usize, signal), move |(i, signal)| async move {
        let bytes = match i {
            0 => Bytes::from_static(prefix.as_bytes()),
            i if i <= pieces => Bytes::from_static(&FILLER),
            i if i == pieces + 1 => Bytes::from_static(suffix.as_bytes()),
            _ => return None,
        };
        signal.1.fetch_add(bytes.len(), Ordering::SeqCst);
        Some((Ok::<_, std::io::Error>(bytes), (i + 1, signal)))
    });
    Body::from_stream(chunks)
}

async fn answer(State(state): State<BigState>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let _ = axum::body::to_bytes(request.into_body(), 1 << 20).await;
    let mut builder = Response::builder().status(200);
    let body = match path.as_str() {
        // http_proxy, chunked: no length announced.
        "/chunked" => streamed(&state, "", ""),
        // http_proxy, length announced up front.
        "/sized" => {
            builder = builder.header(http::header::CONTENT_LENGTH, HUGE.to_string());
            streamed(&state, "", "")
        }
        // aws_proxy: a proxy response whose body is 50 MiB.
        "/lambda" => streamed(&state, r#"{"statusCode":200,"body":""#, r#""}"#),
        "/fits" => Body::from("y".repeat(1000)),
        "/over" => Body::from("y".repeat(1001)),
        "/fits-lambda" => Body::from(format!(
            r#"{{"statusCode":200,"body":"{}"}}"#,
            "z".repeat(1000)
        )),
        "/over-lambda" => Body::from(format!(
            r#"{{"statusCode":200,"body":"{}"}}"#,
            "z".repeat(1001)
        )),
        "/small-lambda" => Body::from(r#"{"statusCode":200,"body":"small"}"#),
        _ => Body::from("small"),
    };
    builder.body(body).expect("response")
}

struct BigBackend {
    addr: SocketAddr,
    produced: Arc<AtomicUsize>,
    dropped: tokio::sync::Mutex<mpsc::UnboundedReceiver<usize>>,
}

impl BigBackend {
    async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let produced = Arc::new(AtomicUsize::new(0));
        let state = BigState {
            produced: Arc::clone(&produced),
            dropped: tx,
        };
        let app = Router::new().fallback(answer).with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            produced,
            dropped: tokio::sync::Mutex::new(rx),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until a streamed body is dropped; returns the bytes produced by then.
    async fn stream_dropped(&self) -> usize {
        tokio::time::timeout(DEADLINE, async { self.dropped.lock().await.recv().await })
            .await
            .expect("the gateway stops reading within the deadline")
            .expect("channel open")
    }
}

fn yaml(backend: &str, connect: &str, limits: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: caps
  route_selection_expression: $request.body.action
  stages: {{ prod: {{ variables: {{ b: "{backend}" }} }} }}
  routes:
{connect}
    chunked: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/chunked", timeout: 5s }}, route_response: true }}
    sized: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/sized", timeout: 5s }}, route_response: true }}
    lambda: {{ integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/lambda", timeout: 5s }}, route_response: true }}
    oneway: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/chunked", timeout: 5s }} }}
    fits: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/fits" }}, route_response: true }}
    over: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/over" }}, route_response: true }}
    fitslambda: {{ integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/fits-lambda" }}, route_response: true }}
    overlambda: {{ integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/over-lambda" }}, route_response: true }}
    small: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/small" }}, route_response: true }}
{limits}
"#
    )
}

async fn expect_internal_error(ws: &mut Ws) {
    let frame: Value = serde_json::from_str(&next_text(ws).await).expect("json frame");
    assert_eq!(frame["message"], "Internal server error", "{frame}");
}

pub(crate) async fn too_large_count(gw: &TestGateway, route: &str) -> u64 {
    let text = http()
        .get(gw.http_url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with("wsgate_integration_response_too_large_total{"))
        .filter(|l| l.contains(&format!("route=\"{route}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_50_mib_answer_is_refused_and_the_connection_keeps_working() {
    let backend = BigBackend::start().await;
    let gw = TestGateway::start(&yaml(&backend.url(), "", "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for route in ["chunked", "sized", "lambda"] {
        send_text(&mut ws, &format!(r#"{{"action":"{route}"}}"#)).await;
        expect_internal_error(&mut ws).await;
        let produced = backend.stream_dropped().await;
        assert!(
            produced < HUGE / 2,
            "{route}: the gateway read on after the cap ({produced} bytes produced)"
        );
        // The connection is still usable.
        send_text(&mut ws, r#"{"action":"small"}"#).await;
        assert_eq!(next_text(&mut ws).await, "small");
        assert!(too_large_count(&gw, route).await >= 1, "{route} counted");
    }
    // A one-way route reads its answer under the same cap (and still answers the error frame).
    send_text(&mut ws, r#"{"action":"oneway"}"#).await;
    expect_internal_error(&mut ws).await;
    assert!(backend.stream_dropped().await < HUGE / 2);
    assert!(backend.produced.load(Ordering::SeqCst) < HUGE);
}

#[tokio::test]
async fn the_cap_is_max_integration_response_bytes_exactly() {
    let backend = BigBackend::start().await;
    let limits = "limits:\n  max_integration_response_bytes: 1000";
    let gw = TestGateway::start(&yaml(&backend.url(), "", limits)).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"fits"}"#).await;
    assert_eq!(next_text(&mut ws).await.len(), 1000);
    send_text(&mut ws, r#"{"action":"over"}"#).await;
    expect_internal_error(&mut ws).await;
    // aws_proxy: the envelope may be larger, the decoded body may not.
    send_text(&mut ws, r#"{"action":"fitslambda"}"#).await;
    assert_eq!(next_text(&mut ws).await.len(), 1000);
    send_text(&mut ws, r#"{"action":"overlambda"}"#).await;
    expect_internal_error(&mut ws).await;
    send_text(&mut ws, r#"{"action":"small"}"#).await;
    assert_eq!(next_text(&mut ws).await, "small");
}

#[tokio::test]
async fn an_oversized_connect_answer_fails_the_handshake() {
    let backend = BigBackend::start().await;
    let connect = r#"    $connect: { integration: { type: aws_proxy, uri: "${stageVariables.b}/lambda", timeout: 5s } }"#;
    let gw = TestGateway::start(&yaml(&backend.url(), connect, "")).await;
    let (status, _) = connect_refused(&gw.ws_url("/prod")).await;
    assert_eq!(status, 502);
    assert!(backend.stream_dropped().await < HUGE / 2);
    assert!(too_large_count(&gw, "$connect").await >= 1);
}
